"""Segmenters side by side on the two real loops (no labels): outlines on two frames of each loop and the LV
area curves, one row per segmenter.

    python pipelines/bench/seg_real_figure.py --out docs/seg_real \
        before=path/to/old.safetensors after=seg_a4c [--shown sonosite:19,29]

writes ``<out>_sonosite.png`` and ``<out>_acuson.png``: ED and ES at full resolution, the LV area curve, and ED
of the loop's EchoNet-like 112-px crop (``seg_proxies.echonet_crop``). Outlines: LV cavity red, LV myocardium
green, LA blue. The frames are fixed per loop (SonoSite: ED 14, ES 3; Acuson: ED 11, ES 32) so that the rows
compare like with like (``--shown LOOP:ED,ES`` picks others).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from seg_proxies import REAL_LOOPS, echonet_crop

#: the ED and ES frames shown for each of seg_proxies.REAL_LOOPS
SHOWN = {"sonosite": (14, 3), "acuson": (11, 32)}
COLOURS = {1: (1.0, 0.25, 0.25), 2: (0.25, 1.0, 0.25), 3: (0.35, 0.55, 1.0)}


def _outlined(frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(H, W) grey frame in [0, 1] with the label outlines drawn in colour: (H, W, 3)."""
    rgb = np.repeat(frame[..., None], 3, -1)
    for value, colour in COLOURS.items():
        k = (labels == value).astype(np.uint8)
        rgb[(k - cv2.erode(k, np.ones((3, 3), np.uint8))).astype(bool)] = colour
    return rgb


def figure(out: Path, models: list[tuple[str, str]], threads: int, frames: dict[str, tuple[int, int]]) -> None:
    import torch
    from pydicom.data import get_testdata_file

    from echokdm.io import load_cine
    from echokdm.models.seg import LVSegmenter

    torch.set_num_threads(threads)
    segmenters = [(label, LVSegmenter.from_pretrained(weights)) for label, weights in models]
    for name, path, keep in REAL_LOOPS:
        loop = load_cine(path if "/" in path else get_testdata_file(path))
        small, _ = echonet_crop(loop, keep)
        shown = {**SHOWN, **frames}[name]
        fig, axes = plt.subplots(len(models), 4, figsize=(15, 3.6 * len(models)), squeeze=False)
        for row, (label, seg) in enumerate(segmenters):
            labels = seg(loop).labels
            ax = axes[row, 3]
            ax.imshow(_outlined(small[0, shown[0]].numpy(), seg(small).labels[shown[0]]))
            ax.set_title(f"{label}: 112-px MJPEG crop, ED", fontsize=9)
            ax.axis("off")
            mask = loop.meta["sector_mask"]
            r, c = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            for j, t in enumerate(shown):
                ax = axes[row, j]
                ax.imshow(_outlined(loop[0, t].numpy(), labels[t])[r[0] : r[-1], c[0] : c[-1]])
                ax.set_title(f"{label}: {name} {('ED', 'ES')[j]} (frame {t})", fontsize=9)
                ax.axis("off")
            ft = loop.meta.get("frame_time_ms") or 33.3
            spacing = loop.meta.get("spacing_mm")
            area = (labels == 1).reshape(len(labels), -1).sum(1).astype(float)
            unit = "px"
            if spacing is not None:
                area, unit = area * float(np.prod(spacing)) / 100, "cm²"
            ax = axes[row, 2]
            ax.plot(np.arange(len(area)) * ft, area, "k-")
            ax.plot([shown[0] * ft, shown[1] * ft], area[list(shown)], "ro")
            ax.set_xlabel("ms", fontsize=7)
            ax.set_ylabel(f"LV area ({unit})", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_title(f"{name} LV area (full resolution)", fontsize=8)
        fig.tight_layout()
        target = out.with_name(f"{out.name}_{name.lower()}.png")
        fig.savefig(target, dpi=80)
        plt.close(fig)
        print(f"wrote {target}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shown", action="append", default=[], help="LOOP:ED,ES frames to show (default: SHOWN)")
    ap.add_argument("models", nargs="+", help="LABEL=WEIGHTS (a shipped name or a .safetensors file)")
    a = ap.parse_args()
    shown = {k: tuple(int(t) for t in v.split(",")) for k, _, v in (x.partition(":") for x in a.shown)}
    figure(a.out, [tuple(m.split("=", 1)) for m in a.models], a.threads, shown)


if __name__ == "__main__":
    main()
