"""Pictures of loops and label maps: coloured contour overlays, animated GIFs, area curves."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: RGB colour of each CAMUS structure's outline: LV cavity, LV myocardium, LA
LABEL_COLOURS = {1: (255, 64, 64), 2: (64, 220, 64), 3: (80, 160, 255)}


def label_overlay(frames: np.ndarray, labels: np.ndarray, fill: float = 0.2) -> np.ndarray:
    """Grey frames with each labelled structure outlined (and lightly tinted) in its colour.

    Args:
        frames: (T, H, W) float in [0, 1] or uint8.
        labels: (T, H, W) integer CAMUS labels.
        fill: opacity of the tint inside each structure (0 = outlines only).

    Returns:
        (T, H, W, 3) uint8 RGB.
    """
    grey = frames.astype(np.float32) / (255.0 if frames.dtype == np.uint8 else 1.0)
    rgb = np.repeat(np.clip(grey, 0, 1)[..., None] * 255.0, 3, axis=-1)
    for value, colour in LABEL_COLOURS.items():
        inside = labels == value
        if not inside.any():
            continue
        c = np.asarray(colour, np.float32)
        rgb[inside] = (1 - fill) * rgb[inside] + fill * c
        edge = inside & ~ndimage.binary_erosion(inside, structure=np.ones((1, 3, 3), bool))
        rgb[edge] = c
    return rgb.round().astype(np.uint8)


def write_gif(path: str | os.PathLike, rgb: np.ndarray, frame_time_ms: float | None = None) -> None:
    """Write (T, H, W, 3) uint8 RGB or (T, H, W) uint8 grey frames as a looping GIF (frame time defaults to 40 ms;
    grey frames skip the colour quantisation and give the same file as their RGB copies)."""
    import imageio.v3 as iio

    iio.imwrite(path, list(rgb), extension=".gif", duration=float(frame_time_ms or 40.0), loop=0)


def plot_curve(
    path: str | os.PathLike,
    values: np.ndarray,
    ylabel: str,
    frame_time_ms: float | None = None,
    marks: dict[str, Sequence[int]] | None = None,
    title: str = "",
) -> None:
    """Plot a per-frame curve (e.g. LV cavity area) as a PNG, with labelled marker frames (e.g. ED, ES).

    Args:
        path: output PNG.
        values: (T,) values.
        ylabel: y-axis label.
        frame_time_ms: x axis in ms when given, else frame index.
        marks: name -> frame indices to mark (e.g. ``{"ED": [0, 28], "ES": [12]}``).
        title: plot title.
    """
    from matplotlib.figure import Figure

    t = np.arange(len(values), dtype=float) * (frame_time_ms or 1.0)
    fig = Figure(figsize=(6, 3), dpi=100)
    ax = fig.subplots()
    ax.plot(t, values, "-o", ms=3, color="black", lw=1)
    for (name, idx), colour in zip((marks or {}).items(), ("tab:red", "tab:blue", "tab:green", "tab:orange")):
        idx = [i for i in idx if 0 <= i < len(values)]
        ax.plot(t[idx], np.asarray(values)[idx], "o", ms=8, mfc="none", mew=2, color=colour, label=name)
    if marks:
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("time (ms)" if frame_time_ms else "frame")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
