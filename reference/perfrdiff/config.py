"""Configuration of the PerFRDiff reference: dataclasses with working defaults, YAML maps onto them.

Two presets ship in ``perfrdiff/configs``: ``paper`` (the paper's sizes) and ``tiny`` (CPU-friendly,
used by the tests and the demo). :func:`load_config` accepts a preset name or a YAML path, then
applies ``key.sub=value`` overrides, so every size and path can be changed from the command line.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRESETS_DIR = Path(__file__).parent / "configs"
STAGES: tuple[str, ...] = ("emotion-vae", "style", "gafrg", "pwsg")


@dataclass
class DenoiserConfig:
    """GAFRG: the transformer-decoder denoiser and its speaker encoders."""

    d_model: int = 512
    heads: int = 4
    ffn_dim: int = 1024
    layers: int = 7
    dropout: float = 0.1
    # Condition the window on the previously generated one (the paper's online mode).
    use_prev_window: bool = True


@dataclass
class EmotionVAEConfig:
    """GRU VAE over speaker emotion windows; its posterior mean is the speaker-emotion token."""

    hidden_dim: int = 256
    latent_dim: int = 256
    kl_weight: float = 1e-4


@dataclass
class DiffusionConfig:
    """Cosine schedule, DDIM sampling and classifier-free guidance."""

    train_steps: int = 1000
    sample_steps: int = 50
    cond_drop: float = 0.2
    # Probability of hiding the real previous window in training. Generation conditions on the
    # model's own previous window (none for the first one), so the real past shown in training
    # lets the model read the listener's level off it instead of learning it from the style.
    prev_drop: float = 0.0
    guidance: float = 1.0
    eta: float = 0.0
    # What the denoiser predicts: "x0" (the paper) or "v" (see DDIMSchedule).
    prediction: str = "x0"
    # DDIM timestep grid: "uniform" or "quadratic" (more steps where the noise is small, so
    # frame-to-frame detail survives the last step; see DDIMSchedule.set_timesteps).
    spacing: str = "uniform"


@dataclass
class StyleConfig:
    """PSSL style encoder: transformer encoder with a CLS token and an L2-normalised projection."""

    input: str = "face"  # "face" (58-d 3DMM) or "emotion" (25-d)
    d_model: int = 256
    heads: int = 4
    layers: int = 4
    ffn_dim: int = 512
    dropout: float = 0.1
    style_dim: int = 128
    temperature: float = 0.07
    frames: int = 250  # clip length for contrastive training (10 s at 25 fps)


@dataclass
class PWSGConfig:
    """Personalised weight-shift generator (weditlib's MultiBranchDeltaGenerator)."""

    # fnmatch patterns over the denoiser's qualified names (the paper's ablation table);
    # the paper's best edits cross-attention and the output mapping.
    targets: list[str] = field(
        default_factory=lambda: ["decoder.layers.*.multihead_attn", "output"]
    )
    hidden_dim: int = 256
    trunk_layers: int = 2
    rank: int | None = 8  # None: dense heads, as in the paper
    branch_dim: int | None = None  # per-branch bottleneck before low-rank heads
    mode: str = "shift"


@dataclass
class StageConfig:
    """Optimisation of one training stage."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-4
    optimizer: str = "adamw"  # "adamw" or "sgd"
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    val_every: int = 200
    val_batches: int = 4
    ckpt_every: int = 200
    log_every: int = 10


@dataclass
class DataConfig:
    root: str = "data/synthetic"
    window: int = 50
    history_frames: int = 250
    # Evaluation: a listener with no other clip in any split takes its history from the evaluated
    # clip itself (which then leaks the target into the condition). Off: such a split fails.
    allow_same_clip_history: bool = False
    # DataLoader workers; None: 0 on the CPU (the model needs the cores), up to 4 on CUDA.
    num_workers: int | None = None


@dataclass
class GenerateConfig:
    samples: int = 10
    clips_per_batch: int = 8
    # Frames each online window shares with the frames generated before it, held fixed while it
    # is denoised (0: windows end to end, each starting afresh, with a jump at every join). See
    # perfrdiff.generation. On the synthetic demo, 10 took the join/inside step ratio of
    # personalised samples from 10.6 to 0.8 for 1.3x the windows (benchmarks/realism.py).
    overlap: int = 10


@dataclass
class Config:
    """Everything one PerFRDiff run needs."""

    seed: int = 0
    # torch intra-op threads (None: torch's default). Small models on a shared CPU run several
    # times faster on one thread than on two that compete with other processes.
    threads: int | None = None
    data: DataConfig = field(default_factory=DataConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    emotion_vae: EmotionVAEConfig = field(default_factory=EmotionVAEConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    style: StyleConfig = field(default_factory=StyleConfig)
    pwsg: PWSGConfig = field(default_factory=PWSGConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    train: dict[str, StageConfig] = field(
        default_factory=lambda: {stage: StageConfig() for stage in STAGES}
    )

    def stage(self, name: str) -> StageConfig:
        if name not in self.train:
            raise ValueError(f"stage must be one of {sorted(self.train)}, got {name!r}")
        return self.train[name]


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, recursing into nested dataclasses."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown keys in {where or 'config'}: {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{where}.{key}".lstrip("."))
        elif key == "train" and cls is Config:
            defaults = Config().train
            kwargs[key] = {
                stage: _build(
                    StageConfig,
                    {**dataclasses.asdict(defaults.get(stage, StageConfig())), **(cfg or {})},
                    f"train.{stage}",
                )
                for stage, cfg in value.items()
            }
            kwargs[key] = {**defaults, **kwargs[key]}
        else:
            kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any]) -> Config:
    return _build(Config, data, "")


def config_to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        if key not in node or not isinstance(node[key], dict):
            raise ValueError(f"override {dotted!r}: no config section {key!r}")
        node = node[key]
    if keys[-1] not in node:
        raise ValueError(f"override {dotted!r}: unknown key {keys[-1]!r}")
    node[keys[-1]] = value


def load_config(name_or_path: str | Path = "tiny", overrides: Sequence[str] = ()) -> Config:
    """Load a preset (``"tiny"``, ``"paper"``) or a YAML file, then apply ``a.b=value`` overrides.

    Override values are parsed as YAML, so ``train.gafrg.steps=50`` gives an int and
    ``pwsg.rank=null`` gives ``None``.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        presets = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"config {name_or_path!r}: no file {path} (presets: {presets})")
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    data = config_to_dict(config_from_dict(raw))
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override must look like key.sub=value, got {item!r}")
        key, value = item.split("=", 1)
        _set_path(data, key.strip(), yaml.safe_load(value))
    return config_from_dict(data)


def apply_runtime(config: Config) -> None:
    """Process-wide settings of a config (torch threads)."""
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)


def save_config(config: Config, path: str | Path) -> None:
    with open(path, "w") as f:
        yaml.safe_dump(config_to_dict(config), f, sort_keys=False)
