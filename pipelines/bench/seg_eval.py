"""Segmenter accuracy on the held-out phantom test split (seeds never used in training or validation).

    python pipelines/bench/seg_eval.py [--weights seg_a4c] [--n 20] [--threads 2] [--split test]

``--split val`` scores the validation split instead, to choose among checkpoints without touching the test split.

Each test loop is simulated with the phantom's default sampling (full loops, 256x256, subject and image
parameters drawn from the seed), segmented by LVSegmenter on its own grid, and compared with the truth:

- Dice of LV cavity, LV myocardium and LA (mean over all frames of all loops; phantom labels > 3 count as
  background);
- EF: ``echokdm.metrics.measure_loop`` on the predicted masks (area-length and Simpson) against the
  phantom's true EF (area-length volumes of the exact masks), and against the same measurement run on
  the true masks (which isolates the segmentation's share of the error);
- ED/ES: phases found on the predicted area curve against the phantom's ED/ES frames (fraction within
  one frame, and the largest miss). The phantom's true LV area is flat for several frames around ED and
  ES (isovolumic phases, 15-25 ms frames), and its ED/ES index is the first frame of that plateau, so a
  second score counts a predicted phase as right when it is within one frame of the true plateau (frames
  whose true area is within 1% of the area range of the true extreme);
- area-curve jitter of the predicted masks against that of the true masks;
- LV-cavity area, predicted over true, at the true ED and ES frames (a cavity shrunk toward a mean size shows
  as ED < 1 < ES: a negative EF bias).
- LV-myocardium area, predicted over true, at the true ED and ES frames; and its ES over ED area, predicted and
  true (the wall thickens as the cavity shrinks; a predicted ratio below the true one: a wall read too thin at
  ES or too thick at ED).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle threads sleep (shared CPUs)
import time

import numpy as np
import torch

from echokdm.defaults import SEG_WEIGHTS
from echokdm.errors import InputError
from echokdm.labels import camus_labels
from echokdm.metrics import measure_loop
from echokdm.models.seg import LVSegmenter, area_jitter, dice_per_class
from echokdm.phantom import sample_params, simulate, split_seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=SEG_WEIGHTS, help="shipped name or model.safetensors path")
    ap.add_argument("--n", type=int, default=20, help="test loops")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--split", choices=("test", "val"), default="test", help="phantom split to score")
    ap.add_argument("--no-annulus-clip", action="store_true", help="leave cavity beyond the mitral annulus")
    ap.add_argument("--temporal-sigma-ms", type=float, default=None, help="override the smoothing over time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kw = {} if args.temporal_sigma_ms is None else {"temporal_sigma_ms": args.temporal_sigma_ms}
    seg = LVSegmenter.from_pretrained(args.weights, annulus_clip=not args.no_annulus_clip, **kw)

    dice: dict[str, list[float]] = {"lv": [], "myo": [], "la": []}
    rows = []
    seeds = iter(split_seeds(args.split, 10 * args.n))
    t_seg = 0.0
    while len(rows) < args.n:
        seed = next(seeds)
        try:
            loop = simulate(sample_params(seed))
        except InputError:  # parameters the phantom refuses (a heart too large for the drawn sector)
            continue
        truth = camus_labels(loop.labels)
        t0 = time.perf_counter()
        out = seg(loop.frames, sector_mask=loop.sector_mask)
        t_seg += time.perf_counter() - t0
        for k, v in dice_per_class(torch.from_numpy(out.labels), torch.from_numpy(truth)).items():
            dice[k] += [x for x in v.tolist() if not np.isnan(x)]
        area = (truth == 1).sum((1, 2))
        row = {"seed": seed, "frames": len(truth), "ef_true": loop.ef, "ed": loop.ed, "es": loop.es, "area": area}
        for phase in ("ed", "es"):
            idx = row[phase]
            row[f"area_ratio_{phase}"] = float(np.mean(out.lv_area_px[idx] / np.maximum(area[idx], 1)))
        wall_pred, wall_true = (out.labels == 2).sum((1, 2)), (truth == 2).sum((1, 2))
        for key, wall in (("wall_ratio_pred", wall_pred), ("wall_ratio_true", wall_true)):
            row[key] = float(wall[loop.es].mean() / max(wall[loop.ed].mean(), 1))
        for phase in ("ed", "es"):
            idx = row[phase]
            row[f"wall_area_ratio_{phase}"] = float(np.mean(wall_pred[idx] / np.maximum(wall_true[idx], 1)))
        try:
            pred = measure_loop(out.labels, 20, loop.spacing_mm, loop.frame_time_ms)
            ref = measure_loop(truth, 20, loop.spacing_mm, loop.frame_time_ms)
        except InputError as e:
            row["error"] = str(e)
        else:
            row.update(
                ef_al=pred.summary()["ef_area_length"],
                ef_simpson=pred.summary()["ef_simpson"],
                ef_al_on_truth=ref.summary()["ef_area_length"],
                ed_pred=pred.phases.ed,
                es_pred=pred.phases.es,
            )
        row["jitter_pred"], row["jitter_true"] = area_jitter(out.lv_area_px), area_jitter(area)
        rows.append(row)
        print(_row_text(row), flush=True)

    ok = [r for r in rows if "error" not in r and r["ef_al"] is not None]
    err_al = np.array([r["ef_al"] - r["ef_true"] for r in ok])
    err_sim = np.array([r["ef_simpson"] - r["ef_true"] for r in ok])
    err_seg = np.array([r["ef_al"] - r["ef_al_on_truth"] for r in ok])
    misses = [_miss(r["ed"], r["ed_pred"]) for r in ok] + [_miss(r["es"], r["es_pred"]) for r in ok]
    plateau = [_miss(r["ed"], r["ed_pred"], r["area"]) for r in ok] + [
        _miss(r["es"], r["es_pred"], r["area"]) for r in ok
    ]
    n_frames = sum(r["frames"] for r in rows)
    print()
    print(
        f"{args.split} loops: {len(rows)} ({n_frames} frames), measured: {len(ok)}; "
        f"weights {args.weights} ({seg.weights_sha256[:12]})"
    )
    for k, name in (("lv", "LV cavity"), ("myo", "LV myocardium"), ("la", "LA")):
        d = np.array(dice[k])
        print(f"Dice {name:14s} mean {d.mean():.3f}  median {np.median(d):.3f}  5th pct {np.percentile(d, 5):.3f}")
    print(f"EF area-length vs truth: MAE {np.abs(err_al).mean():.2f} points, bias {err_al.mean():+.2f}")
    print(f"EF Simpson vs truth:     MAE {np.abs(err_sim).mean():.2f} points, bias {err_sim.mean():+.2f}")
    print(f"EF area-length, predicted vs true masks (same measurement): MAE {np.abs(err_seg).mean():.2f} points")
    print(
        f"ED/ES within one frame of the phantom's index: {np.mean([m <= 1 for m in misses]):.1%} "
        f"of {len(misses)} phases (largest miss {max(misses)} frames)"
    )
    print(
        f"ED/ES within one frame of the true area plateau: {np.mean([m <= 1 for m in plateau]):.1%} "
        f"(largest miss {max(plateau)} frames)"
    )
    print(
        f"area jitter: predicted {np.mean([r['jitter_pred'] for r in rows]):.4f}, "
        f"true {np.mean([r['jitter_true'] for r in rows]):.4f}"
    )
    ratio_ed, ratio_es = (np.mean([r[f"area_ratio_{p}"] for r in rows]) for p in ("ed", "es"))
    print(f"LV area predicted / true: ED {ratio_ed:.3f}, ES {ratio_es:.3f}")
    wall_pred, wall_true = (np.mean([r[k] for r in rows]) for k in ("wall_ratio_pred", "wall_ratio_true"))
    wall_ed, wall_es = (np.mean([r[f"wall_area_ratio_{p}"] for r in rows]) for p in ("ed", "es"))
    print(f"LV myocardium area predicted / true: ED {wall_ed:.3f}, ES {wall_es:.3f}")
    print(f"LV myocardium area ES / ED: predicted {wall_pred:.3f}, true {wall_true:.3f}")
    print(f"segmenter time: {1000 * t_seg / n_frames:.1f} ms/frame (256x256 frames, {args.threads} threads)")


def _miss(truth: list[int], pred: list[int], area: np.ndarray | None = None) -> int:
    """Largest distance (frames) from a true phase to the nearest predicted one (99 when none predicted).

    With ``area`` (the true LV area curve), a true phase stands for its whole plateau: the contiguous
    frames whose area is within 1% of the curve's range of the area at the true phase.
    """
    worst = 0
    for t in truth:
        lo = hi = t
        if area is not None:
            tol = 0.01 * float(area.max() - area.min())
            while lo > 0 and abs(float(area[lo - 1]) - float(area[t])) <= tol:
                lo -= 1
            while hi < len(area) - 1 and abs(float(area[hi + 1]) - float(area[t])) <= tol:
                hi += 1
        worst = max(worst, min((max(lo - p, p - hi, 0) for p in pred), default=99))
    return worst


def _row_text(r: dict) -> str:
    if "error" in r:
        return f"seed {r['seed']}: EF true {r['ef_true']:.1f}; not measured: {r['error']}"
    return (
        f"seed {r['seed']}: EF true {r['ef_true']:.1f} pred AL {r['ef_al'] or float('nan'):.1f} "
        f"(on true masks {r['ef_al_on_truth'] or float('nan'):.1f}); "
        f"ED {r['ed']}->{r['ed_pred']} ES {r['es']}->{r['es_pred']}; "
        f"jitter {r['jitter_pred']:.4f}/{r['jitter_true']:.4f}"
    )


if __name__ == "__main__":
    main()
