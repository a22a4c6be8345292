"""The page in headless Chromium, offline: it plays, the faces follow the audio, and its
JavaScript draws the same geometry as Python. Skipped only when no Chromium binary exists."""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pytest
from perfrdiff.viewer import ViewOptions, face_points, load_items, write_viewer
from perfrdiff.viewer.face import POINT_NAMES, bezier_controls
from perfrdiff.viewer.headless import HeadlessPage, find_chromium

from tests.perfrdiff.viewer_outputs import FPS, mouth_open, write_generate_output

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="no Chromium binary on PATH (CI installs Debian's chromium)"
)

# Reads the displayed frame and the audio clock in one animation frame, right after the viewer's
# own requestAnimationFrame callback has drawn that frame (callbacks run in registration order,
# and the viewer registers its next one while drawing).
SYNC = """new Promise((done) => requestAnimationFrame(() => {
  const panel = document.querySelector('[data-panel="generic"]');
  const mouth = panel.querySelector('[data-shape="mouth"]').getBBox();
  done({audio: document.getElementById("audio").currentTime, drawn: +document.body.dataset.time,
        frame: +panel.querySelector("svg.face").dataset.frame, mouth: mouth.height});
}))"""


@pytest.fixture(scope="module")
def page(synthetic_root, tmp_path_factory):
    folder = write_generate_output(tmp_path_factory.mktemp("generate"), synthetic_root)
    path = tmp_path_factory.mktemp("viewer") / "viewer.html"
    return write_viewer(load_items(folder, [0], synthetic_root), path, ViewOptions())


def test_the_page_plays_offline_and_the_faces_follow_the_audio(page):
    with HeadlessPage() as browser:
        browser.open(page)
        ready = browser.wait_until("window.perfrdiffViewer && perfrdiffViewer.readyAt")
        clicked = browser.evaluate(
            "document.getElementById('play').click(), performance.now()", gesture=True
        )
        browser.wait_until("perfrdiffViewer.playingAt")
        playing = browser.evaluate("perfrdiffViewer.playingAt")
        # The audio clock starts in coarse steps while the output starts: judge steady playback.
        browser.wait_until("document.getElementById('audio').currentTime > 0.3")
        print(
            f"\npage ready {ready:.0f} ms after opening, playing {playing - clicked:.0f} ms later"
        )
        readings = []
        deadline = time.monotonic() + 10
        # Until both a closed-mouth (even second) and an open-mouth (odd second) frame were seen.
        while len({mouth_open(r["frame"]) for r in readings}) < 2 and time.monotonic() < deadline:
            readings.append(browser.evaluate(SYNC))
            time.sleep(0.1)
        assert browser.evaluate("document.getElementById('audio').paused") is False
        assert browser.errors == []
    frames = [r["frame"] for r in readings]
    assert frames == sorted(frames) and frames[-1] > frames[0], "the animation did not advance"
    for r in readings:
        # The face shows the frame of the clock time it was drawn for, and that time is within
        # one frame of the audio clock read just after (in the same animation frame).
        assert r["frame"] == math.floor(r["drawn"] * FPS + 1e-6), r
        assert abs(r["audio"] - r["drawn"]) * FPS <= 1.0, r
    closed = [r["mouth"] for r in readings if not mouth_open(r["frame"])]
    opened = [r["mouth"] for r in readings if mouth_open(r["frame"])]
    assert closed and opened, readings
    # AU25 + AU26 open the mouth by 17 face units (x 0.8 for the 160-px wide face).
    assert min(opened) > max(closed) + 10, readings


def test_the_javascript_draws_the_python_geometry(page):
    rng = np.random.default_rng(3)
    aus = rng.uniform(-0.2, 1.2, size=(5, 15))  # outside [0, 1] too: both must clip
    with HeadlessPage() as browser:
        browser.open(page)
        browser.wait_until("window.perfrdiffViewer && perfrdiffViewer.readyAt")
        js_points = browser.evaluate(
            f"{json.dumps(aus.tolist())}.map((a) => perfrdiffViewer.facePoints(a))"
        )
        path = browser.evaluate(
            "perfrdiffViewer.splinePath(perfrdiffViewer.facePoints(new Array(15).fill(0))"
            ".slice(0, 4), true)"
        )
        assert browser.errors == []
    np.testing.assert_allclose(np.array(js_points), face_points(aus), atol=1e-9)
    assert len(js_points[0]) == len(POINT_NAMES)
    controls = bezier_controls(face_points(np.zeros(15))[:4], closed=True)
    numbers = np.array([float(x) for x in re.findall(r"-?\d+\.\d+", path)])
    expected = np.concatenate([controls[0, 0], controls[:, 1:].ravel()])
    np.testing.assert_allclose(numbers, expected, atol=0.006)  # the path prints 2 decimals


def test_a_page_without_audio_plays_on_its_own_clock(synthetic_root, tmp_path):
    folder = write_generate_output(tmp_path / "generate", synthetic_root, samples=1)
    items = load_items(folder, [1], synthetic_root, audio=False)
    page = write_viewer(items, tmp_path / "silent.html", ViewOptions(duration=3))
    with HeadlessPage() as browser:
        browser.open(page)
        browser.wait_until("window.perfrdiffViewer && perfrdiffViewer.readyAt")
        assert browser.evaluate("document.getElementById('audio').hidden") is True
        browser.evaluate("document.getElementById('play').click()", gesture=True)
        frame = browser.wait_until("+document.body.dataset.frame >= 5", timeout=5)
        assert frame and browser.errors == []
