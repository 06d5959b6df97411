"""Does the segmenter follow the image? Deformation equivariance on the real loops, without labels (issue #19).

For each loop the segmenter's own ED and ES (first beat of its area curve) and their 20 keypoints give a
thin-plate-spline flow; the ED frame is warped onto the ES keypoints and the ES frame onto the ED keypoints.
The warped frame's true labels are the warped labels (the pixels moved with them), so a segmenter that
follows the endocardium labels the warped frame as the warped labels. Printed per loop and direction: LV
Dice between the two, the ratio of their cavity areas, the EF of the keypoints and the EF read on the warped
frame (Simpson, the source's keypoints against the warped frame's). Real loops: the bundled SonoSite sample
and ``../shared/data/real/acuson_a4c.dcm``; phantom validation loops as a reference.

    python pipelines/bench/seg_equivariance.py [--weights seg_a4c [FILE ...]] [--phantom 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from echokdm.errors import InputError
from echokdm.flow import keypoint_flow, warp
from echokdm.keypoints.extract import extract_keypoints
from echokdm.metrics.clinical import ef_between
from echokdm.phases import detect_phases

ACUSON = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "acuson_a4c.dcm"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def _warp(image: np.ndarray, flow: np.ndarray, mode: str = "bilinear") -> np.ndarray:
    moved = warp(torch.as_tensor(image, dtype=torch.float32)[None, None], torch.as_tensor(flow)[None], mode)
    return moved[0, 0].numpy()


def loop_rows(segmenter, frames: np.ndarray, mask: np.ndarray, frame_time_ms, spacing_mm, name: str) -> list[dict]:
    """The two warps (ED -> ES keypoints, ES -> ED keypoints) of one loop."""
    out = segmenter(frames, sector_mask=mask, frame_time_ms=frame_time_ms)
    phases = detect_phases(out.lv_area_px, frame_time_ms)
    ed, es = phases.beats[0] if phases.beats else (int(np.argmax(out.lv_area_px)), int(np.argmin(out.lv_area_px)))
    kps = {i: extract_keypoints(out.labels[i], 20) for i in (ed, es)}
    rows = []
    for a, b in ((ed, es), (es, ed)):
        flow = np.asarray(keypoint_flow(kps[a], kps[b], out.labels[a].shape), dtype=np.float32)
        moved = _warp(frames[a], flow)
        truth = _warp(out.labels[a], flow, "nearest").astype(np.uint8) == 1
        read = segmenter(moved[None], sector_mask=mask).labels[0]
        try:
            ef_read = ef_between(kps[a], extract_keypoints(read, 20), a == ed, spacing_mm)
        except InputError:
            ef_read = float("nan")
        rows.append({
            "loop": name, "warp": "ED->ES" if a == ed else "ES->ED", "ed": ed, "es": es,
            "dice": round(_dice(read == 1, truth), 3),
            "area_ratio": round(float((read == 1).sum() / max(1, truth.sum())), 3),
            "ef_keypoints": round(ef_between(kps[a], kps[b], a == ed, spacing_mm), 1),
            "ef_read": round(float(ef_read), 1),
        })
    return rows


def rows_for(weights: str, n_phantom: int) -> list[dict]:
    """Every row of one segmenter: the real loops, then ``n_phantom`` phantom validation loops."""
    from echokdm.data import sample_path
    from echokdm.io import load_cine
    from echokdm.models.seg import LVSegmenter
    from echokdm.phantom import sample_params, simulate, split_seeds

    segmenter = LVSegmenter.from_pretrained(weights)
    rows = []
    for name, path in (("sonosite", sample_path()), ("acuson", ACUSON)):
        if not Path(path).is_file():
            continue
        loop = load_cine(path)
        meta = loop.meta
        rows += loop_rows(segmenter, loop[0].numpy(), meta["sector_mask"], meta.get("frame_time_ms"),
                          meta.get("spacing_mm"), name)
    for seed in split_seeds("val", n_phantom):
        lp = simulate(sample_params(seed, size=256))
        rows += loop_rows(segmenter, lp.frames.astype(np.float32), np.asarray(lp.sector_mask, bool), lp.frame_time_ms,
                          lp.spacing_mm, "phantom")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="+", default=["seg_a4c"])
    ap.add_argument("--phantom", type=int, default=4, help="phantom validation loops beside the real ones")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import pandas as pd

    for weights in args.weights:
        table = pd.DataFrame(rows_for(weights, args.phantom))
        table["ef_error"] = (table["ef_read"] - table["ef_keypoints"]).abs()
        print(f"weights {weights}")
        print(table.to_string(index=False))
        summary = table.groupby("loop", sort=False)[["dice", "area_ratio", "ef_error"]].mean().round(3)
        print(summary.to_string())
        print()


if __name__ == "__main__":
    main()
