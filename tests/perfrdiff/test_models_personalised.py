"""PSSL style encoder and PerFRDiff: editable targets, zero-initialised shifts, mixed batches."""

import pytest
import torch
from perfrdiff.config import load_config
from perfrdiff.models import StyleEncoder, build_perfrdiff
from perfrdiff.models.style_encoder import segment_starts

#: Channels of the tiny preset's style history (its style.input).
from .tiny_preset import HISTORY_DIM as H


def build(overrides=()):
    torch.manual_seed(0)
    config = load_config("tiny", list(overrides))
    return build_perfrdiff(config).eval()


def inputs(model, b=4):
    g = torch.Generator().manual_seed(3)
    memory = model.gafrg.condition(
        torch.randn(b, 50, 78, generator=g),
        torch.randn(b, 50, 58, generator=g),
        torch.randn(b, 50, 25, generator=g),
    )
    return torch.randn(b, 50, 25, generator=g), torch.full((b,), 400), memory


def randomise(shifts):
    for delta in shifts.values():
        for tensor in delta.tensors():
            tensor.data.normal_(0, 0.1)
    return shifts


def test_style_is_unit_norm_for_histories_of_any_length():
    encoder = StyleEncoder(load_config("tiny").style).eval()
    for frames in (250, 375):
        style = encoder(torch.randn(3, frames, H))
        assert style.shape == (3, 32)
        torch.testing.assert_close(style.norm(dim=-1), torch.ones(3))


def test_style_encoder_names_the_expected_input_width():
    encoder = StyleEncoder(load_config("tiny").style)
    with pytest.raises(ValueError, match=rf"\(b, h, {H}\) for style\.input="):
        encoder(torch.randn(2, 250, H + 1))


def test_the_tiny_preset_edits_cross_attention_the_ffn_and_the_output():
    model = build()
    assert set(model.targets) == {
        f"decoder.layers.{i}.{name}"
        for i in (0, 1)
        for name in ("multihead_attn.in_proj", "multihead_attn.out_proj", "linear1", "linear2")
    } | {"output"}


def test_the_paper_default_targets_are_cross_attention_and_output():
    from perfrdiff.config import PWSGConfig

    assert PWSGConfig().targets == ["decoder.layers.*.multihead_attn", "output"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("decoder.layers.*.self_attn", {"self_attn.in_proj", "self_attn.out_proj"}),
        ("decoder.layers.*.linear[12]", {"linear1", "linear2"}),
        ("decoder.layers.*.multihead_attn.out_proj", {"multihead_attn.out_proj"}),
    ],
)
def test_any_subset_of_layers_is_selectable_by_pattern(pattern, expected):
    model = build([f"pwsg.targets=[{pattern!r}]"])
    assert {name.split(".", 3)[3] for name in model.targets} == expected


def test_untrained_generator_leaves_the_denoiser_unchanged():
    model = build()
    x_t, t, memory = inputs(model)
    shifts = model.listener_shifts(torch.randn(2, 250, H))
    edited = model(x_t, t, memory, None, shifts, torch.tensor([0, 0, 1, 1]))
    torch.testing.assert_close(edited, model.gafrg(x_t, t, memory))


def test_mixed_listener_batch_equals_each_listener_alone():
    model = build()
    x_t, t, memory = inputs(model)
    shifts = randomise(model.listener_shifts(torch.randn(2, 250, H)))
    index = torch.tensor([1, 0, 1, 0])
    mixed = model(x_t, t, memory, None, shifts, index)
    for listener in (0, 1):
        rows = index == listener
        alone = model(x_t[rows], t[rows], memory[rows], None, shifts, index[rows])
        torch.testing.assert_close(mixed[rows], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(mixed[0], model.gafrg(x_t, t, memory)[0], atol=1e-3)


def test_leaving_the_edit_restores_the_generic_model():
    model = build()
    x_t, t, memory = inputs(model)
    before = model.gafrg(x_t, t, memory)
    shifts = randomise(model.listener_shifts(torch.randn(4, 250, H)))
    model(x_t, t, memory, None, shifts, torch.arange(4))
    torch.testing.assert_close(model.gafrg(x_t, t, memory), before)


def test_dense_heads_are_available_for_paper_fidelity():
    model = build(["pwsg.rank=null"])
    shifts = model.listener_shifts(torch.randn(1, 250, H))
    assert shifts["output"].weight.shape == (1, 25, 64)


def test_history_stats_append_the_history_mean_and_std_to_the_style():
    model = build(["pwsg.history_stats=true", "pwsg.bias_shifts=true"])
    history = torch.randn(3, 250, H)
    with torch.no_grad():
        features = model.style(history)
        style = model.style_encoder(history)
    assert features.shape == (3, 32 + 2 * H)
    torch.testing.assert_close(features[:, :32], style)
    torch.testing.assert_close(features[:, 32 : 32 + H], history.mean(dim=1))
    torch.testing.assert_close(features[:, 32 + H :], history.std(dim=1, correction=0))
    shifts = model.listener_shifts(history)
    assert shifts["output"].bias.shape == (3, 25)  # bias shifts of the output mapping


def test_without_history_stats_the_generator_sees_the_style_alone():
    model = build(["pwsg.history_stats=false"])
    history = torch.randn(2, 250, H)
    with torch.no_grad():
        torch.testing.assert_close(model.style(history), model.style_encoder(history))


@pytest.mark.parametrize(
    ("length", "segment", "starts"),
    [
        (250, 250, [0]),
        (100, 250, [0]),  # shorter than a piece: the whole history
        (750, 250, [0, 250, 500]),
        (600, 250, [0, 250, 350]),  # the last piece ends at the last frame
        (251, 250, [0, 1]),
        (7, 3, [0, 3, 4]),
    ],
)
def test_segment_starts_cover_every_frame_with_whole_pieces(length, segment, starts):
    assert segment_starts(length, segment) == starts
    covered = set()
    for start in starts:
        covered |= set(range(start, min(start + segment, length)))
        assert start + min(segment, length) <= length
    assert covered == set(range(length))


@pytest.mark.parametrize(("length", "segment"), [(0, 250), (250, 0), (-1, 3)])
def test_segment_starts_refuse_empty_lengths(length, segment):
    with pytest.raises(ValueError, match="must be >= 1"):
        segment_starts(length, segment)


def test_a_long_history_is_styled_as_the_mean_of_its_training_length_pieces():
    encoder = StyleEncoder(load_config("tiny", ["style.frames=100"]).style).eval()
    history = torch.randn(3, 250, H, dtype=torch.float64)
    encoder.double()
    with torch.no_grad():
        pieces = [encoder(history[:, s : s + 100]) for s in (0, 100, 150)]
        expected = torch.nn.functional.normalize(torch.stack(pieces).mean(0), dim=-1)
        torch.testing.assert_close(encoder.segmented(history), expected)
        short = history[:, :80]  # one piece: the plain encoder
        torch.testing.assert_close(encoder.segmented(short), encoder(short))


def test_history_segments_change_the_style_only_of_histories_longer_than_style_frames():
    segmented = build(["pwsg.history_segments=true", "pwsg.history_stats=true"])
    whole = build(["pwsg.history_segments=false", "pwsg.history_stats=true"])
    frames = segmented.style_encoder.frames
    with torch.no_grad():
        short, long = torch.randn(2, frames, H), torch.randn(2, 2 * frames, H)
        torch.testing.assert_close(segmented.style(short), whole.style(short))
        features = segmented.style(long)
        style_dim = segmented.style_encoder.style_dim
        torch.testing.assert_close(features[:, :style_dim], segmented.style_encoder.segmented(long))
        # the mean and std read the whole history, not a piece
        torch.testing.assert_close(features[:, style_dim:], whole.style(long)[:, style_dim:])
        assert not torch.allclose(features[:, :style_dim], whole.style(long)[:, :style_dim])
