"""See the reactions: a face drawn from the 25-d emotion, an offline HTML viewer, video export.

- :mod:`.face`: the face's geometry from the 15 AUs, one definition for the page and the video.
- :mod:`.items`: what ``perfrdiff generate`` wrote, and the dataset's audio and emotion files.
- :mod:`.page`, :mod:`.encoding`, :mod:`.html`: the self-contained page and what it embeds.
- :mod:`.raster`, :mod:`.video`: frames as images; MP4 (with the speaker's audio) and GIF.
- :mod:`.headless`: open a page in headless Chromium, offline (tests and benchmark).
"""

from perfrdiff.viewer.face import AU_MOTIONS, face_points
from perfrdiff.viewer.html import write_viewer
from perfrdiff.viewer.items import ViewerItem, load_items
from perfrdiff.viewer.page import ViewOptions
from perfrdiff.viewer.video import write_gif, write_mp4

__all__ = [
    "AU_MOTIONS",
    "ViewOptions",
    "ViewerItem",
    "face_points",
    "load_items",
    "write_gif",
    "write_mp4",
    "write_viewer",
]
