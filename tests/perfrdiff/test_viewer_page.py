"""The viewer page: what it reads from generate's output, how it encodes it, and its size."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from perfrdiff.cli import main
from perfrdiff.commands.demo import write_demo_viewer
from perfrdiff.data import MissingFileError, SplitIndex, clip_file, read_emotion
from perfrdiff.generation.reactions import save_predictions
from perfrdiff.viewer import ViewerItem, ViewOptions, load_items, write_viewer
from perfrdiff.viewer.encoding import dequantise, frame_stride, quantise
from perfrdiff.viewer.html import render_page
from perfrdiff.viewer.page import page_payload

from tests.perfrdiff.viewer_outputs import fake_predictions, write_generate_output


@pytest.fixture(scope="module")
def generated(synthetic_root, tmp_path_factory):
    return write_generate_output(tmp_path_factory.mktemp("generate"), synthetic_root)


def payload_of(html: str) -> dict:
    match = re.search(
        r'<script id="viewer-data" type="application/json">(.*?)</script>', html, re.S
    )
    return json.loads(match.group(1))


def test_items_come_from_the_predictions_and_the_split_files(generated, synthetic_root):
    (item,) = load_items(generated, [2], synthetic_root)
    pair = SplitIndex(synthetic_root, "test").items[2]
    assert (item.speaker_clip, item.listener_clip, item.split) == (
        pair.speaker,
        pair.listener,
        "test",
    )
    listener = read_emotion(clip_file(synthetic_root, "test", "emotion", pair.listener))
    np.testing.assert_array_equal(item.listener, listener)
    saved = np.load(generated / "personalised" / "predictions.npy")
    np.testing.assert_array_equal(item.generated["personalised"], saved[2])
    assert list(item.generated) == ["generic", "personalised"]
    assert item.fps == 25 and item.sample_rate == 16000 and item.audio.ndim == 1


def test_an_item_outside_the_predictions_is_refused_with_the_count(generated, synthetic_root):
    with pytest.raises(ValueError, match=r"items: item 4 is outside the 4 items"):
        load_items(generated, [4], synthetic_root)


def test_predictions_of_another_length_than_the_real_listener_are_named(tmp_path, synthetic_root):
    n = len(SplitIndex(synthetic_root, "test"))
    path = tmp_path / "generic" / "predictions.npy"
    save_predictions(fake_predictions(n, 2, 700, 0), path, {"split": "test"})
    with pytest.raises(ValueError, match=rf"{path}: item 0 has 700 frames, the real listener 750"):
        load_items(tmp_path, [0], synthetic_root)


def test_a_folder_without_predictions_is_named(tmp_path, synthetic_root):
    with pytest.raises(MissingFileError, match=rf"{tmp_path}: no <mode>/predictions.npy"):
        load_items(tmp_path, [0], synthetic_root)


def test_another_split_than_the_sidecars_is_refused(generated, synthetic_root):
    with pytest.raises(ValueError, match=r"split: 'val' was asked for, but .* 'test'"):
        load_items(generated, [0], synthetic_root, split="val")


def test_the_data_root_defaults_to_the_generating_runs(tmp_path, synthetic_root):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(f"data:\n  root: {synthetic_root}\n")
    folder = write_generate_output(tmp_path / "generate", synthetic_root, run_dir=run_dir)
    assert load_items(folder, [0])[0].listener.shape == (750, 25)


def test_a_missing_speaker_audio_file_is_named(tmp_path, synthetic_root):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    speaker = SplitIndex(root, "test").items[0].speaker
    audio = clip_file(root, "test", "audio", speaker)
    audio.unlink()
    folder = write_generate_output(tmp_path / "generate", root)
    with pytest.raises(MissingFileError, match=re.escape(str(audio))):
        load_items(folder, [0], root)
    assert load_items(folder, [0], root, audio=False)[0].audio is None


def test_the_metrics_shown_are_the_ones_evaluate_wrote(tmp_path, synthetic_root):
    folder = write_generate_output(tmp_path / "generate", synthetic_root)
    metrics = {"predictions": {"FRCorr": 0.25, "FRdist": 90.5, "join_ratio": 1.1}}
    (folder / "generic" / "metrics.json").write_text(json.dumps(metrics))
    (item,) = load_items(folder, [0], synthetic_root)
    assert item.metrics == {"generic": {"FRCorr": 0.25, "FRdist": 90.5}}


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 30), st.integers(1, 25)),
        elements=st.floats(-1e3, 1e3, allow_subnormal=False),
    )
)
def test_quantised_sequences_are_within_half_a_step_per_channel(sequence):
    decoded = dequantise(quantise(sequence), sequence.shape[1])
    step = (sequence.max(axis=0) - sequence.min(axis=0)) / 255
    assert np.all(np.abs(decoded - sequence) <= step / 2 + 1e-6 * (1 + np.abs(sequence)))


def test_quantise_rejects_nan():
    with pytest.raises(ValueError, match="sequence: contains NaN"):
        quantise(np.array([[0.0, np.nan]]))


@pytest.mark.parametrize(
    ("frames", "cap", "stride"),
    [(750, 4500, 1), (4500, 4500, 1), (4501, 4500, 2), (20000, 4500, 5)],
)
def test_long_sequences_keep_every_ceil_frames_over_cap_th_frame(frames, cap, stride):
    assert frame_stride(frames, cap) == stride
    assert len(range(0, frames, stride)) <= cap


def thirty_second_item(
    samples: int = 10, rate: int | None = 44100, frames: int = 750, fps: float = 25
) -> ViewerItem:
    """A REACT-sized item: speech-like audio at 44.1 kHz (``rate`` None: none) and
    ``samples`` samples of two modes."""
    rng = np.random.default_rng(0)
    audio = None
    if rate is not None:
        time = np.arange(int(frames / fps * rate)) / rate
        audio = 0.3 * np.sin(2 * np.pi * 140 * time) * (np.sin(2 * np.pi * 3 * time) > 0)
        audio = (audio + 0.02 * rng.normal(size=time.shape)).astype(np.float32)
    predictions = fake_predictions(2, samples, frames, seed=1)
    real = rng.random((2, frames, 25)).astype(np.float32)
    return ViewerItem(
        index=0,
        split="test",
        speaker_clip="NoXI/s/Expert_video/1",
        listener_clip="NoXI/s/Novice_video/1",
        speaker=real[0],
        listener=real[1],
        generated={"generic": predictions[0], "personalised": predictions[1]},
        fps=fps,
        audio=audio,
        sample_rate=rate,
    )


def test_a_30_s_item_with_the_real_listener_and_2_x_10_samples_is_at_most_3_mb(tmp_path):
    path = write_viewer([thirty_second_item()], tmp_path / "viewer.html")
    size = path.stat().st_size
    print(f"\nviewer of one 30 s item, real listener + 2 x 10 samples: {size / 1e6:.2f} MB")
    assert size <= 3_000_000
    item = payload_of(path.read_text())["items"][0]
    assert [len(item["modes"][m]) for m in ("generic", "personalised")] == [10, 10]
    assert item["frames"] == 750 and item["stride"] == 1


def test_a_long_session_is_subsampled_to_the_cap(tmp_path):
    item = thirty_second_item(samples=10, rate=None, frames=20000, fps=30)
    options = ViewOptions(max_frames=4500)
    spec = page_payload([item], options)["items"][0]
    assert (spec["stride"], spec["frames"], spec["fps"], spec["sourceFps"]) == (5, 4000, 6.0, 30)
    size = write_viewer([item], tmp_path / "long.html", options).stat().st_size
    every_frame = 20000 * 25 * (2 + 2 * 10)  # one byte per value of every frame, 22 sequences
    assert size < every_frame / 3


def test_a_window_cuts_frames_and_audio_together():
    item = thirty_second_item(samples=2)
    spec = page_payload([item], ViewOptions(start=10, duration=4))["items"][0]
    assert (spec["start"], spec["frames"]) == (10.0, 100)
    assert len(dequantise(spec["sequences"]["listener"], 25)) == 100
    np.testing.assert_allclose(
        dequantise(spec["sequences"]["listener"], 25), item.listener[250:350], atol=1 / 255
    )
    header = len("data:audio/wav;base64,")
    import base64

    wav = base64.b64decode(spec["audio"][header:])
    assert len(wav) - 44 == 4 * 16000 * 2  # 4 s of 16-bit mono at 16 kHz


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": -1}, "start: expected seconds >= 0"),
        ({"duration": 0}, "duration: expected seconds > 0"),
        ({"max_frames": 0}, "max_frames: expected >= 1"),
        ({"channel": "AU3"}, "channel: expected one of"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        ViewOptions(**options)


def test_a_start_past_the_end_is_refused():
    with pytest.raises(ValueError, match=r"start: 31.0 s is past the end of item 0"):
        page_payload([thirty_second_item(samples=1)], ViewOptions(start=31.0))


def test_the_page_loads_nothing_from_elsewhere_and_cannot_be_closed_by_its_data(tmp_path):
    item = thirty_second_item(samples=1)
    html = render_page(page_payload([item], ViewOptions(title="</script><b>x")))
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", html)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "&lt;/script&gt;&lt;b&gt;x" in html
    assert payload_of(html)["title"] == "</script><b>x"


def test_perfrdiff_view_writes_the_page_for_the_chosen_items(generated, synthetic_root, tmp_path):
    out = tmp_path / "page.html"
    argv = ["view", str(generated), "--data-root", str(synthetic_root), "--items", "1", "3"]
    assert main([*argv, "--out", str(out), "--max-samples", "2"]) == 0
    items = payload_of(out.read_text())["items"]
    assert [i["index"] for i in items] == [1, 3]
    assert all(len(i["modes"]["generic"]) == 2 for i in items)


def test_mp4_without_the_video_extra_says_what_to_install(generated, synthetic_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if not installed
    with pytest.raises(
        ValueError, match=r"--mp4 needs imageio-ffmpeg: pip install 'weditlib\[video\]'"
    ):
        main(["view", str(generated), "--data-root", str(synthetic_root), "--mp4"])


def test_the_demo_writes_a_viewer_with_its_results(tmp_path, synthetic_root):
    # The demo's layout: <out>/run/generate, <out>/results, <out>/viewer.html.
    write_generate_output(tmp_path / "run" / "generate", synthetic_root)
    (tmp_path / "results").mkdir()
    results = {"generic": {"FRCorr": 0.3}, "chance": {"FRCorr": 0.1}}
    (tmp_path / "results" / "metrics.json").write_text(json.dumps(results))
    path = write_demo_viewer(tmp_path / "run" / "generate", synthetic_root, 4, tmp_path)
    assert path == tmp_path / "viewer.html"
    items = payload_of(path.read_text())["items"]
    assert [i["index"] for i in items] == [0, 1, 2]
    assert items[0]["metrics"] == results
