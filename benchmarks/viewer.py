"""Benchmark the reaction viewer: page size, time to play in headless Chromium, MP4 export time;
and write the docs' GIF of it.

Reads what ``perfrdiff generate`` wrote (by default the demo's ``runs/demo/generate``; run
``perfrdiff demo`` first). For one item with the real listener and every generated sample
(10 per mode in the demo) it measures:

- the self-contained HTML's size (target: <= 3 MB for a 30 s item);
- in a fresh headless Chromium per repeat, offline: milliseconds from opening the file until the
  page is ready (data decoded, first frame drawn), and from pressing play until the audio clock
  moves (target: playing within 1 s of opening);
- seconds to export the whole item to MP4 with the speaker's audio (target: < 30 s for 30 s),
  and its ratio to the clip's duration.

    python benchmarks/viewer.py runs/demo/generate --json benchmarks/results/viewer.json \\
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


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generate", nargs="?", default="runs/demo/generate", type=Path)
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
    samples = {mode: len(array) for mode, array in item.generated.items()}
    seconds = item.frames / item.fps
    results: dict = {
        "item": args.item,
        "clip_seconds": seconds,
        "samples": samples,
        "cpus": len(os.sched_getaffinity(0)),
    }
    with tempfile.TemporaryDirectory() as scratch:
        page = write_viewer([item], Path(scratch) / "viewer.html")
        results["html_mb"] = page.stat().st_size / 1e6
        if find_chromium():
            runs = [time_to_play(page) for _ in range(args.repeats)]
            results["ready_ms"] = [round(r[0], 1) for r in runs]
            results["ready_in_page_ms"] = [round(r[1], 1) for r in runs]
            results["play_after_click_ms"] = [round(r[2], 1) for r in runs]
        mp4 = []
        for _ in range(args.mp4_repeats):
            start = time.perf_counter()
            write_mp4(item, Path(scratch) / "item.mp4")
            mp4.append(time.perf_counter() - start)
        results["mp4_s"] = [round(s, 2) for s in mp4]
        results["mp4_mb"] = (Path(scratch) / "item.mp4").stat().st_size / 1e6
    if args.gif:
        options = ViewOptions(duration=args.gif_seconds)
        write_gif(item, args.gif, options, every=2, scale=0.75)
        results["gif"] = {"path": str(args.gif), "mb": args.gif.stat().st_size / 1e6}
    if args.gallery:
        write_au_gallery(args.gallery)

    shown = ", ".join(f"{k} {mode}" for mode, k in samples.items())
    print(f"item {args.item}: {seconds:.0f} s, real listener + {shown} samples")
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| HTML size | {results['html_mb']:.2f} MB | <= 3 MB |")
    if "ready_ms" in results:
        print(f"| open -> ready, ms, median (min-max) | {spread(results['ready_ms'])} | |")
        print(
            f"| navigation -> ready (page's clock), ms | {spread(results['ready_in_page_ms'])} | |"
        )
        print(f"| play -> audio moving, ms | {spread(results['play_after_click_ms'])} | |")
        total = [
            a + b for a, b in zip(results["ready_ms"], results["play_after_click_ms"], strict=True)
        ]
        print(f"| open -> playing, ms | {spread(total)} | < 1000 |")
    else:
        print("| time to play | no Chromium on PATH | |")
    median = statistics.median(mp4)
    print(f"| MP4 export, s | {median:.1f} ({min(mp4):.1f}-{max(mp4):.1f}) | < 30 |")
    print(f"| MP4 export / clip duration | {median / seconds:.2f} | < 1 |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
