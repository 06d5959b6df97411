#!/usr/bin/env python3
"""Which part of K2F's correction of the keypoint spline moves the segmented LV of a prediction (issue #21).

    python pipelines/bench/k2f_regions.py --data DIR/echonet --report DIR/regions [--keypoints 20] [--threads 1]
    python pipelines/bench/k2f_regions.py --match [--acuson DCM] [--seeds 2] [--threads 2]

``--match``: on the two real loops (ES from ED as ``echokdm predict`` finds them, working grid), how well the source
warped by each flow (none, the spline through the keypoints, K2F's, OF-net's between the real frames) matches the
real ES frame in three regions: the heart the target contours enclose, beyond the annulus line (atria), beside
the heart; mean |difference| and mean SSIM (7-px windows) per region, and each flow's distance to OF-net's and to
the spline's.

Otherwise it runs ``echokdm evaluate --task es`` on ``--data`` (e.g. the real loops' EchoNet-format views that
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


def match(acuson: str, seeds: int) -> None:
    """Print, per real loop and region, how well each flow's warp of the ED frame matches the real ES frame."""
    from real_loops import sample_of, study_of
    from skimage.metrics import structural_similarity

    from echokdm.data import sample_path
    from echokdm.flow import warp
    from echokdm.grid import SectorFit
    from echokdm.models.loading import load_ofnet
    from echokdm.segmenter import BuiltinSegmenter

    segmenter, pipe, ofnet = BuiltinSegmenter(), KDMModel().pipe, load_ofnet("ofnet")
    for loop, path in (("sonosite", sample_path("sonosite")), ("acuson", acuson)):
        sample = sample_of(study_of(path, segmenter))
        fit = SectorFit.from_mask(sample.sector_mask, pipe.sample_size)
        src, tgt, sector = (fit.to_work(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None])
                            for a in (sample.source, sample.targets[0], sample.sector_mask))
        ks, kt = (torch.from_numpy(fit.points_to_work(k)).float()[None]
                  for k in (sample.source_keypoints, sample.target_keypoints[0]))
        heart = heart_region(kt[0].numpy(), tuple(src.shape[-2:]))
        inside = sector[0, 0].numpy() > 0.5
        regions = {"heart": heart & inside}
        for name in ("atria", "sides"):
            regions[name] = (region_fade(kt, tuple(src.shape[-2:]), name)[0].numpy() < 0.5) & inside & ~heart
        with torch.no_grad():
            runs = [pipe.generate_flow(src, ks, kt, generator=torch.Generator().manual_seed(s)) for s in range(seeds)]
            flows = {"none": torch.zeros_like(runs[0].flow), "spline": runs[0].keypoint_flow,
                     "k2f": torch.stack([r.flow for r in runs]).mean(0), "ofnet": ofnet(src, tgt)}
        target = tgt[0, 0].numpy()
        print(f"\n{loop}: " + ", ".join(f"{r} {m.sum()} px" for r, m in regions.items()))
        for name, flow in flows.items():
            warped = warp(src, flow)[0, 0].numpy()
            _, ssim = structural_similarity(warped, target, data_range=1.0, full=True, win_size=7)
            to_of, to_spline = (np.hypot(*(flow - flows[k])[0].numpy()) for k in ("ofnet", "spline"))
            print(f"  {name:<7}" + "".join(
                f"  {r}: |diff| {np.abs(warped - target)[m].mean():.4f} SSIM {ssim[m].mean():.3f}"
                f" to OF-net {to_of[m].mean():.2f} px, to spline {to_spline[m].mean():.2f} px"
                for r, m in regions.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="evaluate's --data (a folder)")
    ap.add_argument("--report", help="report folder")
    ap.add_argument("--keypoints", default="20", choices=("20", "40"))
    ap.add_argument("--match", action="store_true", help="the flows' match to the real ES frames per region")
    ap.add_argument("--acuson", default="/work/shared/data/real/acuson_a4c.dcm", help="the second real loop")
    ap.add_argument("--seeds", type=int, default=2, help="K2F seeds averaged (--match)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.match:
        match(a.acuson, a.seeds)
        return
    if not (a.data and a.report):
        ap.error("--data and --report are needed (or --match)")
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
