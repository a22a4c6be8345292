"""GAFRG denoiser, classifier-free guidance, speaker encoders and emotion VAE."""

import pytest
import torch
from perfrdiff.config import EmotionVAEConfig, load_config
from perfrdiff.generation import guided_x0
from perfrdiff.models import EmotionVAE, build_gafrg


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_gafrg(load_config("tiny")).eval()


def speaker(b, w=50, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, w, 78, generator=g),
        torch.randn(b, w, 58, generator=g),
        torch.randn(b, w, 25, generator=g),
    )


def test_condition_has_time_free_tokens_for_speaker_and_previous_window(model):
    memory = model.condition(*speaker(3), torch.zeros(3, 50, 25), torch.tensor([1, 0, 1]).bool())
    assert memory.shape == (3, 3 * 50 + 1, 64)


def test_denoiser_predicts_a_window(model):
    memory = model.condition(*speaker(2))
    x0 = model(torch.randn(2, 50, 25), torch.tensor([10, 900]), memory)
    assert x0.shape == (2, 50, 25)


def test_dropped_conditions_make_the_output_ignore_the_speaker(model):
    x_t, t = torch.randn(2, 50, 25), torch.tensor([500, 500])
    keep = torch.zeros(2, dtype=torch.bool)
    a = model(x_t, t, model.condition(*speaker(2, seed=1)), keep)
    b = model(x_t, t, model.condition(*speaker(2, seed=2)), keep)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, model(x_t, t, model.condition(*speaker(2, seed=1))))


def test_guidance_one_is_the_conditional_prediction(model):
    x_t, t, memory = torch.randn(2, 50, 25), torch.tensor([300, 300]), model.condition(*speaker(2))
    guided = guided_x0(lambda x, t: model(x, t, memory), x_t, t, 1.0)
    torch.testing.assert_close(guided, model(x_t, t, memory))


def test_guidance_extrapolates_from_unconditional_to_conditional(model):
    x_t, t, memory = torch.randn(2, 50, 25), torch.tensor([300, 300]), model.condition(*speaker(2))
    cond = model(x_t, t, memory)
    uncond = model(x_t, t, memory, torch.zeros(2, dtype=torch.bool))
    keep = torch.tensor([True, True, False, False])  # conditional rows, then unconditional
    guided = guided_x0(lambda x, t: model(x, t, torch.cat([memory, memory]), keep), x_t, t, 3.0)
    torch.testing.assert_close(guided, uncond + 3.0 * (cond - uncond), atol=1e-5, rtol=1e-5)


def test_the_previous_window_changes_the_memory_and_the_prediction_when_enabled(model):
    past = torch.ones(2, dtype=torch.bool)
    a = model.condition(*speaker(2), torch.zeros(2, 50, 25), past)
    b = model.condition(*speaker(2), torch.randn(2, 50, 25), past)
    speaker_tokens = 2 * 50 + 1
    torch.testing.assert_close(a[:, :speaker_tokens], b[:, :speaker_tokens])
    assert (a[:, speaker_tokens:] - b[:, speaker_tokens:]).abs().amin(dim=-1).gt(0).all()
    x_t, t = torch.randn(2, 50, 25), torch.tensor([500, 500])
    assert not torch.allclose(model(x_t, t, a), model(x_t, t, b))


def test_previous_window_changes_the_prediction_only_when_enabled():
    torch.manual_seed(0)
    config = load_config("tiny", ["denoiser.use_prev_window=false"])
    model = build_gafrg(config).eval()
    a = model.condition(*speaker(1), torch.zeros(1, 50, 25))
    b = model.condition(*speaker(1), torch.ones(1, 50, 25))
    assert a.shape == (1, 101, 64)
    torch.testing.assert_close(a, b)


def test_speaker_encoder_rejects_mismatched_streams(model):
    audio, face, emotion = speaker(2)
    with pytest.raises(ValueError, match="share"):
        model.condition(audio, face[:, :10], emotion)


def test_emotion_vae_reconstructs_the_window_shape_and_is_deterministic_in_eval():
    vae = EmotionVAE(EmotionVAEConfig(hidden_dim=16, latent_dim=8)).eval()
    x = torch.randn(3, 50, 25)
    recon, mu, logvar = vae(x)
    assert recon.shape == x.shape and mu.shape == (3, 8) and logvar.shape == (3, 8)
    torch.testing.assert_close(vae(x)[0], recon)


def test_emotion_vae_names_the_bad_input():
    with pytest.raises(ValueError, match="x must have shape"):
        EmotionVAE(EmotionVAEConfig(hidden_dim=16, latent_dim=8)).encode(torch.randn(3, 50, 24))


def speaker_options(**options):
    overrides = [f"denoiser.{k}={str(v).lower()}" for k, v in options.items()]
    torch.manual_seed(0)
    return build_gafrg(load_config("tiny", overrides)).eval()


def test_emotion_frames_add_one_memory_token_per_speaker_frame():
    model = speaker_options(emotion_frames=True)
    memory = model.condition(*speaker(3), torch.zeros(3, 50, 25), torch.ones(3, dtype=torch.bool))
    assert memory.shape == (3, 4 * 50 + 1, 64)  # audio, 3DMM, summary, frame emotion, previous
    x0 = model(torch.randn(3, 50, 25), torch.tensor([10, 500, 900]), memory)
    assert x0.shape == (3, 50, 25)
    # the frame tokens follow the frames: reordering the speaker's emotion changes them
    audio, face, emotion = speaker(1)
    tokens = model.speaker(audio, face, emotion, model.vae)
    flipped = model.speaker(audio, face, emotion.flip(1), model.vae)
    assert not torch.allclose(tokens[:, 101:], flipped[:, 101:])
    torch.testing.assert_close(tokens[:, :100], flipped[:, :100])  # audio and 3DMM alike


def test_standardised_speaker_frames_equal_the_raw_encoder_on_standardised_inputs():
    scaled, raw = speaker_options(standardise_speaker=True), speaker_options()
    raw.load_state_dict({k: v for k, v in scaled.state_dict().items() if "speaker.scaler" not in k})
    g = torch.Generator().manual_seed(3)
    mean, std = torch.randn(78 + 58 + 25, generator=g), torch.rand(78 + 58 + 25, generator=g) + 0.5
    scaled.speaker.scaler.fit(mean, std)
    audio, face, emotion = speaker(2)
    got = scaled.speaker(audio, face, emotion, scaled.vae)
    z = (torch.cat([audio, face, emotion], -1) - mean) / std
    want = raw.speaker(z[..., :78], z[..., 78:136], z[..., 136:], raw.vae)
    torch.testing.assert_close(got[:, :100], want[:, :100])  # per-frame audio and 3DMM tokens
    # the summary token is the VAE's, which was trained on raw emotion: unscaled
    torch.testing.assert_close(got[:, 100], raw.speaker(audio, face, emotion, raw.vae)[:, 100])


def test_an_unfitted_speaker_scaler_is_the_identity():
    scaled, raw = speaker_options(standardise_speaker=True), speaker_options()
    raw.load_state_dict({k: v for k, v in scaled.state_dict().items() if "speaker.scaler" not in k})
    args = speaker(2)
    torch.testing.assert_close(scaled.speaker(*args, scaled.vae), raw.speaker(*args, raw.vae))
