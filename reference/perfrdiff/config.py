"""Configuration of the PerFRDiff reference: dataclasses with working defaults, YAML maps onto them.

Two presets ship in ``perfrdiff/configs``: ``paper`` (the paper's sizes) and ``tiny`` (CPU-friendly,
used by the tests and the demo). :func:`load_config` accepts a preset name or a YAML path, then
applies ``key.sub=value`` overrides, so every size and path can be changed from the command line.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from perfrdiff._checks import SEED_MAX
from perfrdiff.protocol import PROTOCOLS, protocol_named
from perfrdiff.stages import STAGE_NAMES

#: What the shift generator may read (``pwsg.condition``; :mod:`perfrdiff.models.condition`).
CONDITIONS = ("history", "personality", "both")
#: The protocols whose data give each listener's Big Five personality.
PERSONALITY_PROTOCOLS = ("react2026",)
#: Values that older versions wrote under another name: dotted key -> old -> new. A saved
#: run's config is read (and compared, :mod:`perfrdiff.changes`) with the new names.
OLD_VALUES: dict[str, dict[Any, Any]] = {"pwsg.mode": {"shift": "add"}}

PRESETS_DIR = Path(__file__).parent / "configs"
#: The most threads or loader workers a config may ask for (far above any machine's cores).
MAX_THREADS = 1024
#: The training stages in order (from the registry, :mod:`perfrdiff.stages`).
STAGES: tuple[str, ...] = STAGE_NAMES


class ConfigError(ValueError):
    """A config value has the wrong type or is out of range.

    ``key`` is the value's dotted name (``train.gafrg.lr``), ``problem`` what is wrong with it.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem

    def within(self, section: str) -> ConfigError:
        """The same error, with ``key`` prefixed by the enclosing ``section``."""
        return ConfigError(f"{section}.{self.key}" if section else self.key, self.problem)


# A rule returns what is wrong with a (type-checked) value, or None when it is fine.
_Rule = Callable[[Any], "str | None"]


def _at_least(low: float) -> _Rule:
    return lambda v: None if v >= low else f"must be >= {low}, got {v!r}"


def _between(low: int, high: int) -> _Rule:
    below = _at_least(low)
    return lambda v: below(v) or (None if v <= high else f"must be <= {high}, got {v!r}")


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be > 0, got {v!r}"


def _fraction(v: float) -> str | None:
    return None if 0 <= v <= 1 else f"must be in [0, 1], got {v!r}"


def _below_one(v: float) -> str | None:
    return None if 0 <= v < 1 else f"must be in [0, 1), got {v!r}"


def _one_of(*choices: str) -> _Rule:
    return lambda v: None if v in choices else f"must be one of {list(choices)}, got {v!r}"


def _non_empty(v: Sequence[Any]) -> str | None:
    return None if len(v) else "must not be empty"


def _distinct_lags(v: Sequence[int]) -> str | None:
    if any(k < 0 for k in v):
        return f"lags must be >= 0 frames, got {list(v)!r}"
    return None if len(set(v)) == len(v) else f"lags must be distinct, got {list(v)!r}"


@dataclass(frozen=True)
class Role:
    """What depends on a config field: declared once, beside the field's default and rule.

    Every "does this key matter here?" question is answered from these declarations
    (:mod:`perfrdiff.changes`): which trained stages a generate or a resume must refuse, which
    stages a variant retrains, which changes a resume applies.

    Attributes:
        kind: ``"weights"`` (the value is part of what trained weights mean: a model size, the
            diffusion target), ``"training"`` (training reads it, the weights' meaning does not
            change: dropout, a loss weight, the data, the optimiser), ``"sampling"`` (only
            generation and evaluation read it) or ``"runtime"`` (how the work runs: threads,
            loader workers).
        defines: the stages whose trained weights the value defines (the stages built on them
            depend on it through them).
        trains: the stages whose training reads the value (``defines`` included).
        resumable: a resumed training may take a new value (it is applied and recorded).
    """

    kind: str
    defines: tuple[str, ...] = ()
    trains: tuple[str, ...] = ()
    resumable: bool = False


#: Stands for "the stage whose ``train.<stage>`` section holds the field" in a role.
OWN_STAGE = "<own stage>"


def _stages_checked(stages: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [s for s in stages if s not in STAGE_NAMES and s != OWN_STAGE]
    if unknown:  # a typo in a role would silently guard nothing
        raise ValueError(f"config role names unknown stages {unknown} (stages: {STAGE_NAMES})")
    return stages


def weights_of(*stages: str) -> Role:
    """The role of a value that defines ``stages``' trained weights."""
    stages = _stages_checked(stages)
    return Role("weights", defines=stages, trains=stages)


def training_of(*stages: str, resumable: bool = False) -> Role:
    """The role of a value that ``stages``' training reads without changing what the weights
    mean."""
    return Role("training", trains=_stages_checked(stages), resumable=resumable)


SAMPLING = Role("sampling")
RUNTIME = Role("runtime")


def _setting(default: Any, rule: _Rule | None = None, *, role: Role) -> Any:
    """A dataclass field with its ``role`` and an optional ``rule`` its value must satisfy
    (checked in ``__post_init__``)."""
    return field(default=default, metadata={"rule": rule, "role": role})


def _convert(hint: Any, value: Any) -> Any:
    """``value`` as type ``hint``, or raise ``TypeError`` saying what was expected.

    Numbers written as text are accepted (YAML 1.1 reads ``1e-3`` as a string); an integer
    field also takes an integral float (``1e3``); ``bool`` is never taken for a number.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a list, got {value!r} ({type(value).__name__})")
        return [_convert(args[0], v) for v in value]
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r} ({type(value).__name__})")
        return value
    if hint is int:
        number = _number(value, "an integer")
        if isinstance(number, float):
            if not number.is_integer():
                raise TypeError(f"expected an integer, got {value!r}")
            number = int(number)
        return number
    if hint is float:
        number = float(_number(value, "a number"))
        if not math.isfinite(number):
            raise TypeError(f"expected a finite number, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {value!r} ({type(value).__name__})")
        return value
    raise TypeError(f"unsupported config type {hint!r}")  # pragma: no cover


def _number(value: Any, expected: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected {expected}, got {value!r} ({type(value).__name__})")
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise TypeError(f"expected {expected}, got {value!r}") from None
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


class _Checked:
    """Converts and checks every field against its type hint and rule when an instance is built."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value, hint = getattr(self, f.name), hints[f.name]
            if dataclasses.is_dataclass(hint):
                if not isinstance(value, hint):
                    raise ConfigError(f.name, f"expected a {hint.__name__} section, got {value!r}")
                continue
            if f.name == "train" and isinstance(self, Config):
                continue  # checked by Config.__post_init__
            try:
                value = _convert(hint, value)
            except TypeError as error:
                raise ConfigError(f.name, str(error)) from None
            rule = f.metadata.get("rule")
            problem = rule(value) if rule is not None and value is not None else None
            if problem:
                raise ConfigError(f.name, problem)
            setattr(self, f.name, value)


def _heads_divide(section: Any) -> None:
    if section.d_model % section.heads:
        raise ConfigError(
            "heads", f"must divide d_model = {section.d_model}, got heads = {section.heads}"
        )


@dataclass
class DenoiserConfig(_Checked):
    """GAFRG: the transformer-decoder denoiser and its speaker encoders."""

    d_model: int = _setting(512, _at_least(1), role=weights_of("gafrg"))
    heads: int = _setting(4, _at_least(1), role=weights_of("gafrg"))
    ffn_dim: int = _setting(1024, _at_least(1), role=weights_of("gafrg"))
    layers: int = _setting(7, _at_least(1), role=weights_of("gafrg"))
    dropout: float = _setting(0.1, _below_one, role=training_of("gafrg"))
    # Condition the window on the previously generated one (the paper's online mode).
    use_prev_window: bool = _setting(True, role=weights_of("gafrg"))
    # One extra memory token for the listener's style ("input p", the paper's Table 3), set by a
    # bias shift of the "style_slot" layer; off in the paper's PerFRDiff.
    style_token: bool = _setting(False, role=weights_of("gafrg"))
    # Diffuse the listener features standardised per channel with the training split's mean and
    # std (the cosine schedule assumes unit variance; the features' std is 0.05-0.6). Off in the
    # paper, which diffuses the raw features.
    standardise: bool = _setting(False, role=weights_of("gafrg"))
    # Standardise the speaker's audio, 3DMM and emotion frames per feature with the training
    # split's mean and std before their token projections (raw MFCCs have a std near 60, some
    # 3DMM coefficients near 0.005: unscaled, the cross-attention keys are dominated by a few
    # features). Off in the paper.
    standardise_speaker: bool = _setting(False, role=weights_of("gafrg"))
    # One memory token per speaker frame for the speaker's emotion, beside the emotion VAE's
    # summary token of the window (the paper's encoder gives only the summary, so the order of
    # the speaker's expressions inside the window is seen through audio and 3DMM only).
    emotion_frames: bool = _setting(False, role=weights_of("gafrg"))

    def __post_init__(self) -> None:
        super().__post_init__()
        _heads_divide(self)


@dataclass
class EmotionVAEConfig(_Checked):
    """GRU VAE over speaker emotion windows; its posterior mean is the speaker-emotion token."""

    hidden_dim: int = _setting(256, _at_least(1), role=weights_of("emotion-vae"))
    latent_dim: int = _setting(256, _at_least(1), role=weights_of("emotion-vae"))
    kl_weight: float = _setting(1e-4, _at_least(0), role=training_of("emotion-vae"))


@dataclass
class DiffusionConfig(_Checked):
    """Cosine schedule, DDIM sampling and classifier-free guidance."""

    train_steps: int = _setting(1000, _at_least(1), role=weights_of("gafrg"))
    sample_steps: int = _setting(50, _at_least(1), role=SAMPLING)
    cond_drop: float = _setting(0.2, _fraction, role=training_of("gafrg", "pwsg"))
    # Probability of hiding the real previous window in training. Generation conditions on the
    # model's own previous window (none for the first one), so the real past shown in training
    # lets the model read the listener's level off it instead of learning it from the style.
    prev_drop: float = _setting(0.0, _fraction, role=training_of("gafrg", "pwsg"))
    guidance: float = _setting(1.0, role=SAMPLING)
    eta: float = _setting(0.0, _at_least(0), role=SAMPLING)
    # What the denoiser predicts: "x0" (the paper) or "v" (see DDIMSchedule).
    prediction: str = _setting("x0", _one_of("x0", "v"), role=weights_of("gafrg"))
    # DDIM timestep grid: "uniform", "quadratic" (more steps where the noise is small, so
    # frame-to-frame detail survives the last step), "linspace" or "trailing" (even steps from
    # pure noise); see DDIMSchedule.set_timesteps.
    spacing: str = _setting(
        "uniform", _one_of("uniform", "quadratic", "linspace", "trailing"), role=SAMPLING
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sample_steps > self.train_steps:
            raise ConfigError(
                "sample_steps",
                f"must be <= train_steps = {self.train_steps}, got {self.sample_steps}",
            )


_STYLE = weights_of("style")


@dataclass
class StyleConfig(_Checked):
    """PSSL style encoder: transformer encoder with a CLS token and an L2-normalised projection."""

    # The listener's 58-d 3DMM or 25-d emotion (the paper's inputs), or "dyadic": their emotion
    # beside their conversation partner's at the same frames (50-d; not the paper's).
    input: str = _setting("face", _one_of("face", "emotion", "dyadic"), role=_STYLE)
    d_model: int = _setting(256, _at_least(1), role=_STYLE)
    heads: int = _setting(4, _at_least(1), role=_STYLE)
    layers: int = _setting(4, _at_least(1), role=_STYLE)
    ffn_dim: int = _setting(512, _at_least(1), role=_STYLE)
    dropout: float = _setting(0.1, _below_one, role=training_of("style"))
    style_dim: int = _setting(128, _at_least(1), role=_STYLE)
    temperature: float = _setting(0.07, _positive, role=training_of("style"))
    # clip length for contrastive training (10 s); cut from one clip (at most the protocol's
    # crop_frames, checked by Config)
    frames: int = _setting(250, _at_least(1), role=training_of("style"))

    def __post_init__(self) -> None:
        super().__post_init__()
        _heads_divide(self)


_PWSG = weights_of("pwsg")


@dataclass
class PWSGConfig(_Checked):
    """Personalised weight-shift generator (weditlib's MultiBranchShiftGenerator)."""

    # fnmatch patterns over the denoiser's qualified names (the paper's ablation table);
    # the paper's best edits cross-attention and the output mapping.
    targets: list[str] = field(
        default_factory=lambda: ["decoder.layers.*.multihead_attn", "output"],
        metadata={"rule": _non_empty, "role": _PWSG},
    )
    hidden_dim: int = _setting(256, _at_least(1), role=_PWSG)
    trunk_layers: int = _setting(2, _at_least(1), role=_PWSG)
    rank: int | None = _setting(8, _at_least(1), role=_PWSG)  # None: dense heads, as in the paper
    # bottleneck before low-rank heads
    branch_dim: int | None = _setting(None, _at_least(1), role=_PWSG)
    # How a shift combines with its weight: "add" (W + ΔW, the paper's), "scale" (W ⊙ (1 + ΔW))
    # or "replace" (ΔW is the weight; zero-initialised heads start the edited layers at zero).
    # A saved config's "shift" (the previous name of "add") is read as "add" (OLD_VALUES).
    mode: str = _setting("add", _one_of("add", "scale", "replace"), role=_PWSG)
    # What the shifts are generated from (perfrdiff.models.condition): the style of the
    # listener's history (the paper's), their Big Five personality (a batch key "personality",
    # (b, 5) in [0, 1]; REACT 2026 data only), or both, fused. Trained with the generator.
    condition: str = _setting("history", _one_of(*CONDITIONS), role=_PWSG)
    # Which rows of an edited attention's joint in_proj [W_q; W_k; W_v] the shifts edit: "all",
    # or "kv" (only W_k and W_v, as the REACT 2026 baseline's option; smaller heads).
    attention_rows: str = _setting("all", _one_of("all", "kv"), role=_PWSG)
    # Weight of an L2 penalty on the generated shifts in stage pwsg's loss: shift_l2 times the
    # batch's mean over samples of Σ ‖ΔW‖²_F over the edited weights. 0: none (the paper's).
    shift_l2: float = _setting(0.0, _at_least(0), role=training_of("pwsg"))
    # Augmentation of stage pwsg: each training sample's condition vector (the style; or the
    # personality embedding, or both fused, under pwsg.condition) moves by Gaussian noise of
    # this standard deviation per dimension and is normalised back to length 1, so that the
    # generator also sees conditions between and around the training listeners' (new
    # listeners). 0: none (the paper's). Generation reads the condition unchanged.
    style_noise: float = _setting(0.0, _at_least(0), role=training_of("pwsg"))
    # Fine-tune the denoiser with the generator in stage pwsg (at the stage's learning rate)
    # instead of training the generator around a frozen denoiser (the paper's). The personalised
    # model then has a denoiser of its own, saved with the generator (keys denoiser.*); the
    # generic model keeps stage gafrg's. Off: the paper's two-stage training.
    tune_denoiser: bool = _setting(False, role=_PWSG)
    # Also generate a bias shift Δb per edited layer (the paper edits weights only), and feed the
    # generator the history's per-channel mean and std next to the style vector (the paper feeds
    # the style alone). The tiny preset turns both on (better PMAFRG FRCorr and FRdist on both
    # synthetic families, benchmarks/personalisation.py); off by default so that run
    # directories written before these options existed load as they were trained.
    bias_shifts: bool = _setting(False, role=_PWSG)
    history_stats: bool = _setting(False, role=_PWSG)
    # Also feed the generator, per lag k (frames) and emotion channel, the correlation of the
    # listener with their partner k frames earlier over the history (perfrdiff.models.coupling):
    # whom they follow, how closely, after what delay. Needs style.input: dyadic. Empty: off.
    history_lags: list[int] = field(
        default_factory=list, metadata={"rule": _distinct_lags, "role": _PWSG}
    )
    # Embed a history longer than style.frames (the style encoder's training clips) in pieces of
    # that length and average their styles, instead of as one sequence longer than any the
    # encoder was trained on. Off (the paper's: one pass) so that runs load as they were trained.
    history_segments: bool = _setting(False, role=_PWSG)
    # Diffuse a listener's windows around the mean of their history instead of the training
    # split's mean (a data-dependent prior, as in PriorGrad, Lee et al. 2022): the personalised
    # model's x_T and its low-noise end start from the listener's level, and the weight shifts
    # learn the rest. Needs denoiser.standardise and an emotion history (style.input emotion or
    # dyadic). Not the paper's.
    listener_prior: bool = _setting(False, role=_PWSG)
    # How far the prior's mean moves from the training split's mean towards the history's:
    # centre = mean + prior_weight * (history mean - mean). 1: the history's mean.
    prior_weight: float = _setting(1.0, _fraction, role=_PWSG)
    # Fit that weight per channel on the training split instead (stage pwsg, saved with the
    # generator): the least-squares slope of the level of a listener's other clip on their
    # history's (perfrdiff.models.prior); prior_weight is then unused.
    fit_prior_weight: bool = _setting(False, role=_PWSG)
    # Also move the prior's mean by a linear function of the listener's Big Five, fitted per
    # channel on the training split by stage pwsg (saved with the generator): the level people
    # of that personality show, beyond what the history's part of the centre gives. Needs a
    # condition that reads the personality (REACT 2026 data) and denoiser.standardise; with
    # pwsg.listener_prior off the centre is the training mean plus this part alone.
    personality_prior: bool = _setting(False, role=_PWSG)
    # Also move the prior's mean, frame by frame, by the listener's linear response to the
    # speaker frames the window sees: a ridge map from the partner's last 2 s to the listener's
    # emotion, fitted on each dyadic history in closed form (perfrdiff.models.response). Needs
    # style.input: dyadic and denoiser.standardise. Not the paper's.
    listener_response: bool = _setting(False, role=_PWSG)
    # That ridge regression's weight (features standardised per history, so in frames).
    response_weight: float = _setting(1000.0, _at_least(0), role=_PWSG)


_EEG = weights_of("eeg")


@dataclass
class EEGConfig(_Checked):
    """The EEG head (REACT 2026, stage ``eeg``): a small transformer per protocol window that
    predicts the listener's 14 EEG targets from their reaction and the speaker's context."""

    # The speaker audio it reads: "mfcc" (78-d, from the wavs), "features" (the 768-d
    # audio-features files) or "none".
    audio: str = _setting("mfcc", _one_of("mfcc", "features", "none"), role=_EEG)
    d_model: int = _setting(64, _at_least(1), role=_EEG)
    heads: int = _setting(4, _at_least(1), role=_EEG)
    layers: int = _setting(2, _at_least(1), role=_EEG)
    ffn_dim: int = _setting(128, _at_least(1), role=_EEG)
    dropout: float = _setting(0.1, _below_one, role=training_of("eeg"))
    # Speaker frames per token (their features side by side): 5 makes the 60 frames of REACT
    # 2026's context 12 tokens instead of 60. Must divide the protocol's window.
    speaker_patch: int = _setting(5, _at_least(1), role=_EEG)

    def __post_init__(self) -> None:
        super().__post_init__()
        _heads_divide(self)


_RESUMABLE = training_of(OWN_STAGE, resumable=True)


@dataclass
class StageConfig(_Checked):
    """Optimisation of one training stage."""

    # A resumed training applies a new value of each setting (steps: not below the checkpoint's
    # step), except batch_size and optimizer.
    steps: int = _setting(1000, _at_least(1), role=_RESUMABLE)
    batch_size: int = _setting(32, _at_least(1), role=training_of(OWN_STAGE))
    lr: float = _setting(1e-4, _positive, role=_RESUMABLE)
    optimizer: str = _setting("adamw", _one_of("adamw", "sgd"), role=training_of(OWN_STAGE))
    weight_decay: float = _setting(0.0, _at_least(0), role=_RESUMABLE)
    warmup_steps: int = _setting(0, _at_least(0), role=_RESUMABLE)
    grad_clip: float = _setting(1.0, _at_least(0), role=_RESUMABLE)  # 0: no clipping
    val_every: int = _setting(200, _at_least(1), role=_RESUMABLE)
    val_batches: int = _setting(4, _at_least(0), role=_RESUMABLE)  # 0: no validation
    ckpt_every: int = _setting(200, _at_least(1), role=_RESUMABLE)
    log_every: int = _setting(10, _at_least(1), role=_RESUMABLE)
    # Steps whose loss or gradient is not finite that are skipped (no update) before the stage
    # stops with an error; 0: the first one stops it.
    skip_nonfinite: int = _setting(0, _at_least(0), role=_RESUMABLE)


@dataclass
class DataConfig(_Checked):
    # Where the data is (a resumed training may read it from a new place).
    root: str = _setting("runs/demo/data", role=training_of(*STAGE_NAMES, resumable=True))
    # Both are cut from one clip, so they cannot be longer than the protocol's crop_frames
    # (checked by Config; the datasets refuse it too). The window is the model's: the
    # protocol's own online window (REACT 2026: 30) is not imposed on it.
    window: int = _setting(50, _at_least(1), role=weights_of("emotion-vae", "gafrg"))
    # Speaker audio per frame: "mfcc" (78-d MFCC of the wavs; REACT 2024's only kind) or
    # "features" (REACT 2026's 768-d wav2vec2 audio-features). The denoiser's audio width is
    # the data's (perfrdiff.features.AUDIO_DIMS).
    audio: str = _setting("mfcc", _one_of("mfcc", "features"), role=weights_of("gafrg"))
    # REACT 2026: the FaceVerse mean and std files (58 values each) the 3DMM coefficients are
    # standardised with, (x - mean) / std; both null: the training split's own statistics
    # (logged). REACT 2024 reads the 3DMM raw, as its challenge's loader: both stay null there.
    face_mean: str | None = _setting(None, role=weights_of("style", "gafrg", "eeg"))
    face_std: str | None = _setting(None, role=weights_of("style", "gafrg", "eeg"))
    # Listener history read by the shift generator in training (and checked at generation).
    history_frames: int = _setting(250, _at_least(1), role=training_of("pwsg"))
    # Evaluation: a listener with no other clip in any split takes its history from the evaluated
    # clip itself (which then leaks the target into the condition). Off: such a split fails.
    allow_same_clip_history: bool = _setting(False, role=SAMPLING)
    # DataLoader workers; None: 0 on the CPU (the model needs the cores), up to 4 on CUDA.
    num_workers: int | None = _setting(None, _between(0, MAX_THREADS), role=RUNTIME)


@dataclass
class GenerateConfig(_Checked):
    samples: int = _setting(10, _at_least(1), role=SAMPLING)
    clips_per_batch: int = _setting(8, _at_least(1), role=RUNTIME)
    # Frames each online window shares with the frames generated before it, held fixed while it
    # is denoised (0: windows end to end, each starting afresh, with a jump at every join). See
    # perfrdiff.generation. On the synthetic demo, 10 took the join/inside step ratio of
    # personalised samples from 10.6 to 0.8 for 1.3x the windows (benchmarks/realism.py).
    overlap: int = _setting(10, _at_least(0), role=SAMPLING)
    # The ODE solver of every window (perfrdiff.models.solvers): "ddim" (first order, the
    # paper's), "dpmpp-2m" (DPM-Solver++ 2M) or "unipc" (UniPC bh2, order 2); the higher-order
    # ones reuse the last steps' predictions and are deterministic (diffusion.eta must be 0).
    solver: str = _setting("ddim", _one_of("ddim", "dpmpp-2m", "unipc"), role=SAMPLING)
    # Generated clips as the features are defined (perfrdiff.generation.postprocess): clamp
    # AUs and expressions to [0, 1], valence/arousal to [-1, 1]; smooth over time with a
    # Gaussian of this many frames (0: off; it reads ceil(4 sigma) frames ahead).
    clamp: bool = _setting(False, role=SAMPLING)
    smooth_sigma: float = _setting(0.0, _at_least(0), role=SAMPLING)


@dataclass
class Config(_Checked):
    """Everything one PerFRDiff run needs.

    Every value is converted to its field's type and range-checked when a config is built; a
    bad value raises :class:`ConfigError` naming its dotted key.
    """

    seed: int = _setting(0, _between(0, SEED_MAX), role=training_of(*STAGE_NAMES))
    # The challenge protocol (perfrdiff.protocol): frame rate, crops, appropriate sets, output
    # post-processing and metric variant. It says what the data, and so every trained weight,
    # means.
    protocol: str = _setting("react2024", _one_of(*PROTOCOLS), role=weights_of(*STAGE_NAMES))
    # torch intra-op threads (None: torch's default). Small models on a shared CPU run several
    # times faster on one thread than on two that compete with other processes. Bounded: torch
    # crashes the process (no exception) on a count of a million.
    threads: int | None = _setting(None, _between(1, MAX_THREADS), role=RUNTIME)
    data: DataConfig = field(default_factory=DataConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    emotion_vae: EmotionVAEConfig = field(default_factory=EmotionVAEConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    style: StyleConfig = field(default_factory=StyleConfig)
    pwsg: PWSGConfig = field(default_factory=PWSGConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    eeg: EEGConfig = field(default_factory=EEGConfig)
    train: dict[str, StageConfig] = field(
        default_factory=lambda: {stage: StageConfig() for stage in STAGES}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.train, Mapping):
            raise ConfigError("train", f"expected a mapping stage -> settings, got {self.train!r}")
        unknown = sorted(set(self.train) - set(STAGES))
        if unknown:
            raise ConfigError("train", f"unknown stages {unknown} (stages: {list(STAGES)})")
        for stage, settings in self.train.items():
            if not isinstance(settings, StageConfig):
                raise ConfigError(f"train.{stage}", f"expected a StageConfig, got {settings!r}")
        crop = protocol_named(self.protocol).crop_frames
        for key, frames in (
            ("data.window", self.data.window),
            ("data.history_frames", self.data.history_frames),
            ("style.frames", self.style.frames),
        ):  # each is cut from one crop
            if frames > crop:
                raise ConfigError(key, f"must be <= {crop}, got {frames}")
        self._check_protocol_data()
        if self.pwsg.listener_prior and not self.denoiser.standardise:
            raise ConfigError(
                "pwsg.listener_prior", "needs denoiser.standardise = true (the prior's scale)"
            )
        if self.pwsg.listener_prior and self.style.input == "face":
            raise ConfigError(
                "pwsg.listener_prior",
                "needs style.input = 'emotion' or 'dyadic' (the prior is the listener's emotion "
                "history's mean), got 'face'",
            )
        if self.generate.solver != "ddim" and self.diffusion.eta != 0:
            raise ConfigError(
                "generate.solver",
                f"{self.generate.solver!r} is deterministic: needs diffusion.eta = 0, got "
                f"{self.diffusion.eta:g} (use solver 'ddim' for eta > 0)",
            )
        if self.pwsg.fit_prior_weight and not self.pwsg.listener_prior:
            raise ConfigError(
                "pwsg.fit_prior_weight", "needs pwsg.listener_prior = true (it fits its weight)"
            )
        if self.pwsg.personality_prior and self.pwsg.condition == "history":
            raise ConfigError(
                "pwsg.personality_prior",
                "reads each listener's personality: needs pwsg.condition = 'personality' or "
                "'both', got 'history'",
            )
        if self.pwsg.listener_response and self.style.input != "dyadic":
            raise ConfigError(
                "pwsg.listener_response",
                "fits the listener's response to their partner: needs style.input = 'dyadic', "
                f"got {self.style.input!r}",
            )
        if self.pwsg.listener_response and not self.denoiser.standardise:
            raise ConfigError(
                "pwsg.listener_response", "needs denoiser.standardise = true (the prior's scale)"
            )
        if self.pwsg.listener_response and not self.pwsg.response_weight > 0:
            raise ConfigError(
                "pwsg.response_weight", f"must be > 0, got {self.pwsg.response_weight:g}"
            )
        if self.pwsg.personality_prior and not self.denoiser.standardise:
            raise ConfigError(
                "pwsg.personality_prior",
                "needs denoiser.standardise = true (the prior's scale)",
            )
        if self.pwsg.condition != "history" and self.protocol not in PERSONALITY_PROTOCOLS:
            raise ConfigError(
                "pwsg.condition",
                f"{self.pwsg.condition!r} reads each listener's personality, which protocol "
                f"{self.protocol!r} data does not have (protocols with it: "
                f"{list(PERSONALITY_PROTOCOLS)}); use 'history'",
            )

    def _check_protocol_data(self) -> None:
        """What the protocol's data layout cannot give (768-d audio and FaceVerse statistics in
        REACT 2024), and the two FaceVerse files given together."""
        fixed = protocol_named(self.protocol).clip_frames is not None
        if fixed and self.data.audio != "mfcc":
            raise ConfigError(
                "data.audio",
                f"protocol {self.protocol!r} has wavs only: needs 'mfcc', got {self.data.audio!r}",
            )
        if fixed and (self.data.face_mean is not None or self.data.face_std is not None):
            raise ConfigError(
                "data.face_mean",
                f"protocol {self.protocol!r} reads the 3DMM raw, as its challenge: needs "
                "data.face_mean and data.face_std null",
            )
        if (self.data.face_mean is None) != (self.data.face_std is None):
            raise ConfigError(
                "data.face_mean",
                "give both FaceVerse files (data.face_mean and data.face_std) or neither (the "
                f"training split's own statistics), got {self.data.face_mean!r} and "
                f"{self.data.face_std!r}",
            )

    def stage(self, name: str) -> StageConfig:
        if name not in self.train:
            raise ValueError(f"stage must be one of {sorted(self.train)}, got {name!r}")
        return self.train[name]


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, recursing into nested dataclasses."""
    if not isinstance(data, Mapping):
        # a ConfigError (a ValueError): `--set denoiser=3` is a user's mistake, not a bug
        raise ConfigError(where or "config", f"expected a mapping of settings, got {data!r}")
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
            if not isinstance(value, Mapping):
                raise ConfigError("train", f"expected a mapping stage -> settings, got {value!r}")
            defaults = Config().train
            for stage, cfg in value.items():
                if cfg is not None and not isinstance(cfg, Mapping):
                    raise ConfigError(
                        f"train.{stage}", f"expected a mapping of settings, got {cfg!r}"
                    )
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
    try:
        return cls(**kwargs)
    except ConfigError as error:
        raise error.within(where) from None


def with_current_names(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data`` (nested config mappings) with the old values of :data:`OLD_VALUES` renamed;
    ``data`` itself when it holds none."""
    renamed: Mapping[str, Any] = data
    for dotted, names in OLD_VALUES.items():
        *sections, key = dotted.split(".")
        node: Any = renamed
        for section in sections:
            node = node.get(section) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping) or not _is_old(node.get(key), names):
            continue
        renamed = _replaced(renamed, [*sections, key], names[node[key]])
    return renamed


def _is_old(value: Any, names: Mapping[Any, Any]) -> bool:
    return isinstance(value, str) and value in names


def _replaced(data: Mapping[str, Any], path: Sequence[str], value: Any) -> dict[str, Any]:
    """A copy of ``data`` with the value at ``path`` replaced (the sections on it copied)."""
    head, *rest = path
    return {**data, head: _replaced(data[head], rest, value) if rest else value}


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """The :class:`Config` of nested mappings (a saved config's old value names accepted)."""
    return _build(Config, with_current_names(data) if isinstance(data, Mapping) else data, "")


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
    if not isinstance(name_or_path, str | os.PathLike):
        kind = type(name_or_path).__name__
        raise TypeError(f"name_or_path: expected a preset name or a YAML path, got {kind}")
    if isinstance(overrides, str):
        # A lone string would be read character by character as overrides.
        raise TypeError(f"overrides: expected a list of 'key.sub=value' strings, got {overrides!r}")
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        presets = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"config {name_or_path!r}: no file {path} (presets: {presets})")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: not a readable YAML config ({error})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            str(path), f"expected a YAML mapping of config sections, got {type(raw).__name__}"
        )
    try:
        data = config_to_dict(config_from_dict(raw))
    except (TypeError, ValueError) as error:
        error.add_note(f"in config file {path}")  # the message names the key, this the file
        raise
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"override must look like key.sub=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ValueError(f"override {item!r}: the value is not valid YAML ({error})") from None
        _set_path(data, key.strip(), parsed)
    return config_from_dict(data)


def apply_runtime(config: Config) -> None:
    """Process-wide settings of a config (torch threads)."""
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)


def save_config(config: Config, path: str | Path) -> None:
    with open(path, "w") as f:
        yaml.safe_dump(config_to_dict(config), f, sort_keys=False)


def _for_stage(role: Role, stage: str) -> Role:
    """``role`` with :data:`OWN_STAGE` read as ``stage``."""
    own = lambda stages: tuple(stage if s == OWN_STAGE else s for s in stages)  # noqa: E731
    return dataclasses.replace(role, defines=own(role.defines), trains=own(role.trains))


def _roles_of(cls: type, prefix: str) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    for f in dataclasses.fields(cls):
        key, hint = f"{prefix}{f.name}", _hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            roles.update(_roles_of(hint, f"{key}."))
        elif cls is Config and f.name == "train":
            for stage in STAGE_NAMES:
                for sub, role in _roles_of(StageConfig, f"train.{stage}.").items():
                    roles[sub] = _for_stage(role, stage)
        elif "role" not in f.metadata:
            raise TypeError(f"config field {key} declares no role (see perfrdiff.config.Role)")
        else:
            roles[key] = f.metadata["role"]
    return roles


@functools.cache
def field_roles() -> types.MappingProxyType[str, Role]:
    """``dotted key -> Role`` for every value of a :class:`Config`, ``train.<stage>.<setting>``
    for every stage; the one source of what depends on which key."""
    return types.MappingProxyType(_roles_of(Config, ""))
