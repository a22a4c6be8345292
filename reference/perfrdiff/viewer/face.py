"""A cartoon face drawn from the 15 action units of a REACT reaction: one geometry definition.

The face is a set of named 2-D control points (SVG coordinates: ``x`` right, ``y`` down, in a
``200 x 240`` box, the face looking at the viewer). Each action unit moves some points by a fixed
displacement at full intensity; a frame's points are the neutral points plus the sum of those
displacements weighted by the frame's AU values clipped to ``[0, 1]`` (REACT's AU channels are
occurrence probabilities; generated values outside the range are clipped, not extrapolated)::

    points = neutral + einsum("a, a p c -> p c", clip(aus, 0, 1), motion)

Points ending in ``_l`` are on the image's left (the person's right) and have a mirrored ``_r``
twin; a displacement given for ``_l`` applies to ``_r`` with ``dx`` negated. Shapes (outline,
brows, eyes, nose, lips, mouth opening, ...) join points with Catmull-Rom splines.

The HTML viewer embeds :func:`face_model` as JSON and its JavaScript applies the same formula, and
the raster renderer (video export) samples the same splines: there is one definition of the face.

Each AU follows the appearance change of the Facial Action Coding System (Ekman, Friesen & Hager,
2002), reduced to the frontal 2-D outline this face has:

======  ===================  ============================================================
AU      FACS name            drawn as
======  ===================  ============================================================
AU1     inner brow raiser    inner ends of the brows up (middle a little)
AU2     outer brow raiser    outer ends of the brows up (middle a little)
AU4     brow lowerer         brows down, inner ends pulled toward the midline
AU6     cheek raiser         cheek lines up, lower lids and outer eye corners up
AU7     lid tightener        lower lids up, upper lids slightly down: eyes narrow
AU9     nose wrinkler        nose wings and tip up, inner brows down, nasolabial tops up
AU10    upper lip raiser     upper lip up (its inner edge too: the lips part a little)
AU12    lip corner puller    lip corners up and outward, nasolabial folds deepen outward
AU14    dimpler              lip corners pulled back (slightly outward), dimples appear
AU15    lip corner depressor lip corners down
AU17    chin raiser          chin boss up, lower lip pushed up (the lip line rises)
AU23    lip tightener        lip corners inward (narrower mouth), lips thinner
AU24    lip pressor          lips pressed together: outer lip edges toward the lip line
AU25    lips part            lower inner lip down, upper inner lip slightly up
AU26    jaw drop             lower lip, lip corners, chin and jaw down
======  ===================  ============================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfrdiff.viewer.channels import AUS

#: Width and height of the face's coordinate box.
FACE_SIZE = (200.0, 240.0)
_CENTRE_X = FACE_SIZE[0] / 2

# Neutral positions; "_l" points are mirrored to "_r" about x = 100.
_NEUTRAL_HALF: dict[str, tuple[float, float]] = {
    "crown": (100, 22), "crown_l": (52, 42), "temple_l": (36, 96), "cheekbone_l": (40, 140),
    "jaw_l": (56, 192), "chin_l": (80, 220), "chin": (100, 225),
    "brow_inner_l": (84, 86), "brow_mid_l": (67, 80), "brow_outer_l": (50, 85),
    "eye_outer_l": (51, 104), "eye_upper_l": (66, 97), "eye_inner_l": (81, 104),
    "eye_lower_l": (66, 110),
    "cheek_outer_l": (48, 124), "cheek_l": (62, 128), "cheek_inner_l": (75, 125),
    "nose_side_l": (92, 108), "nose_wing_l": (85, 140), "nose_base_l": (92, 147),
    "nose_tip": (100, 149),
    "fold_top_l": (82, 146), "fold_bottom_l": (70, 174),
    "dimple_top_l": (73, 179), "dimple_bottom_l": (73, 179),
    "mouth_corner_l": (78, 180), "upper_lip_l": (89, 173), "upper_lip": (100, 175),
    "lower_lip_l": (89, 189), "lower_lip": (100, 191),
    "inner_upper_l": (89, 180), "inner_upper": (100, 180),
    "inner_lower_l": (89, 180), "inner_lower": (100, 180),
}  # fmt: skip


@dataclass(frozen=True)
class ActionUnitMotion:
    """How one action unit moves the face at full intensity (``moves``: point -> (dx, dy))."""

    au: str
    facs_name: str
    drawn_as: str
    moves: dict[str, tuple[float, float]]


# dx is for the image-left ("_l") side; its mirror moves by -dx. Negative dy is up.
AU_MOTIONS: tuple[ActionUnitMotion, ...] = (
    ActionUnitMotion("AU1", "inner brow raiser", "inner ends of the brows up",
                     {"brow_inner_l": (0, -10), "brow_mid_l": (0, -4)}),
    ActionUnitMotion("AU2", "outer brow raiser", "outer ends of the brows up",
                     {"brow_outer_l": (0, -10), "brow_mid_l": (0, -5)}),
    ActionUnitMotion("AU4", "brow lowerer", "brows down, inner ends toward the midline",
                     {"brow_inner_l": (4, 7), "brow_mid_l": (2, 5), "brow_outer_l": (0, 2)}),
    ActionUnitMotion("AU6", "cheek raiser", "cheeks, lower lids and outer eye corners up",
                     {"cheek_outer_l": (0, -5), "cheek_l": (0, -7), "cheek_inner_l": (0, -5),
                      "eye_lower_l": (0, -3), "eye_outer_l": (0, -1.5)}),
    ActionUnitMotion("AU7", "lid tightener", "lower lids up, upper lids down: eyes narrow",
                     {"eye_lower_l": (0, -4), "eye_upper_l": (0, 2)}),
    ActionUnitMotion("AU9", "nose wrinkler", "nose wings and tip up, inner brows down",
                     {"nose_wing_l": (0, -6), "nose_base_l": (0, -4), "nose_tip": (0, -2),
                      "brow_inner_l": (0, 3), "fold_top_l": (0, -4)}),
    ActionUnitMotion("AU10", "upper lip raiser", "upper lip up, its inner edge too",
                     {"upper_lip_l": (0, -6), "upper_lip": (0, -5), "inner_upper_l": (0, -3),
                      "inner_upper": (0, -3), "fold_top_l": (0, -3), "fold_bottom_l": (0, -2)}),
    ActionUnitMotion("AU12", "lip corner puller", "lip corners up and outward",
                     {"mouth_corner_l": (-8, -8), "upper_lip_l": (-3, -3),
                      "lower_lip_l": (-3, -2), "inner_upper_l": (-3, -4),
                      "inner_lower_l": (-3, -4), "fold_bottom_l": (-4, -4),
                      "dimple_top_l": (-8, -8), "dimple_bottom_l": (-8, -8)}),
    ActionUnitMotion("AU14", "dimpler", "lip corners back (slightly outward), dimples appear",
                     {"mouth_corner_l": (-2, 0), "dimple_top_l": (-3, -4),
                      "dimple_bottom_l": (-3, 4)}),
    ActionUnitMotion("AU15", "lip corner depressor", "lip corners down",
                     {"mouth_corner_l": (-1, 8), "upper_lip_l": (0, 2), "lower_lip_l": (0, 2),
                      "inner_upper_l": (0, 3), "inner_lower_l": (0, 3),
                      "dimple_top_l": (-1, 8), "dimple_bottom_l": (-1, 8)}),
    ActionUnitMotion("AU17", "chin raiser", "chin up, lower lip pushed up",
                     {"chin": (0, -5), "chin_l": (0, -3), "lower_lip": (0, -3),
                      "lower_lip_l": (0, -2), "inner_lower": (0, -2), "inner_lower_l": (0, -2),
                      "inner_upper": (0, -2), "inner_upper_l": (0, -2)}),
    ActionUnitMotion("AU23", "lip tightener", "lip corners inward, lips thinner",
                     {"mouth_corner_l": (5, 0), "upper_lip_l": (2, 2), "upper_lip": (0, 2),
                      "lower_lip_l": (2, -2), "lower_lip": (0, -2), "inner_upper_l": (2, 0),
                      "inner_lower_l": (2, 0), "dimple_top_l": (5, 0),
                      "dimple_bottom_l": (5, 0)}),
    ActionUnitMotion("AU24", "lip pressor", "outer lip edges toward the lip line",
                     {"upper_lip_l": (0, 4), "upper_lip": (0, 4), "lower_lip_l": (0, -4),
                      "lower_lip": (0, -4), "mouth_corner_l": (1, 0)}),
    ActionUnitMotion("AU25", "lips part", "lower inner lip down, upper inner lip up",
                     {"inner_upper_l": (0, -2), "inner_upper": (0, -2), "inner_lower_l": (0, 4),
                      "inner_lower": (0, 5), "lower_lip_l": (0, 3), "lower_lip": (0, 3)}),
    ActionUnitMotion("AU26", "jaw drop", "lower lip, lip corners, chin and jaw down",
                     {"inner_lower_l": (0, 10), "inner_lower": (0, 12), "lower_lip_l": (0, 11),
                      "lower_lip": (0, 13), "mouth_corner_l": (0, 4), "chin": (0, 14),
                      "chin_l": (0, 12), "jaw_l": (0, 7), "dimple_top_l": (0, 4),
                      "dimple_bottom_l": (0, 4)}),
)  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """One drawn element: ``kind`` is ``closed`` / ``open`` (a spline through ``points``),
    ``segment`` (a straight line) or ``pupil`` (a disc between the lids, see
    :func:`pupil_circle`: ``points`` are the upper lid, lower lid and the two eye corners)."""

    name: str
    kind: str
    points: tuple[str, ...]
    fill: str = "none"
    stroke: str = "#5a3b2e"
    width: float = 1.5


def _side(side: str, *bases: str) -> tuple[str, ...]:
    return tuple(f"{base}_{side}" for base in bases)


_SKIN, _LIPS, _MOUTH = "#f4d5bd", "#c4665e", "#4a1c1c"
SHAPES: tuple[Shape, ...] = (
    Shape("head", "closed",
          ("crown", "crown_l", "temple_l", "cheekbone_l", "jaw_l", "chin_l", "chin", "chin_r",
           "jaw_r", "cheekbone_r", "temple_r", "crown_r"), fill=_SKIN, width=2),
    *(Shape(f"eye_{s}", "closed", _side(s, "eye_outer", "eye_upper", "eye_inner", "eye_lower"),
            fill="#ffffff") for s in "lr"),
    *(Shape(f"pupil_{s}", "pupil", _side(s, "eye_upper", "eye_lower", "eye_inner", "eye_outer"),
            fill="#3b2a20", stroke="none") for s in "lr"),
    *(Shape(f"brow_{s}", "open", _side(s, "brow_outer", "brow_mid", "brow_inner"),
            stroke="#4b3621", width=4) for s in "lr"),
    *(Shape(f"cheek_{s}", "open", _side(s, "cheek_outer", "cheek", "cheek_inner"),
            stroke="#d9a58f", width=2) for s in "lr"),
    *(Shape(f"fold_{s}", "open", _side(s, "fold_top", "fold_bottom"), stroke="#c99a86")
      for s in "lr"),
    *(Shape(f"nose_side_{s}", "open", _side(s, "nose_side", "nose_wing"), stroke="#c99a86")
      for s in "lr"),
    Shape("nose", "open",
          ("nose_wing_l", "nose_base_l", "nose_tip", "nose_base_r", "nose_wing_r")),
    Shape("lips", "closed",
          ("mouth_corner_l", "upper_lip_l", "upper_lip", "upper_lip_r", "mouth_corner_r",
           "lower_lip_r", "lower_lip", "lower_lip_l"), fill=_LIPS, stroke="#9c4a44", width=1),
    Shape("mouth", "closed",
          ("mouth_corner_l", "inner_upper_l", "inner_upper", "inner_upper_r", "mouth_corner_r",
           "inner_lower_r", "inner_lower", "inner_lower_l"), fill=_MOUTH, stroke="#7a2f2b",
          width=1.2),
    *(Shape(f"dimple_{s}", "segment", _side(s, "dimple_top", "dimple_bottom"),
            stroke="#b07a68", width=1.5) for s in "lr"),
)  # fmt: skip


def _mirror(name: str) -> str:
    return name[:-2] + "_r"


def _build_points() -> tuple[tuple[str, ...], np.ndarray]:
    names: list[str] = []
    coords: list[tuple[float, float]] = []
    for name, (x, y) in _NEUTRAL_HALF.items():
        names.append(name)
        coords.append((x, y))
        if name.endswith("_l"):
            names.append(_mirror(name))
            coords.append((2 * _CENTRE_X - x, y))
    return tuple(names), np.array(coords, dtype=np.float64)


#: Names of the face's control points, and their neutral positions ``(p, 2)``.
POINT_NAMES, NEUTRAL = _build_points()


def _build_motion() -> np.ndarray:
    index = {name: i for i, name in enumerate(POINT_NAMES)}
    motion = np.zeros((len(AUS), len(POINT_NAMES), 2))
    if tuple(m.au for m in AU_MOTIONS) != AUS:
        raise AssertionError("AU_MOTIONS must list the AUs in channel order")
    for a, unit in enumerate(AU_MOTIONS):
        for name, (dx, dy) in unit.moves.items():
            motion[a, index[name]] = (dx, dy)
            if name.endswith("_l"):
                motion[a, index[_mirror(name)]] = (-dx, dy)
    return motion


#: Displacement of every point at full intensity of each AU: ``(15, p, 2)``.
MOTION = _build_motion()


def face_points(aus: np.ndarray) -> np.ndarray:
    """Control points of the face for AU values ``aus: (*b, 15)``; returns ``(*b, p, 2)``.

    ``p`` follows :data:`POINT_NAMES`. AU values are clipped to ``[0, 1]``.

    Raises:
        ValueError: ``aus`` does not end in 15 channels.
    """
    aus = np.asarray(aus, dtype=np.float64)
    if aus.ndim < 1 or aus.shape[-1] != len(AUS):
        raise ValueError(f"aus: expected shape (*b, {len(AUS)}), got {aus.shape}")
    return NEUTRAL + np.einsum("...a,apc->...pc", np.clip(aus, 0.0, 1.0), MOTION)


def point(points: np.ndarray, name: str) -> np.ndarray:
    """The ``(*b, 2)`` coordinates of control point ``name`` in ``points: (*b, p, 2)``."""
    return points[..., POINT_NAMES.index(name), :]


def bezier_controls(points: np.ndarray, closed: bool) -> np.ndarray:
    """Cubic Bézier segments of the Catmull-Rom spline through ``points: (*b, n, 2)``:
    ``(*b, s, 4, 2)``.

    Segment ``i`` runs from ``p[i]`` to ``p[i+1]`` with controls ``p[i] + (p[i+1] - p[i-1]) / 6``
    and ``p[i+1] - (p[i+2] - p[i]) / 6``; an open curve repeats its end points, a closed one
    wraps around (``s = n``, else ``n - 1``). The viewer's JavaScript builds its SVG paths with
    the same formula.
    """
    n = points.shape[-2]
    segment = np.arange(n if closed else n - 1)[:, None] + np.arange(-1, 3)  # (s, 4)
    neighbours = segment % n if closed else np.clip(segment, 0, n - 1)
    p0, p1, p2, p3 = np.moveaxis(points[..., neighbours, :], -2, 0)  # each (*b, s, 2)
    return np.stack([p1, p1 + (p2 - p0) / 6, p2 - (p3 - p1) / 6, p2], axis=-2)


def sample_spline(points: np.ndarray, closed: bool, per_segment: int = 8) -> np.ndarray:
    """``(*b, s * per_segment + 1, 2)`` points along the spline of :func:`bezier_controls`."""
    controls = bezier_controls(points, closed)  # (*b, s, 4, 2)
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)
    weights = np.stack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3])  # (4, m)
    curve = np.einsum("km,...skc->...smc", weights, controls)
    curve = curve.reshape(*curve.shape[:-3], -1, 2)
    return np.concatenate([curve, controls[..., -1:, 3, :]], axis=-2)


def pupil_circle(points: np.ndarray, shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre ``x``, ``y`` and radius ``(*b,)`` of a ``pupil`` shape in ``points: (*b, p, 2)``.

    The centre is midway between the eye corners (``x``) and between the lids (``y``); the radius
    is ``0.42 x`` the lid gap, at most 4.5: narrowed lids (AU6, AU7) hide part of the pupil.
    """
    upper, lower, inner, outer = (point(points, name) for name in shape.points)
    radius = np.clip(0.42 * (lower[..., 1] - upper[..., 1]), 0.0, 4.5)
    return (inner[..., 0] + outer[..., 0]) / 2, (upper[..., 1] + lower[..., 1]) / 2, radius


def face_model() -> dict:
    """The face as JSON-ready data for the viewer's JavaScript: points, neutral positions,
    per-AU motion and shapes (rounded to 0.01)."""
    return {
        "size": list(FACE_SIZE),
        "points": list(POINT_NAMES),
        "neutral": np.round(NEUTRAL, 2).tolist(),
        "motion": np.round(MOTION, 2).tolist(),
        "shapes": [shape.__dict__ | {"points": list(shape.points)} for shape in SHAPES],
        "aus": [{"au": m.au, "facs": m.facs_name, "drawn": m.drawn_as} for m in AU_MOTIONS],
    }
