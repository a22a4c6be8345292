"""Frames of the viewer as images (PIL), for video export: the same panels as the page.

A frame shows, side by side, the speaker, the real listener and one chosen sample of every mode,
each a face (the :mod:`.face` geometry, splines sampled as polygons) beside its valence/arousal
dot and 8 expression bars; below them the curve of one channel for every panel, with a cursor.
Everything that does not move is drawn once; each frame is drawn at ``supersample`` times the
output size and reduced (box filter), which is PIL's cheap anti-aliasing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from perfrdiff.viewer.channels import AROUSAL, EXPRESSION_START, EXPRESSIONS, VALENCE, channel_index
from perfrdiff.viewer.face import FACE_SIZE, SHAPES, face_points, point, pupil_circle, sample_spline
from perfrdiff.viewer.items import ViewerItem
from perfrdiff.viewer.page import ViewOptions, frame_window

_FACE_SCALE = 0.8  # face box 160 x 192 output pixels
_PANEL = (280, 232)  # output pixels per panel: face + side column
_CURVE_HEIGHT = 112
_COLOURS = ("#999999", "#111111", "#d1495b", "#00798c", "#edae49", "#66a182")


@dataclass
class Panel:
    title: str
    sequence: np.ndarray  # (t, 25), already windowed


def _panels(item: ViewerItem, sample: int, window: slice) -> list[Panel]:
    panels = [
        Panel("speaker", item.speaker[window]),
        Panel("real listener", item.listener[window]),
    ]
    for mode, samples in item.generated.items():
        if not 0 <= sample < len(samples):
            raise ValueError(f"sample: expected 0..{len(samples) - 1} for {mode}, got {sample}")
        panels.append(Panel(f"{mode} (sample {sample + 1})", samples[sample][window]))
    return panels


class FrameRenderer:
    """Render frame ``f`` of ``item`` (the ``options`` window) as ``(h, w, 3)`` uint8.

    ``sample`` picks which of the ``k`` generated samples every mode shows. Faces are drawn at
    ``supersample`` times their size and reduced; the rest is drawn at the output size.
    """

    def __init__(
        self, item: ViewerItem, options: ViewOptions | None = None, sample: int = 0,
        supersample: int = 2,
    ) -> None:  # fmt: skip
        options = options or ViewOptions()
        first, stop, stride = frame_window(item, options)
        self.fps = item.fps / stride
        self.panels = _panels(item, sample, slice(first, stop, stride))
        self.frames = self.panels[0].sequence.shape[0]
        self.channel = channel_index(options.channel)
        self.k = supersample
        width, height = _PANEL[0] * len(self.panels), _PANEL[1] + _CURVE_HEIGHT
        self.size = (width + (-width) % 16, height + (-height) % 16)  # what video codecs want
        self._shapes = [self._face_geometry(p.sequence) for p in self.panels]
        self._curves = self._curve_points()
        self._background = self._draw_background(options.channel)
        self._face_background = Image.new("RGB", self._face_box_size(), "#ffffff")

    def __len__(self) -> int:
        return self.frames

    def _face_box_size(self) -> tuple[int, int]:
        return tuple(round(side * _FACE_SCALE) * self.k for side in FACE_SIZE)

    def _face_geometry(self, sequence: np.ndarray) -> list[tuple]:
        """Per shape: the shape and, for every frame, its outline (or circle) in face-box
        pixels (supersampled)."""
        points = face_points(sequence[:, :15]) * (_FACE_SCALE * self.k)
        out = []
        for shape in SHAPES:
            if shape.kind == "pupil":
                geometry = np.stack(pupil_circle(points, shape), axis=-1)  # (t, 3)
            elif shape.kind == "segment":
                geometry = np.stack([point(points, name) for name in shape.points], axis=-2)
            else:
                names = [point(points, name) for name in shape.points]
                geometry = sample_spline(np.stack(names, axis=-2), shape.kind == "closed")
            out.append((shape, geometry))
        return out

    def _curve_points(self) -> np.ndarray:
        """``(panels, t, 2)`` pixel coordinates of the channel's curves."""
        values = np.stack([p.sequence[:, self.channel] for p in self.panels])
        lo, hi = values.min(), values.max()
        hi = hi if hi > lo else lo + 1.0
        x = np.linspace(8, self.size[0] - 8, self.frames)
        y = _PANEL[1] + _CURVE_HEIGHT - 10 - (values - lo) / (hi - lo) * (_CURVE_HEIGHT - 28)
        return np.stack(np.broadcast_arrays(x, y), axis=-1)

    def _draw_background(self, channel: str) -> Image.Image:
        image = Image.new("RGB", self.size, "#fafafa")
        draw = ImageDraw.Draw(image)
        font, small = ImageFont.load_default(size=11), ImageFont.load_default(size=9)
        for p, panel in enumerate(self.panels):
            left = p * _PANEL[0]
            draw.rounded_rectangle(
                (left + 3, 3, left + _PANEL[0] - 3, _PANEL[1] - 3),
                radius=6, fill="#ffffff", outline="#dddddd",
            )  # fmt: skip
            draw.text((left + 10, 8), panel.title, fill="#222222", font=font)
            box = self._va_box(p)
            draw.rectangle(box, fill="#f3f3f3", outline="#bbbbbb")
            mid_x, mid_y = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
            draw.line((box[0], mid_y, box[2], mid_y), fill="#bbbbbb")
            draw.line((mid_x, box[1], mid_x, box[3]), fill="#bbbbbb")
            for e, name in enumerate(EXPRESSIONS):
                draw.text((box[0], box[3] + 6 + 12 * e), name[:7], fill="#444444", font=small)
        for p, curve in enumerate(self._curves):
            draw.line(curve.ravel().tolist(), fill=_COLOURS[p % len(_COLOURS)], width=1)
        draw.text((10, _PANEL[1] + 2), channel, fill="#555555", font=font)
        return image

    def _va_box(self, p: int) -> tuple[int, int, int, int]:
        left = p * _PANEL[0] + round(FACE_SIZE[0] * _FACE_SCALE) + 14
        return (left, 28, left + 86, 114)

    def _draw_face(self, p: int, frame: int) -> Image.Image:
        """The face of panel ``p`` at ``frame``, at the output size."""
        image = self._face_background.copy()
        draw = ImageDraw.Draw(image)
        for shape, geometry in self._shapes[p]:
            g = geometry[frame]
            stroke = None if shape.stroke == "none" else shape.stroke
            fill = None if shape.fill == "none" else shape.fill
            width = max(1, round(shape.width * _FACE_SCALE * self.k))
            if shape.kind == "pupil":
                x, y, r = g
                if r > 0:
                    draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
                continue
            xy = g.ravel().tolist()
            if shape.kind == "closed":
                # A wide polygon outline costs a mask image per call: draw it as a line.
                draw.polygon(xy, fill=fill)
                xy += xy[:2]
            if stroke is not None:
                draw.line(xy, fill=stroke, width=width, joint="curve")
        return image.reduce(self.k) if self.k > 1 else image

    def _draw_side(self, draw: ImageDraw.ImageDraw, p: int, frame: int) -> None:
        values = self.panels[p].sequence[frame]
        box = self._va_box(p)
        half = (box[2] - box[0]) / 2
        x = (box[0] + box[2]) / 2 + np.clip(values[VALENCE], -1, 1) * half
        y = (box[1] + box[3]) / 2 - np.clip(values[AROUSAL], -1, 1) * half
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill="#d1495b")
        for e in range(len(EXPRESSIONS)):
            top = box[3] + 8 + 12 * e
            length = np.clip(values[EXPRESSION_START + e], 0, 1) * 44
            draw.rectangle((box[0] + 44, top, box[0] + 44 + length, top + 7), fill="#6a8fc7")

    def render(self, frame: int) -> np.ndarray:
        """Frame ``frame`` (0 .. len - 1) as ``(h, w, 3)`` uint8."""
        if not 0 <= frame < self.frames:
            raise ValueError(f"frame: expected 0..{self.frames - 1}, got {frame}")
        image = self._background.copy()
        draw = ImageDraw.Draw(image)
        for p in range(len(self.panels)):
            image.paste(self._draw_face(p, frame), (p * _PANEL[0] + 8, 26))
            self._draw_side(draw, p, frame)
        x = self._curves[0, frame, 0]
        draw.line((x, _PANEL[1], x, self.size[1]), fill="#d1495b", width=2)
        return np.asarray(image)
