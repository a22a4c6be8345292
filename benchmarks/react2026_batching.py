"""Batched per-listener shifts (weditlib) against the REACT 2026 baseline's weight assignment.

The official REACT 2026 "personalised online" baseline (PerFRDiff's weight rewriting) assigns
``module.weight = W + ΔW`` to the edited modules, so one forward serves one listener: it
generates listener by listener and trains by per-sample micro-forwards with gradient
accumulation. weditlib runs a batch of mixed listeners in one forward, each sample through its
own listener's shift. This script times both ways in one run, on the same model (tiny config,
random weights: speed does not depend on training) and the same inputs:

* PWSG training steps: style → shift generator → edited denoiser → loss → backward → AdamW;
* the same steps with each history's style given (``training, style given``): the frozen style
  encoder's pass over the 750-frame histories is the same work in both ways and most of a
  step on a CPU, so this row shows the part where the two ways differ;
* personalised generation: L listeners x M samples, DDIM (the sampler's cached-memory loop);
* both tasks on the plain denoiser with no edit at all (``training, unedited`` and
  ``generation, unedited``): one batch against the official way's split (a sample, or a
  listener's samples, per forward). No way of editing makes a forward cheaper than no edit,
  so this ratio is the ceiling of what batching alone can gain on the machine.

On a GPU (``--device cuda``; also a step of ``benchmarks/gpu_check.py``) every timing is
synchronised with the device.

Both ways are first checked to give the same losses, generator gradients and samples (to 1e-5,
relative to the largest value). Rounds alternate the two ways so machine load hits both alike;
each ratio (ours / official throughput) is a median over rounds, with its spread.

    python benchmarks/react2026_batching.py --rounds 31 \\
        --json benchmarks/results/react2026_batching.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from perfrdiff.config import load_config
from perfrdiff.features import AUDIO_DIM, EMOTION_DIM, FACE_DIM, history_dim
from perfrdiff.generation.sampler import materialise_within_limit
from perfrdiff.models import (
    GAFRG,
    DDIMSchedule,
    PerFRDiff,
    build_gafrg,
    build_perfrdiff,
    build_schedule,
)
from perfrdiff.models.losses import x0_loss
from perfrdiff.training.objectives import diffusion_inputs
from torch import Tensor, nn

from weditlib import edit, materialise_shifts

TARGET = 5.0  # the throughput ratio, training and generation
#: Std of the generator's heads: shifts of about a tenth of the tiny denoiser's weights.
HEAD_STD = 0.05
#: Wall time (what a user waits) and this process's CPU time (less disturbed by other jobs on a
#: shared machine; it includes the time a thread spins waiting for the other).
CLOCKS = ("wall", "cpu")


@dataclass
class Setting:
    """Sizes of one comparison: ``listeners`` x ``samples`` generated, ``batch`` per training
    step (one listener per sample, as stage ``pwsg`` trains)."""

    listeners: int = 8
    samples: int = 10
    batch: int = 32
    train_steps: int = 1
    seed: int = 0


@dataclass
class Models:
    """PerFRDiff (editable denoiser) and a plain copy of its denoiser, for the official way."""

    model: PerFRDiff
    plain: GAFRG
    schedule: DDIMSchedule
    timesteps: list[int]
    history_frames: int
    style_channels: int
    #: The plain denoiser's edited weights ``W, b`` by weight name (see :func:`base_weights`).
    base: dict[str, tuple[Tensor, Tensor | None]]
    device: torch.device


def build(config_name: str = "tiny", seed: int = 0, device: str | torch.device = "cpu") -> Models:
    """The config's PerFRDiff with random weights on ``device``; ``plain`` is its denoiser as
    ``nn.Linear`` / ``nn.MultiheadAttention`` (copied before :func:`weditlib.make_editable`
    wraps them)."""
    config, device = load_config(config_name), torch.device(device)
    torch.manual_seed(seed)
    gafrg = build_gafrg(config)
    plain = copy.deepcopy(gafrg).to(device)
    model = build_perfrdiff(config, gafrg=gafrg).to(device).eval()
    untrained_heads(model.generator, HEAD_STD)
    model.gafrg.requires_grad_(False)
    model.style_encoder.requires_grad_(False)
    plain.eval().requires_grad_(False)
    schedule = build_schedule(config)
    d = config.diffusion
    timesteps = schedule.set_timesteps(d.sample_steps, d.spacing).tolist()
    channels = history_dim(config.style.input)
    base = base_weights(plain, model.targets)
    return Models(
        model, plain, schedule, timesteps, config.data.history_frames, channels, base, device
    )


def untrained_heads(generator: nn.Module, std: float) -> None:
    """Fill the generator's zero-initialised heads from ``N(0, std²)``, so that listeners get
    different, non-zero shifts (a zero shift would make the equality check vacuous)."""
    with torch.no_grad():
        for parameter in generator.parameters():
            if not parameter.any():
                parameter.normal_(0.0, std)


# ----------------------------------------------------------------- the official way's surgery


def _weight_slots(plain: GAFRG, name: str) -> tuple[nn.Module, str, str]:
    """Where edited weight ``name`` lives in the plain denoiser: ``(module, weight, bias)``."""
    if name.endswith(".in_proj"):
        return plain.get_submodule(name.removesuffix(".in_proj")), "in_proj_weight", "in_proj_bias"
    return plain.get_submodule(name), "weight", "bias"


def base_weights(plain: GAFRG, targets: Iterable[str]) -> dict[str, tuple[Tensor, Tensor | None]]:
    """The plain denoiser's weights ``targets`` as ``W, b``, turned from parameters into plain
    attributes so that a tensor with a graph (``W + ΔW``) can be assigned in their place."""
    base = {}
    for name in targets:
        module, weight, bias = _weight_slots(plain, name)
        values = []
        for attribute in (weight, bias):
            value = getattr(module, attribute)
            if attribute in module._parameters:
                del module._parameters[attribute]
                value = value.detach()
                setattr(module, attribute, value)
            values.append(value)
        base[name] = (values[0], values[1])
    return base


def assign_base(models: Models, requires_grad: bool = False) -> None:
    """The plain denoiser's own weights back in place (no edit); with ``requires_grad`` the
    edited weights are leaves that collect a gradient, the work a backward to the shifts does."""
    for name, (w, b) in models.base.items():
        module, weight, bias = _weight_slots(models.plain, name)
        setattr(module, weight, w.detach().requires_grad_(requires_grad))
        if b is not None:
            setattr(module, bias, b.detach().requires_grad_(requires_grad))


def assign(models: Models, shifts: dict) -> None:
    """The baseline's edit: ``module.weight = W + ΔW`` (and ``b + Δb``) of one listener."""
    for name, shift in shifts.items():
        if shift.mode != "add" or shift.num_shifts != 1:
            raise ValueError(f"{name}: the official way edits one listener with W + ΔW")
        module, weight, bias = _weight_slots(models.plain, name)
        w, b = models.base[name]
        setattr(module, weight, w + shift.matrix()[0])
        if shift.bias is not None:
            setattr(module, bias, shift.bias[0] if b is None else b + shift.bias[0])


# ----------------------------------------------------------------------------- inputs


def _speaker(b: int, window: int, g: torch.Generator) -> tuple[Tensor, ...]:
    dims = (AUDIO_DIM, FACE_DIM, EMOTION_DIM, EMOTION_DIM)
    return tuple(torch.randn(b, window, c, generator=g) for c in dims)


def histories(models: Models, b: int, g: torch.Generator) -> Tensor:
    """``(b, h, c)`` random listener histories."""
    return torch.randn(b, models.history_frames, models.style_channels, generator=g)


def training_inputs(models: Models, setting: Setting) -> dict[str, Tensor]:
    """One training batch, noised once for both ways (the noising is not what is compared),
    and each sample's ``style`` (for the ``training, style given`` task)."""
    g = torch.Generator().manual_seed(setting.seed + 1)
    b, gafrg = setting.batch, models.model.gafrg
    audio, face, emotion, prev = _speaker(b, gafrg.window, g)
    batch = {
        "speaker_audio": audio,
        "speaker_face": face,
        "speaker_emotion": emotion,
        "listener_prev_emotion": prev,
        "listener_emotion": torch.randn(b, gafrg.window, EMOTION_DIM, generator=g),
        "has_past": torch.ones(b, dtype=torch.bool),
    }
    batch = {key: value.to(models.device) for key, value in batch.items()}
    history = histories(models, b, g).to(models.device)
    torch.manual_seed(setting.seed + 2)
    with torch.no_grad():
        centre = models.model.listener_centre(history)
        target, x_t, t, memory, keep = diffusion_inputs(
            gafrg, models.schedule, batch, 0.2, 0.0, centre
        )
        style = models.model.style(history)
    return {
        "history": history,
        "style": style,
        "target": target,
        "x_t": x_t,
        "t": t,
        "memory": memory,
        "keep": keep,
    }


def generation_inputs(models: Models, setting: Setting) -> dict[str, Tensor]:
    """``L`` listeners' histories and speaker windows, and the initial noise of their
    ``L·M`` samples (listener-major)."""
    g, device = torch.Generator().manual_seed(setting.seed + 3), models.device
    gafrg = models.model.gafrg
    speaker = [x.to(device) for x in _speaker(setting.listeners, gafrg.window, g)]
    has_past = torch.ones(setting.listeners, dtype=torch.bool, device=device)
    with torch.no_grad():
        memory = gafrg.condition(*speaker, has_past)
    total = setting.listeners * setting.samples
    return {
        "history": histories(models, setting.listeners, g).to(device),
        "memory": memory.repeat_interleave(setting.samples, dim=0),
        "noise": torch.randn(total, gafrg.window, EMOTION_DIM, generator=g).to(device),
    }


# ----------------------------------------------------------------------------- training


def _style(models: Models, inputs: dict[str, Tensor], rows: slice, given: bool) -> Tensor:
    """The frozen style of ``inputs``' histories ``rows``: given, or encoded now."""
    if given:
        return inputs["style"][rows]
    with torch.no_grad():
        return models.model.style(inputs["history"][rows])


def train_ours(models: Models, inputs: dict[str, Tensor], style_given: bool = False) -> Tensor:
    """One batched forward and backward: each sample through its own listener's shift."""
    model = models.model
    shifts = model.generator(_style(models, inputs, slice(None), style_given))
    x = (inputs["x_t"], inputs["t"], inputs["memory"], inputs["keep"])
    loss = x0_loss(model(*x, shifts, None), inputs["target"])
    loss.backward()
    return loss.detach()


def train_official(models: Models, inputs: dict[str, Tensor], style_given: bool = False) -> Tensor:
    """The baseline's step: per sample, assign its listener's weights, forward it alone and
    accumulate its share of the batch's mean loss into the gradients."""
    model, b = models.model, inputs["x_t"].shape[0]
    total = torch.zeros((), device=models.device)
    for i in range(b):
        one = slice(i, i + 1)
        assign(models, model.generator(_style(models, inputs, one, style_given)))
        x = (inputs["x_t"][one], inputs["t"][one], inputs["memory"][one], inputs["keep"][one])
        loss = x0_loss(models.plain(*x), inputs["target"][one]) / b
        loss.backward()
        total += loss.detach()
    return total


def train_unedited(models: Models, inputs: dict[str, Tensor], per_forward: int) -> None:
    """Forward and backward of the plain denoiser, unedited, ``per_forward`` samples at a time,
    the gradient reaching its editable weights: the ceiling of :func:`train_ours` (one batch)
    against :func:`train_official` (one sample per forward)."""
    assign_base(models, requires_grad=True)
    b = inputs["x_t"].shape[0]
    for start in range(0, b, per_forward):
        rows = slice(start, start + per_forward)
        x = (inputs["x_t"][rows], inputs["t"][rows], inputs["memory"][rows], inputs["keep"][rows])
        (x0_loss(models.plain(*x), inputs["target"][rows]) * (rows.stop - start) / b).backward()


# ----------------------------------------------------------------------------- generation


@torch.no_grad()
def ddim(models: Models, gafrg: GAFRG, memory: Tensor, x: Tensor) -> Tensor:
    """:class:`~perfrdiff.generation.ReactionSampler`'s loop (guidance 1, no inpainting) from
    the given initial noise ``x: (b, w, 25)``: the memory's keys and values once, then only the
    step-dependent part of the denoiser at each DDIM step."""
    cache = gafrg.memory_cache(memory)
    for t in models.timesteps:
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x0 = models.schedule.predicted_x0(gafrg.denoise(x, t_batch, cache), x, t)
        x = models.schedule.step(x0, t, x)
    return x


@torch.no_grad()
def generate_ours(models: Models, inputs: dict[str, Tensor], samples: int) -> Tensor:
    """All listeners' samples in one batch: shifts of every listener once, edited weights built
    once (as the sampler binds them), each sample through its listener's by ``index``."""
    model, history = models.model, inputs["history"]
    shifts = model.listener_shifts(history)
    bound = materialise_shifts(model.gafrg, shifts) if materialise_within_limit(shifts) else shifts
    index = torch.arange(history.shape[0], device=history.device).repeat_interleave(samples)
    centre = model.listener_centre(history)
    with edit(model.gafrg, bound, index, materialise=materialise_within_limit(bound)):
        x = ddim(models, model.gafrg, inputs["memory"], inputs["noise"])
    return model.gafrg.from_diffusion(x, None if centre is None else centre[index])


@torch.no_grad()
def generate_official(models: Models, inputs: dict[str, Tensor], samples: int) -> Tensor:
    """Listener by listener: assign its weights to the plain denoiser, sample its ``M``."""
    model, out = models.model, []
    for j in range(inputs["history"].shape[0]):
        history = inputs["history"][j : j + 1]
        assign(models, model.listener_shifts(history))
        rows = slice(j * samples, (j + 1) * samples)
        x = ddim(models, models.plain, inputs["memory"][rows], inputs["noise"][rows])
        out.append(models.plain.from_diffusion(x, model.listener_centre(history)))
    return torch.cat(out)


@torch.no_grad()
def generate_unedited(models: Models, inputs: dict[str, Tensor], per_forward: int) -> Tensor:
    """DDIM of the plain denoiser, unedited, ``per_forward`` samples at a time: the ceiling of
    :func:`generate_ours` (all at once) against :func:`generate_official` (a listener's)."""
    assign_base(models)
    memory, noise = inputs["memory"], inputs["noise"]
    return torch.cat([
        ddim(models, models.plain, memory[i : i + per_forward], noise[i : i + per_forward])
        for i in range(0, noise.shape[0], per_forward)
    ])  # fmt: skip


# ----------------------------------------------------------------------------- check and time


def relative_diff(a: Tensor, b: Tensor) -> float:
    """``max |a - b| / max |a|`` (``max |a - b|`` where ``a`` is all zeros)."""
    scale = float(a.abs().max())
    return float((a - b).abs().max()) / (scale if scale > 0 else 1.0)


def _generator_grads(models: Models) -> list[Tensor]:
    params = list(models.model.generator.parameters())
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    return grads


def equality(models: Models, setting: Setting, tolerance: float = 1e-5) -> dict[str, float]:
    """Both ways on the same weights and inputs: their largest relative differences in the
    training loss, the generator's gradients and the generated samples; raises
    ``AssertionError`` above ``tolerance``."""
    train = training_inputs(models, setting)
    ours_loss = train_ours(models, train)
    ours_grads = _generator_grads(models)
    official_loss = train_official(models, train)
    official_grads = _generator_grads(models)
    gen = generation_inputs(models, setting)
    ours = generate_ours(models, gen, setting.samples)
    official = generate_official(models, gen, setting.samples)
    diffs = {
        "loss": relative_diff(ours_loss, official_loss),
        "generator_grads": max(
            relative_diff(a, b) for a, b in zip(ours_grads, official_grads, strict=True)
        ),
        "samples": relative_diff(ours, official),
    }
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= tolerance, f"the two ways differ in {worst}: {diffs}"
    return diffs


def _seconds(work: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """Wall and CPU seconds (this process's, all its threads) of ``work()``, the device's
    queued work included (synchronised before and after on CUDA)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def _spread(values: list[float]) -> dict[str, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3),
            "min": min(values), "max": max(values)}  # fmt: skip


def workloads(models: Models, setting: Setting) -> dict[str, dict[str, Callable[[], object]]]:
    """Task -> way -> one timed unit: ``train_steps`` optimiser steps, or one generation of
    every listener's samples."""
    train, gen = training_inputs(models, setting), generation_inputs(models, setting)
    optimiser = torch.optim.AdamW(models.model.generator.parameters(), lr=1e-3)

    def steps(way: Callable[..., Tensor], style_given: bool = False) -> None:
        for _ in range(setting.train_steps):
            optimiser.zero_grad(set_to_none=True)
            way(models, train, style_given)
            optimiser.step()

    return {
        "training": {"ours": lambda: steps(train_ours), "official": lambda: steps(train_official)},
        "training, style given": {
            "ours": lambda: steps(train_ours, True),
            "official": lambda: steps(train_official, True),
        },
        "generation": {
            "ours": lambda: generate_ours(models, gen, setting.samples),
            "official": lambda: generate_official(models, gen, setting.samples),
        },
        "training, unedited": {
            "ours": lambda: train_unedited(models, train, setting.batch),
            "official": lambda: train_unedited(models, train, 1),
        },
        "generation, unedited": {
            "ours": lambda: generate_unedited(models, gen, len(gen["noise"])),
            "official": lambda: generate_unedited(models, gen, setting.samples),
        },
    }


def timed_rounds(models: Models, setting: Setting, rounds: int) -> dict[str, dict]:
    """Per task: seconds of each way per round (alternating, the first way swapped each round)
    after one untimed run of each.

    Returns:
        clock (``wall``, ``cpu``) -> task -> ``{"ours": [seconds per round], "official": [...]}``.
    """
    work = workloads(models, setting)
    seconds = {c: {task: {way: [] for way in ways} for task, ways in work.items()} for c in CLOCKS}
    for ways in work.values():
        for run in ways.values():
            run()
    for r in range(rounds):
        for task, ways in work.items():
            order = list(ways) if r % 2 == 0 else list(reversed(ways))
            for way in order:
                timed = _seconds(ways[way], models.device)
                for clock, value in zip(CLOCKS, timed, strict=True):
                    seconds[clock][task][way].append(value)
    return seconds


def summary(seconds: dict[str, dict[str, list[float]]], setting: Setting) -> list[dict]:
    """One row per task of one clock's ``seconds`` (task -> way -> per round): the samples of
    one round, each way's samples per second (median round) and ours / official throughput
    per round (``official_s / ours_s``): median (``ratio``), quartiles, extremes."""
    training = setting.batch * setting.train_steps
    generation = setting.listeners * setting.samples
    units = {
        "training": training,
        "training, style given": training,
        "generation": generation,
        "training, unedited": setting.batch,
        "generation, unedited": generation,
    }
    rows = []
    for task, by_way in seconds.items():
        ratios = [o / s for s, o in zip(by_way["ours"], by_way["official"], strict=True)]
        spread = _spread(ratios)
        rows.append({
            "task": task,
            "samples": units[task],
            "ours_per_s": units[task] / float(np.median(by_way["ours"])),
            "official_per_s": units[task] / float(np.median(by_way["official"])),
            "ratio": spread["median"],
            **{f"ratio_{key}": spread[key] for key in ("q1", "q3", "min", "max")},
            "target_hit": spread["median"] >= TARGET,
        })  # fmt: skip
    return rows


def measure(
    setting: Setting, rounds: int, config: str = "tiny", device: str | torch.device = "cpu"
) -> dict:
    """Equality check, then the timed rounds, with the machine's load around them."""
    models = build(config, setting.seed, device)
    load_before = os.getloadavg()
    differences = equality(models, setting)
    seconds = timed_rounds(models, setting, rounds)
    load_after = os.getloadavg()
    return {
        "config": config,
        "device": str(models.device),
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min_before": load_before[0],
        "load_average_1min_after": load_after[0],
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "target_ratio": TARGET,
        "setting": asdict(setting),
        "max_relative_difference": differences,
        "results": summary(seconds["wall"], setting),
        "results_cpu_time": summary(seconds["cpu"], setting),
        **raw_seconds(seconds),
    }


def raw_seconds(seconds: dict) -> dict[str, list[float]]:
    """Every round's seconds as flat lists, ``seconds_<clock>_<task>_<way>`` (lists, not
    tables, on the docs page)."""
    return {
        f"seconds_{clock}_{task}_{way}": values
        for clock, tasks in seconds.items()
        for task, ways in tasks.items()
        for way, values in ways.items()
    }


def print_report(result: dict) -> None:
    s = result["setting"]
    print(
        f"{result['config']} config, {result['threads']} threads, {result['rounds']} rounds; "
        f"load average {result['load_average_1min_before']:.1f} -> "
        f"{result['load_average_1min_after']:.1f} on {result['cpu_count']} CPUs"
    )
    print("max relative differences:", json.dumps(result["max_relative_difference"]))
    print(f"training: batch {s['batch']} x {s['train_steps']} steps; "
          f"generation: {s['listeners']} listeners x {s['samples']} samples")  # fmt: skip
    print(
        f"{'clock':5} {'task':21} {'ours/s':>9} {'official/s':>11} {'ratio':>7} {'q1..q3':>13} "
        f"{'min..max':>13}"
    )
    rows = [("wall", r) for r in result["results"]]
    for clock, r in rows + [("cpu", r) for r in result["results_cpu_time"]]:
        print(
            f"{clock:5} {r['task']:21} {r['ours_per_s']:9.1f} "
            f"{r['official_per_s']:11.1f} {r['ratio']:7.2f} "
            f"{r['ratio_q1']:6.2f}..{r['ratio_q3']:<6.2f} "
            f"{r['ratio_min']:6.2f}..{r['ratio_max']:<6.2f}"
        )
    print(f"target: ours >= {result['target_ratio']}x official (samples per second, median ratio)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", help="model config (default: tiny)")
    parser.add_argument("--listeners", type=int, default=8, help="L (default: 8)")
    parser.add_argument("--samples", type=int, default=10, help="M per listener (default: 10)")
    parser.add_argument("--batch", type=int, default=32, help="training batch (default: 32)")
    parser.add_argument("--train-steps", type=int, default=1, help="steps per round (default 1)")
    parser.add_argument("--rounds", type=int, default=11, help="alternating rounds (default: 11)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setting = Setting(args.listeners, args.samples, args.batch, args.train_steps, args.seed)
    result = measure(setting, args.rounds, args.config, args.device)
    print_report(result)
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as file:
            json.dump(result, file, indent=2)


if __name__ == "__main__":
    main()
