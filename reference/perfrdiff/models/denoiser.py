"""GAFRG: the generic facial-reaction denoiser (transformer decoder predicting ``x0``).

Queries are the noisy listener window; the cross-attention memory is a time token, the speaker
tokens (:class:`~perfrdiff.models.encoders.SpeakerEncoder`) and, online, the previously generated
listener window. All layers are plain ``torch.nn`` modules (``nn.TransformerDecoder``,
``nn.Linear``) so :func:`weditlib.make_editable` can swap any subset of self-attention
(``decoder.layers.*.self_attn``), cross-attention (``decoder.layers.*.multihead_attn``), FFN
(``decoder.layers.*.linear1``/``linear2``) and the output mapping (``output``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from perfrdiff.config import Config
from perfrdiff.models.emotion_vae import EmotionVAE
from perfrdiff.models.encoders import SpeakerEncoder, sinusoidal_embedding

EMOTION_DIM, AUDIO_DIM, FACE_DIM = 25, 78, 58


class GAFRG(nn.Module):
    """Denoiser ``(x_t, t, condition) -> x0`` for ``(b, w, e)`` listener windows.

    Args:
        config: model sizes (``config.denoiser``, ``config.emotion_vae``, ``config.data.window``).
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        d, w = config.denoiser.d_model, config.data.window
        self.window = w
        self.use_prev_window = config.denoiser.use_prev_window
        # Frozen after its own stage; owned here so one checkpoint holds the whole generic model.
        self.vae = EmotionVAE(
            EMOTION_DIM, config.emotion_vae.hidden_dim, config.emotion_vae.latent_dim
        )
        self.vae.requires_grad_(False)
        self.speaker = SpeakerEncoder(d, AUDIO_DIM, FACE_DIM, config.emotion_vae.latent_dim, w)
        self.prev = nn.Linear(EMOTION_DIM, d)
        self.no_past = nn.Parameter(torch.zeros(d))
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        # Learned stand-in for every condition token when classifier-free guidance drops them.
        self.null = nn.Parameter(torch.zeros(d))
        self.query = nn.Linear(EMOTION_DIM, d)
        self.register_buffer("positions", sinusoidal_embedding(torch.arange(w), d))
        layer = nn.TransformerDecoderLayer(
            d,
            config.denoiser.heads,
            config.denoiser.ffn_dim,
            config.denoiser.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.decoder = nn.TransformerDecoder(layer, config.denoiser.layers, norm=nn.LayerNorm(d))
        self.output = nn.Linear(d, EMOTION_DIM)

    def train(self, mode: bool = True) -> GAFRG:
        super().train(mode)
        self.vae.eval()  # frozen: never in training mode (no latent sampling)
        return self

    def condition(
        self,
        speaker_audio: Tensor,
        speaker_face: Tensor,
        speaker_emotion: Tensor,
        prev_emotion: Tensor | None = None,
        has_past: Tensor | None = None,
    ) -> Tensor:
        """Condition tokens of one window, computed once and reused at every denoising step.

        Args:
            speaker_audio: ``(b, w, 78)`` audio of the speaker frames before the listener window.
            speaker_face: ``(b, w, 58)`` 3DMM of those frames.
            speaker_emotion: ``(b, w, 25)`` emotion of those frames.
            prev_emotion: ``(b, w, 25)`` the previous listener window (zeros if none).
            has_past: ``(b,)`` bool, whether ``prev_emotion`` is real.

        Returns:
            ``(b, m, d)`` memory tokens (``m = 3w + 1`` with the previous window, else ``2w + 1``).
        """
        tokens = self.speaker(speaker_audio, speaker_face, speaker_emotion, self.vae)
        if not self.use_prev_window:
            return tokens
        b = tokens.shape[0]
        if prev_emotion is None:
            prev_emotion = tokens.new_zeros(b, self.window, EMOTION_DIM)
        if has_past is None:
            has_past = torch.zeros(b, dtype=torch.bool, device=tokens.device)
        missing = (~has_past.bool()).to(tokens.dtype)[:, None, None]
        prev = self.prev(prev_emotion) + self.positions[: prev_emotion.shape[1]]
        return torch.cat([tokens, prev + missing * self.no_past], dim=1)

    def forward(self, x_t: Tensor, t: Tensor, memory: Tensor, keep: Tensor | None = None) -> Tensor:
        """Predict the clean window.

        Args:
            x_t: ``(b, w, 25)`` noisy listener window.
            t: ``(b,)`` integer diffusion timesteps.
            memory: ``(b, m, d)`` from :meth:`condition`.
            keep: ``(b,)`` bool; where False the conditions are replaced by the null token
                (classifier-free guidance). ``None`` keeps all.

        Returns:
            ``(b, w, 25)`` predicted ``x0``.
        """
        b, w, _ = x_t.shape
        if memory.shape[0] != b or t.shape != (b,):
            raise ValueError(
                f"x_t (b={b}), t {tuple(t.shape)} and memory {tuple(memory.shape)} disagree on b"
            )
        if keep is not None:
            memory = torch.where(keep.bool()[:, None, None], memory, self.null)
        time = self.time(sinusoidal_embedding(t, memory.shape[-1]).to(memory.dtype))
        memory = torch.cat([time.unsqueeze(1), memory], dim=1)
        # The time embedding also shifts the queries: the query must know the noise level
        # before its first cross-attention, not only after reading the time token.
        query = self.query(x_t) + self.positions[:w] + time.unsqueeze(1)
        return self.output(self.decoder(query, memory))
