"""Pictures made of titled panels, drawn with numpy and Pillow (no matplotlib: no layout pass over every text, no
font cache to build).

A panel is an RGB picture scaled to a common width with nearest-neighbour pixels; lines and points are drawn on it
supersampled (twice the size, then averaged down: smooth edges, image pixels unchanged), text at full size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import IO

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: supersampling factor of lines and points
SUPERSAMPLE = 2
#: white space around panels, pixels
MARGIN = 12


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in scalable font at ``size`` pixels."""
    return ImageFont.load_default(size=size)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 of an (H, W, 3) uint8 picture, or of an (H, W) grey frame in [0, 1] (a label map or any
    frame above 1 is shown from 0 to its maximum)."""
    img = np.asarray(image)
    if img.ndim == 3:
        return img.astype(np.uint8, copy=False)
    img = img.astype(np.float64)
    grey = np.clip(img / max(1.0, float(img.max())), 0, 1)
    return np.repeat((grey * 255).round().astype(np.uint8)[..., None], 3, axis=-1)


class Panel:
    """One picture scaled to ``width`` pixels, to draw lines, points and text on in source pixel coordinates
    (x, y: pixel centres at integers, as matplotlib's ``imshow`` places them).

    Args:
        image: (H, W, 3) uint8 RGB or (H, W) grey (see :func:`to_rgb`).
        width: width of the panel in pixels.
        title: the title drawn above it.
    """

    def __init__(self, image: np.ndarray, width: int, title: str = "") -> None:
        rgb = to_rgb(image)
        h, w = rgb.shape[:2]
        self.scale = width / w
        self.title = title
        size = (width, max(1, round(h * self.scale)))
        self._big = Image.fromarray(rgb).resize((size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE), Image.NEAREST)
        self._draw = ImageDraw.Draw(self._big)
        self._texts: list[tuple[tuple[float, float], str, tuple[int, int, int], int]] = []

    def xy(self, points: np.ndarray, factor: float = 1.0) -> list[tuple[float, float]]:
        """Panel coordinates (times ``factor``) of (N, 2) source points (x, y)."""
        p = (np.asarray(points, dtype=np.float64) + 0.5) * self.scale * factor
        return [tuple(q) for q in p]

    def line(self, points: np.ndarray, colour: str | tuple[int, int, int], width: float = 1.6) -> None:
        """A polyline through (N, 2) source points."""
        self._draw.line(self.xy(points, SUPERSAMPLE), fill=colour, width=max(1, round(width * SUPERSAMPLE)),
                        joint="curve")

    def points(self, points: np.ndarray, colour: str, radius: float = 2.6, edge: str = "black") -> None:
        """Round markers at (N, 2) source points, outlined in ``edge``."""
        r = radius * SUPERSAMPLE
        for x, y in self.xy(points, SUPERSAMPLE):
            self._draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=edge, width=1)

    def text(self, point: np.ndarray, text: str, offset: tuple[float, float] = (0.0, 0.0), size: int = 9,
             colour: tuple[int, int, int] = (255, 255, 255)) -> None:
        """``text`` centred at a source point, moved by ``offset`` panel pixels."""
        (x, y), = self.xy(np.asarray(point)[None])
        self._texts.append(((x + offset[0], y + offset[1]), text, colour, size))

    def image(self) -> Image.Image:
        """The finished panel (lines and points averaged down, then the text)."""
        small = self._big.reduce(SUPERSAMPLE)
        draw = ImageDraw.Draw(small)
        for xy, text, colour, size in self._texts:
            draw.text(xy, text, fill=colour, font=font(size), anchor="mm")
        return small


def compose(panels: Sequence[Panel | Image.Image], titles: Sequence[str] | None = None, title_size: int = 13,
            gap: int = MARGIN) -> Image.Image:
    """Panels side by side on white, each under its title, top-aligned (``titles`` default: the panels' own)."""
    pictures = [p.image() if isinstance(p, Panel) else p for p in panels]
    titles = titles if titles is not None else [getattr(p, "title", "") for p in panels]
    lines = max((t.count("\n") + 1 for t in titles if t), default=0)
    head = lines * round(title_size * 1.3) + (6 if lines else 0)
    width = sum(p.width for p in pictures) + gap * (len(pictures) + 1)
    height = max(p.height for p in pictures) + head + 2 * MARGIN
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x = gap
    for picture, title in zip(pictures, titles):
        canvas.paste(picture, (x, MARGIN + head))
        if title:
            draw.multiline_text((x + picture.width / 2, MARGIN + head - 4), title, fill="black",
                                font=font(title_size), anchor="md", align="center")
        x += picture.width + gap
    return canvas


def save_png(path: str | os.PathLike | IO[bytes], picture: Image.Image) -> None:
    """Write ``picture`` as PNG whatever the name's suffix (fast zlib level: figures are written on every run)."""
    picture.save(path, format="PNG", compress_level=1)


__all__ = ["Panel", "compose", "font", "save_png", "to_rgb"]
