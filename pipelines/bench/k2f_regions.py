#!/usr/bin/env python3
"""Which part of K2F's correction of the keypoint spline moves the segmented LV of a prediction (issue #21).

    python pipelines/bench/k2f_regions.py --data DIR/echonet --report DIR/regions [--keypoints 20] [--threads 1]

Runs ``echokdm evaluate --task es`` on ``--data`` (e.g. the real loops' EchoNet-format views that
``real_echonet.py`` writes) with ``copy``, ``tps``, ``kdm`` and two analysis predictors that drop K2F's correction
(the spline's motion kept; ``EchoKDMPipeline.correction_fade``) in one region outside the target's heart:
``kdm-no-atria`` beyond the target annulus line (atria and valve plane) and ``kdm-no-sides`` on the apex side of
that line (right heart, lateral tissue). Each region's edge is softened by a Gaussian of 3 working pixels.
Prints the evaluate summary and the means per loop (the case id's first word).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from functools import partial

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import gaussian_filter

from echokdm.evaluate import predictors
from echokdm.evaluate.kdm import KDMModel
from echokdm.flow import CONTOUR_POINTS, heart_region

EDGE_PX = 3.0


def region_fade(keypoints: torch.Tensor, shape: tuple[int, int], region: str) -> torch.Tensor:
    """(B, H, W) weights: 0 in ``region`` ("atria": beyond the annulus line, "sides": on its apex side), outside
    the heart the target contours enclose; 1 elsewhere."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    weights = []
    for k in keypoints.detach().cpu().numpy():
        endo = k[:CONTOUR_POINTS]
        base0, base1, apex = endo[0], endo[-1], endo[CONTOUR_POINTS // 2 - 1 : CONTOUR_POINTS // 2 + 1].mean(0)
        normal = np.array([base0[1] - base1[1], base1[0] - base0[0]])
        side = np.sign((xx - base0[0]) * normal[0] + (yy - base0[1]) * normal[1])
        towards_apex = side == np.sign((apex - base0) @ normal)
        drop = (~towards_apex if region == "atria" else towards_apex) & ~heart_region(k, shape)
        weights.append(1.0 - np.clip(gaussian_filter(drop.astype(np.float32), EDGE_PX), 0.0, 1.0))
    return torch.from_numpy(np.stack(weights)).to(keypoints.device)


class NoAtria(KDMModel):
    """``kdm-no-atria``: K2F's correction dropped beyond the target annulus line."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pipe.correction_fade = partial(region_fade, region="atria")


class NoSides(KDMModel):
    """``kdm-no-sides``: K2F's correction dropped outside the heart on the apex side of the annulus line."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pipe.correction_fade = partial(region_fade, region="sides")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="evaluate's --data (a folder)")
    ap.add_argument("--report", required=True, help="report folder")
    ap.add_argument("--keypoints", default="20", choices=("20", "40"))
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    predictors.PREDICTORS.update({"kdm-no-atria": f"{__name__}:NoAtria", "kdm-no-sides": f"{__name__}:NoSides"})
    from echokdm.cli import main as cli

    code = cli(["evaluate", "--data", a.data, "--task", "es", "--keypoints", a.keypoints, "--report", a.report,
                "--predictors", "copy,tps,kdm,kdm-no-atria,kdm-no-sides"])
    if code:
        raise SystemExit(code)
    table = pd.read_csv(os.path.join(a.report, "scores.csv"))
    table["loop"] = table["case_id"].str.split("_").str[0]
    print(table.groupby(["loop", "predictor"], sort=False)[["psnr", "ssim", "dice", "ef_err"]].mean().round(3))


if __name__ == "__main__":
    main()
