"""Benchmark the reaction viewer: page size, time to play in headless Chromium, MP4 export time;
and write the docs' GIF of it.

Reads what ``perfrdiff generate`` wrote (by default the demo's ``runs/demo/run/generate``; run
``perfrdiff demo`` first). For one item with the real listener and every generated sample
(10 per mode in the demo) it measures:

- the self-contained HTML's size (target: <= 3 MB for a 30 s item);
- in a fresh headless Chromium per repeat, offline: milliseconds from opening the file until the
  page is ready (data decoded, first frame drawn), and from pressing play until the audio clock
  moves (target: playing within 1 s of opening);
- seconds to export the whole item to MP4 with the speaker's audio (target: < 30 s for 30 s),
  and its ratio to the clip's duration.

    python benchmarks/viewer.py runs/demo/run/generate --json benchmarks/results/viewer.json \\
        --gif docs/perfrdiff/viewer.gif --gallery docs/perfrdiff/viewer_aus.png

Timings on a shared machine are noisy: each is repeated and printed as median (min-max).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from perfrdiff.viewer import ViewerItem, ViewOptions, load_items, write_viewer
from perfrdiff.viewer.channels import AUS
from perfrdiff.viewer.headless import HeadlessPage, find_chromium
from perfrdiff.viewer.raster import FrameRenderer
from perfrdiff.viewer.video import write_gif, write_mp4
from PIL import Image, ImageDraw


def time_to_play(page: Path) -> tuple[float, float, float]:
    """Milliseconds: from asking the browser to open the file until the page is ready (as seen
    from here: includes the DevTools round trips), the same inside the page (from navigation
    start, the page's own clock), and from pressing play until the audio clock moves."""
    with HeadlessPage() as browser:
        opened = time.perf_counter()
        browser.open(page)
        inside = browser.wait_until("window.perfrdiffViewer && perfrdiffViewer.readyAt")
        ready = (time.perf_counter() - opened) * 1000
        clicked = browser.evaluate(
            "document.getElementById('play').click(), performance.now()", gesture=True
        )
        playing = browser.wait_until("perfrdiffViewer.playingAt")
        if browser.errors:
            raise RuntimeError(f"the page logged errors: {browser.errors}")
    return ready, inside, playing - clicked


def write_au_gallery(path: Path) -> Path:
    """One face per AU switched on alone (and the neutral face), labelled, as a PNG."""
    frames = np.zeros((len(AUS) + 1, 25), dtype=np.float32)
    frames[1:, : len(AUS)] = np.eye(len(AUS))
    item = ViewerItem(0, "-", "-/-/-/speaker", "-/-/-/listener", frames, frames, {}, 25.0)
    renderer = FrameRenderer(item)
    gallery = Image.new("RGB", (160 * 8, 196 * 2), "#ffffff")
    for f, label in enumerate(("neutral", *AUS)):
        face = Image.fromarray(renderer.render(f)).crop((8, 22, 168, 218))
        ImageDraw.Draw(face).text((4, 2), label, fill="#222222")
        gallery.paste(face, ((f % 8) * 160, (f // 8) * 196))
    path.parent.mkdir(parents=True, exist_ok=True)
    gallery.save(path, optimize=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generate", nargs="?", default="runs/demo/run/generate", type=Path)
    parser.add_argument("--data-root", default=None, help="dataset root (default: the run's)")
    parser.add_argument("--item", type=int, default=0, help="mirrored item index (default: 0)")
    parser.add_argument("--repeats", type=int, default=5, help="browser repeats (default: 5)")
    parser.add_argument("--mp4-repeats", type=int, default=2, help="MP4 repeats (default: 2)")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    parser.add_argument("--gif", type=Path, default=None, help="write the docs' GIF here")
    parser.add_argument("--gallery", type=Path, default=None, help="write the AU gallery PNG here")
    parser.add_argument("--gif-seconds", type=float, default=6.0, help="GIF length (default: 6)")
    args = parser.parse_args()

    (item,) = load_items(args.generate, [args.item], args.data_root)
    samples = ", ".join(f"{len(a)} {mode}" for mode, a in item.generated.items())
    seconds = item.frames / item.fps
    with tempfile.TemporaryDirectory() as scratch:
        page = write_viewer([item], Path(scratch) / "viewer.html")
        runs = [time_to_play(page) for _ in range(args.repeats)] if find_chromium() else []
        mp4 = []
        for _ in range(args.mp4_repeats):
            start = time.perf_counter()
            write_mp4(item, Path(scratch) / "item.mp4")
            mp4.append(time.perf_counter() - start)
        sizes = {
            "html": page.stat().st_size / 1e6,
            "mp4": (Path(scratch) / "item.mp4").stat().st_size / 1e6,
        }
    raw = {
        "open_to_ready_ms": [round(r[0], 1) for r in runs],
        "navigation_to_ready_ms": [round(r[1], 1) for r in runs],
        "play_to_audio_moving_ms": [round(r[2], 1) for r in runs],
        "open_to_playing_ms": [round(r[0] + r[2], 1) for r in runs],
        "mp4_export_s": [round(s, 2) for s in mp4],
    }
    results = {
        "item": args.item,
        "clip_seconds": seconds,
        "samples": samples,
        "cpus": len(os.sched_getaffinity(0)),
        "measures": measures(sizes, raw, seconds),
        "runs": raw,
    }
    if args.gif:
        write_gif(item, args.gif, ViewOptions(duration=args.gif_seconds), every=2, scale=0.75)
        results["gif_mb"] = args.gif.stat().st_size / 1e6
    if args.gallery:
        write_au_gallery(args.gallery)

    print(f"item {args.item}: {seconds:.0f} s, real listener + {samples} samples")
    print("| measure | median | min | max | target |")
    print("|---|---|---|---|---|")
    for row in results["measures"]:
        cells = [f"{row[key]:.3g}" for key in ("median", "min", "max")]
        print(f"| {row['measure']} | {' | '.join(cells)} | {row['target']} |")
    if not runs:
        print("(no Chromium on PATH: time to play not measured)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


def measures(sizes: dict[str, float], raw: dict[str, list[float]], seconds: float) -> list[dict]:
    """One record per measure: median, min and max over the runs, and the issue's target."""
    rows = [
        ("HTML size, MB", [sizes["html"]], "<= 3"),
        (
            "open the file -> page ready, ms (DevTools round trips included)",
            raw["open_to_ready_ms"],
            "",
        ),
        ("navigation -> page ready, ms (the page's own clock)", raw["navigation_to_ready_ms"], ""),
        ("press play -> audio clock moving, ms", raw["play_to_audio_moving_ms"], ""),
        ("open the file -> playing, ms", raw["open_to_playing_ms"], "< 1000"),
        ("MP4 export of the whole item with audio, s", raw["mp4_export_s"], "< 30"),
        ("MP4 export / clip duration", [s / seconds for s in raw["mp4_export_s"]], "< 1"),
        ("MP4 size, MB", [sizes["mp4"]], ""),
    ]
    return [
        {
            "measure": name,
            "median": statistics.median(v),
            "min": min(v),
            "max": max(v),
            "runs": len(v),
            "target": target,
        }
        for name, v, target in rows
        if v
    ]


if __name__ == "__main__":
    main()
