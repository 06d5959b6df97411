#!/usr/bin/env python3
"""OF-net against classical optical flow: end-point error vs the exact phantom flow, and real-loop residual.

    python pipelines/bench/ofnet_epe.py --weights ofnet --loops 10

Phantom test split (never seen in training), pairs ED -> every other frame of the beat at 112x112:
mean end-point error (pixels) inside the LV (cavity + myocardium of the target) for OF-net,
scikit-image TV-L1 and iLK, the keypoint thin-plate spline and zero flow, and OF-net's paired difference to
TV-L1 and iLK with a 95% bootstrap interval over loops (pairs of one loop are not independent). Then the mean
absolute warping residual |warp(frame t, flow) - frame t+1| inside the sector of the real SonoSite cine (pydicom's
``examples_ybr_color.dcm``), on the same 112x112 working grid, for OF-net, TV-L1 and iLK.
"""

import argparse
import time

import numpy as np
import torch
from skimage.registration import optical_flow_ilk, optical_flow_tvl1

from echokdm.evaluate.stats import paired_difference
from echokdm.flow import endpoint_error, warp
from echokdm.models.loading import load_ofnet
from echokdm.train.pairs import build_pairs


def classical(name: str, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pull flow source -> target (dy, dx) on the target grid (skimage: reference = target, moving = source)."""
    if name == "tvl1":
        return optical_flow_tvl1(target, source).astype(np.float32)
    return optical_flow_ilk(target, source, radius=4).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="ofnet", help="OF-net weights: shipped name or .safetensors")
    ap.add_argument("--loops", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    net = load_ofnet(a.weights)
    ps = build_pairs("test", a.loops, 112, every=2)
    errs = {k: [] for k in ("ofnet", "tvl1", "ilk", "tps", "zero")}
    loop_of = []
    secs = {k: 0.0 for k in ("ofnet", "tvl1", "ilk")}
    for i, (s, t) in enumerate(ps.pairs):
        if s not in ps.ed:
            continue
        src, tgt = ps.frames[s] / 255.0, ps.frames[t] / 255.0
        lab = ps.labels[t]
        mask = (lab == 1) | (lab == 2)
        truth = ps.flow[i].astype(np.float32)
        t0 = time.perf_counter()
        with torch.no_grad():
            of = net(
                torch.tensor(src, dtype=torch.float32)[None, None], torch.tensor(tgt, dtype=torch.float32)[None, None]
            )[0].numpy()
        secs["ofnet"] += time.perf_counter() - t0
        flows = {"ofnet": of}
        for name in ("tvl1", "ilk"):
            t0 = time.perf_counter()
            flows[name] = classical(name, src, tgt)
            secs[name] += time.perf_counter() - t0
        flows["tps"] = ps.kp_flow[i].astype(np.float32)
        flows["zero"] = np.zeros_like(truth)
        for k, f in flows.items():
            errs[k].append(endpoint_error(f, truth, mask))
        loop_of.append(int(ps.loop[s]))
    n = len(errs["zero"])
    print(f"phantom test split: {a.loops} loops, {n} ED->t pairs, EPE inside the LV (pixels at 112x112)")
    print(f"{'method':8s} {'mean EPE':>9s} {'median':>7s} {'s/pair':>7s}")
    for k, v in errs.items():
        print(f"{k:8s} {np.mean(v):9.3f} {np.median(v):7.3f} {secs.get(k, 0) / n:7.3f}")
    loops = np.unique(loop_of)
    per_loop = {k: np.array([np.mean(np.asarray(v)[np.asarray(loop_of) == i]) for i in loops]) for k, v in errs.items()}
    for k in ("tvl1", "ilk"):
        print(
            f"ofnet - {k}: {paired_difference(per_loop['ofnet'], per_loop[k]).format(3)} px "
            f"(loop means, {len(loops)} loops)"
        )

    from echokdm.data import sample_path
    from echokdm.grid import SectorFit
    from echokdm.io import load_cine

    loop = load_cine(sample_path("sonosite"))
    frames = loop.as_tensor()[0].float()
    fit = SectorFit.from_mask(loop.meta["sector_mask"], 112)
    work = fit.to_work(frames[:, None])[:, 0].numpy()
    sector = (
        fit.to_work(torch.as_tensor(np.asarray(loop.meta["sector_mask"]), dtype=torch.float32)[None, None])[
            0, 0
        ].numpy()
        > 0.5
    )
    res = {k: [] for k in ("none", "ofnet", "tvl1", "ilk")}
    for t in range(len(work) - 1):
        src, tgt = work[t], work[t + 1]
        with torch.no_grad():
            of = net(torch.tensor(src)[None, None], torch.tensor(tgt)[None, None])[0].numpy()
        for k, f in (
            ("none", np.zeros((2, 112, 112), np.float32)),
            ("ofnet", of),
            ("tvl1", classical("tvl1", src, tgt)),
            ("ilk", classical("ilk", src, tgt)),
        ):
            res[k].append(float(np.abs(warp(src, f).numpy() - tgt)[sector].mean()))
    print(f"real SonoSite cine ({len(work)} frames, 112x112 working grid): mean |warp(t) - (t+1)| in the sector")
    for k, v in res.items():
        print(f"{k:8s} {np.mean(v):.4f}")


if __name__ == "__main__":
    main()
