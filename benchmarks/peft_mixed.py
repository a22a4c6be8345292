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

Methods run round-robin (one call each per repeat) so that machine noise hits them alike; each
time is the median. It checks that weditlib's outputs and gradients equal PEFT's (float32; the
largest differences are reported) and prints the ratios against their targets.

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

# name: (ratio key, bound, "<=" or ">=")
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


def with_adapters(base: nn.Module, targets, count: int, rank: int) -> PeftModel:
    """PEFT model with ``count`` adapters of rank ``rank`` and random (non-zero) A and B."""
    peft_model = None
    for i in range(count):
        config = LoraConfig(
            r=rank, lora_alpha=2 * rank, target_modules=list(targets), init_lora_weights=False
        )
        if peft_model is None:
            peft_model = get_peft_model(copy.deepcopy(base), config, adapter_name=f"user{i}")
        else:
            peft_model.add_adapter(f"user{i}", config)
    assert peft_model is not None
    return peft_model


def median_times_ms(methods: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    for fn in methods.values():
        fn()  # warm up
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


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


def verdicts(results: list[dict]) -> list[dict]:
    """Each target against each row it applies to."""
    out = []
    for target, (key, bound, sense) in TARGETS.items():
        wanted_tokens = 50 if "T=50" in target else 1 if "T=1" in target else None
        for r in results:
            if wanted_tokens is not None and r["tokens"] != wanted_tokens:
                continue
            value = r[key]
            hit = value <= bound if sense == "<=" else value >= bound
            out.append(
                {"target": f"{target} {sense} {bound}", "model": r["model"], "tokens": r["tokens"],
                 "measured": value, "hit": hit}
            )  # fmt: skip
    return out


def run(repeats: int, adapters: int, samples: int, rank: int) -> dict:
    results = [
        measure(work, tokens, adapters, samples, rank, repeats)
        for work in (linear_stack(), small_llama())
        for tokens in (50, 1)
    ]
    return {
        "device": platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "adapters": adapters,
        "samples_per_adapter": samples,
        "rank": rank,
        "dtype": "float32",
        "results": results,
        "targets": verdicts(results),
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
    for v in report["targets"]:
        mark = "hit " if v["hit"] else "MISS"
        print(f"  {mark} {v['target']:<40} {v['model']:<22} T={v['tokens']:<3} {v['measured']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=20, help="timed runs per method (median; 10x at T = 1)"
    )
    parser.add_argument("--adapters", type=int, default=16)
    parser.add_argument("--samples", type=int, default=10, help="samples per adapter")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args(argv)
    report = run(args.repeats, args.adapters, args.samples, args.rank)
    print_report(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
