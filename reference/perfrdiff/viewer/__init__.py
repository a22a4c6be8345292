"""See the reactions: a face drawn from the 25-d emotion, an offline HTML viewer, video export.

- :mod:`.face`: the face's geometry, one definition for the page and the video.
- :mod:`.items`: what ``perfrdiff generate`` wrote, and the dataset's audio and emotion files.
- :mod:`.page` / :mod:`.html`: the self-contained page.
- :mod:`.raster` / :mod:`.video`: frames as images, MP4 (with audio) and GIF.
"""

from perfrdiff.viewer.face import AU_MOTIONS, face_points
from perfrdiff.viewer.html import write_viewer
from perfrdiff.viewer.items import ViewerItem, load_items
from perfrdiff.viewer.page import ViewOptions

__all__ = ["AU_MOTIONS", "ViewOptions", "ViewerItem", "face_points", "load_items", "write_viewer"]
