"""Is PerFRDiff's personalisation worth anything? The diagnostics and the paper's ablations.

Every claim is measured against two references (see ``docs/perfrdiff/personalisation.md``): the
generic model, and the trivial per-listener mean offset (generic samples shifted per channel so
that their mean equals the listener's history mean). Pieces:

* :func:`style_retrieval`: does the style encoder recognise a held-out listener from 10 s?
* :func:`mean_offset_predictions`: the trivial baseline.
* :func:`variant_run`: a run under config overrides (edited weights, bias shifts, a dyadic
  style history, ...) that reuses another run's stages the overrides do not change.
* :func:`train_input_p`: the paper's "input p" (style as an extra condition token), trained from
  the generic denoiser for the shift generator's budget.
* :func:`fine_tuned_predictions`: upper bound, the generic denoiser fine-tuned per item on all
  its listener's other clips, early-stopped on a held-out part of them.
* :func:`prior_alone_model`, :func:`shifts_alone_run`: which part earns the gain (the listener
  prior with zero shifts; the shifts retrained without the prior).
* :func:`scores`: FRCorr and FRdist of named predictions on both label sets (MAFRG, PMAFRG);
  the measures of "like this listener" are in :mod:`perfrdiff.likeness`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from perfrdiff.changes import retrained_stages
from perfrdiff.config import Config, PWSGConfig, load_config
from perfrdiff.data import ClipStore, SplitIndex, WindowDataset, history_features, person_of
from perfrdiff.generation import EvaluationSet
from perfrdiff.generation.reactions import clip_dataset
from perfrdiff.likeness import Embed, label_set_scores, paired_bootstrap
from perfrdiff.models import PerFRDiff, build_gafrg
from perfrdiff.protocol import protocol_named
from perfrdiff.run import CONFIG_FILE, Run
from perfrdiff.stages import run_stages
from perfrdiff.training import train_run, train_stage_of
from perfrdiff.training.objectives import GAFRGObjective, fit_listener_prior, personalised_loss
from perfrdiff.weights import load_weights, stage_weights

log = logging.getLogger(__name__)

INPUT_P_TARGETS = ["style_slot"]


# Style encoder ---------------------------------------------------------------------------


@torch.no_grad()
def style_retrieval(run: Run, split: str = "test", frames: int | None = None) -> dict:
    """Listener identification from ``frames`` (default ``data.history_frames``) of history.

    Every listener clip of ``split`` is a query (its first ``frames`` frames); each listener of
    the split is represented by the mean style of the non-overlapping ``frames``-long segments
    of its *other* clips. A listener without another clip is not queried (its gallery entry
    would contain the query).

    Returns:
        ``{"top1", "top5", "queries", "listeners", "frames", "input"}``.
    """
    frames = frames or run.config.data.history_frames
    encoder = run.model("style")
    index, store = SplitIndex(run.config.data.root, split), ClipStore(run.config.data.root, split)

    def read(clip: str) -> np.ndarray:
        return history_features(store, clip, index.partner_of[clip], run.config.style.input)

    clips = sorted({p.listener for p in index.items})
    clip = protocol_named(run.config.protocol).crop_frames  # the clips of the split
    segments = [slice(s, s + frames) for s in range(0, clip - frames + 1, frames)]

    def embed(batch: list[np.ndarray]) -> Tensor:
        x = torch.from_numpy(np.stack(batch).astype(np.float32)).to(run.device)
        return encoder(x).float().cpu()

    queries = embed([read(c)[:frames] for c in clips])
    per_segment = embed([read(c)[s] for c in clips for s in segments]).reshape(
        len(clips), len(segments), -1
    )
    listeners = index.listeners
    owner = np.array([listeners.index(person_of(c)) for c in clips])
    hits1 = hits5 = asked = 0
    for q in range(len(clips)):
        others = np.arange(len(clips)) != q
        if not (others & (owner == owner[q])).any():
            continue
        gallery = torch.stack(
            [
                per_segment[others & (owner == listener)].mean(dim=(0, 1))
                if (others & (owner == listener)).any()
                else torch.zeros_like(queries[q])
                for listener in range(len(listeners))
            ]
        )
        ranking = (gallery @ queries[q]).argsort(descending=True).tolist()
        hits1 += int(ranking[0] == owner[q])
        hits5 += int(owner[q] in ranking[:5])
        asked += 1
    return {
        "top1": hits1 / max(asked, 1),
        "top5": hits5 / max(asked, 1),
        "queries": asked,
        "listeners": len(listeners),
        "frames": frames,
        "input": run.config.style.input,
    }


# Baselines -------------------------------------------------------------------------------


def history_emotion_means(config, split: str, limit: int | None = None) -> np.ndarray:
    """``(n, 25)`` mean emotion of each item's listener history (same rule as evaluation)."""
    dataset = clip_dataset(config, split)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    return np.stack([dataset[i]["history_emotion"].numpy().mean(axis=0) for i in range(n)])


def mean_offset_predictions(predictions: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Shift ``predictions: (n, M, T, 25)`` per item and channel so that their mean over samples
    and time equals ``means: (n, 25)`` (the trivial personalisation baseline)."""
    if predictions.ndim != 4 or means.shape != (predictions.shape[0], predictions.shape[-1]):
        raise ValueError(
            f"predictions (n, M, T, d) and means (n, d) disagree: {predictions.shape}, "
            f"{means.shape}"
        )
    current = predictions.mean(axis=(1, 2), keepdims=True)
    return (predictions - current + means[:, None, None, :]).astype(np.float32)


# Attribution -----------------------------------------------------------------------------

#: Overrides of the "shifts alone" row: the shift generator retrained without the listener prior.
SHIFTS_ALONE = ("pwsg.listener_prior=false", "pwsg.fit_prior_weight=false")


def prior_alone_model(model: PerFRDiff) -> PerFRDiff:
    """A copy of ``model`` whose shift generator gives zero shifts: the listener prior alone
    (the generic denoiser diffusing around the listener's centre).

    Raises:
        ValueError: ``model`` has no listener prior (its zero-shift model is the generic one).
    """
    if model.prior is None:
        raise ValueError(
            "model: has no listener prior (pwsg.listener_prior=false): with zero shifts it is "
            "the generic model"
        )
    alone = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in alone.generator.parameters():
            parameter.zero_()  # zero trunk and heads: every shift (and bias shift) is 0
    return alone


def shifts_alone_run(base: Run, directory: str | Path, overrides: Sequence[str] = ()) -> Run:
    """``base`` with its shift generator retrained without the listener prior (the shifts
    alone; :data:`SHIFTS_ALONE`), in ``directory`` (:func:`variant_run`)."""
    return variant_run(base, directory, [*overrides, *SHIFTS_ALONE])


def style_embedder(run: Run, batch: int = 64) -> Embed:
    """The run's trained style encoder (PSSL) as ``(b, t, c)`` -> ``(b, s)`` unit vectors, a
    sequence longer than ``style.frames`` embedded as the mean of its pieces
    (:meth:`~perfrdiff.models.StyleEncoder.segmented`), for
    :func:`perfrdiff.likeness.identification`."""
    encoder = run.model("style")

    @torch.no_grad()
    def embed(x: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(x), batch):
            chunk = np.ascontiguousarray(x[start : start + batch], dtype=np.float32)
            out.append(encoder.segmented(torch.from_numpy(chunk).to(run.device)).float().cpu())
        return torch.cat(out).numpy()

    return embed


# Variants --------------------------------------------------------------------------------


def variant_config(base: Run, overrides: Sequence[str]) -> Config:
    """``base``'s saved config plus ``overrides``: the config of its :func:`variant_run`."""
    return load_config(base.directory / CONFIG_FILE, list(overrides))


def variant_run(base: Run, directory: str | Path, overrides: Sequence[str]) -> Run:
    """A run in ``directory`` with ``base``'s config plus ``overrides``: the stages the
    overrides change (:func:`perfrdiff.changes.retrained_stages`, e.g. ``style.*`` retrains the
    style encoder and the shift generator) are trained, the others copied from ``base`` when it
    has them (a stage ``base`` did not train, e.g. an eeg head, is left out: a retrained stage
    that needs it then names it). Stages already trained in ``directory`` are kept (a rerun
    resumes)."""
    directory = Path(directory)
    config = variant_config(base, overrides)
    stages = run_stages(config)  # a REACT 2024 run has no eeg stage to copy or retrain
    retrain = [s for s in retrained_stages(base.config, config) if s in stages]
    for stage in stages:
        if stage not in retrain and (base.directory / stage).is_dir():
            shutil.copytree(base.directory / stage, directory / stage, dirs_exist_ok=True)
    run = Run(config, directory, base.device, base.precision)
    missing = [s for s in retrain if not stage_weights(directory, s).is_file()]
    if missing:
        train_run(run, missing)
    return run


class _InputPObjective(nn.Module):
    """x0 loss of the denoiser with a style token; the denoiser and the token map both learn."""

    def __init__(self, model: PerFRDiff, schedule, config) -> None:
        super().__init__()
        self.model = model
        self.trained = model  # exported whole; the frozen parts have requires_grad False
        self.schedule = schedule
        self.config = config
        model.style_encoder.requires_grad_(False)
        self.history_key = f"history_{config.style.input}"

    def train(self, mode: bool = True) -> _InputPObjective:
        super().train(mode)
        self.model.style_encoder.eval()
        return self

    def forward(self, batch) -> tuple[Tensor, dict[str, float]]:
        d = self.config.diffusion
        loss, _ = personalised_loss(
            self.model, self.schedule, batch, d.cond_drop, d.prev_drop, self.history_key
        )
        return loss, {}


def input_p_model(config, gafrg_weights: Path | None, style_encoder: nn.Module) -> PerFRDiff:
    """PerFRDiff whose only edit is the bias of ``style_slot``: the style as a memory token.

    The denoiser starts from ``gafrg_weights`` (the generic one; the slot is new).
    """
    token_config = copy.deepcopy(config)
    token_config.denoiser.style_token = True
    gafrg = build_gafrg(token_config)
    if gafrg_weights is not None:
        from safetensors.torch import load_file

        missing, unexpected = gafrg.load_state_dict(load_file(str(gafrg_weights)), strict=False)
        if unexpected or any(not k.startswith("style_slot.") for k in missing):
            raise ValueError(f"{gafrg_weights}: not a GAFRG of this config ({missing, unexpected})")
    pwsg = PWSGConfig(
        targets=INPUT_P_TARGETS,
        hidden_dim=config.pwsg.hidden_dim,
        trunk_layers=config.pwsg.trunk_layers,
        rank=None,
        bias_shifts=True,
        # The same listener prior as the weight-edited model: the comparison is token vs edits.
        listener_prior=config.pwsg.listener_prior,
        prior_weight=config.pwsg.prior_weight,
        fit_prior_weight=config.pwsg.fit_prior_weight,
    )
    return PerFRDiff(gafrg, style_encoder, pwsg)


def train_input_p(base: Run, directory: str | Path) -> PerFRDiff:
    """The paper's "input p": generic denoiser + style token, trained jointly as the ``pwsg``
    stage is (its settings, data and budget: the same as weight editing); cached in
    ``directory``."""
    directory = Path(directory)
    config = base.config
    weights = directory / "model.safetensors"
    model = input_p_model(config, stage_weights(base.directory, "gafrg"), base.build("style"))
    if not weights.is_file():
        if model.fit_prior_weight:  # saved with the model; loading a cached one restores it
            fit_listener_prior(model, config)
        torch.manual_seed(config.seed)
        objective = _InputPObjective(model, base.schedule, config)
        train_stage_of(
            base, "pwsg", objective=objective, out_dir=directory, extra={"variant": "input-p"}
        )
    load_weights(model, weights)
    return model.to(base.device).eval()


#: The upper bound's held-out part of each listener clip: its last 150 frames (6 s at 25 fps).
HELD_OUT_FRAMES = 150


class _WindowsStartingIn(WindowDataset):
    """:class:`WindowDataset` windows whose start is drawn from ``starts`` only: the upper
    bound's training windows (the first part of each clip) or its held-out ones (the last)."""

    def __init__(self, config: Config, split: str, starts: np.ndarray, seed: int) -> None:
        d = config.data
        super().__init__(d.root, split, d.window, d.history_frames, seed=seed)
        self.starts = starts

    def _start(self, clip: str, rng: np.random.Generator) -> int:
        return int(rng.choice(self.starts))


@dataclasses.dataclass
class UpperBound:
    """:func:`fine_tuned_predictions`' result: ``predictions (n, M, T, 25)`` and, per item,
    the fine-tuning steps early stopping kept (0: the generic model was best)."""

    predictions: np.ndarray
    steps: list[int]


def fine_tuned_predictions(
    run: Run,
    split: str,
    data: EvaluationSet,
    steps: int,
    lr: float = 1e-4,
    seed: int = 0,
    val_every: int = 10,
    patience: int = 5,
) -> UpperBound:
    """Upper bound: for each item, the generic denoiser fine-tuned on *all* its listener's
    other clips, with early stopping on a held-out part of them, then sampling that item.

    The listener's clips are those of the split its history comes from (as evaluation chooses
    it), never the evaluated clip. Each clip's first ``750 - HELD_OUT_FRAMES`` frames give the
    training windows (AdamW, ``lr``, the GAFRG loss, batches of the pwsg stage's size); windows
    of its last :data:`HELD_OUT_FRAMES` are held out. Every ``val_every`` steps (and before the
    first) the held-out loss is measured with the same noise each time; the weights of its
    lowest point are kept, and fine-tuning stops after ``patience`` measurements without a new
    one, or at ``steps``. So the bound is at worst the generic model on data it did not choose
    with, and what it buys is what more of the listener's own data buys.
    """
    config = run.config
    dataset = clip_dataset(config, split)
    sources = dataset.history_sources[: len(data.clips)]
    evaluated = [pair.listener for pair in dataset.index.items[: len(data.clips)]]
    n, (t, e) = len(data.clips), data.listener_emotion.shape[1:]
    out = np.empty((n, config.generate.samples, t, e), dtype=np.float32)
    kept_steps = [0] * n
    generic = run.model("gafrg")
    clip_frames = protocol_named(config.protocol).clip_frames
    if clip_frames is None:
        raise ValueError(
            f"protocol: the upper bound fine-tunes on REACT 2024 clips, got {config.protocol!r}"
        )
    w = config.data.window
    split_at = clip_frames - HELD_OUT_FRAMES
    train_starts = np.arange(split_at - w + 1)  # windows inside a clip's first part
    held_starts = np.arange(split_at, clip_frames - w + 1)  # and inside its last
    pools = {}
    for k in range(n):
        source = sources[k]
        if source.split not in pools:
            pools[source.split] = (
                _WindowsStartingIn(config, source.split, train_starts, seed),
                _WindowsStartingIn(config, source.split, held_starts, seed + 1),
            )
        train_pool, held_pool = pools[source.split]
        listener = person_of(source.clip)
        mine = [
            i
            for i, pair in enumerate(train_pool.index.items)
            if person_of(pair.listener) == listener
            and not (source.split == split and pair.listener == evaluated[k])
        ]
        model, kept_steps[k] = _early_stopped(
            run, generic, train_pool, held_pool, mine, steps, lr, seed, val_every, patience
        )
        subset = EvaluationSet(
            [data.clips[k]],
            data.listener_emotion[[k]],
            data.speaker_emotion[[k]],
            data.neighbours[np.ix_([k], [k])],
        )
        out[k] = run.sample("generic", subset, seed=seed, model=model)[0]
    return UpperBound(out, kept_steps)


def _early_stopped(
    run: Run,
    generic: nn.Module,
    train_pool: WindowDataset,
    held_pool: WindowDataset,
    items: list[int],
    steps: int,
    lr: float,
    seed: int,
    val_every: int,
    patience: int,
) -> tuple[nn.Module, int]:
    """``generic`` fine-tuned on windows of ``items`` of ``train_pool``, early-stopped on the
    same items' windows of ``held_pool`` (see :func:`fine_tuned_predictions`): the kept model
    (in eval mode) and the step it was kept at (0, the generic model, when ``items`` is
    empty: a listener with no clip but the evaluated one)."""
    if not items:
        return generic, 0
    d, size = run.config.diffusion, run.config.stage("pwsg").batch_size
    model = copy.deepcopy(generic).train()
    objective = GAFRGObjective(model, run.schedule, d.cond_drop, d.prev_drop)
    generator = torch.Generator().manual_seed(seed)

    def batch_of(pool: WindowDataset) -> dict[str, Tensor]:
        chosen = torch.randint(len(items), (size,), generator=generator)
        batch = [pool[items[int(i)]] for i in chosen]
        return {k: torch.stack([b[k] for b in batch]).to(run.device) for k in batch[0]}

    held = [batch_of(held_pool) for _ in range(2)]

    def held_loss() -> float:
        model.eval()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)  # the same noise and timesteps at every measurement
            loss = sum(objective(b)[0].item() for b in held) / len(held)
        model.train()
        return loss

    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr)
    snapshot = lambda: copy.deepcopy(model.state_dict())  # noqa: E731
    stopping = EarlyStopping(patience)
    stopping.measured(0, held_loss(), snapshot)
    for step in range(1, steps + 1):
        loss, _ = objective(batch_of(train_pool))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if (step % val_every == 0 or step == steps) and stopping.measured(
            step, held_loss(), snapshot
        ):
            break
    model.load_state_dict(stopping.state)
    return model.eval(), stopping.step


@dataclasses.dataclass
class EarlyStopping:
    """The lowest held-out loss measured so far, and the step and state it was measured at;
    ``patience`` measurements in a row without a lower one say stop."""

    patience: int
    best: float = math.inf
    step: int = 0
    state: dict | None = None
    waited: int = 0

    def measured(self, step: int, loss: float, state: Callable[[], dict]) -> bool:
        """Record ``loss`` at ``step`` (``state()`` is taken only for a new lowest one);
        ``True``: stop."""
        if loss < self.best:
            self.best, self.step, self.state, self.waited = loss, step, state(), 0
            return False
        self.waited += 1
        return self.waited >= self.patience


# Scores ----------------------------------------------------------------------------------


def scores(
    predictions: Mapping[str, np.ndarray], data: EvaluationSet, n_jobs: int | None = None
) -> dict[str, dict[str, float]]:
    """FRCorr (higher is better) and FRdist (lower) of each named ``(n, M, T, 25)`` array on
    both label sets (:mod:`perfrdiff.metrics.label_sets`): ``"MAFRG FRCorr"``,
    ``"MAFRG FRdist"``, ``"PMAFRG FRCorr"``, ``"PMAFRG FRdist"``.

    Raises:
        ValueError: ``data`` does not know its items' listeners (read it with
            :meth:`Run.evaluation_set`).
    """
    if data.listeners is None:
        raise ValueError("data: the PMAFRG label set needs each item's listener (data.listeners)")
    out = {}
    for name, p in predictions.items():
        per_item = label_set_scores(
            p, data.listener_emotion, data.neighbours, data.listeners, n_jobs
        )
        out[name] = {key: float(values.mean()) for key, values in per_item.items()}
    return out


# The paper's ablations -------------------------------------------------------------------

#: Table 4: which denoiser weights the shift generator edits (fnmatch patterns).
EDIT_SETS: dict[str, list[str]] = {
    "self-attn": ["decoder.layers.*.self_attn"],
    "cross-attn": ["decoder.layers.*.multihead_attn"],
    "FFN": ["decoder.layers.*.linear1", "decoder.layers.*.linear2"],
    "mapping": ["output"],
    "cross-attn + mapping": ["decoder.layers.*.multihead_attn", "output"],
    "self-attn + cross-attn": ["decoder.layers.*.self_attn", "decoder.layers.*.multihead_attn"],
    "all": [
        "decoder.layers.*.self_attn",
        "decoder.layers.*.multihead_attn",
        "decoder.layers.*.linear1",
        "decoder.layers.*.linear2",
        "output",
    ],
}


#: The four scores of every ablation row: each label set's FRCorr (higher is better) and
#: FRdist (lower).
ABLATION_METRICS = ("MAFRG FRCorr", "MAFRG FRdist", "PMAFRG FRCorr", "PMAFRG FRdist")


def _seed_mean(by_seed: Mapping[int, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Each ablation metric's per-item scores averaged over the seeds, item by item."""
    return {k: np.mean([s[k] for s in by_seed.values()], axis=0) for k in ABLATION_METRICS}


def _row(
    table: str,
    row: str,
    by_seed: Mapping[int, dict[str, np.ndarray]],
    reference: Mapping[str, np.ndarray] | None,
    listeners: Sequence[str],
    rounds: int,
) -> dict:
    """One ablation record from a row's per-item scores at each sampling seed.

    Seeds are averaged item by item; the row's value is the mean over items and, where
    ``reference`` (GAFRG's seed-averaged per-item scores) is given, ``"vs GAFRG"`` holds the
    ratio with its paired bootstrap 95% interval over listeners."""
    pooled = _seed_mean(by_seed)
    record: dict = {"table": table, "row": row}
    record.update({k: float(v.mean()) for k, v in pooled.items()})
    record["by_seed"] = {
        str(seed): {k: float(v[k].mean()) for k in ABLATION_METRICS} for seed, v in by_seed.items()
    }
    if reference is not None:
        record["vs GAFRG"] = {
            k: paired_bootstrap(pooled[k], reference[k], listeners, rounds=rounds).as_dict()
            for k in ABLATION_METRICS
        }
    return record


def ablate(
    base: Run,
    out: str | Path,
    tables: Sequence[str] = ("3", "4"),
    overrides: Sequence[str] = (),
    limit: int | None = None,
    edit_sets: Mapping[str, list[str]] = EDIT_SETS,
    seeds: Sequence[int] = (0,),
    rounds: int = 2000,
    data: EvaluationSet | None = None,
) -> list[dict]:
    """The paper's Tables 3 and 4 on ``base``'s data, reusing its trained earlier stages.

    Every row is one model's reactions (with the listener's history where the model takes
    one), scored on both label sets, as the paper's tables: MAFRG (every appropriate real
    reaction) and PMAFRG (only the item's own listener's). Table 3: GAFRG / input p / weight
    editing (the base run's edit set); Table 4: the PWSG retrained for each edit set of
    ``edit_sets`` (the edit set the weight-editing row already has is not trained twice).
    ``overrides`` apply to the retrained parts (e.g. ``train.pwsg.steps=200``). Each model is
    sampled at every seed of ``seeds``; rows other than GAFRG carry their ratio to it with a
    paired bootstrap interval over listeners (``rounds`` resamples). ``data``: the test split
    if already loaded (:meth:`Run.evaluation_set`; ``limit`` then does not apply).

    Returns:
        one record per row with ``table``, ``row``, the four scores of
            :data:`ABLATION_METRICS` (means over seeds), ``by_seed`` and ``vs GAFRG``
            (``{metric: {value, low, high}}``).

    Raises:
        ValueError: ``seeds`` is empty or repeats a seed.
    """
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: expected distinct sampling seeds, at least one, got {seeds}")
    out = Path(out)
    data = data if data is not None else base.evaluation_set("test", limit)
    if data.listeners is None:
        raise ValueError("base: its evaluation set does not know its items' listeners")
    listeners = data.listeners

    def scored(sample: Callable[[int], np.ndarray]) -> dict[int, dict[str, np.ndarray]]:
        return {
            seed: label_set_scores(sample(seed), data.listener_emotion, data.neighbours, listeners)
            for seed in seeds
        }

    def generated(run: Run) -> dict[int, dict[str, np.ndarray]]:
        return scored(
            lambda seed: run.generate("test", ["personalised"], data=data, seed=seed)[
                "personalised"
            ]
        )

    generic = scored(
        lambda seed: base.generate("test", ["generic"], data=data, seed=seed)["generic"]
    )
    reference = _seed_mean(generic)

    def row(table: str, name: str, by_seed: Mapping[int, dict[str, np.ndarray]]) -> dict:
        return _row(table, name, by_seed, reference, listeners, rounds)

    # The weight-editing run (trained only when a row needs it) and its scores, made once.
    @functools.cache
    def tuned() -> Run:
        return variant_run(base, out / "weight-editing", overrides) if overrides else base

    @functools.cache
    def editing() -> dict[int, dict[str, np.ndarray]]:
        return generated(tuned())

    rows = []
    if "3" in tables:
        input_p = train_input_p(tuned(), out / "input-p")
        # input p samples exactly as the run samples PerFRDiff (Run.sample)
        input_p_scores = scored(
            lambda seed: tuned().sample("personalised", data, seed=seed, model=input_p)
        )
        rows += [
            _row("3", "GAFRG", generic, None, listeners, rounds),
            row("3", "input p", input_p_scores),
            row("3", "weight editing", editing()),
        ]
    if "4" in tables:
        # the weight-editing run's targets, without training it
        tuned_config = variant_config(base, overrides) if overrides else base.config
        tuned_targets = tuned_config.pwsg.targets
        for name, targets in edit_sets.items():
            if list(targets) == list(tuned_targets):
                rows.append(row("4", name, editing()))  # the weight-editing model itself
                continue
            variant = variant_run(
                base, out / f"edit-{_slug(name)}", [*overrides, f"pwsg.targets={targets!r}"]
            )
            rows.append(row("4", name, generated(variant)))
    return rows


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").replace("--", "-")


def ablation_markdown(rows: Sequence[dict]) -> str:
    """The ablation records as one Markdown table per paper table; a row compared with GAFRG
    shows its ratio to it and the ratio's 95% interval."""
    titles = {"3": "Table 3: how the style enters", "4": "Table 4: which weights are edited"}
    parts = []
    for table in dict.fromkeys(r["table"] for r in rows):
        lines = [f"### {titles.get(table, table)}", "", "| row | " + " | ".join(ABLATION_METRICS)]
        lines[-1] += " |"
        lines.append("|:--|" + "--:|" * len(ABLATION_METRICS))
        for r in (r for r in rows if r["table"] == table):
            cells = [r["row"], *(_ablation_cell(r, metric) for metric in ABLATION_METRICS)]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _ablation_cell(record: dict, metric: str) -> str:
    ratio = record.get("vs GAFRG", {}).get(metric)
    if ratio is None:
        return f"{record[metric]:.4f}"
    return f"{record[metric]:.4f} ({ratio['value']:.3f}× [{ratio['low']:.3f}, {ratio['high']:.3f}])"
