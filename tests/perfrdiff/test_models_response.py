"""pwsg.listener_response: each listener's linear response to the speaker, fitted on the dyadic
history, moves the centre the windows are diffused around, frame by frame."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.config import ConfigError, load_config
from perfrdiff.generation import ReactionSampler, SamplerConfig, StreamingGenerator
from perfrdiff.models import DDIMSchedule, build_perfrdiff
from perfrdiff.models.response import ListenerResponse, first_visible, lag_features
from perfrdiff.personal_response import lagged_speaker_features, visible_spans
from perfrdiff.training.objectives import PWSGObjective

from .test_training_objectives import batch

W = 10
REACT2024, REACT2026 = (W, 0), (W, W)


def mirroring_history(l=3, h=120, seed=0, delay=2):
    """``(l, h, 50)`` dyadic histories: listener ``i`` mirrors the partner's channels through
    their own signed permutation (the same for every ``seed``: only the partners change),
    ``delay`` frames late, around their own level."""
    g = torch.Generator().manual_seed(seed)
    style = torch.Generator().manual_seed(1234)
    partner = torch.zeros(l, h, 25, dtype=torch.float64)
    for t in range(1, h):  # smooth partners
        drive = torch.randn(l, 25, generator=g, dtype=torch.float64)
        partner[:, t] = 0.8 * partner[:, t - 1] + drive
    own = torch.zeros_like(partner)
    for i in range(l):
        perm = torch.randperm(25, generator=style)
        sign = torch.where(torch.rand(25, generator=style) < 0.5, -1.0, 1.0).double()
        own[i, delay:] = sign * partner[i, : h - delay, perm] + 0.1 * i
    return torch.cat([own, partner], dim=-1)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 40), window=st.integers(1, 9), view=st.sampled_from(["2024", "2026"]),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_history_features_match_the_float64_numpy_reference(h, window, view, seed):
    context = (window, 0) if view == "2024" else (window, window)
    partner = np.random.default_rng(seed).normal(size=(1, h, 25))
    module = ListenerResponse(window, context, 1.0, block=3, blocks=4)
    features, seen = module.history_features(torch.from_numpy(partner))
    spans = visible_spans(h, window, context)
    expected = lagged_speaker_features(partner[0], spans, block=3, blocks=4)
    np.testing.assert_allclose(features[0].numpy(), expected, atol=1e-10)
    assert seen[0].numpy().tolist() == (spans[:, 1] > spans[:, 0]).tolist()


@pytest.mark.parametrize("context", [REACT2024, REACT2026])
def test_a_window_reads_the_speaker_as_the_history_was_read(context):
    """The response of window [s, s + w) from the speaker frames it sees equals the response at
    those frames of the whole sequence read as a history: one view for fitting and applying."""
    module = ListenerResponse(W, context, 10.0)
    history = mirroring_history()
    fit = module.fit(history)
    partner = mirroring_history(seed=1)[..., 25:]
    whole, seen = module.history_features(partner)
    whole = ((whole - fit.mean[:, None]) / fit.scale[:, None]) @ fit.response * seen[..., None]
    before, after = context
    for s in (0, W, 5 * W):
        window = torch.zeros(3, before + after, 25, dtype=torch.float64)
        lo = max(s - before, 0)
        window[:, lo - (s - before) :] = partner[:, lo : s + after]
        start = torch.full((3,), s)
        visible = first_visible(start, start >= W, context)
        response = module(fit, window, visible)
        torch.testing.assert_close(response, whole[:, s : s + W])


def test_a_personal_mirror_is_fitted_and_predicted():
    """Fitted on one conversation and seen up to the scored frame (REACT 2026), each listener's
    response to a new partner follows their own mirror; another listener's map does not."""
    module = ListenerResponse(W, REACT2026, 10.0)
    fit = module.fit(mirroring_history(h=400))
    new = mirroring_history(h=400, seed=3)  # the same listeners, new partners
    features, _ = module.history_features(new[..., 25:])
    own = new[..., :25] - new[..., :25].mean(dim=1, keepdim=True)
    for i in range(3):
        for j in range(3):
            x = (features[i] - fit.mean[j]) / fit.scale[j]
            response = (x @ fit.response[j])[20:].flatten()
            correlation = np.corrcoef(response, own[i, 20:].flatten())[0, 1]
            assert correlation > 0.8 if i == j else abs(correlation) < 0.2


def test_ridge_fit_matches_a_float64_least_squares():
    module = ListenerResponse(W, REACT2024, 7.0, block=2, blocks=3)
    history = mirroring_history(l=2, h=60)
    fit = module.fit(history)
    x, _ = module.history_features(history[..., 25:])
    for i in range(2):
        xi = ((x[i] - fit.mean[i]) / fit.scale[i]).numpy()
        yi = (history[i, :, :25] - history[i, :, :25].mean(0)).numpy()
        augmented = np.concatenate([xi, np.sqrt(7.0) * np.eye(xi.shape[1])])
        target = np.concatenate([yi, np.zeros((xi.shape[1], 25))])
        expected = np.linalg.lstsq(augmented, target, rcond=None)[0]
        np.testing.assert_allclose(fit.response[i].numpy(), expected, atol=1e-8)


def test_first_visible_frames():
    start, past = torch.tensor([0, 5, 10, 30]), torch.tensor([False, False, True, True])
    # REACT 2024: a window without a past sees nothing (its speaker frames are zeros)
    assert first_visible(start, past, REACT2024).tolist() == [10, 10, 0, 0]
    # REACT 2026: the frames before the sequence's start pad it
    assert first_visible(start, past, REACT2026).tolist() == [10, 5, 0, 0]


def test_bad_sizes_and_histories_are_named():
    with pytest.raises(ValueError, match="weight must be > 0"):
        ListenerResponse(W, REACT2024, 0.0)
    with pytest.raises(ValueError, match="window, block, blocks"):
        ListenerResponse(0, REACT2024, 1.0)
    module = ListenerResponse(W, REACT2024, 1.0)
    with pytest.raises(ValueError, match=r"history must be \(l, h, 50\)"):
        module.fit(torch.zeros(2, 30, 25))
    fit = module.fit(mirroring_history(l=2, h=30))
    with pytest.raises(ValueError, match=r"speaker must be \(b, 10, 25\)"):
        module(fit, torch.zeros(2, 20, 25), torch.zeros(2, dtype=torch.long))


def test_lag_features_of_a_block_with_nothing_to_read_are_zero():
    speaker = torch.ones(1, 6, 2)
    features, seen = lag_features(
        speaker, torch.arange(6), torch.tensor([[3]]), torch.arange(6) + 1, 2, 2
    )
    assert not seen[0, :3].any() and seen[0, 3:].all()
    assert features[0, :3].abs().max() == 0
    assert features[0, 3].tolist() == [1.0, 1.0, 0.0, 0.0]  # block 1 of frame 3 reads nothing


# ---------------------------------------------------------------- config, model, training


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["style.input=emotion"], "pwsg.listener_response"),
        (["denoiser.standardise=false", "pwsg.listener_prior=false"], "pwsg.listener_response"),
        (["pwsg.response_weight=0"], "pwsg.response_weight"),
    ],
)
def test_the_config_refuses_what_the_response_cannot_read(overrides, key):
    with pytest.raises(ConfigError, match=key):
        load_config("tiny", ["pwsg.listener_response=true", *overrides])


def response_model(*overrides):
    torch.manual_seed(0)
    config = load_config("tiny", ["pwsg.listener_response=true", *overrides])
    return build_perfrdiff(config).eval(), config


def test_the_window_centre_is_the_level_plus_the_response():
    model, _ = response_model()
    history = mirroring_history(l=2, h=750).float()
    fit = model.listener_response(history)
    centre = model.listener_centre(history)
    index = torch.tensor([0, 1, 1])
    speaker = torch.randn(3, 50, 25)
    start, has_past = torch.tensor([50, 400, 0]), torch.tensor([True, True, False])
    out = model.window_centre(centre, fit, index, speaker, start, has_past)
    visible = torch.tensor([0, 0, 50])  # the last window has no past: it sees no speaker
    response = model.response(fit[index], speaker, visible)
    torch.testing.assert_close(out, centre[index][:, None] + response)
    assert out[2].sub(centre[1]).abs().max() == 0  # the window that sees no speaker: the level
    assert response[:2].abs().max() > 0
    # one start and one has_past stand for every window
    one = model.window_centre(centre, fit, index[:2], speaker[:2], 50, True)
    torch.testing.assert_close(one, out[:2])
    with pytest.raises(ValueError, match="history is required"):
        model.listener_response(None)


def test_a_per_frame_centre_equal_to_the_level_samples_as_the_level():
    model, config = response_model()
    sampler = ReactionSampler(model, DDIMSchedule(1000), SamplerConfig(3, 1.0, 0))
    centre, index = torch.randn(2, 25), torch.tensor([0, 0, 1])
    memory = torch.randn(3, 50, config.denoiser.d_model)
    known = torch.randn(3, 10, 25)
    per_frame = centre[index][:, None].expand(3, 50, 25)
    a = sampler.sample(memory, torch.Generator().manual_seed(0), None, index, known, centre)
    b = sampler.sample(memory, torch.Generator().manual_seed(0), None, None, known, per_frame)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="per-frame centre"):
        sampler.sample(memory, torch.Generator(), None, None, None, per_frame[:, :40])


def test_training_diffuses_each_window_around_its_response():
    """With zero shifts the loss is the generic denoiser's on the window less its centre: the
    same loss as a batch whose listener emotion was moved by the response instead."""
    model, config = response_model()
    objective = PWSGObjective(model, DDIMSchedule(1000), config)
    data = batch(b=3)
    data["history_dyadic"] = mirroring_history(l=3, h=250).float()
    data["start"] = torch.tensor([0, 50, 400])
    data["has_past"] = data["start"] >= 50
    torch.manual_seed(2)
    loss, _ = objective(data)
    with torch.no_grad():
        fit = model.listener_response(data["history_dyadic"])
        rows = torch.arange(3)
        visible = first_visible(data["start"], data["has_past"], model.response.context)
        response = model.response(fit, data["speaker_emotion"], visible)
    moved = {**data, "listener_emotion": data["listener_emotion"] - response}
    model.response = None  # the same model, its centre without the response
    torch.manual_seed(2)
    plain, _ = objective(moved)
    torch.testing.assert_close(loss, plain, rtol=1e-5, atol=1e-6)
    assert rows.tolist() == [0, 1, 2] and response[1:].abs().max() > 0
    assert response[0].abs().max() == 0  # the first window sees no speaker under REACT 2024


def test_online_generation_moves_each_window_by_its_listener_response():
    """Streaming with the response equals streaming without it plus, window by window, the
    response to the speaker frames the window saw (the denoiser diffuses around it). Windows
    that do not read the previous one, so that each window's difference is its own."""
    model, _ = response_model("denoiser.use_prev_window=false")
    for p in model.generator.parameters():
        torch.nn.init.zeros_(p)  # zero shifts: the response is the only difference
    history = mirroring_history(l=1, h=750).float()
    g = torch.Generator().manual_seed(1)
    audio, face, emotion = (torch.randn(1, 150, c, generator=g) for c in (78, 58, 25))

    def stream(response):
        model.response = response
        sampler = ReactionSampler(model, DDIMSchedule(1000), SamplerConfig(2, 1.0, 0))
        generator = StreamingGenerator(sampler, samples=2, history=history, seed=0)
        return torch.cat(generator.push(audio, face, emotion), dim=2)

    module = model.response
    with_response, without = stream(module), stream(None)
    fit = module.fit(history)
    expected = without.clone()
    assert with_response.shape[2] == 200  # the window at 150 only needs the frames before it
    for s in (50, 100, 150):
        seen = emotion[:, s - 50 : s]
        expected[:, :, s : s + 50] += module(fit, seen, torch.zeros(1, dtype=torch.long))[:, None]
    torch.testing.assert_close(with_response, expected, rtol=1e-4, atol=1e-4)


def test_a_react2026_sequence_moves_each_window_by_the_response_to_what_it_sees():
    """WindowStream (REACT 2026: the window before and its own): with zero shifts and windows
    that do not read the previous one, each window moves by the response to its speaker frames,
    the frames before the sequence's start read as padding."""
    from perfrdiff.generation.sequences import WindowStream, stream_sequences
    from perfrdiff.protocol import REACT2026 as PROTOCOL

    w = 30
    model, _ = response_model("protocol=react2026", f"data.window={w}",
                              "denoiser.use_prev_window=false")  # fmt: skip
    for p in model.generator.parameters():
        torch.nn.init.zeros_(p)
    history = mirroring_history(l=1, h=300).float()
    speaker = torch.randn(1, 95, 78 + 58 + 25, generator=torch.Generator().manual_seed(2))
    context = PROTOCOL.context_frames(w)

    def read(begin, end):
        out = torch.zeros(1, end - begin, speaker.shape[2])
        lo, hi = max(begin, 0), min(end, 95)
        out[:, lo - begin : hi - begin] = speaker[:, lo:hi]
        return out

    def generate(response):
        model.response = response
        sampler = ReactionSampler(model, DDIMSchedule(1000), SamplerConfig(2, 1.0, 0))
        stream = WindowStream(sampler, 2, context, history, seed=3, batch=1)
        return stream_sequences(stream, read, 95, np.zeros((1, 2, 95, 25), np.float32), 40)

    module = model.response
    with_response, without = generate(module), generate(None)
    fit = module.fit(history)
    expected = without.copy()
    for s in range(0, 95, w):
        seen = read(s - w, s + w)[..., -25:]
        visible = first_visible(torch.tensor([s]), torch.tensor([s >= w]), context)
        moved = module(fit, seen, visible)[0, : 95 - s].numpy()
        expected[:, :, s : s + w] += moved
    np.testing.assert_allclose(with_response, expected, rtol=1e-4, atol=1e-4)
    assert np.abs(with_response - without).max() > 0.01


@pytest.mark.slow
def test_a_run_trained_with_the_response_loads_it_and_generates_with_it(tmp_path, synthetic_root):
    from perfrdiff import Run

    from .test_models_prior import trained_run

    trained_run(tmp_path, synthetic_root, "pwsg.listener_response=true")
    run = Run.load(tmp_path, device="cpu")
    model = run.model("pwsg")
    assert model.response is not None and model.response.context == (50, 0)
    data = run.evaluation_set("test", limit=2)
    moved = run.sample("personalised", data, samples=2, seed=0)
    model.response = None
    plain = run.sample("personalised", data, samples=2, seed=0, model=model)
    assert moved.shape == plain.shape and np.isfinite(moved).all()
    assert np.abs(moved - plain)[:, :, 50:].max() > 1e-3  # windows that see the speaker move
    np.testing.assert_allclose(moved[:, :, :50], plain[:, :, :50], atol=1e-5)  # the first not
