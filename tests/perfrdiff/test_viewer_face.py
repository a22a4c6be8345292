"""The face drawn from the AUs: each AU alone moves its FACS feature in the FACS direction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from perfrdiff.viewer.channels import AUS
from perfrdiff.viewer.face import (
    AU_MOTIONS,
    NEUTRAL,
    POINT_NAMES,
    bezier_controls,
    face_points,
    point,
    sample_spline,
)


def _y(name):
    return lambda p: point(p, name)[1]


def _height(name):  # image y grows downward: "up" is a larger height
    return lambda p: -point(p, name)[1]


def _distance_x(left, right):
    return lambda p: point(p, right)[0] - point(p, left)[0]


def _distance_y(top, bottom):
    return lambda p: point(p, bottom)[1] - point(p, top)[1]


# Features measured on the drawn geometry, independent of how face.py builds it.
FEATURES = {
    "inner brow height": _height("brow_inner_l"),
    "outer brow height": _height("brow_outer_l"),
    "inner brow gap": _distance_x("brow_inner_l", "brow_inner_r"),
    "cheek height": _height("cheek_l"),
    "eye opening": _distance_y("eye_upper_l", "eye_lower_l"),
    "nose wing height": _height("nose_wing_l"),
    "upper lip height": _height("upper_lip"),
    "lip corner height": _height("mouth_corner_l"),
    "mouth width": _distance_x("mouth_corner_l", "mouth_corner_r"),
    "dimple length": _distance_y("dimple_top_l", "dimple_bottom_l"),
    "chin height": _height("chin"),
    "lip thickness": lambda p: (
        _distance_y("upper_lip", "inner_upper")(p) + _distance_y("inner_lower", "lower_lip")(p)
    ),
    "mouth opening": _distance_y("inner_upper", "inner_lower"),
}

# FACS (Ekman, Friesen & Hager 2002): what each AU alone does to the features above, as
# (feature, +1 grows / -1 shrinks). These are the directions docs/perfrdiff/viewer.md lists.
FACS = {
    "AU1": [("inner brow height", +1)],
    "AU2": [("outer brow height", +1)],
    "AU4": [("inner brow height", -1), ("inner brow gap", -1)],
    "AU6": [("cheek height", +1), ("eye opening", -1)],
    "AU7": [("eye opening", -1)],
    "AU9": [("nose wing height", +1), ("inner brow height", -1)],
    "AU10": [("upper lip height", +1)],
    "AU12": [("lip corner height", +1), ("mouth width", +1)],
    "AU14": [("dimple length", +1)],
    "AU15": [("lip corner height", -1)],
    "AU17": [("chin height", +1)],
    "AU23": [("mouth width", -1), ("lip thickness", -1)],
    "AU24": [("lip thickness", -1)],
    "AU25": [("mouth opening", +1)],
    "AU26": [("mouth opening", +1), ("chin height", -1)],
}

#: A change smaller than this (face units, the face is 200 wide) would not be seen.
VISIBLE = 1.5


def alone(au: str, value: float = 1.0) -> np.ndarray:
    aus = np.zeros(len(AUS))
    aus[AUS.index(au)] = value
    return aus


def test_every_au_has_a_documented_motion_in_channel_order():
    assert tuple(m.au for m in AU_MOTIONS) == AUS
    assert set(FACS) == set(AUS)
    assert all(m.facs_name and m.drawn_as and m.moves for m in AU_MOTIONS)


@pytest.mark.parametrize("au", AUS)
def test_each_au_alone_moves_its_feature_in_the_facs_direction(au):
    neutral, moved = face_points(np.zeros(len(AUS))), face_points(alone(au))
    for feature, sign in FACS[au]:
        change = FEATURES[feature](moved) - FEATURES[feature](neutral)
        assert sign * change >= VISIBLE, (au, feature, change)


@pytest.mark.parametrize("au", AUS)
def test_each_au_moves_the_face_symmetrically(au):
    moved = face_points(alone(au))
    for name in POINT_NAMES:
        if name.endswith("_l"):
            left, right = point(moved, name), point(moved, name[:-2] + "_r")
            assert right[0] == pytest.approx(200 - left[0]) and right[1] == pytest.approx(left[1])


def test_the_neutral_mouth_is_closed_and_no_au_mix_opens_it_negatively():
    rng = np.random.default_rng(0)
    assert FEATURES["mouth opening"](NEUTRAL) == 0
    opening = FEATURES["mouth opening"](face_points(rng.random((500, len(AUS)))))
    assert (opening >= 0).all()


def test_geometry_is_linear_in_each_au_and_clipped_to_0_1():
    for au in AUS:
        half = face_points(alone(au, 0.5))
        np.testing.assert_allclose(half, (face_points(alone(au)) + NEUTRAL) / 2)
        np.testing.assert_array_equal(face_points(alone(au, 1.7)), face_points(alone(au)))
        np.testing.assert_array_equal(face_points(alone(au, -0.4)), NEUTRAL)


def test_face_points_keeps_batch_dimensions_and_rejects_other_widths():
    assert face_points(np.zeros((2, 3, 15))).shape == (2, 3, len(POINT_NAMES), 2)
    with pytest.raises(ValueError, match=r"aus: expected shape \(\*b, 15\), got \(4, 25\)"):
        face_points(np.zeros((4, 25)))


def _catmull_rom_loop(points: np.ndarray, closed: bool, per_segment: int) -> np.ndarray:
    """float64 reference: the uniform Catmull-Rom spline, one point at a time."""
    n = len(points)
    at = (lambda i: points[i % n]) if closed else (lambda i: points[min(max(i, 0), n - 1)])
    out = []
    for i in range(n if closed else n - 1):
        p0, p1, p2, p3 = at(i - 1), at(i), at(i + 1), at(i + 2)
        for t in np.arange(per_segment) / per_segment:
            # The Catmull-Rom polynomial (tension 1/2), written in its power form.
            out.append(
                0.5
                * (
                    2 * p1
                    + (-p0 + p2) * t
                    + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                    + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
                )
            )
    out.append(at(n if closed else n - 1))
    return np.array(out)


@settings(max_examples=40, deadline=None)
@given(
    points=arrays(
        np.float64, st.tuples(st.integers(2, 7), st.just(2)), elements=st.floats(-50, 50)
    ),
    closed=st.booleans(),
    per_segment=st.integers(1, 6),
)
def test_sampled_spline_matches_the_catmull_rom_polynomial(points, closed, per_segment):
    expected = _catmull_rom_loop(points, closed, per_segment)
    np.testing.assert_allclose(sample_spline(points, closed, per_segment), expected, atol=1e-9)


def test_bezier_segments_pass_through_every_point_in_order():
    points = NEUTRAL[:6]
    controls = bezier_controls(points, closed=True)
    np.testing.assert_array_equal(controls[:, 0], points)
    np.testing.assert_array_equal(controls[:, 3], np.roll(points, -1, axis=0))
    assert bezier_controls(points, closed=False).shape == (5, 4, 2)
