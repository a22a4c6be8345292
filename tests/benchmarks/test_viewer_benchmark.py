"""benchmarks/viewer.py: its AU gallery draws every AU."""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import viewer  # noqa: E402


def test_the_au_gallery_shows_the_neutral_face_and_15_different_aus(tmp_path):
    path = viewer.write_au_gallery(tmp_path / "aus.png")
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    tiles = [
        image[r * 196 + 20 : (r + 1) * 196, c * 160 : (c + 1) * 160]
        for r in (0, 1)
        for c in range(8)
    ]
    neutral = tiles[0]
    assert all(np.abs(tile - neutral).sum() > 1000 for tile in tiles[1:])
