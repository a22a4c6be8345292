"""Benchmark a mixed batch of LoRA adapters: weditlib.peft against PEFT, same model, same adapters.

Every sample names its adapter (16 adapters x 10 samples, r = 8, batch sorted by adapter). In one
run, for a stack of two 512x512 linears and for a small Llama (``transformers``, built from a
config, random weights), at T = 50 and T = 1 tokens per sample, it times:

* inference: the base model with no adapter; PEFT's ``model(x, adapter_names=...)`` (a loop over
  adapters on sub-batches); weditlib's stacked low-rank shifts with an index (one pass, including
  stacking the shifts on every call);
* at T = 1, a decode loop's pattern too: ``DECODE_STEPS`` forwards in a row, the base model's and
  weditlib's inside one ``edit()`` block entered once for them all (the block's entry, with its
  checks, is then paid once per loop, not per forward);
* a training step (forward, backward, SGD step on the adapters): PEFT cannot train a mixed batch,
  so it loops over adapters with ``set_adapter`` and one sub-batch each; weditlib runs the mixed
  batch in one pass.

DoRA rows (the two linears, T = 50 and T = 1): the same adapters with ``use_dora=True`` and
trained-looking magnitudes. PEFT refuses DoRA in a mixed batch, so it runs one adapter at a time
(``set_adapter``, one sub-batch each), for inference and training; weditlib runs the mixed batch,
beside its LoRA mixed batch of the same factors and the base model.

A compiled row (the two linears, LoRA, T = 50): the edited model under ``torch.compile(dynamic=True,
fullgraph=True)`` (inductor), the number of compilations over 8 batch sizes and 12 random index
patterns, and its time against the eager mixed batch.

Methods run round-robin (one call each per repeat) so that machine noise hits them alike; each
time is the median, and the ratios of the DoRA and compiled rows come with their spread (the
25th-75th percentiles of the per-repeat ratios). It checks that weditlib's outputs and gradients
equal PEFT's (float32; the largest differences are reported) and prints the ratios against their
targets.

    python benchmarks/peft_mixed.py --json benchmarks/results/peft_mixed.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict
from torch import Tensor, nn

from weditlib.peft import LoraAdapters

# name: (ratio key, bound, "<=" or ">="); DORA_TARGETS and COMPILED_TARGETS apply to those rows
DORA_TARGETS = {
    "DoRA weditlib / LoRA weditlib, T=50": ("dora_over_lora", 1.3, "<="),
    "PEFT one by one / DoRA weditlib, T=50": ("peft_over_dora", 2.0, ">="),
    "DoRA outputs: max relative diff from PEFT": ("output_rel_diff", 1e-5, "<="),
    "DoRA gradients: max relative diff from PEFT": ("grad_rel_diff", 1e-4, "<="),
}
COMPILED_TARGETS = {
    "compilations, 8 batch sizes + 12 index patterns": ("compilations", 2, "<="),
    "compiled / eager, T=50": ("compiled_over_eager", 1.0, "<="),
}
TARGETS = {
    "weditlib / base, T=50": ("weditlib_over_base", 1.1, "<="),
    "weditlib / base, T=1": ("weditlib_over_base", 1.3, "<="),
    "PEFT / weditlib, T=50": ("peft_over_weditlib", 1.5, ">="),
    "PEFT / weditlib, T=1": ("peft_over_weditlib", 4.0, ">="),
    "PEFT loop / weditlib, train step": ("peft_loop_over_weditlib", 3.0, ">="),
}


#: Forwards per timed call in the decode-loop rows (T = 1): tokens decoded under one edit block.
DECODE_STEPS = 10


class LinearStack(nn.Module):
    """Two 512x512 linears: ``x: (b, t, 512) -> (b, t, 512)``."""

    def __init__(self, width: int = 512) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@dataclass(frozen=True)
class Workload:
    """A base model, its LoRA target modules and how to make a batch of ``b`` samples."""

    name: str
    build: Callable[[], nn.Module]
    targets: tuple[str, ...]
    inputs: Callable[[int, int, torch.Generator], dict[str, Tensor]]
    output: Callable[[object], Tensor]


def linear_stack() -> Workload:
    return Workload(
        "two 512x512 linears",
        LinearStack,
        ("fc1", "fc2"),
        lambda b, t, g: {"x": torch.randn(b, t, 512, generator=g)},
        lambda out: out,
    )


def small_llama() -> Workload:
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
    )  # fmt: skip
    return Workload(
        "Llama 2x256 (q,v)",
        lambda: transformers.LlamaForCausalLM(config),
        ("q_proj", "v_proj"),
        lambda b, t, g: {"input_ids": torch.randint(0, 1000, (b, t), generator=g)},
        lambda out: out.logits,
    )


def with_adapters(
    base: nn.Module, targets, count: int, rank: int, use_dora: bool = False
) -> PeftModel:
    """PEFT model with ``count`` adapters of rank ``rank`` and random (non-zero) A and B; DoRA
    magnitudes, with ``use_dora``, scaled by U(0.5, 1.5) away from PEFT's initial norms."""
    peft_model = None
    for i in range(count):
        config = LoraConfig(
            r=rank, lora_alpha=2 * rank, target_modules=list(targets), init_lora_weights=False,
            use_dora=use_dora,
        )  # fmt: skip
        if peft_model is None:
            peft_model = get_peft_model(copy.deepcopy(base), config, adapter_name=f"user{i}")
        else:
            peft_model.add_adapter(f"user{i}", config)
    assert peft_model is not None
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_magnitude_vector" in name:
                parameter.mul_(torch.rand_like(parameter) + 0.5)
    return peft_model


def sources_of(peft_model: PeftModel, dora: bool = True) -> dict:
    """Adapter name -> (config, state dict); ``dora=False`` drops DoRA's magnitudes (the same
    factors as plain LoRA adapters)."""
    sources = {}
    for name, config in peft_model.peft_config.items():
        state = get_peft_model_state_dict(peft_model, adapter_name=name)
        if not dora:
            config = {**config.to_dict(), "use_dora": False}
            state = {k: v for k, v in state.items() if "lora_magnitude_vector" not in k}
        sources[name] = (config, state)
    return sources


def round_robin_ms(
    methods: dict[str, Callable[[], object]], repeats: int
) -> dict[str, list[float]]:
    """Each method's times (ms), one call of each per repeat in turn, after one warm-up call."""
    for fn in methods.values():
        fn()  # warm up
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(1e3 * (time.perf_counter() - start))
    return times


def median_times_ms(methods: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times = round_robin_ms(methods, repeats)
    return {name: statistics.median(values) for name, values in times.items()}


def ratio_spread(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    """Median and 25th/75th percentiles of the per-repeat ratios (calls of one round)."""
    ratios = sorted(a / b for a, b in zip(numerator, denominator, strict=True))
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return {"median": statistics.median(ratios), "q1": q1, "q3": q3}


def _short_call_factor(tokens: int) -> int:
    """How many times more repeats a row gets: a T = 1 call takes about a millisecond, where
    machine noise is a large share of one timing, so its median needs more of them."""
    return 10 if tokens == 1 else 1


def measure(work: Workload, tokens: int, adapters: int, samples: int, rank: int, repeats: int):
    torch.manual_seed(0)
    base = work.build().eval().requires_grad_(False)
    peft_model = with_adapters(base, work.targets, adapters, rank).eval()
    names = [f"user{i}" for i in range(adapters) for _ in range(samples)]
    model = copy.deepcopy(base)
    lora = LoraAdapters.load(
        model,
        {
            name: (config, get_peft_model_state_dict(peft_model, adapter_name=name))
            for name, config in peft_model.peft_config.items()
        },
    )
    inputs = work.inputs(len(names), tokens, torch.Generator().manual_seed(1))

    def ours() -> Tensor:
        with lora.edit(model, names):
            return work.output(model(**inputs))

    def base_steps() -> None:
        for _ in range(DECODE_STEPS):
            base(**inputs)

    def ours_steps() -> None:
        with lora.edit(model, names):
            for _ in range(DECODE_STEPS):
                model(**inputs)

    methods = {
        "base": lambda: base(**inputs),
        "peft": lambda: peft_model(**inputs, adapter_names=names),
        "weditlib": ours,
    }
    if tokens == 1:
        methods |= {"base_steps": base_steps, "weditlib_steps": ours_steps}
    with torch.no_grad():
        expected = work.output(peft_model(**inputs, adapter_names=names))
        inference_error = (ours() - expected).abs().max().item()
        inference = median_times_ms(methods, repeats * _short_call_factor(tokens))
    decode = dict.fromkeys(("base", "weditlib", "ratio"))
    if tokens == 1:  # per forward, the loop's time / DECODE_STEPS
        decode = {name: inference[f"{name}_steps"] / DECODE_STEPS for name in ("base", "weditlib")}
        decode["ratio"] = decode["weditlib"] / decode["base"]

    # Training: the same loss, sum over samples / batch size, so the mixed batch's gradient is
    # the sum of the per-adapter ones.
    rows = {name: [i for i, n in enumerate(names) if n == name] for name in lora.names}
    batch = len(names)
    ours_optimizer = torch.optim.SGD(lora.parameters(), lr=0.0)
    peft_parameters = [p for n, p in peft_model.named_parameters() if "lora_" in n]
    peft_optimizer = torch.optim.SGD(peft_parameters, lr=0.0)
    lora.train()
    peft_model.train()

    def ours_step() -> None:
        ours_optimizer.zero_grad()
        with lora.edit(model, names):
            loss = work.output(model(**inputs)).square().sum() / batch
        loss.backward()
        ours_optimizer.step()

    def peft_step() -> None:
        peft_optimizer.zero_grad()
        for name, picked in rows.items():
            peft_model.set_adapter(name)
            sub_batch = {key: value[picked] for key, value in inputs.items()}
            loss = work.output(peft_model(**sub_batch)).square().sum() / batch
            loss.backward()
        peft_optimizer.step()

    ours_step()
    peft_step()
    layers = peft_model.base_model.model
    gradient_error = max(
        (ours.grad - layers.get_submodule(path).lora_A[adapter.name].weight.grad).abs().max().item()
        for adapter in lora.adapters.values()
        for ours, path in zip(adapter.lora_A, adapter.module_paths, strict=True)
    )
    training = median_times_ms(
        {"peft_loop": peft_step, "weditlib": ours_step}, repeats * _short_call_factor(tokens)
    )
    return {
        "model": work.name,
        "tokens": tokens,
        "base_ms": inference["base"],
        "peft_ms": inference["peft"],
        "weditlib_ms": inference["weditlib"],
        "weditlib_over_base": inference["weditlib"] / inference["base"],
        "peft_over_weditlib": inference["peft"] / inference["weditlib"],
        # T = 1 only (None at T = 50): ms per forward of a DECODE_STEPS-forward loop, weditlib's
        # inside one edit block
        "decode_base_ms": decode["base"],
        "decode_weditlib_ms": decode["weditlib"],
        "decode_weditlib_over_base": decode["ratio"],
        "train_peft_loop_ms": training["peft_loop"],
        "train_weditlib_ms": training["weditlib"],
        "peft_loop_over_weditlib": training["peft_loop"] / training["weditlib"],
        "max_output_diff": inference_error,
        "max_output": expected.abs().max().item(),
        "max_lora_A_grad_diff": gradient_error,
    }


def _relative(ours: Tensor, theirs: Tensor) -> float:
    """Largest ``|ours - theirs|`` over the largest ``|theirs|``."""
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def _one_adapter_at_a_time(peft_model: PeftModel, rows: dict, inputs: dict, batch: int) -> Tensor:
    """PEFT's output for the mixed batch, each adapter's sub-batch run with only it active."""
    out = None
    for name, picked in rows.items():
        peft_model.set_adapter(name)
        y = peft_model(**{key: value[picked] for key, value in inputs.items()})
        if out is None:
            out = y.new_empty(batch, *y.shape[1:])
        out[picked] = y
    assert out is not None
    return out


def measure_dora(tokens: int, adapters: int, samples: int, rank: int, repeats: int) -> dict:
    """DoRA on the two linears: weditlib's mixed batch against PEFT one adapter at a time, its
    LoRA mixed batch of the same factors and the base model; a training step of each."""
    torch.manual_seed(0)
    work = linear_stack()
    base = work.build().eval().requires_grad_(False)
    peft_model = with_adapters(base, work.targets, adapters, rank, use_dora=True).eval()
    names = [f"user{i}" for i in range(adapters) for _ in range(samples)]
    rows = {name: [i for i, n in enumerate(names) if n == name] for name in dict.fromkeys(names)}
    dora_model, lora_model = copy.deepcopy(base), copy.deepcopy(base)
    dora = LoraAdapters.load(dora_model, sources_of(peft_model))
    lora = LoraAdapters.load(lora_model, sources_of(peft_model, dora=False))
    inputs = work.inputs(len(names), tokens, torch.Generator().manual_seed(1))
    batch = len(names)

    def run(adapters_: LoraAdapters, model: nn.Module) -> Tensor:
        with adapters_.edit(model, names):
            return model(**inputs)

    with torch.no_grad():
        output_error = _relative(
            run(dora, dora_model), _one_adapter_at_a_time(peft_model, rows, inputs, batch)
        )
        times = round_robin_ms(
            {
                "base": lambda: base(**inputs),
                "peft": lambda: _one_adapter_at_a_time(peft_model, rows, inputs, batch),
                "dora": lambda: run(dora, dora_model),
                "lora": lambda: run(lora, lora_model),
            },
            repeats * _short_call_factor(tokens),
        )
    train, grad_error = _dora_training(peft_model, dora, dora_model, rows, inputs, repeats)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "model": work.name + ", DoRA",
        "tokens": tokens,
        "base_ms": median["base"],
        "peft_one_by_one_ms": median["peft"],
        "dora_ms": median["dora"],
        "lora_ms": median["lora"],
        "dora_over_lora": median["dora"] / median["lora"],
        "dora_over_lora_spread": ratio_spread(times["dora"], times["lora"]),
        "peft_over_dora": median["peft"] / median["dora"],
        "peft_over_dora_spread": ratio_spread(times["peft"], times["dora"]),
        "dora_over_base": median["dora"] / median["base"],
        **train,
        "output_rel_diff": output_error,
        "grad_rel_diff": grad_error,
    }


def _dora_training(
    peft_model: PeftModel, dora: LoraAdapters, model: nn.Module, rows, inputs, repeats: int
) -> tuple[dict, float]:
    """A training step of the mixed batch against PEFT's loop over adapters; the largest
    relative gradient difference over every adapter's A, B and magnitude."""
    names = [name for name, picked in rows.items() for _ in picked]
    batch = len(names)
    ours_optimizer = torch.optim.SGD(dora.parameters(), lr=0.0)
    peft_parameters = [p for n, p in peft_model.named_parameters() if "lora_" in n]
    peft_optimizer = torch.optim.SGD(peft_parameters, lr=0.0)
    dora.train()
    peft_model.train()

    def ours_step() -> None:
        ours_optimizer.zero_grad()
        with dora.edit(model, names):
            loss = model(**inputs).square().sum() / batch
        loss.backward()
        ours_optimizer.step()

    def peft_step() -> None:
        peft_optimizer.zero_grad()
        for name, picked in rows.items():
            peft_model.set_adapter(name)
            sub_batch = {key: value[picked] for key, value in inputs.items()}
            (peft_model(**sub_batch).square().sum() / batch).backward()
        peft_optimizer.step()

    ours_step()
    peft_step()
    layers = peft_model.base_model.model
    error = 0.0
    for adapter in dora.adapters.values():
        for position, path in enumerate(adapter.module_paths):
            layer = layers.get_submodule(path)
            pairs = (
                (adapter.lora_A[position], layer.lora_A[adapter.name].weight),
                (adapter.lora_B[position], layer.lora_B[adapter.name].weight),
                (adapter.lora_magnitude_vector[position],
                 layer.lora_magnitude_vector[adapter.name].weight),
            )  # fmt: skip
            error = max(error, *(_relative(ours.grad, theirs.grad) for ours, theirs in pairs))
    times = round_robin_ms({"peft_loop": peft_step, "dora": ours_step}, repeats)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "train_peft_loop_ms": median["peft_loop"],
        "train_dora_ms": median["dora"],
        "train_peft_loop_over_dora": median["peft_loop"] / median["dora"],
    }, error


#: Batch sizes of the compiled row (8), then this many random index patterns at the largest.
COMPILE_BATCHES = (160, 96, 40, 128, 17, 80, 150, 33)
COMPILE_PATTERNS = 12


def measure_compiled(
    adapters: int,
    samples: int,
    rank: int,
    repeats: int,
    *,
    backend: str = "inductor",
    batches: tuple[int, ...] = COMPILE_BATCHES,
    patterns: int = COMPILE_PATTERNS,
    tokens: int = 50,
) -> dict:
    """The LoRA mixed batch on the two linears under ``torch.compile`` (``backend``, dynamic):
    compilations over the ``batches`` sizes and ``patterns`` random index patterns at the first,
    then time against eager at ``tokens`` tokens per sample."""
    import torch._dynamo

    torch.manual_seed(0)
    work = linear_stack()
    base = work.build().eval().requires_grad_(False)
    peft_model = with_adapters(base, work.targets, adapters, rank)
    model = copy.deepcopy(base)
    lora = LoraAdapters.load(model, sources_of(peft_model))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=backend)
    g = torch.Generator().manual_seed(2)
    sizes = [*batches, *[batches[0]] * patterns]
    error, start = 0.0, time.perf_counter()
    with torch.no_grad():
        for size in sizes:
            picks = torch.randint(0, adapters, (size,), generator=g).tolist()
            names = [lora.names[i] for i in picks]
            x = torch.randn(size, tokens, 512, generator=g)
            with lora.edit(model, names):
                error = max(error, _relative(compiled(x), model(x)))
    warm_ms = 1e3 * (time.perf_counter() - start)
    compilations = int(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    names = [f"user{i}" for i in range(adapters) for _ in range(samples)]
    x = work.inputs(len(names), tokens, torch.Generator().manual_seed(1))["x"]

    def call(fn) -> Callable[[], Tensor]:
        def run() -> Tensor:
            with lora.edit(model, names):
                return fn(x)

        return run

    with torch.no_grad():
        times = round_robin_ms(
            {"eager": call(model), "compiled": call(compiled), "base": lambda: base(x)}, repeats
        )
    median = {name: statistics.median(values) for name, values in times.items()}
    counters = torch._dynamo.utils.counters
    return {
        "model": work.name + ", LoRA, compiled",
        "tokens": tokens,
        "backend": backend,
        "compilations": compilations,
        "calls": len(sizes),
        # the timed batch is sorted by adapter in equal groups (uniform): its own graph
        "compilations_with_timed_batch": int(counters["stats"]["unique_graphs"]),
        "compile_and_first_calls_ms": warm_ms,
        "eager_ms": median["eager"],
        "compiled_ms": median["compiled"],
        "base_ms": median["base"],
        "compiled_over_eager": median["compiled"] / median["eager"],
        "compiled_over_eager_spread": ratio_spread(times["compiled"], times["eager"]),
        "max_rel_diff_from_eager": error,
    }


def _verdicts(rows: list[dict], targets: dict) -> list[dict]:
    """Each of ``targets`` against each of ``rows`` it applies to (by its ``T=`` if any)."""
    out = []
    for target, (key, bound, sense) in targets.items():
        wanted_tokens = 50 if "T=50" in target else 1 if "T=1" in target else None
        for r in rows:
            if wanted_tokens is not None and r["tokens"] != wanted_tokens:
                continue
            value = r[key]
            hit = value <= bound if sense == "<=" else value >= bound
            out.append(
                {"target": f"{target} {sense} {bound}", "model": r["model"], "tokens": r["tokens"],
                 "measured": value, "hit": hit}
            )  # fmt: skip
    return out


def verdicts(results: list[dict], dora: list[dict] = (), compiled: list[dict] = ()) -> list[dict]:
    """Each target against each row it applies to."""
    return (
        _verdicts(results, TARGETS)
        + _verdicts(list(dora), DORA_TARGETS)
        + _verdicts(list(compiled), COMPILED_TARGETS)
    )


def run(repeats: int, adapters: int, samples: int, rank: int, only: str = "all") -> dict:
    results = [
        measure(work, tokens, adapters, samples, rank, repeats)
        for work in (linear_stack(), small_llama())
        for tokens in (50, 1)
        if only == "all"
    ]
    dora = [
        measure_dora(tokens, adapters, samples, rank, repeats)
        for tokens in (50, 1)
        if only in ("all", "dora")
    ]
    compiled = (
        [measure_compiled(adapters, samples, rank, repeats)] if only in ("all", "compiled") else []
    )
    return {
        "device": platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "adapters": adapters,
        "samples_per_adapter": samples,
        "rank": rank,
        "dtype": "float32",
        "results": results,
        "dora": dora,
        "compiled": compiled,
        "targets": verdicts(results, dora, compiled),
    }


def print_report(report: dict) -> None:
    print(
        f"{report['device']}, {report['threads']} threads, torch {report['torch']}: "
        f"{report['adapters']} adapters x {report['samples_per_adapter']} samples, "
        f"r={report['rank']}, {report['dtype']}"
    )
    print(
        f"{'model':<22}{'T':>3}{'base':>9}{'PEFT':>9}{'wedit':>9}{'w/base':>8}{'PEFT/w':>8}"
        f"{'trainPEFT':>11}{'trainW':>9}{'loop/w':>8}{'out diff':>10}{'grad diff':>10}"
    )
    for r in report["results"]:
        print(
            f"{r['model']:<22}{r['tokens']:>3}{r['base_ms']:>9.2f}{r['peft_ms']:>9.2f}"
            f"{r['weditlib_ms']:>9.2f}{r['weditlib_over_base']:>7.2f}x{r['peft_over_weditlib']:>7.2f}x"
            f"{r['train_peft_loop_ms']:>11.2f}{r['train_weditlib_ms']:>9.2f}"
            f"{r['peft_loop_over_weditlib']:>7.2f}x{r['max_output_diff']:>10.1e}"
            f"{r['max_lora_A_grad_diff']:>10.1e}"
        )
    print("(median ms; out diff: largest |weditlib - PEFT| output difference, float32)")
    for r in report["results"]:
        if r["decode_weditlib_ms"] is not None:
            print(
                f"decode loop, {r['model']}, T=1: {DECODE_STEPS} forwards under one edit block "
                f"{r['decode_weditlib_ms']:.2f} ms each, base {r['decode_base_ms']:.2f} ms "
                f"({r['decode_weditlib_over_base']:.2f}x)"
            )
    print_dora_and_compiled(report)
    for v in report["targets"]:
        mark = "hit " if v["hit"] else "MISS"
        print(f"  {mark} {v['target']:<40} {v['model']:<22} T={v['tokens']:<3} {v['measured']:.3g}")


def _spread(spread: dict) -> str:
    return f"[{spread['q1']:.2f}, {spread['q3']:.2f}]"


def print_dora_and_compiled(report: dict) -> None:
    """The DoRA rows and the compiled row, ratios with their interquartile spread."""
    print(
        f"{'DoRA, two 512x512 linears':<27}{'T':>3}{'base':>8}{'PEFT 1x1':>10}{'DoRA':>8}"
        f"{'LoRA':>8}{'DoRA/LoRA':>19}{'PEFT/DoRA':>19}{'train PEFT/DoRA':>17}"
        f"{'out rel':>9}{'grad rel':>9}"
    )
    for r in report.get("dora", []):
        print(
            f"{'':<27}{r['tokens']:>3}{r['base_ms']:>8.2f}{r['peft_one_by_one_ms']:>10.2f}"
            f"{r['dora_ms']:>8.2f}{r['lora_ms']:>8.2f}"
            f"{r['dora_over_lora']:>6.2f}x {_spread(r['dora_over_lora_spread']):>11}"
            f"{r['peft_over_dora']:>6.2f}x {_spread(r['peft_over_dora_spread']):>11}"
            f"{r['train_peft_loop_over_dora']:>16.2f}x"
            f"{r['output_rel_diff']:>9.1e}{r['grad_rel_diff']:>9.1e}"
        )
    for r in report.get("compiled", []):
        print(
            f"compiled (inductor, dynamic), {r['model']}, T={r['tokens']}: {r['compilations']} "
            f"compilation(s) over {r['calls']} calls ({r['compilations_with_timed_batch']} with "
            f"the sorted timed batch); {r['compiled_ms']:.2f} ms vs eager "
            f"{r['eager_ms']:.2f} ms ({r['compiled_over_eager']:.2f}x "
            f"{_spread(r['compiled_over_eager_spread'])}), base {r['base_ms']:.2f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=20, help="timed runs per method (median; 10x at T = 1)"
    )
    parser.add_argument("--adapters", type=int, default=16)
    parser.add_argument("--samples", type=int, default=10, help="samples per adapter")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument(
        "--only", choices=("all", "dora", "compiled"), default="all",
        help="run only the DoRA rows or the compiled row (quick looks; the JSON is the full run's)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    report = run(args.repeats, args.adapters, args.samples, args.rank, args.only)
    print_report(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
