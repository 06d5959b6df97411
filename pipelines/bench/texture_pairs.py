#!/usr/bin/env python3
"""Look at real-texture pairs (phantom motion carried onto real frames) and score the flow autoencoder on them.

    python pipelines/bench/texture_pairs.py --cine runs/rtex/acuson [--pairs 6] [--out runs/rtex/pairs_acuson.png]

For the cines of a folder (``cine-folder`` source, split all), the built-in segmenter's keypoints and the cached
phantom training pairs (``--cache``, as ``pipelines/configs/k2f.yaml`` makes them), ``--pairs`` pairs of
:func:`echokdm.train.texture.texture_pairs` are drawn and drawn: phantom source with its source (green) and target
(red) contours, real source with its keypoints, the warped real frame with the transported keypoints, the flow as
arrows on the source, and |target - source|. Printed: mean keypoint motion and LV-cavity area change source ->
target of the real and of the phantom pairs, and the reconstruction end-point error of the shipped flow autoencoder
(``kdm_flow_vae``) on the correction flow (flow - keypoint flow) inside the LV of the real-texture pairs against the
phantom pairs', on ``--ae-pairs`` pairs of each (if the autoencoder reconstructs both alike, fine-tuning it on real
texture cannot matter: it never sees the frames).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch


def _lv(labels: np.ndarray) -> np.ndarray:
    return (labels == 1) | (labels == 2)


def ae_epe(ps, idx: np.ndarray) -> float:
    """Mean reconstruction end-point error of the shipped flow autoencoder on pairs ``idx`` (correction flow, LV)."""
    from diffusers import AutoencoderKL

    from echokdm.defaults import FLOW_VAE_WEIGHTS
    from echokdm.models.flow_ae import decode_flow, encode_flow
    from echokdm.models.loading import load_diffusers_model

    vae = load_diffusers_model(AutoencoderKL, FLOW_VAE_WEIGHTS)
    corr = torch.from_numpy(ps.flow[idx].astype(np.float32) - ps.kp_flow[idx].astype(np.float32))
    with torch.no_grad():
        rec = decode_flow(vae, encode_flow(vae, corr))
    err = torch.linalg.vector_norm(rec - corr, dim=1).numpy()
    mask = _lv(ps.labels[ps.pairs[idx, 1]])
    return float(np.mean([e[m].mean() for e, m in zip(err, mask)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cine", type=Path, required=True, help="folder of the real cine(s)")
    ap.add_argument("--pairs", type=int, default=6, help="pairs drawn")
    ap.add_argument("--ae-pairs", type=int, default=200, help="pairs scored by the flow autoencoder")
    ap.add_argument("--cache", default="data/cache/kdm", help="cache of the phantom training pairs")
    ap.add_argument("--loops", type=int, default=40, help="phantom training loops (train_loops of k2f.yaml)")
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="PNG montage (default: runs/rtex/pairs_<cine>.png)")
    a = ap.parse_args()
    torch.set_num_threads(1)

    from echokdm.segmenter import BuiltinSegmenter
    from echokdm.train.pairs import cached_pairs
    from echokdm.train.sources import SourceConfig, source_loops
    from echokdm.train.texture import real_frames, texture_pairs

    phantom = cached_pairs(a.cache, "train", a.loops, 112, 40, a.every)
    loops = source_loops(SourceConfig("cine-folder", str(a.cine), "all"))
    seg = BuiltinSegmenter()
    labels = [seg(lp["frames"], sector_mask=lp["mask"], frame_time_ms=lp["frame_time_ms"]) for lp in loops]
    real = real_frames(loops, labels, 112)
    tp = texture_pairs(phantom, real, max(a.pairs, a.ae_pairs), a.seed)

    def motion(ps, idx):
        s, t = ps.pairs[idx, 0], ps.pairs[idx, 1]
        move = np.linalg.norm(ps.keypoints[t] - ps.keypoints[s], axis=2).mean()
        area = (ps.labels[t] == 1).sum((1, 2)) / np.maximum((ps.labels[s] == 1).sum((1, 2)), 1)
        return move, area.min(), area.max()

    rng = np.random.default_rng(a.seed)
    ph_idx = rng.choice(len(phantom.pairs), min(a.ae_pairs, len(phantom.pairs)), replace=False)
    tp_idx = np.arange(min(a.ae_pairs, len(tp.pairs)))
    for name, ps, idx in (("real-texture", tp, tp_idx), ("phantom", phantom, ph_idx)):
        move, lo, hi = motion(ps, idx)
        print(f"{name:>12} pairs {len(idx)}: keypoint motion {move:.2f} px, LV cavity area target/source "
              f"{lo:.2f}-{hi:.2f}; flow AE reconstruction EPE (LV) {ae_epe(ps, idx):.3f} px")

    n = min(a.pairs, len(tp.pairs))
    fig, axes = plt.subplots(n, 4, figsize=(12, 3 * n))
    yy, xx = np.mgrid[4:112:8, 4:112:8]
    for row, (s, t) in zip(np.atleast_2d(axes), tp.pairs[:n]):
        i = s // 2
        src, tgt = tp.frames[s].astype(float), tp.frames[t].astype(float)
        ks, kt = tp.keypoints[s], tp.keypoints[t]
        row[0].imshow(src, cmap="gray", vmin=0, vmax=255)
        row[0].plot(*ks[:20].T, "g.-", ms=2, lw=0.7)
        row[0].plot(*ks[20:].T, "g.-", ms=2, lw=0.7)
        row[0].set_title("real source + keypoints")
        row[1].imshow(tgt, cmap="gray", vmin=0, vmax=255)
        row[1].plot(*ks[:20].T, "g-", lw=0.5)
        row[1].plot(*kt[:20].T, "r.-", ms=2, lw=0.7)
        row[1].plot(*kt[20:].T, "r.-", ms=2, lw=0.7)
        row[1].set_title("warped (red: transported kps)")
        f = tp.flow[i].astype(float)
        # pull flow: the pixel at y comes from y + f(y); the arrows show the motion, source -> target
        row[2].imshow(src, cmap="gray", vmin=0, vmax=255)
        row[2].quiver(xx + f[1][yy, xx], yy + f[0][yy, xx], -f[1][yy, xx], -f[0][yy, xx], color="y",
                      angles="xy", scale_units="xy", scale=0.5, width=0.004)
        row[2].set_title(f"motion x2 (max {np.abs(f).max():.1f} px)")
        row[3].imshow(np.abs(tgt - src), cmap="magma", vmin=0, vmax=128)
        row[3].set_title("|target - source|")
        for ax in row:
            ax.set_axis_off()
    fig.tight_layout()
    out = a.out or Path("runs/rtex") / f"pairs_{a.cine.name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    print(f"montage: {out}")


if __name__ == "__main__":
    main()
