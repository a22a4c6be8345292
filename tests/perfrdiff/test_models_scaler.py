"""The standardised diffusion space: the scaler, its statistics, training and sampling in it."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.config import load_config
from perfrdiff.data import (
    ClipStore,
    SplitIndex,
    listener_emotion_statistics,
    speaker_frame_statistics,
)
from perfrdiff.data.statistics import frame_moments
from perfrdiff.generation import ReactionSampler, SamplerConfig
from perfrdiff.models import DDIMSchedule, build_gafrg
from perfrdiff.models.scaler import MIN_STD, FeatureScaler
from perfrdiff.run import Run
from perfrdiff.training import train_run
from perfrdiff.training.objectives import diffusion_inputs

pytestmark = pytest.mark.usefixtures("one_thread")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_normalise_is_the_float64_standardisation_and_denormalise_inverts_it(c, seed):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(c, generator=g, dtype=torch.float64)
    std = torch.rand(c, generator=g, dtype=torch.float64) + 0.01
    x = torch.randn(3, 5, c, generator=g, dtype=torch.float64)
    scaler = FeatureScaler(c).double().fit(mean, std)
    expected = (x.numpy() - mean.numpy()) / std.numpy()
    np.testing.assert_allclose(scaler.normalise(x).numpy(), expected, rtol=1e-12)
    torch.testing.assert_close(scaler.denormalise(scaler.normalise(x)), x)


def test_an_unfitted_scaler_is_the_identity_and_a_constant_channel_is_not_divided_by_zero():
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(FeatureScaler(3).normalise(x), x, rtol=0, atol=0)
    scaler = FeatureScaler(3).fit(torch.zeros(3), torch.tensor([1.0, 0.0, 2.0]))
    torch.testing.assert_close(scaler.std, torch.tensor([1.0, MIN_STD, 2.0]))
    assert torch.isfinite(scaler.normalise(x)).all()


def test_bad_statistics_are_named():
    with pytest.raises(ValueError, match=r"mean must have shape \(3,\), got \(4,\)"):
        FeatureScaler(3).fit(torch.zeros(4), torch.ones(3))
    with pytest.raises(ValueError, match="std must be finite"):
        FeatureScaler(3).fit(torch.zeros(3), torch.tensor([1.0, float("nan"), 1.0]))


def test_statistics_cover_every_listener_clip_of_the_split_once(synthetic_root):
    index, store = SplitIndex(synthetic_root, "train"), ClipStore(synthetic_root, "train")
    clips = sorted({pair.listener for pair in index.items})
    frames = np.concatenate([store.emotion(clip) for clip in clips]).astype(np.float64)
    mean, std = listener_emotion_statistics(synthetic_root, "train")
    assert mean.shape == std.shape == (25,)
    np.testing.assert_allclose(mean.numpy(), frames.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std.numpy(), frames.std(0), rtol=1e-4, atol=1e-6)


def test_only_a_standardising_denoiser_has_scaler_weights():
    # Run directories trained without standardisation load as before: no new state-dict keys.
    plain = build_gafrg(
        load_config("tiny", ["denoiser.standardise=false", "pwsg.listener_prior=false"])
    )
    scaled = build_gafrg(load_config("tiny", ["denoiser.standardise=true"]))
    assert not any(key.startswith("scaler.") for key in plain.state_dict())
    assert {"scaler.mean", "scaler.std"} <= set(scaled.state_dict())


def fitted_gafrg(seed=0):
    torch.manual_seed(seed)
    gafrg = build_gafrg(load_config("tiny", ["denoiser.standardise=true"])).double().eval()
    g = torch.Generator().manual_seed(seed)
    for p in gafrg.parameters():  # untrained heads and null tokens are zero: make them matter
        if p.dim() < 2:
            torch.nn.init.normal_(p, std=0.05, generator=g)
    mean = torch.rand(25, generator=g, dtype=torch.float64)
    gafrg.scaler.fit(mean, torch.rand(25, generator=g, dtype=torch.float64) * 0.5 + 0.05)
    return gafrg


def test_the_objective_diffuses_standardised_windows():
    gafrg = fitted_gafrg()
    batch = {
        "speaker_audio": torch.randn(4, 50, 78), "speaker_face": torch.randn(4, 50, 58),
        "speaker_emotion": torch.randn(4, 50, 25), "listener_emotion": torch.rand(4, 50, 25),
        "listener_prev_emotion": torch.rand(4, 50, 25), "has_past": torch.ones(4, dtype=bool),
    }  # fmt: skip
    target, *_ = diffusion_inputs(gafrg.float(), DDIMSchedule(100), batch, cond_drop=0.0)
    torch.testing.assert_close(target, gafrg.scaler.normalise(batch["listener_emotion"]))


@pytest.mark.parametrize("overlap", [0, 10])
@torch.no_grad()
def test_the_sampler_denoises_in_the_standardised_space_and_returns_features(overlap):
    gafrg = fitted_gafrg()
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    memory = gafrg.condition(r(3, 50, 78), r(3, 50, 58), r(3, 50, 25))
    known = torch.rand(3, overlap, 25, dtype=torch.float64) if overlap else None
    sampler = ReactionSampler(gafrg, DDIMSchedule(100), SamplerConfig(steps=5, overlap=overlap))
    out = sampler.sample(memory, torch.Generator().manual_seed(2), known=known)
    # The same model with the scaler taken out, given the known frames standardised.
    scaler, gafrg.scaler = gafrg.scaler, None
    z_known = None if known is None else scaler.normalise(known)
    z = sampler.sample(memory, torch.Generator().manual_seed(2), known=z_known)
    expected = scaler.denormalise(z)
    if overlap:
        torch.testing.assert_close(out[:, :overlap], known, rtol=0, atol=0)
        expected[:, :overlap] = known
    torch.testing.assert_close(out, expected)


def test_the_gafrg_stage_fits_the_scaler_to_the_training_split(tmp_path, synthetic_root):
    steps = [
        f"train.{s}.{key}={value}"
        for s in ("emotion-vae", "gafrg")
        for key, value in (("steps", 1), ("batch_size", 2))
    ]
    config = load_config(
        "tiny", [f"data.root={synthetic_root}", "denoiser.standardise=true", *steps]
    )
    run = Run(config, tmp_path, device="cpu")
    train_run(run, ["emotion-vae", "gafrg"])
    mean, std = listener_emotion_statistics(synthetic_root, "train")
    gafrg = run.build("gafrg")  # from the exported weights
    torch.testing.assert_close(gafrg.scaler.mean, mean)
    torch.testing.assert_close(gafrg.scaler.std, std.clamp(min=MIN_STD))


def test_the_listener_prior_needs_standardisation_and_an_emotion_history():
    from perfrdiff.config import ConfigError

    with pytest.raises(ConfigError, match=r"pwsg\.listener_prior.*denoiser\.standardise"):
        load_config("tiny", ["pwsg.listener_prior=true", "denoiser.standardise=false"])
    with pytest.raises(ConfigError, match=r"pwsg\.listener_prior.*style\.input = 'emotion'"):
        load_config(
            "tiny", ["pwsg.listener_prior=true", "denoiser.standardise=true", "style.input=face"]
        )


#: The listener prior on an emotion history (the tiny preset's history is dyadic, whose prior
#: has its own test).
EMOTION_PRIOR = ["denoiser.standardise=true", "pwsg.listener_prior=true", "style.input=emotion"]


def prior_model(seed=0):
    from perfrdiff.models import build_perfrdiff

    prior = [*EMOTION_PRIOR, "pwsg.prior_weight=1"]
    config = load_config("tiny", prior)
    model = build_perfrdiff(config, gafrg=fitted_gafrg(seed).float()).double().eval()
    return model


def test_a_listener_centre_is_the_mean_of_their_emotion_history():
    model = prior_model()
    history = torch.rand(3, 250, 25, dtype=torch.float64)
    torch.testing.assert_close(model.listener_centre(history), history.mean(1))
    with pytest.raises(ValueError, match=r"history must be \(l, h, 25\) for the listener prior"):
        model.listener_centre(torch.rand(3, 250, 58))
    plain = load_config("tiny", ["denoiser.standardise=true", "pwsg.listener_prior=false",
                                 "style.input=emotion"])  # fmt: skip
    from perfrdiff.models import build_perfrdiff

    assert build_perfrdiff(plain).listener_centre(history) is None


def test_a_dyadic_listener_centre_is_the_mean_of_the_listeners_own_emotion():
    from perfrdiff.models import build_perfrdiff

    overrides = ["denoiser.standardise=true", "pwsg.listener_prior=true", "pwsg.prior_weight=1"]
    config = load_config("tiny", [*overrides, "style.input=dyadic"])
    model = build_perfrdiff(config, gafrg=fitted_gafrg().float()).double()
    history = torch.rand(3, 250, 50, dtype=torch.float64)  # listener | partner
    torch.testing.assert_close(model.listener_centre(history), history[..., :25].mean(1))
    with pytest.raises(ValueError, match=r"\(l, h, 50\) for the listener prior \(style.input="):
        model.listener_centre(history[..., :25])
    face = load_config("tiny", ["denoiser.standardise=true", "pwsg.listener_prior=false",
                                "style.input=face"])  # fmt: skip
    face_model = build_perfrdiff(face, gafrg=fitted_gafrg().float())
    with pytest.raises(ValueError, match="needs an emotion \\(or dyadic\\) history, not face"):
        type(face_model)(face_model.gafrg, face_model.style_encoder, config.pwsg)


def test_the_pwsg_objective_diffuses_each_window_around_its_listeners_history_mean():
    from perfrdiff.training.objectives import PWSGObjective

    model = prior_model().float()
    config = load_config(
        "tiny",
        [*EMOTION_PRIOR, "diffusion.prediction=x0"],
    )
    objective = PWSGObjective(model, DDIMSchedule(100, prediction="x0"), config)
    batch = {
        "speaker_audio": torch.randn(4, 50, 78), "speaker_face": torch.randn(4, 50, 58),
        "speaker_emotion": torch.randn(4, 50, 25), "listener_emotion": torch.rand(4, 50, 25),
        "listener_prev_emotion": torch.rand(4, 50, 25), "has_past": torch.ones(4, dtype=bool),
        "history_emotion": torch.rand(4, 250, 25), "history_face": torch.rand(4, 250, 58),
    }  # fmt: skip
    seen = {}
    original = model.gafrg.to_diffusion
    model.gafrg.to_diffusion = lambda x, centre=None: seen.setdefault("z", original(x, centre))
    objective(batch)
    centre = batch["history_emotion"].mean(1, keepdim=True)
    expected = (batch["listener_emotion"] - centre) / model.gafrg.scaler.std
    torch.testing.assert_close(seen["z"], expected)


@torch.no_grad()
def test_sampling_around_a_centre_equals_a_scaler_fitted_to_that_centre():
    model = prior_model()
    gafrg = model.gafrg
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    memory = gafrg.condition(r(2, 50, 78), r(2, 50, 58), r(2, 50, 25))
    known = torch.rand(2, 10, 25, dtype=torch.float64)
    centre = torch.rand(1, 25, dtype=torch.float64)
    index = torch.zeros(2, dtype=torch.long)
    sampler = ReactionSampler(model, DDIMSchedule(100), SamplerConfig(steps=4, overlap=10))
    out = sampler.sample(memory, torch.Generator().manual_seed(2), known=known, centre=centre,
                         index=index)  # fmt: skip
    gafrg.scaler.fit(centre[0].float(), gafrg.scaler.std.float())
    expected = sampler.sample(memory, torch.Generator().manual_seed(2), known=known)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="index is required with centre"):
        sampler.sample(memory, torch.Generator().manual_seed(2), centre=centre)


@torch.no_grad()
def test_streaming_with_zero_shifts_moves_the_first_window_to_the_listeners_level():
    # Window 0 has no past: in the standardised space the generic and the personalised model
    # (zero shifts) denoise the same noise, so they differ only by the centre they return to.
    from perfrdiff.generation import StreamingGenerator

    model = prior_model().float()
    for p in model.generator.parameters():
        p.zero_()
    sampler = ReactionSampler(model, DDIMSchedule(100), SamplerConfig(steps=4))
    history = torch.rand(2, 250, 25)
    z = lambda k: torch.zeros(2, 50, k)  # noqa: E731
    personal = StreamingGenerator(sampler, samples=3, history=history, seed=5, max_frames=50)
    generic = StreamingGenerator(sampler, samples=3, seed=5, max_frames=50, batch=2)
    (mine,) = personal.push(z(78), z(58), z(25))
    (theirs,) = generic.push(z(78), z(58), z(25))
    shift = (model.listener_centre(history) - model.gafrg.scaler.mean)[:, None, None]
    torch.testing.assert_close(mine, theirs + shift)


def test_prior_weight_pulls_the_centre_towards_the_training_mean():
    from perfrdiff.models import build_perfrdiff

    config = load_config(
        "tiny",
        [*EMOTION_PRIOR, "pwsg.prior_weight=0.25"],
    )
    model = build_perfrdiff(config, gafrg=fitted_gafrg().float())
    history = torch.rand(3, 250, 25)
    population = model.gafrg.scaler.mean
    expected = population + 0.25 * (history.mean(1) - population)
    torch.testing.assert_close(model.listener_centre(history), expected)


def test_speaker_statistics_cover_every_speaker_clip_of_the_split_once(synthetic_root):
    index, store = SplitIndex(synthetic_root, "train"), ClipStore(synthetic_root, "train")
    clips = sorted({pair.speaker for pair in index.items})
    for part, (lo, hi) in {"audio": (0, 78), "face": (78, 136), "emotion": (136, 161)}.items():
        frames = np.concatenate([getattr(store, part)(c) for c in clips]).astype(np.float64)
        mean, std = speaker_frame_statistics(synthetic_root, "train")
        assert mean.shape == std.shape == (161,)
        np.testing.assert_allclose(mean[lo:hi].numpy(), frames.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(std[lo:hi].numpy(), frames.std(0), rtol=1e-4, atol=1e-5)


def test_frame_moments_refuse_no_frames_and_mixed_widths():
    with pytest.raises(ValueError, match="no frame"):
        frame_moments([])
    with pytest.raises(ValueError, match="widths differ, 3 and 4"):
        frame_moments([np.zeros((2, 3)), np.zeros((2, 4))])


def test_only_a_standardising_speaker_encoder_has_scaler_weights():
    plain = build_gafrg(load_config("tiny"))
    scaled = build_gafrg(load_config("tiny", ["denoiser.standardise_speaker=true"]))
    assert not any(key.startswith("speaker.scaler.") for key in plain.state_dict())
    assert {"speaker.scaler.mean", "speaker.scaler.std"} <= set(scaled.state_dict())


def test_the_gafrg_stage_fits_the_speaker_scaler_to_the_training_split(tmp_path, synthetic_root):
    steps = [
        f"train.{s}.{key}={value}"
        for s in ("emotion-vae", "gafrg")
        for key, value in (("steps", 1), ("batch_size", 2))
    ]
    overrides = ["denoiser.standardise_speaker=true", "denoiser.emotion_frames=true", *steps]
    config = load_config("tiny", [f"data.root={synthetic_root}", *overrides])
    run = Run(config, tmp_path, device="cpu")
    train_run(run, ["emotion-vae", "gafrg"])
    mean, std = speaker_frame_statistics(synthetic_root, "train")
    gafrg = run.build("gafrg")  # from the exported weights
    torch.testing.assert_close(gafrg.speaker.scaler.mean, mean)
    torch.testing.assert_close(gafrg.speaker.scaler.std, std.clamp(min=MIN_STD))
