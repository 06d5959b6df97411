"""How exact is the phantom's ground truth? EF from the masks, mask and image warps, speckle tracking.

    python pipelines/bench/phantom_truth.py [--loops 20] [--size 256]

For each sampled loop:

* mask EF: EF by the single-plane area-length method computed from the written label maps alone (the
  mitral annulus is found on the mask as the ends of the LV-cavity/LA border) vs the loop's recorded EF;
* mask warp: the ED labels warped with ``ddf_from_ed[ES]`` (MONAI ``Warp``, nearest; and one-hot
  bilinear + argmax) vs the ES labels, Dice of the LV cavity and of the LV myocardium, over the pixels
  whose ED source lies inside the sector;
* image warp: mean |Warp(ED image) - ES image| over the ES myocardium, relative to the raw
  mean |ED image - ES image| there;
* speckle tracking: NCC of 11x11 patches centred in the myocardium between frame t+1 and frame t warped
  by ``ddf_to_next[t]`` (compensated) and frame t itself (uncompensated), over all consecutive pairs, and
  over the pairs and patches that moved more than one pixel.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import torch
from monai.networks.blocks import Warp
from scipy import ndimage

from echokdm.phantom import sample_params, simulate


def mask_volume(lab: np.ndarray, spacing: float) -> float:
    """Area-length volume (mL) of label 1 using only the label map: annulus = ends of the cavity/LA border."""
    cav = lab == 1
    border = cav & ndimage.binary_dilation(lab == 3, structure=np.ones((3, 3)))
    pts = np.argwhere(border).astype(np.float64)
    centre = pts.mean(0)
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    proj = (pts - centre) @ vt[0]
    mid = 0.5 * (pts[np.argmin(proj)] + pts[np.argmax(proj)])
    cpts = np.argwhere(cav).astype(np.float64)
    length = np.max(np.hypot(*(cpts - mid).T)) * spacing
    area = cav.sum() * spacing**2
    return 8.0 * area**2 / (3.0 * np.pi * length) / 1000.0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def patch_ncc(a: np.ndarray, b: np.ndarray, centres: np.ndarray, r: int = 5) -> np.ndarray:
    """NCC of (2r+1)^2 patches of ``a`` and ``b`` at ``centres`` (N, 2) rows/cols."""
    offs = np.arange(-r, r + 1)
    rows = centres[:, 0, None, None] + offs[None, :, None]
    cols = centres[:, 1, None, None] + offs[None, None, :]
    pa, pb = a[rows, cols].reshape(len(centres), -1), b[rows, cols].reshape(len(centres), -1)
    pa = pa - pa.mean(1, keepdims=True)
    pb = pb - pb.mean(1, keepdims=True)
    den = np.sqrt((pa * pa).sum(1) * (pb * pb).sum(1))
    return (pa * pb).sum(1) / np.maximum(den, 1e-12)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loops", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*Using PyTorch native grid_sample.*")
    warp_img, warp_lab = Warp(mode="bilinear", padding_mode="border"), Warp(mode="nearest", padding_mode="border")
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(args.loops):
        loop = simulate(sample_params(seed, size=args.size))
        ed, es = loop.ed[0], loop.es[0]
        s = loop.spacing_mm[0]
        edv, esv = mask_volume(loop.labels[ed], s), mask_volume(loop.labels[es], s)
        ef_mask = 100.0 * (edv - esv) / edv
        ddf = torch.from_numpy(loop.ddf_from_ed[es][None])
        lab_ed = torch.from_numpy(loop.labels[ed][None, None].astype(np.float32))
        lab_w = warp_lab(lab_ed, ddf)[0, 0].numpy().round().astype(np.uint8)
        onehot = torch.from_numpy(np.eye(7, dtype=np.float32)[loop.labels[ed]].transpose(2, 0, 1)[None])
        lab_w1 = warp_img(onehot, ddf)[0].numpy().argmax(0)
        lab_es = loop.labels[es]
        # compare where the ES pixel's ED source was imaged too (the sector edge clips labels differently)
        seen = warp_lab(torch.from_numpy(loop.sector_mask[None, None].astype(np.float32)), ddf)[0, 0].numpy() > 0.5
        lab_es = np.where(seen, lab_es, 0)
        lab_w, lab_w1 = np.where(seen, lab_w, 0), np.where(seen, lab_w1, 0)
        img_w = warp_img(torch.from_numpy(loop.frames[ed][None, None]), ddf)[0, 0].numpy()
        myo = lab_es == 2
        resid = np.abs(img_w - loop.frames[es])[myo].mean()
        raw = np.abs(loop.frames[ed] - loop.frames[es])[myo].mean()
        # speckle tracking over consecutive pairs
        T, H, W = loop.frames.shape
        nccs, raws, moved = [], [], []
        for t in range(T - 1):
            m = ndimage.binary_erosion(loop.labels[t + 1] == 2, iterations=2)
            m[:6], m[-6:], m[:, :6], m[:, -6:] = False, False, False, False
            cand = np.argwhere(m)
            if len(cand) == 0:
                continue
            centres = cand[rng.choice(len(cand), size=min(60, len(cand)), replace=False)]
            d = torch.from_numpy(loop.ddf_to_next[t][None])
            comp = warp_img(torch.from_numpy(loop.frames[t][None, None]), d)[0, 0].numpy()
            nccs.append(patch_ncc(loop.frames[t + 1], comp, centres))
            raws.append(patch_ncc(loop.frames[t + 1], loop.frames[t], centres))
            moved.append(np.hypot(*loop.ddf_to_next[t][:, centres[:, 0], centres[:, 1]]) > 1.0)
        nccs, raws, moved = np.concatenate(nccs), np.concatenate(raws), np.concatenate(moved)
        rows.append(dict(
            seed=seed, ef=loop.ef, target=loop.params["target_ef"], ef_mask=ef_mask,
            dice_lv=dice(lab_w == 1, lab_es == 1), dice_myo=dice(lab_w == 2, lab_es == 2),
            dice_lv1=dice(lab_w1 == 1, lab_es == 1), dice_myo1=dice(lab_w1 == 2, lab_es == 2),
            resid=resid, raw=raw, ncc=nccs.mean(), ncc_raw=raws.mean(),
            ncc_mv=nccs[moved].mean() if moved.any() else np.nan,
            ncc_raw_mv=raws[moved].mean() if moved.any() else np.nan,
        ))
        r = rows[-1]
        print(f"seed {seed:3d}: EF rec {r['ef']:5.1f} mask {r['ef_mask']:5.1f} target {r['target']:5.1f} | "
              f"Dice LV {r['dice_lv']:.3f} myo {r['dice_myo']:.3f} | warp resid {r['resid']:.3f} raw {r['raw']:.3f} | "
              f"NCC comp {r['ncc']:.2f} raw {r['ncc_raw']:.2f} (moving: {r['ncc_mv']:.2f} vs {r['ncc_raw_mv']:.2f})")
    a = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in rows[0]}
    err = np.abs(a["ef_mask"] - a["ef"])
    print(f"\n{len(rows)} loops at {args.size}x{args.size}")
    print(f"mask EF vs recorded EF: mean |diff| {err.mean():.2f}, max {err.max():.2f} EF points (target <= 1)")
    print(f"recorded EF vs target EF: mean |diff| {np.abs(a['ef'] - a['target']).mean():.2f} EF points")
    print(f"ED->ES mask warp Dice, nearest: LV cavity mean {a['dice_lv'].mean():.4f} min {a['dice_lv'].min():.4f}; "
          f"myocardium mean {a['dice_myo'].mean():.4f} min {a['dice_myo'].min():.4f} (target >= 0.97)")
    print(f"ED->ES mask warp Dice, one-hot bilinear: LV cavity mean {a['dice_lv1'].mean():.4f} min "
          f"{a['dice_lv1'].min():.4f}; myocardium mean {a['dice_myo1'].mean():.4f} min {a['dice_myo1'].min():.4f}")
    print(f"ED->ES image warp in the myocardium: residual {a['resid'].mean():.4f} vs raw difference "
          f"{a['raw'].mean():.4f} (ratio {np.mean(a['resid'] / a['raw']):.2f})")
    print(
        f"speckle tracking NCC, all pairs: compensated {a['ncc'].mean():.3f} vs uncompensated {a['ncc_raw'].mean():.3f}"
    )
    print(f"speckle tracking NCC, patches moving > 1 px: compensated {np.nanmean(a['ncc_mv']):.3f} vs "
          f"uncompensated {np.nanmean(a['ncc_raw_mv']):.3f} (target compensated >= 0.8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
