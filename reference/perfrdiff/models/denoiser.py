"""GAFRG: the generic facial-reaction denoiser (transformer decoder predicting ``x0``).

Queries are the noisy listener window; the cross-attention memory is a time token, the speaker
tokens (:class:`~perfrdiff.models.encoders.SpeakerEncoder`) and, online, the previously generated
listener window. All layers are plain ``torch.nn`` modules (``nn.TransformerDecoder``,
``nn.Linear``) so :func:`weditlib.make_editable` can swap any subset of self-attention
(``decoder.layers.*.self_attn``), cross-attention (``decoder.layers.*.multihead_attn``), FFN
(``decoder.layers.*.linear1``/``linear2``) and the output mapping (``output``).

Sampling uses :meth:`GAFRG.memory_cache` + :meth:`GAFRG.denoise`: the cross-attention keys and
values of the memory tokens are computed once per window, and each DDIM step only projects the
time token; the result equals :meth:`GAFRG.forward` to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perfrdiff.config import DenoiserConfig
from perfrdiff.features import AUDIO_DIM, EMOTION_DIM, FACE_DIM
from perfrdiff.models.attention import keys_values, output, query, self_attention
from perfrdiff.models.emotion_vae import EmotionVAE
from perfrdiff.models.encoders import SpeakerEncoder, sinusoidal_embedding
from perfrdiff.models.scaler import FeatureScaler


def _per_window(centre: Tensor | None) -> Tensor | None:
    """``(b, 25)`` -> ``(b, 1, 25)``, broadcastable against ``(b, w, 25)`` windows."""
    if centre is None or centre.dim() == 3:  # (b, w, 25): a centre per frame already
        return centre
    return centre[:, None]


@dataclass(frozen=True)
class MemoryCache:
    """Cross-attention keys and values of a window's memory tokens, one pair per decoder layer.

    ``keys[i], values[i]: (b, heads, 1 + m, d / heads)``: position 0 is the time token's, which
    :meth:`GAFRG.denoise` overwrites in place at every step (no copy of the rest); positions
    ``1 + j`` are memory token ``j``'s. Valid only under the same edit (listener shifts and
    index) they were computed under.
    """

    keys: tuple[Tensor, ...]
    values: tuple[Tensor, ...]

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]


class GAFRG(nn.Module):
    """Denoiser ``(x_t, t, condition) -> x0`` for ``(b, w, 25)`` listener windows.

    Args:
        config: decoder sizes.
        vae: the speaker-emotion VAE (trained in its own stage; frozen here).
        window: ``w``, frames per listener window.
        speaker_frames: ``v``, speaker frames one window sees (default ``w``: REACT 2024's
            window before; REACT 2026's ``2w``: the window before and its own).
        audio_dim: ``a``, speaker audio features per frame (78 MFCC, 768 wav2vec2).
    """

    def __init__(
        self,
        config: DenoiserConfig,
        vae: EmotionVAE,
        window: int,
        speaker_frames: int | None = None,
        audio_dim: int = AUDIO_DIM,
    ) -> None:
        super().__init__()
        d, w = config.d_model, window
        self.window = w
        self.speaker_frames = w if speaker_frames is None else speaker_frames
        self.audio_dim = audio_dim
        self.use_prev_window = config.use_prev_window
        # Frozen after its own stage; owned here so one checkpoint holds the whole generic model.
        self.vae = vae
        self.vae.requires_grad_(False)
        self.speaker = SpeakerEncoder(
            d,
            audio_dim,
            FACE_DIM,
            vae.latent_dim,
            self.speaker_frames,
            standardise=config.standardise_speaker,
            emotion_frames=config.emotion_frames,
        )
        self.prev = nn.Linear(EMOTION_DIM, d)
        self.no_past = nn.Parameter(torch.zeros(d))
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        # Learned stand-in for every condition token when classifier-free guidance drops them.
        self.null = nn.Parameter(torch.zeros(d))
        self.query = nn.Linear(EMOTION_DIM, d)
        self.register_buffer("positions", sinusoidal_embedding(torch.arange(w), d))
        layer = nn.TransformerDecoderLayer(
            d, config.heads, config.ffn_dim, config.dropout, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, config.layers, norm=nn.LayerNorm(d))
        self.output = nn.Linear(d, EMOTION_DIM)
        # "Input p" (the paper's Table 3): one more memory token, the output of a bias-only map of
        # a constant. Unedited it is a learned "no style" token; a bias shift Δb from the
        # listener's style (weditlib.edit on "style_slot") makes it the style token.
        self.style_slot = nn.Linear(1, d) if config.style_token else None
        # The space the windows are diffused in (config.standardise): fitted to the training
        # split by the gafrg stage, saved with the weights.
        self.scaler = FeatureScaler(EMOTION_DIM) if config.standardise else None

    def to_diffusion(self, emotion: Tensor, centre: Tensor | None = None) -> Tensor:
        """``(b, w, 25)`` listener features -> the space the windows are diffused in.

        ``centre: (b, 25)`` replaces the training split's mean for each window (a listener
        prior, :meth:`PerFRDiff.listener_centre`), ``(b, w, 25)`` for each frame
        (:meth:`PerFRDiff.window_centre`); it needs ``denoiser.standardise``.
        """
        if self.scaler is None:
            return self._unscaled(emotion, centre)
        return self.scaler.normalise(emotion, _per_window(centre))

    def from_diffusion(self, x: Tensor, centre: Tensor | None = None) -> Tensor:
        """Inverse of :meth:`to_diffusion`: a denoised ``(b, w, 25)`` window -> features."""
        if self.scaler is None:
            return self._unscaled(x, centre)
        return self.scaler.denormalise(x, _per_window(centre))

    @staticmethod
    def _unscaled(x: Tensor, centre: Tensor | None) -> Tensor:
        if centre is not None:
            raise ValueError("centre needs a standardising denoiser (denoiser.standardise)")
        return x

    def train(self, mode: bool = True) -> GAFRG:
        super().train(mode)
        self.vae.eval()  # frozen: never in training mode (no latent sampling)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> GAFRG:
        super().requires_grad_(requires_grad)
        self.vae.requires_grad_(False)  # frozen after its own stage, whatever else trains
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
            speaker_audio: ``(b, v, a)`` audio of the speaker frames the window sees.
            speaker_face: ``(b, v, 58)`` 3DMM of those frames.
            speaker_emotion: ``(b, v, 25)`` emotion of those frames.
            prev_emotion: ``(b, w, 25)`` the previous listener window (zeros if none).
            has_past: ``(b,)`` bool, whether ``prev_emotion`` is real.

        Returns:
            ``(b, m, d)`` memory tokens: the speaker's (``2v + 1``, or ``3v + 1`` with
                ``emotion_frames``), then the previous window's ``w`` when it is used.
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

    def _with_style(self, memory: Tensor) -> Tensor:
        """``(b, m, d)`` -> ``(b, m + 1, d)`` with the style token last (when configured)."""
        if self.style_slot is None:
            return memory
        slot = self.style_slot(memory.new_ones(memory.shape[0], 1, 1))
        return torch.cat([memory, slot], dim=1)

    def _time(self, t: Tensor, like: Tensor) -> Tensor:
        """``t: (b,)`` -> ``(b, d)`` time embedding."""
        return self.time(sinusoidal_embedding(t, like.shape[-1]).to(like.dtype))

    def _queries(self, x_t: Tensor, time: Tensor) -> Tensor:
        # The time embedding also shifts the queries: the query must know the noise level
        # before its first cross-attention, not only after reading the time token.
        return self.query(x_t) + self.positions[: x_t.shape[1]] + time.unsqueeze(1)

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
        b = x_t.shape[0]
        if memory.shape[0] != b or t.shape != (b,):
            raise ValueError(
                f"x_t (b={b}), t {tuple(t.shape)} and memory {tuple(memory.shape)} disagree on b"
            )
        memory = self._with_style(memory)
        if keep is not None:
            memory = torch.where(keep.bool()[:, None, None], memory, self.null)
        time = self._time(t, memory)
        memory = torch.cat([time.unsqueeze(1), memory], dim=1)
        return self.output(self.decoder(self._queries(x_t, time), memory))

    def memory_cache(self, memory: Tensor, keep: Tensor | None = None) -> MemoryCache:
        """Cross-attention keys and values of ``memory: (b, m, d)`` for every decoder layer.

        Compute it inside the same :func:`weditlib.edit` block as the :meth:`denoise` calls that
        use it (edited projections give edited keys and values).

        Args:
            memory: condition tokens from :meth:`condition`.
            keep: ``(b,)`` bool, as in :meth:`forward`.
        """
        memory = self._with_style(memory)
        if keep is not None:
            memory = torch.where(keep.bool()[:, None, None], memory, self.null)
        keys, values = [], []
        for layer in self.decoder.layers:
            k, v = keys_values(layer.multihead_attn, memory)
            # One free slot in front for the time token, so each step writes only that slot.
            slot = k.new_zeros(*k.shape[:2], 1, k.shape[3])
            keys.append(torch.cat([slot, k], dim=2))
            values.append(torch.cat([slot, v], dim=2))
        return MemoryCache(tuple(keys), tuple(values))

    def denoise(self, x_t: Tensor, t: Tensor, cache: MemoryCache) -> Tensor:
        """:meth:`forward` with the memory tokens' keys and values taken from ``cache``.

        Args:
            x_t: ``(b, w, 25)`` noisy listener window.
            t: ``(b,)`` integer diffusion timesteps.
            cache: from :meth:`memory_cache` for the same ``b`` windows.

        Returns:
            ``(b, w, 25)`` predicted ``x0`` (equal to :meth:`forward` to float rounding; in eval
                mode, as dropout is not applied to the cached path).
        """
        b = x_t.shape[0]
        if cache.batch_size != b or t.shape != (b,):
            raise ValueError(
                f"x_t (b={b}), t {tuple(t.shape)} and the cache (b={cache.batch_size}) disagree"
            )
        if self.training:
            raise RuntimeError("GAFRG.denoise is for sampling: call .eval() first")
        time = self._time(t, self.null).unsqueeze(1)  # (b, 1, d): the one changing memory token
        x = self._queries(x_t, time[:, 0])
        for layer, keys, values in zip(self.decoder.layers, cache.keys, cache.values, strict=True):
            x = x + self_attention(layer.self_attn, layer.norm1(x))
            attention = layer.multihead_attn
            keys[:, :, :1], values[:, :, :1] = keys_values(attention, time)
            attended = F.scaled_dot_product_attention(
                query(attention, layer.norm2(x)), keys, values
            )
            x = x + output(attention, attended)
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm3(x))))
        return self.output(self.decoder.norm(x))
