"""Pictures of keypoints: the smooth contour and the numbered points over a frame."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from echokdm.keypoints.contour import check_keypoints, spline_chain

#: width of each panel in pixels
PANEL_WIDTH = 550
#: distance of a keypoint's number from the point, pixels (outwards from the cavity's centre)
LABEL_OFFSET = 10.0


def plot_keypoints(
    path: str | os.PathLike,
    images: Sequence[np.ndarray],
    keypoints: Sequence[np.ndarray | None],
    titles: Sequence[str],
) -> None:
    """Side-by-side panels of frames with their contour and numbered keypoints, saved as PNG.

    The endocardium is drawn in red (closed by the annulus segment), the epicardium (40 keypoints) in
    green; each keypoint carries its index, placed just outside the contour.

    Args:
        path: output PNG (written as PNG whatever its suffix).
        images: (H, W) grey frames in [0, 1] (or label maps, shown by their values), or (H, W, 3) uint8 RGB
            pictures (e.g. :func:`echokdm.render.label_overlay`), one per panel.
        keypoints: (20 or 40, 2) keypoints (x, y) per panel, or None for a panel without keypoints.
        titles: one title per panel.
    """
    from echokdm.panels import Panel, compose, save_png

    panels = []
    for img, kps, title in zip(images, keypoints, titles):
        panel = Panel(img, PANEL_WIDTH, title)
        panels.append(panel)
        if kps is None:
            continue
        k = check_keypoints(kps)
        structures = [(k[:20], (214, 39, 40))] + ([(k[20:], (0, 255, 0))] if len(k) == 40 else [])
        centre = k[:20].mean(axis=0)
        for pts, colour in structures:
            chain = spline_chain(pts)
            panel.line(np.vstack([chain, chain[:1]]), colour)
        for pts, _ in structures:
            panel.points(pts, "yellow")
        for i, p in enumerate(k):
            d = p - centre
            d = d / (np.linalg.norm(d) or 1.0)
            panel.text(p, str(i), offset=(LABEL_OFFSET * d[0], LABEL_OFFSET * d[1]))
    save_png(path, compose(panels))
