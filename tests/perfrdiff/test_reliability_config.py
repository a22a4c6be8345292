"""Issue item 7: every config value is converted to its field's type and range-checked when the
config is built, and a bad value is named by its dotted key."""

import pytest
from perfrdiff.config import ConfigError, StageConfig, config_from_dict, load_config


def test_numbers_written_as_yaml_text_become_floats():
    # YAML 1.1 reads 1e-3 as the string "1e-3"; torch would fail on it much later.
    config = load_config("tiny", ["train.gafrg.lr=1e-3", "train.gafrg.steps=1e3"])
    assert config.train["gafrg"].lr == 1e-3 and isinstance(config.train["gafrg"].lr, float)
    assert config.train["gafrg"].steps == 1000 and isinstance(config.train["gafrg"].steps, int)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.gafrg.steps=abc", "train.gafrg.steps: expected an integer, got 'abc'"),
        ("train.gafrg.steps=2.5", "train.gafrg.steps: expected an integer, got 2.5"),
        ("train.gafrg.steps=true", "train.gafrg.steps: expected an integer, got True"),
        ("train.gafrg.lr=fast", "train.gafrg.lr: expected a number, got 'fast'"),
        ("denoiser.use_prev_window=3", "denoiser.use_prev_window: expected true or false"),
        ("data.root=[a]", "data.root: expected a string"),
        ("pwsg.targets=output", "pwsg.targets: expected a list"),
        ("seed=1.5", "seed: expected an integer"),
    ],
)
def test_a_value_of_the_wrong_type_is_named(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config("tiny", [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.gafrg.steps=0", "train.gafrg.steps: must be >= 1, got 0"),
        ("train.gafrg.batch_size=0", "train.gafrg.batch_size: must be >= 1, got 0"),
        ("train.style.log_every=0", "train.style.log_every: must be >= 1, got 0"),
        ("train.pwsg.ckpt_every=0", "train.pwsg.ckpt_every: must be >= 1, got 0"),
        ("train.gafrg.val_every=-1", "train.gafrg.val_every: must be >= 1"),
        ("train.gafrg.lr=0", "train.gafrg.lr: must be > 0"),
        ("train.gafrg.optimizer=lion", "train.gafrg.optimizer: must be one of"),
        ("train.gafrg.warmup_steps=-2", "train.gafrg.warmup_steps: must be >= 0"),
        ("diffusion.guidance=nan", "diffusion.guidance: expected a finite number"),
        ("diffusion.guidance=.inf", "diffusion.guidance: expected a finite number"),
        ("diffusion.cond_drop=1.5", r"diffusion.cond_drop: must be in \[0, 1\]"),
        ("diffusion.sample_steps=0", "diffusion.sample_steps: must be >= 1"),
        ("diffusion.sample_steps=5000", "diffusion.sample_steps: must be <= train_steps = 1000"),
        ("denoiser.heads=3", "denoiser.heads: must divide d_model = 64"),
        ("denoiser.dropout=1", r"denoiser.dropout: must be in \[0, 1\)"),
        ("style.input=video", "style.input: must be one of"),
        ("style.temperature=0", "style.temperature: must be > 0"),
        ("pwsg.rank=0", "pwsg.rank: must be >= 1"),
        ("pwsg.targets=[]", "pwsg.targets: must not be empty"),
        ("pwsg.mode=offset", "pwsg.mode: must be one of"),
        ("pwsg.attention_rows=q", "pwsg.attention_rows: must be one of"),
        ("pwsg.shift_l2=-1", "pwsg.shift_l2: must be >= 0"),
        ("pwsg.style_noise=-0.1", "pwsg.style_noise: must be >= 0"),
        ("generate.samples=0", "generate.samples: must be >= 1"),
        ("data.window=0", "data.window: must be >= 1"),
        ("threads=0", "threads: must be >= 1"),
        ("seed=-1", "seed: must be >= 0"),
    ],
)
def test_a_value_out_of_range_is_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny", [override])


def test_optional_values_accept_null():
    config = load_config("tiny", ["pwsg.rank=null", "threads=null", "pwsg.branch_dim=8"])
    assert config.pwsg.rank is None and config.threads is None and config.pwsg.branch_dim == 8


def test_yaml_sections_are_checked_too():
    with pytest.raises(ConfigError, match=r"train\.gafrg\.batch_size: must be >= 1"):
        config_from_dict({"train": {"gafrg": {"batch_size": 0}}})
    with pytest.raises(ConfigError, match=r"train: unknown stages \['gafgr'\]"):
        config_from_dict({"train": {"gafgr": {"steps": 3}}})
    with pytest.raises(ConfigError, match="train: expected a mapping"):
        config_from_dict({"train": [1, 2]})


def test_configs_built_in_python_are_checked():
    with pytest.raises(ConfigError, match="steps: must be >= 1, got 0"):
        StageConfig(steps=0)
    assert StageConfig(lr="2e-4").lr == 2e-4


def test_the_presets_are_valid():
    for preset in ("tiny", "paper"):
        load_config(preset)
