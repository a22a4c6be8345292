"""Write the rendered panels to an MP4 with the speaker's audio (imageio-ffmpeg) or to a GIF.

MP4 needs the ``video`` extra (``pip install "weditlib[video]"``): imageio-ffmpeg ships its own
ffmpeg binary, so nothing else is installed. H.264 video (``yuv420p``, plays in browsers and
slide software) and AAC audio. GIF needs only Pillow (already there with matplotlib); it has no
sound and at most 50 frames per second, so it keeps every ``n``-th frame.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from perfrdiff.viewer.encoding import wav_bytes
from perfrdiff.viewer.items import ViewerItem
from perfrdiff.viewer.page import ViewOptions, audio_window, frame_window
from perfrdiff.viewer.raster import FrameRenderer

log = logging.getLogger(__name__)


def _imageio_ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise ImportError(
            "MP4 export needs imageio-ffmpeg: pip install 'weditlib[video]' "
            "(or pip install imageio-ffmpeg)"
        ) from error
    return imageio_ffmpeg


def write_mp4(
    item: ViewerItem,
    path: str | Path,
    options: ViewOptions | None = None,
    sample: int = 0,
    crf: int = 23,
) -> Path:
    """Render ``item`` (every frame of the ``options`` window) to an H.264 MP4 at ``path``, with
    the speaker's audio of the same window muxed in (when the item has audio); returns the path.

    ``sample`` picks the generated sample each mode shows; ``crf`` is x264's quality (lower is
    better and larger).
    """
    imageio_ffmpeg = _imageio_ffmpeg()
    options = options or ViewOptions()
    renderer = FrameRenderer(item, options, sample)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="perfrdiff-video-") as scratch:
        audio_path = _audio_file(item, options, Path(scratch))
        writer = imageio_ffmpeg.write_frames(
            str(path),
            renderer.size,
            fps=renderer.fps,
            codec="libx264",
            macro_block_size=16,
            ffmpeg_log_level="error",
            output_params=["-preset", "veryfast", "-crf", str(crf), "-movflags", "+faststart"],
            audio_path=audio_path,
            audio_codec="aac" if audio_path else None,
        )
        writer.send(None)  # start ffmpeg
        try:
            for frame in range(len(renderer)):
                writer.send(renderer.render(frame))
        finally:
            writer.close()
    log.info("wrote %s (%d frames at %.3g fps)", path, len(renderer), renderer.fps)
    return path


def _audio_file(item: ViewerItem, options: ViewOptions, folder: Path) -> str | None:
    first, stop, _ = frame_window(item, options)
    wave = audio_window(item, first, stop)
    if wave is None or item.sample_rate is None:
        return None
    path = folder / "speaker.wav"
    path.write_bytes(wav_bytes(wave, item.sample_rate))
    return str(path)


def write_gif(
    item: ViewerItem,
    path: str | Path,
    options: ViewOptions | None = None,
    sample: int = 0,
    every: int = 2,
    scale: float = 1.0,
) -> Path:
    """Render every ``every``-th frame of ``item`` to an animated GIF (no sound) at ``path``,
    resized by ``scale``; plays at the item's speed. Returns the path."""
    if every < 1 or not 0 < scale <= 4:
        raise ValueError(f"every must be >= 1 and scale in (0, 4], got {every} and {scale}")
    renderer = FrameRenderer(item, options, sample)
    size = tuple(round(side * scale) for side in renderer.size)
    images = (Image.fromarray(renderer.render(f)) for f in range(0, len(renderer), every))
    if scale != 1.0:
        images = (image.resize(size, Image.Resampling.LANCZOS) for image in images)
    first = next(images)
    # One palette for every frame (the colours are the face's, fixed): quantising against it is
    # ~10x faster than a palette per frame; no dithering keeps flat fills flat (and small).
    palette = first.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    frames = [
        image.quantize(palette=palette, dither=Image.Dither.NONE)
        for image in itertools.chain([first], images)
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    milliseconds = max(20, round(1000 * every / renderer.fps))  # GIF delays: 10 ms units
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=milliseconds, loop=0)
    log.info("wrote %s (%d frames, %d ms each)", path, len(frames), milliseconds)
    return path


def read_video_frames(path: str | Path) -> np.ndarray:
    """Frames ``(f, h, w, 3)`` uint8 of a video file (imageio-ffmpeg; used by the tests)."""
    imageio_ffmpeg = _imageio_ffmpeg()
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    width, height = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]
    return np.stack(frames)
