"""The pictures of a prediction: ``comparison.png`` and ``flow.png``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from echokdm.predict.report import Prediction


def comparison_figure(path: str | os.PathLike, pred: Prediction, box: list[int]) -> None:
    """source | prediction | real target (when observed) | difference, cropped to the sector box, with the
    segmentation outlined and the numbered keypoints (source's, the target ones asked for, the real target's)."""
    from matplotlib import colormaps

    from echokdm.keypoints.draw import plot_keypoints
    from echokdm.render import label_overlay

    x0, y0, x1, y1 = box
    crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    shift = np.array([x0, y0], dtype=np.float64)
    ef = pred.sections["ef"]
    pred_title = f"prediction (EF {ef['prediction']:.0f}%)" if ef["prediction"] is not None else "prediction"
    panels = [
        (label_overlay(pred.source[None], pred.source_labels[None], 0.0)[0], pred.source_keypoints,
         f"source, frame {pred.source_frame}"),
        (label_overlay(pred.frames[-1][None], pred.labels[-1][None], 0.0)[0], pred.target_keypoints,
         f"{pred_title}; dots: target keypoints (EF {ef['target_keypoints']:.0f}%)"),
    ]
    reference, ref_name = pred.source, "source"
    if pred.target is not None:
        panels.append((label_overlay(pred.target[None], pred.target_labels[None], 0.0)[0],
                       pred.target_keypoints, f"real target, frame {pred.target_frame}"))
        reference, ref_name = pred.target, "real target"
    diff = np.clip((pred.frames[-1] - reference) / 0.5, -1, 1) * 0.5 + 0.5
    panels.append(((colormaps["RdBu_r"](diff)[..., :3] * 255).round().astype(np.uint8), None,
                   f"prediction - {ref_name} (blue -0.5 .. red +0.5)"))
    plot_keypoints(path, [p[0][crop] for p in panels], [None if p[1] is None else p[1] - shift for p in panels],
                   [p[2] for p in panels])


def flow_figure(path: str | os.PathLike, flow: np.ndarray, source: np.ndarray, box: list[int]) -> None:
    """The flow source -> prediction as a colour wheel picture (hue: direction, brightness: magnitude) with its key.

    Args:
        path: the PNG to write.
        flow: (2, H, W) pull flow, source pixels.
        source: (H, W) the source frame.
        box: sector box (x0, y0, x1, y1), inclusive.
    """
    from matplotlib.figure import Figure

    from echokdm.flow import flow_to_rgb

    x0, y0, x1, y1 = box
    f = flow[:, y0 : y1 + 1, x0 : x1 + 1]
    vmax = max(float(np.percentile(np.hypot(*f), 99)), 1e-3)
    r = np.linspace(-1, 1, 101)
    yy, xx = np.meshgrid(r, r, indexing="ij")
    key = flow_to_rgb(np.stack([yy, xx]) * vmax, vmax)
    key[np.hypot(yy, xx) > 1] = 255
    fig = Figure(figsize=(12, 4.2), dpi=100)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [4, 4, 1.3]})
    axes[0].imshow(source[y0 : y1 + 1, x0 : x1 + 1], cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("source", fontsize=9)
    axes[1].imshow(flow_to_rgb(f, vmax))
    axes[1].set_title("pull flow source -> prediction (source pixels)", fontsize=9)
    axes[2].imshow(key, extent=(-vmax, vmax, vmax, -vmax))
    axes[2].set_title(f"key: dx, dy (px)\nfull brightness {vmax:.1f} px", fontsize=8)
    axes[2].tick_params(labelsize=7)
    for ax in axes[:2]:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, format="png")
