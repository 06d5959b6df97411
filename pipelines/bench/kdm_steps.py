#!/usr/bin/env python3
"""How many denoising steps KDM needs: image quality and K2F flow error against the step count.

    python pipelines/bench/kdm_steps.py --pairs 40

On phantom validation pairs at the working grid (112x112): end-point error of the K2F flow inside the LV,
PSNR/SSIM in the sector of the F2I frame (from the K2F flow), and of the K2F flow applied by warping only,
for each step count; the thin-plate-spline flow is the reference. Seconds per pair are beside each row.
"""

import argparse
import glob
import time

import numpy as np
import torch
from monai.metrics import SSIMMetric

from echokdm.flow import endpoint_error
from echokdm.pipeline import EchoKDMPipeline
from echokdm.train.pairs import PairDataset, PairSet, cached_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--steps", default="1,2,4,10")
    ap.add_argument("--cache", default="data/cache/kdm", help="cache of the training pairs (val split is used)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    files = sorted(glob.glob(f"{a.cache}/pairs_val_*.safetensors"))
    ps = PairSet.load(files[0]) if files else cached_pairs(a.cache, "val", 6, 112)
    ds = PairDataset(ps)
    idx = np.linspace(0, len(ds) - 1, min(a.pairs, len(ds))).round().astype(int)
    pipe = EchoKDMPipeline.from_weights()
    ssim = SSIMMetric(spatial_dims=2, data_range=1.0)

    def image_scores(pred, tgt, sector):
        m = sector > 0
        psnr = 10 * np.log10(1 / max(float(((pred - tgt)[m] ** 2).mean()), 1e-10))
        s = ssim(torch.tensor(pred * m)[None, None], torch.tensor(tgt * m)[None, None]).item()
        return psnr, s

    print(f"{len(idx)} validation pairs, 112x112")
    print(
        f"{'steps':>5s} {'flow EPE LV':>11s} {'PSNR kdm':>9s} {'SSIM kdm':>9s} "
        f"{'PSNR warp':>9s} {'SSIM warp':>9s} {'s/pair':>7s}"
    )
    tps = [
        endpoint_error(
            ds[i]["kp_flow"].numpy(),
            ds[i]["flow"].numpy(),
            ((ds[i]["target_label"] == 1) | (ds[i]["target_label"] == 2)).numpy(),
        )
        for i in idx
    ]
    for steps in (int(s) for s in a.steps.split(",")):
        rows, t0 = [], time.perf_counter()
        for i in idx:
            b = ds[i]
            out = pipe(b["source"][0].numpy(), b["src_kps"].numpy(), b["tgt_kps"].numpy(), num_inference_steps=steps,
                       generator=torch.Generator().manual_seed(0))
            lv = ((b["target_label"] == 1) | (b["target_label"] == 2)).numpy()
            tgt, sector = b["target"][0].numpy(), b["sector"].numpy()
            rows.append([endpoint_error(out.flows[0], b["flow"].numpy(), lv), *image_scores(out.frames[0], tgt, sector),
                         *image_scores(out.warped[0], tgt, sector)])
        r = np.mean(rows, 0)
        print(
            f"{steps:5d} {r[0]:11.3f} {r[1]:9.2f} {r[2]:9.3f} {r[3]:9.2f} {r[4]:9.3f} "
            f"{(time.perf_counter() - t0) / len(idx):7.2f}"
        )
    print(f"thin-plate-spline flow EPE LV {np.mean(tps):.3f}")


if __name__ == "__main__":
    main()
