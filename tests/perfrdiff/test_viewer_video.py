"""Video export: the raster frames show the same faces, MP4 carries the audio, GIF plays at the
item's speed."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from perfrdiff.viewer import ViewOptions, load_items
from perfrdiff.viewer.raster import FrameRenderer
from perfrdiff.viewer.video import read_video_frames, write_gif, write_mp4
from PIL import Image

from tests.perfrdiff.viewer_outputs import write_generate_output


@pytest.fixture(scope="module")
def item(synthetic_root, tmp_path_factory):
    folder = write_generate_output(tmp_path_factory.mktemp("generate"), synthetic_root)
    return load_items(folder, [1], synthetic_root)[0]


def generic_mouth(frame: np.ndarray) -> np.ndarray:
    """The generic panel's (third) mouth region of a rendered frame."""
    return frame[150:210, 2 * 280 + 60 : 2 * 280 + 120]


def test_frames_show_the_generic_mouth_open_only_when_au25_26_are_on(item):
    renderer = FrameRenderer(item, ViewOptions(duration=2))
    assert len(renderer) == 50 and renderer.size == (1120, 352)
    closed, opened = renderer.render(10), renderer.render(35)  # second 0: closed; second 1: open
    assert closed.shape == (352, 1120, 3) and closed.dtype == np.uint8
    dark = lambda image: (generic_mouth(image).sum(axis=-1) < 250).sum()  # noqa: E731
    assert dark(opened) > dark(closed) + 100
    np.testing.assert_array_equal(renderer.render(10), closed)  # deterministic


def test_a_frame_outside_the_window_is_refused(item):
    with pytest.raises(ValueError, match=r"frame: expected 0..49, got 50"):
        FrameRenderer(item, ViewOptions(duration=2)).render(50)


def test_mp4_has_every_frame_and_the_speakers_audio(item, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = write_mp4(item, tmp_path / "item.mp4", ViewOptions(start=1, duration=2))
    frames = read_video_frames(path)
    assert frames.shape == (50, 352, 1120, 3)
    probe = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr
    assert "Duration: 00:00:02.0" in probe.stderr


def test_gif_keeps_every_nth_frame_at_the_items_speed(item, tmp_path):
    path = write_gif(item, tmp_path / "item.gif", ViewOptions(duration=2), every=5, scale=0.5)
    with Image.open(path) as gif:
        assert gif.n_frames == 10 and gif.size == (560, 176)
        assert gif.info["duration"] == 200 and gif.info["loop"] == 0
