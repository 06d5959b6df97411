"""Pictures of keypoints: the smooth contour and the numbered points over a frame."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from echokdm.keypoints.contour import check_keypoints, spline_chain


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
    from matplotlib.figure import Figure

    h, w = np.asarray(images[0]).shape[:2]
    size = 5.0
    fig = Figure(figsize=(size * len(images), size * h / w + 0.4), dpi=110)
    axes = fig.subplots(1, len(images), squeeze=False)
    for ax, img, kps, title in zip(axes[0], images, keypoints, titles):
        img = np.asarray(img)
        if img.ndim == 3:
            ax.imshow(img, interpolation="nearest")
        else:
            img = img.astype(np.float64)
            ax.imshow(img, cmap="gray", vmin=0.0, vmax=max(1.0, float(img.max())), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
        if kps is None:
            continue
        k = check_keypoints(kps)
        structures = [(k[:20], "tab:red")] + ([(k[20:], "lime")] if len(k) == 40 else [])
        centre = k[:20].mean(axis=0)
        for pts, colour in structures:
            chain = spline_chain(pts)
            ax.plot(*np.vstack([chain, chain[:1]]).T, "-", color=colour, lw=1.2)
            ax.plot(pts[:, 0], pts[:, 1], "o", ms=3.5, color="yellow", mec="black", mew=0.5)
        for i, p in enumerate(k):
            d = p - centre
            d = d / (np.linalg.norm(d) or 1.0)
            ax.annotate(str(i), p, xytext=(7 * d[0], -7 * d[1]), textcoords="offset points", fontsize=6,
                        color="white", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, format="png")
