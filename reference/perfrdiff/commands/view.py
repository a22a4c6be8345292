"""Write an offline HTML viewer of generated reactions (and optionally MP4 / GIF videos).

Reads what `perfrdiff generate` wrote (<generate>/<mode>/predictions.npy and its .json sidecar)
and, from the dataset, each chosen item's speaker audio and the speaker's and real listener's
emotion files. The page is one self-contained file (inline script, data and audio): it plays the
speaker's audio and animates a face for the speaker, the real listener and any of the K samples
of every mode, side by side, with the emotion curves and the split's metrics when evaluate wrote
them. --mp4 (needs the video extra: pip install "weditlib[video]") and --gif render the same
panels to <out stem>_item<k>.mp4 / .gif beside the page.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import time
from pathlib import Path

from perfrdiff.commands.common import check_output_file
from perfrdiff.viewer.encoding import AUDIO_RATE, MAX_FRAMES

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "generate",
        nargs="?",
        default="runs/demo/run/generate",
        help="folder written by perfrdiff generate (default: runs/demo/run/generate)",
    )
    parser.add_argument(
        "--data-root", default=None, help="dataset root (default: the generating run's data.root)"
    )
    parser.add_argument("--split", default=None, help="split (default: the predictions' own)")
    parser.add_argument(
        "--items", type=int, nargs="+", default=[0], help="mirrored item indices (default: 0)"
    )
    parser.add_argument("--out", default=None, help="HTML file (default: <generate>/viewer.html)")
    parser.add_argument("--start", type=float, default=0.0, help="seconds to skip (default: 0)")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds to show (default: to the end)"
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=MAX_FRAMES,
        help=f"embed at most this many frames per sequence, keeping every ceil(T / max)-th "
        f"(default: {MAX_FRAMES})",
    )
    parser.add_argument(
        "--max-samples", type=int, default=None, help="samples per mode in the page (default: all)"
    )
    parser.add_argument(
        "--audio-rate",
        type=int,
        default=AUDIO_RATE,
        help=f"sample rate of the embedded audio (default: {AUDIO_RATE})",
    )
    parser.add_argument("--no-audio", action="store_true", help="leave the speaker's audio out")
    parser.add_argument("--channel", default="AU12", help="curve shown first (default: AU12)")
    parser.add_argument("--mp4", action="store_true", help="also write an MP4 per item")
    parser.add_argument("--gif", action="store_true", help="also write a GIF per item (no sound)")
    parser.add_argument(
        "--sample", type=int, default=0, help="generated sample the videos show (default: 0)"
    )
    parser.add_argument(
        "--gif-every", type=int, default=2, help="GIF keeps every n-th frame (default: 2)"
    )


def run(args: argparse.Namespace) -> int:
    from perfrdiff.viewer import ViewOptions, load_items, write_viewer
    from perfrdiff.viewer.video import write_gif, write_mp4

    out = Path(args.out) if args.out else Path(args.generate) / "viewer.html"
    check_output_file(out, "--out")
    if args.mp4 and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ValueError("--mp4 needs imageio-ffmpeg: pip install 'weditlib[video]'")
    options = ViewOptions(
        start=args.start,
        duration=args.duration,
        max_frames=args.max_frames,
        max_samples=args.max_samples,
        audio_rate=args.audio_rate,
        channel=args.channel,
    )
    items = load_items(
        args.generate, args.items, args.data_root, args.split, audio=not args.no_audio
    )
    path = write_viewer(items, out, options)
    print(f"viewer: {path} ({path.stat().st_size / 1e6:.2f} MB)")
    for item in items:
        for wanted, suffix, writer in (
            (args.mp4, ".mp4", write_mp4),
            (args.gif, ".gif", write_gif),
        ):
            if not wanted:
                continue
            start = time.perf_counter()
            target = out.with_name(f"{out.stem}_item{item.index}{suffix}")
            extra = {"every": args.gif_every} if suffix == ".gif" else {}
            writer(item, target, options, args.sample, **extra)
            print(f"video:  {target} ({time.perf_counter() - start:.1f} s)")
    return 0
