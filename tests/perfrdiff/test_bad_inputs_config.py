"""Bad config values (``--set key=value``, a YAML file), one row each: the config refuses it
with this error class, and the message names the dotted key and the value. Then every key that
defines trained weights, changed at generate and at resume time: refused naming the key (derived
from the roles the config fields declare, checked here on a real trained run)."""

from __future__ import annotations

import pytest
from perfrdiff import Run
from perfrdiff.changes import flat_keys
from perfrdiff.config import ConfigError, config_to_dict, field_roles, load_config
from perfrdiff.rundir import StageMismatch
from perfrdiff.stages import STAGE_NAMES, upstream
from perfrdiff.training import ResumeError
from perfrdiff.training.resume import check_resume

CASES = [
    # (override, error, words the message must contain)
    # wrong type
    ("train.gafrg.steps=abc", ConfigError, ["train.gafrg.steps", "integer", "'abc'"]),
    ("train.gafrg.steps=2.5", ConfigError, ["train.gafrg.steps", "integer", "2.5"]),
    ("train.gafrg.steps=true", ConfigError, ["train.gafrg.steps", "integer", "True"]),
    ("train.gafrg.lr=fast", ConfigError, ["train.gafrg.lr", "number", "'fast'"]),
    ("seed=true", ConfigError, ["seed", "integer", "True"]),
    ("seed=", ConfigError, ["seed", "integer", "None"]),
    ("denoiser.use_prev_window=1", ConfigError, ["denoiser.use_prev_window", "true or false"]),
    ("data.root=[a]", ConfigError, ["data.root", "string"]),
    ("data.root=null", ConfigError, ["data.root", "string", "None"]),
    ("pwsg.targets=output", ConfigError, ["pwsg.targets", "list"]),
    ("pwsg.targets=[1, 2]", ConfigError, ["pwsg.targets", "string", "1"]),
    ("denoiser=3", ConfigError, ["denoiser", "mapping", "3"]),
    ("train.gafrg=5", ConfigError, ["train.gafrg", "mapping", "5"]),
    ("train.gafrg.steps=[1", ValueError, ["train.gafrg.steps=[1", "not"]),
    # out of range
    ("train.gafrg.steps=0", ConfigError, ["train.gafrg.steps", ">= 1", "0"]),
    ("train.gafrg.batch_size=-4", ConfigError, ["train.gafrg.batch_size", ">= 1", "-4"]),
    ("train.gafrg.lr=0", ConfigError, ["train.gafrg.lr", "> 0"]),
    ("train.gafrg.optimizer=SGD", ConfigError, ["train.gafrg.optimizer", "one of", "'SGD'"]),
    ("train.gafrg.skip_nonfinite=-1", ConfigError, ["train.gafrg.skip_nonfinite", ">= 0"]),
    ("denoiser.heads=3", ConfigError, ["denoiser.heads", "divide", "64"]),
    ("denoiser.dropout=1", ConfigError, ["denoiser.dropout", "[0, 1)", "1"]),
    ("diffusion.cond_drop=1.5", ConfigError, ["diffusion.cond_drop", "[0, 1]", "1.5"]),
    ("diffusion.sample_steps=5000", ConfigError, ["diffusion.sample_steps", "train_steps"]),
    ("diffusion.prediction=V", ConfigError, ["diffusion.prediction", "one of", "'V'"]),
    ("style.input=video", ConfigError, ["style.input", "one of", "'video'"]),
    ("pwsg.rank=0", ConfigError, ["pwsg.rank", ">= 1", "0"]),
    ("pwsg.targets=[]", ConfigError, ["pwsg.targets", "empty"]),
    # settings that contradict each other name the key that needs the other
    ("denoiser.standardise=false", ConfigError,
     ["pwsg.listener_prior", "denoiser.standardise = true"]),
    ("pwsg.condition=both", ConfigError,
     ["pwsg.condition", "'both' reads each listener's personality", "'react2024'", "react2026"]),
    ("pwsg.mode=offset", ConfigError, ["pwsg.mode", "one of", "'add'", "'replace'", "'offset'"]),
    ("data.window=751", ConfigError, ["data.window", "<= 750", "751"]),
    ("data.history_frames=0", ConfigError, ["data.history_frames", ">= 1"]),
    ("seed=-1", ConfigError, ["seed", ">= 0", "-1"]),
    ("seed=4294967296", ConfigError, ["seed", "<= 4294967295", "4294967296"]),
    ("seed=1e30", ConfigError, ["seed", "<= 4294967295"]),
    ("threads=0", ConfigError, ["threads", ">= 1", "0"]),
    ("threads=1000000", ConfigError, ["threads", "<= 1024", "1000000"]),
    ("data.num_workers=100000", ConfigError, ["data.num_workers", "<= 1024"]),
    ("generate.samples=0", ConfigError, ["generate.samples", ">= 1"]),
    # NaN and infinity
    ("train.gafrg.lr=nan", ConfigError, ["train.gafrg.lr", "finite", "'nan'"]),
    ("train.gafrg.lr=.inf", ConfigError, ["train.gafrg.lr", "finite", "inf"]),
    ("train.gafrg.grad_clip=nan", ConfigError, ["train.gafrg.grad_clip", "finite"]),
    ("diffusion.guidance=-.inf", ConfigError, ["diffusion.guidance", "finite"]),
    ("diffusion.eta=1e400", ConfigError, ["diffusion.eta", "finite", "1e400"]),
    ("style.temperature=inf", ConfigError, ["style.temperature", "finite"]),
    ("pwsg.prior_weight=nan", ConfigError, ["pwsg.prior_weight", "finite"]),
    # unknown keys and malformed overrides
    ("denoiser.d_modle=3", ValueError, ["denoiser.d_modle", "unknown key 'd_modle'"]),
    ("train.gafgr.lr=1", ValueError, ["train.gafgr.lr", "no config section 'gafgr'"]),
    ("bogus.key=1", ValueError, ["bogus.key", "no config section 'bogus'"]),
    ("nokey", ValueError, ["key.sub=value", "'nokey'"]),
]  # fmt: skip


@pytest.mark.parametrize(("override", "error", "words"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_config_value_is_named(override, error, words):
    with pytest.raises(error) as caught:
        load_config("tiny", [override])
    for word in words:
        assert word in str(caught.value), f"{word!r} not in {caught.value}"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- 1\n- 2\n", ["bad.yaml", "YAML mapping", "list"]),
        ("a: [1\n", ["bad.yaml", "not a readable YAML"]),
        ("denoiser: {dropout: 2}\n", ["denoiser.dropout", "[0, 1)"]),
        ("train: {gafgr: {steps: 3}}\n", ["train", "unknown stages", "gafgr"]),
        ("denoiser: [1, 2]\n", ["denoiser", "mapping"]),
        ("nosection: {a: 1}\n", ["unknown keys", "nosection"]),
    ],
)
def test_a_bad_config_file_is_named(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        load_config(path)
    message = " ".join([str(caught.value), *getattr(caught.value, "__notes__", [])])
    for word in words:
        assert word in message, f"{word!r} not in {message}"


# --- keys that change what trained weights mean ---------------------------------------------

_WORDS = [
    "x0",
    "v",
    "uniform",
    "trailing",
    "face",
    "emotion",
    "dyadic",
    "add",
    "scale",
    "replace",
    "kv",
    "all",
    "react2026",
]


def another_value(key: str, value) -> str | None:
    """An override giving ``key`` another value the tiny config accepts on its own, or None."""
    if isinstance(value, bool):
        candidates = [not value]
    elif isinstance(value, int):
        candidates = [value * 2, value + 1, max(1, value // 2)]
    elif isinstance(value, float):
        candidates = [value / 2]
    elif isinstance(value, str):
        candidates = [w for w in _WORDS if w != value]
    elif isinstance(value, list):
        candidates = [value[:1]] if value else [[1]]  # an empty list (a feature off): one item
    else:  # None
        candidates = [8]
    for candidate in candidates:
        text = str(candidate).lower() if isinstance(candidate, bool) else str(candidate)
        try:
            changed = flat_keys(config_to_dict(load_config("tiny", [f"{key}={text}"])))[key]
        except ValueError:
            continue
        if changed != value:  # not an old name of the same value ("shift" for "add")
            return f"{key}={text}"
    return None


TINY = flat_keys(config_to_dict(load_config("tiny")))
# Keys that define the generator's weights (pwsg or a stage it is built on); the eeg head's own
# keys are checked by tests/perfrdiff/test_eeg_stage.py.
GENERATOR = {"pwsg", *upstream("pwsg")}
WEIGHTS_KEYS = [
    k for k, role in field_roles().items() if role.kind == "weights" and GENERATOR & {*role.defines}
]
# Values that only make sense with another one changed too (named in the rows above;
# pwsg.condition: a protocol whose data has personality; pwsg.personality_prior: a condition
# that reads it; data.audio=features needs protocol react2026, the layout with 768-d audio
# features; data.face_mean and data.face_std: protocol react2026 and each other;
# tests/perfrdiff/test_data_react2026_face.py).
NEEDS_A_COMPANION = {
    "denoiser.standardise",
    "pwsg.condition",
    "pwsg.personality_prior",
    "data.audio",
    "data.face_mean",
    "data.face_std",
}


def test_every_weights_key_but_the_named_ones_has_an_alternative_alone():
    alone = {k for k in WEIGHTS_KEYS if another_value(k, TINY[k]) is not None}
    assert set(WEIGHTS_KEYS) - alone == NEEDS_A_COMPANION


@pytest.mark.parametrize("key", sorted(set(WEIGHTS_KEYS) - NEEDS_A_COMPANION))
def test_generate_refuses_a_change_of_what_the_weights_mean(quick_run, key):
    override = another_value(key, TINY[key])
    run = Run.load(quick_run, "cpu", overrides=[override])
    with pytest.raises(StageMismatch) as caught:
        for mode in ("generic", "personalised"):
            run.sampler(mode)
    assert f"{key}: trained with" in str(caught.value)
    assert "does not fit this run" in str(caught.value)


@pytest.mark.parametrize("key", sorted(set(WEIGHTS_KEYS) - NEEDS_A_COMPANION))
def test_resume_refuses_a_change_of_what_the_weights_mean(quick_run, key):
    config = load_config(quick_run / "config.yaml", [another_value(key, TINY[key])])
    with pytest.raises(ResumeError) as caught:
        check_resume(config, quick_run, STAGE_NAMES)
    assert key in str(caught.value) and "Restore these settings" in str(caught.value)


SAMPLING_OR_RUNTIME = [
    "diffusion.sample_steps=3",
    "diffusion.guidance=2.0",
    "diffusion.eta=0.5",
    "generate.samples=3",
    "data.allow_same_clip_history=true",
    "data.num_workers=0",
    "train.gafrg.lr=0.5",  # training only: the weights mean the same
    "denoiser.dropout=0.3",
]


@pytest.mark.parametrize("override", SAMPLING_OR_RUNTIME)
def test_values_the_weights_do_not_depend_on_may_change_at_generate(quick_run, override):
    run = Run.load(quick_run, "cpu", overrides=[override])
    for mode in ("generic", "personalised"):
        run.sampler(mode)
