"""pwsg.condition, pwsg.mode and pwsg.attention_rows, batched over mixed listeners, against the
official baseline's way: one listener at a time, its edited weights assigned to a plain
denoiser, in float64 with gradients."""

import re

import pytest
import torch
from perfrdiff.config import ConfigError, load_config
from perfrdiff.models import build_gafrg, build_perfrdiff
from perfrdiff.models.condition import ListenerCondition, check_personality
from torch.func import functional_call

from weditlib import LowRankShift, RowRangeShift

from .tiny_preset import HISTORY_DIM as H

F64 = torch.float64
#: Listener of each of the 6 samples: three listeners, mixed.
INDEX = torch.tensor([2, 0, 1, 1, 2, 0])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config_of(condition="history", mode="add", rows="all", *more):
    return load_config(
        "tiny",
        [
            "protocol=react2026",
            f"pwsg.condition={condition}",
            f"pwsg.mode={mode}",
            f"pwsg.attention_rows={rows}",
            *more,
        ],
    )


def model_of(config):
    """A float64 PerFRDiff whose generator and condition MLPs are random (non-zero shifts)."""
    torch.manual_seed(0)
    model = build_perfrdiff(config).to(F64).eval()
    for p in model.exported.parameters():
        p.data.normal_(0, 0.05)
    return model


def inputs(model, b=6, listeners=3):
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)  # noqa: E731
    with torch.no_grad():
        memory = model.gafrg.condition(r(b, 50, 78), r(b, 50, 58), r(b, 50, 25))
    history = r(listeners, 60, H)
    personality = torch.rand(listeners, 5, generator=g, dtype=F64)
    return r(b, 50, 25), torch.randint(0, 1000, (b,), generator=g), memory, history, personality


def edited_parameters(model, config, shifts, listener):
    """The denoiser's parameters with ``listener``'s edits assigned, built by hand from the
    config: ``W ⊕ ΔW`` on the edited rows (an in_proj's ``[e, 3e)`` with ``kv``), ``b + Δb``
    on them."""
    params = {}
    named = dict(model.gafrg.named_parameters())
    for name, shift in shifts.items():
        start, stop, inner = 0, model.targets[name][0], shift
        if name.endswith("in_proj") and config.pwsg.attention_rows == "kv":
            e = model.gafrg.get_submodule(name.rpartition(".")[0]).embed_dim
            start, stop, inner = e, 3 * e, shift.inner
        if isinstance(inner, LowRankShift):
            delta = inner.up[listener] @ inner.down[listener]
        else:
            delta = inner.weight[listener]
        weight_key, bias_key = (
            (f"{name}_weight", f"{name}_bias")
            if name.endswith("in_proj")
            else (f"{name}.weight", f"{name}.bias")
        )
        weight, bias = named[weight_key], named[bias_key]
        rows = weight[start:stop]
        mode = config.pwsg.mode
        new = {"add": rows + delta, "scale": rows * (1 + delta), "replace": delta}[mode]
        params[weight_key] = torch.cat([weight[:start], new, weight[stop:]])
        if inner.bias is not None:
            db = inner.bias[listener]
            params[bias_key] = torch.cat([bias[:start], bias[start:stop] + db, bias[stop:]])
    return params


def batched_and_loop(model, config):
    """(outputs, gradients) of the batched forward and of the per-listener loop."""
    x_t, t, memory, history, personality = inputs(model)
    weights = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    trained = [p for p in model.exported.parameters()]

    shifts = model.listener_shifts(history, personality)
    out = model(x_t, t, memory, None, shifts, INDEX)
    grads = torch.autograd.grad((out * weights).sum(), trained)

    plain = build_gafrg(config).to(F64).eval()
    plain.load_state_dict(model.gafrg.state_dict())
    outs = []
    for b, listener in enumerate(INDEX.tolist()):
        one = slice(listener, listener + 1)
        alone = model.listener_shifts(history[one], personality[one])  # one listener per forward
        params = edited_parameters(model, config, alone, 0)
        outs.append(
            functional_call(plain, params, (x_t[b : b + 1], t[b : b + 1], memory[b : b + 1]))
        )
    loop = torch.cat(outs)
    loop_grads = torch.autograd.grad((loop * weights).sum(), trained)
    return (out, grads), (loop, loop_grads)


@pytest.mark.parametrize("condition", ["history", "personality", "both"])
@pytest.mark.parametrize("mode", ["add", "scale", "replace"])
@pytest.mark.parametrize("rows", ["all", "kv"])
def test_a_mixed_batch_equals_one_listener_at_a_time_with_gradients(condition, mode, rows):
    config = config_of(condition, mode, rows)
    model = model_of(config)
    (out, grads), (loop, loop_grads) = batched_and_loop(model, config)
    torch.testing.assert_close(out, loop, rtol=1e-10, atol=1e-10)
    assert out.abs().max() > 0
    for got, want in zip(grads, loop_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    assert any(g.abs().max() > 0 for g in grads)


def test_the_shifts_depend_on_exactly_what_the_condition_reads():
    _, _, _, history, personality = inputs(model_of(config_of()))
    other_history, other_personality = history.flip(0), personality.flip(0)
    for condition, reads_history, reads_personality in [
        ("history", True, False),
        ("personality", False, True),
        ("both", True, True),
    ]:
        model = model_of(config_of(condition, "add", "all", "pwsg.history_stats=false"))
        with torch.no_grad():
            style = model.style(history, personality)
            assert (model.style(other_history, personality) != style).any() == reads_history
            assert (model.style(history, other_personality) != style).any() == reads_personality
            torch.testing.assert_close(style.norm(dim=1), torch.ones(3, dtype=F64))


def test_a_personality_only_model_without_history_reads_needs_no_history():
    config = config_of(
        "personality", "add", "all", "pwsg.history_stats=false", "pwsg.listener_prior=false"
    )
    model = model_of(config)
    assert not model.needs_history
    _, _, _, history, personality = inputs(model)
    with torch.no_grad():
        alone = model.listener_shifts(None, personality)
        with_history = model.listener_shifts(history, personality)
    for name, shift in alone.items():
        torch.testing.assert_close(shift.matrix(), with_history[name].matrix())


def test_kv_rows_edit_only_the_key_and_value_rows_with_smaller_heads():
    full, kv = model_of(config_of()), model_of(config_of("history", "add", "kv"))
    name = "decoder.layers.0.multihead_attn.in_proj"
    d = full.gafrg.decoder.layers[0].multihead_attn.embed_dim
    assert kv.generator.branches[0].shape == (2 * d, d)
    assert full.generator.branches[0].shape == (3 * d, d)
    _, _, _, history, personality = inputs(kv)
    with torch.no_grad():
        shift = kv.listener_shifts(history, personality)[name]
    assert isinstance(shift, RowRangeShift) and (shift.start, shift.stop) == (d, 3 * d)
    assert (shift.matrix()[:, :d] == 0).all() and (shift.matrix()[:, d:] != 0).any()


def test_kv_rows_without_an_attention_target_are_refused():
    config = config_of("history", "add", "kv", "pwsg.targets=[output]")
    with pytest.raises(ConfigError, match=r"pwsg.attention_rows: 'kv' edits .* select none"):
        build_perfrdiff(config)


def test_a_condition_that_reads_personality_names_the_missing_key():
    model = model_of(config_of("both"))
    _, _, _, history, _ = inputs(model)
    with pytest.raises(
        ValueError, match=r"pwsg.condition='both' needs each listener's 'personality'"
    ):
        model.listener_shifts(history)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (("pwsg.condition=history",), "pwsg.condition='history' or pwsg.history_stats reads"),
        (("pwsg.history_stats=false",), "pwsg.condition='both' or pwsg.history_stats reads"),
        (
            ("pwsg.condition=personality", "pwsg.history_stats=false"),
            "pwsg.listener_prior reads it",
        ),
    ],
)
def test_a_missing_history_that_is_read_is_named(overrides, words):
    model = model_of(config_of("both", "add", "all", *overrides))
    _, _, _, _, personality = inputs(model)
    with pytest.raises(ValueError, match=rf"history is required: {re.escape(words)}"):
        model.listener_shifts(None, personality)
        model.listener_centre(None)


@pytest.mark.parametrize(
    ("personality", "error", "words"),
    [
        (torch.full((3, 5), 3.0), ValueError, r"in \[0, 1\].*\(v - 1\) / 4.*\[3, 3\]"),
        (torch.full((3, 5), float("nan")), ValueError, r"in \[0, 1\] and finite"),
        (torch.rand(3, 4), ValueError, r"\(l, 5\).*\(3, 4\)"),
        (torch.ones(3, 5, dtype=torch.long), TypeError, "floating-point tensor"),
        ([[0.5] * 5], TypeError, "floating-point tensor.*list"),
    ],
)
def test_a_bad_personality_is_named(personality, error, words):
    with pytest.raises(error, match=words):
        check_personality(personality)


def test_fusing_checks_that_history_and_personality_have_the_same_listeners():
    condition = ListenerCondition("both", 8)
    with pytest.raises(ValueError, match=r"personality must have shape \(2, 5\).*\(3, 5\)"):
        condition(torch.randn(2, 8), torch.rand(3, 5))


def test_an_unknown_condition_is_refused():
    with pytest.raises(ValueError, match="condition must be 'history', 'personality' or 'both'"):
        ListenerCondition("face", 8)


def test_the_condition_mlps_are_exported_with_the_generator():
    history_only = model_of(config_of())
    both = model_of(config_of("both"))
    assert history_only.exported is history_only.generator  # the layout of existing runs
    keys = set(both.exported.state_dict())
    assert {k.split(".")[0] for k in keys} == {"generator", "condition"}
    assert "condition.personality.0.weight" in keys and "condition.fusion.0.weight" in keys
