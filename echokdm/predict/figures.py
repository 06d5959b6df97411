"""The pictures of a prediction: ``comparison.png`` and ``flow.png`` (numpy and Pillow, :mod:`echokdm.panels`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from echokdm.predict.report import Prediction

#: ColorBrewer's RdBu from blue to red (matplotlib's ``RdBu_r`` anchors), 0..1
RDBU_R = np.array([
    [0x05, 0x30, 0x61], [0x21, 0x66, 0xAC], [0x43, 0x93, 0xC3], [0x92, 0xC5, 0xDE], [0xD1, 0xE5, 0xF0],
    [0xF7, 0xF7, 0xF7], [0xFD, 0xDB, 0xC7], [0xF4, 0xA5, 0x82], [0xD6, 0x60, 0x4D], [0xB2, 0x18, 0x2B],
    [0x67, 0x00, 0x1F],
]) / 255.0
#: panel widths of flow.png: source and flow, the colour key
FLOW_PANEL, KEY_PANEL = 460, 120


def comparison_figure(path: str | os.PathLike, pred: Prediction, box: list[int]) -> None:
    """source | prediction | real target (when observed) | difference, cropped to the sector box, with the
    segmentation outlined and the numbered keypoints (source's, the target ones asked for, the real target's)."""
    from echokdm.keypoints.draw import plot_keypoints

    x0, y0, x1, y1 = box
    crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    shift = np.array([x0, y0], dtype=np.float64)
    ef = pred.sections["ef"]
    pred_title = f"prediction (EF {ef['prediction']:.0f}%)" if ef["prediction"] is not None else "prediction"
    panels = [
        (_overlay(pred.source, pred.source_labels, box), pred.source_keypoints, f"source, frame {pred.source_frame}"),
        (_overlay(pred.frames[-1], pred.labels[-1], box), pred.target_keypoints,
         f"{pred_title}; dots: target keypoints (EF {ef['target_keypoints']:.0f}%)"),
    ]
    reference, ref_name = pred.source, "source"
    if pred.target is not None:
        panels.append((_overlay(pred.target, pred.target_labels, box), pred.target_keypoints,
                       f"real target, frame {pred.target_frame}"))
        reference, ref_name = pred.target, "real target"
    diff = np.clip((pred.frames[-1][crop] - reference[crop]) / 0.5, -1, 1) * 0.5 + 0.5
    panels.append((rdbu_r(diff), None, f"prediction - {ref_name} (blue -0.5 .. red +0.5)"))
    plot_keypoints(path, [p[0] for p in panels], [None if p[1] is None else p[1] - shift for p in panels],
                   [p[2] for p in panels])


def flow_figure(path: str | os.PathLike, flow: np.ndarray, source: np.ndarray, box: list[int]) -> None:
    """The flow source -> prediction as a colour wheel picture (hue: direction, brightness: magnitude) with its key.

    Args:
        path: the PNG to write.
        flow: (2, H, W) pull flow, source pixels.
        source: (H, W) the source frame.
        box: sector box (x0, y0, x1, y1), inclusive.
    """
    from echokdm.flow import flow_to_rgb
    from echokdm.panels import Panel, compose, save_png

    x0, y0, x1, y1 = box
    f = flow[:, y0 : y1 + 1, x0 : x1 + 1]
    vmax = max(float(np.percentile(np.hypot(*f), 99)), 1e-3)
    panels = [Panel(source[y0 : y1 + 1, x0 : x1 + 1], FLOW_PANEL, "source"),
              Panel(flow_to_rgb(f, vmax), FLOW_PANEL, "pull flow source -> prediction (source pixels)"),
              _flow_key(vmax)]
    titles = [p.title for p in panels[:2]] + [f"key: dx, dy (px)\nfull brightness {vmax:.1f} px"]
    save_png(path, compose(panels, titles))


def _overlay(frame: np.ndarray, labels: np.ndarray, box: list[int]) -> np.ndarray:
    """:func:`echokdm.render.label_overlay` (outlines only) of the sector box of ``frame``: drawn on the box and a
    one-pixel rim (an outline at the box's edge is the full frame's), the rim then dropped."""
    from echokdm.render import label_overlay

    x0, y0, x1, y1 = box
    h, w = frame.shape
    ys, xs = slice(max(y0 - 1, 0), min(y1 + 2, h)), slice(max(x0 - 1, 0), min(x1 + 2, w))
    rgb = label_overlay(frame[None, ys, xs], labels[None, ys, xs], 0.0)[0]
    return rgb[y0 - ys.start : y1 + 1 - ys.start, x0 - xs.start : x1 + 1 - xs.start]


def rdbu_r(values: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 colours of ``values`` in [0, 1] on the blue-white-red scale (matplotlib's 256-colour
    ``RdBu_r``, the same colours)."""
    lut = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(RDBU_R)), c) for c in RDBU_R.T], -1)
    index = np.clip((np.asarray(values, dtype=np.float64) * 256).astype(np.int64), 0, 255)
    return (lut[index] * 255).round().astype(np.uint8)


def _flow_key(vmax: float) -> Image.Image:
    """The colour wheel of :func:`echokdm.flow.flow_to_rgb` for ``vmax`` px, with dx (below) and dy (left) ticks."""
    from PIL import Image, ImageDraw

    from echokdm.flow import flow_to_rgb
    from echokdm.panels import font

    r = np.linspace(-1, 1, 101)
    yy, xx = np.meshgrid(r, r, indexing="ij")
    key = flow_to_rgb(np.stack([yy, xx]) * vmax, vmax)
    key[np.hypot(yy, xx) > 1] = 255
    disc = Image.fromarray(key).resize((KEY_PANEL, KEY_PANEL), Image.BILINEAR)
    left, top, pad = 30, 8, 16  # room for the tick labels
    picture = Image.new("RGB", (left + KEY_PANEL + pad, top + KEY_PANEL + pad), "white")
    picture.paste(disc, (left, top))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((left - 1, top - 1, left + KEY_PANEL, top + KEY_PANEL), outline="black")
    for v in (-vmax, 0.0, vmax):  # dx grows to the right, dy downwards
        at = (v / vmax + 1) / 2 * (KEY_PANEL - 1)
        label = f"{v:.3g}"
        draw.text((left + at, top + KEY_PANEL + 3), label, fill="black", font=font(10), anchor="mt")
        draw.text((left - 4, top + at), label, fill="black", font=font(10), anchor="rm")
    return picture
