#!/usr/bin/env python3
"""The two real loops as an EchoNet-Dynamic acceptance set presents them, scored by ``echokdm evaluate`` (issue #21).

    python pipelines/bench/real_echonet.py [--out real_echonet] [--predictors copy,tps,kdm,kdm-heart:8] \
        [--keypoints 20] [--acuson DCM] [--threads 1] [--weights DIR] [--seg-weights W]

``OUT/echonet`` (kept when it exists) is an EchoNet-Dynamic folder (``FileList.csv``, ``VolumeTracings.csv``,
``Videos/*.avi``, and ``views.csv``: loop, beat and view of every study): for each real loop (the bundled SonoSite
sample and ``--acuson``), each beat (ED -> ES) the built-in segmenter finds at full resolution and each of
:data:`VIEWS` (3 zooms x 3 horizontal offsets of ``seg_proxies.echonet_crop``'s 112-px square from the fan's apex,
MJPEG quality 50, 70 or 90), one study: the crop of the whole loop, with that beat's ED and ES traced.
The "expert" tracings are a stand-in: the built-in segmenter's LV cavity on the FULL-resolution loop, mapped into
the crop and traced as EchoNet does (long axis + 20 chords, ``echokdm.phantom.layouts.volume_tracing``); no expert
has traced these loops. Views whose mapped cavity touches the crop's edge are left out (counted).
Then runs, as the maintainers do, ``echokdm evaluate --data OUT/echonet --task es --predictors ... --keypoints K
--report OUT/report`` (which prints its summary) and prints the paired differences of every model against copy
and tps, over all studies, and per-loop means.
The studies are views of two hearts: their bootstrap CIs show the spread over crops and compression, not over
patients.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from seg_proxies import ECHONET, REAL_LOOPS, echonet_frames, echonet_matrix, write_avi

from echokdm.errors import InputError

#: (zoom, offset, MJPEG quality): the crop's side is ``zoom`` x the loop's ``REAL_LOOPS`` depth fraction, moved
#: ``offset`` of its side to the right; the qualities form a Latin square over zooms and offsets
VIEWS: tuple[tuple[float, float, int], ...] = tuple(
    (zoom, offset, (50, 70, 90)[(i + j) % 3])
    for i, zoom in enumerate((1.0, 1.1, 1.2))
    for j, offset in enumerate((-0.06, 0.0, 0.06))
)
PAIRS_AGAINST = ("copy", "tps")
PAIR_METRICS = ("psnr", "ssim", "dice", "ef_err")


@dataclass(frozen=True)
class RealLoop:
    """A full-resolution loop with the built-in segmenter's labels.

    Attributes:
        name: short name (file names of its studies start with it).
        frames: (T, H, W) float32 in [0, 1].
        sector: (H, W) bool sector mask.
        labels: (T, H, W) uint8 CAMUS labels (1 LV cavity, 2 myocardium, 3 LA).
        beats: (ED, ES) frame pairs.
        frame_time_ms: frame interval.
        keep: fraction of the fan's depth the zoom-1 crop keeps (``REAL_LOOPS``).
        spacing_mm: (dy, dx) or None.
    """

    name: str
    frames: np.ndarray
    sector: np.ndarray
    labels: np.ndarray
    beats: list[tuple[int, int]]
    frame_time_ms: float
    keep: float
    spacing_mm: tuple[float, float] | None = None


def real_loop(name: str, path: Path, keep: float, segmenter) -> RealLoop:
    """``path`` read and segmented as ``echokdm predict`` does (``real_loops.study_of``), every beat kept."""
    from real_loops import study_of

    study = study_of(path, segmenter)
    inp = study.input
    return RealLoop(name, inp.frames, inp.sector, study.labels, list(study.phases.beats) or [study.beat],
                    float(inp.meta.get("frame_time_ms") or 33.3), keep, inp.spacing)


def _traced(labels: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """EchoNet tracing (21, 4) in the crop of one full-resolution label map and its 20 full-resolution keypoints;
    None when the mapped cavity touches the crop's edge."""
    from echokdm.keypoints import extract_keypoints
    from echokdm.phantom.layouts import volume_tracing

    kps = extract_keypoints(labels, 20)
    cavity = cv2.warpAffine((labels == 1).astype(np.float32), m, (ECHONET, ECHONET), flags=cv2.INTER_LINEAR) >= 0.5
    edge = np.concatenate([cavity[0], cavity[-1], cavity[:, 0], cavity[:, -1]])
    if edge.any() or cavity.sum() < 10:
        return None
    mid = m @ np.r_[(kps[0] + kps[-1]) / 2, 1.0]  # annulus midpoint (x, y) in the crop
    return volume_tracing(cavity, (mid[1], mid[0])), kps


def write_echonet(out: Path, loops: list[RealLoop], views=VIEWS) -> tuple[list[dict], int]:
    """Write the EchoNet-Dynamic folder ``out`` of every loop, beat and view.

    Returns:
        One row per study written (name, loop, beat, zoom, offset, quality, EF) and the number of (beat, view)
        pairs left out because the cavity leaves the crop.
    """
    from echokdm.metrics import ef_from_keypoints, measure_frame

    (out / "Videos").mkdir(parents=True, exist_ok=True)
    fl = ["FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split"]
    vt = ["FileName,X1,Y1,X2,Y2,Frame"]
    rows, left_out = [], 0
    for loop in loops:
        fps = 1000.0 / loop.frame_time_ms
        for zoom, offset, quality in views:
            m = echonet_matrix(loop.sector, loop.keep * zoom, offset)
            video = None
            for ed, es in loop.beats:
                traced = [_traced(loop.labels[f], m) for f in (es, ed)]
                if any(t is None for t in traced):
                    left_out += 1
                    continue
                (trace_es, kp_es), (trace_ed, kp_ed) = traced
                name = f"{loop.name}_b{ed}-{es}_z{round(zoom * 100)}_x{round(offset * 100):+d}_q{quality}"
                if video is None:
                    video = echonet_frames(loop.frames, m)
                write_avi(out / "Videos" / f"{name}.avi", video, fps, quality)
                ef = ef_from_keypoints(kp_ed, kp_es, loop.spacing_mm)
                vols = ["", ""]
                if loop.spacing_mm is not None:  # mL; EchoNet's volumes, not read by evaluate
                    vols = [f"{measure_frame(k, loop.spacing_mm).volume_simpson:.3f}" for k in (kp_es, kp_ed)]
                fl.append(f"{name},{ef:.3f},{vols[0]},{vols[1]},{ECHONET},{ECHONET},{fps:.4f},{len(video)},TEST")
                for frame, trace in ((es, trace_es), (ed, trace_ed)):  # ES first, ED last, as EchoNet
                    vt += [f"{name}.avi,{x1:.4f},{y1:.4f},{x2:.4f},{y2:.4f},{frame}" for x1, y1, x2, y2 in trace]
                rows.append({"name": name, "loop": loop.name, "ed": ed, "es": es, "zoom": zoom, "offset": offset,
                             "quality": quality, "ef": round(ef, 2)})
    (out / "FileList.csv").write_text("\n".join(fl) + "\n")
    (out / "VolumeTracings.csv").write_text("\n".join(vt) + "\n")
    import pandas as pd

    pd.DataFrame(rows).to_csv(out / "views.csv", index=False)
    return rows, left_out


def evaluate(data: Path, report: Path, predictors: str, keypoints: int, weights: str | None = None,
             seg_weights: str = "seg_a4c") -> list[str]:
    """Run ``echokdm evaluate`` as the maintainers do (a child process; resumes a report of the same run) and
    return the command; ``weights``: evaluate's ``--weights`` of the KDM predictors (None: shipped);
    ``seg_weights``: its ``--seg-weights``."""
    cmd = [sys.executable, "-m", "echokdm", "evaluate", "--data", str(data), "--task", "es", "--predictors",
           predictors, "--keypoints", str(keypoints), "--report", str(report)]
    cmd += ["--weights", weights] if weights else []
    cmd += ["--seg-weights", seg_weights] if seg_weights != "seg_a4c" else []
    print("$ echokdm " + " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True)
    return cmd


def paired_table(scores: Path, views: Path) -> str:
    """Every model minus copy and tps (paired, bootstrap 95% CI, n) on PSNR, SSIM, Dice and EF error, over all
    studies and per loop (means), from the report's ``scores.csv``."""
    import pandas as pd

    from echokdm.evaluate.stats import paired_difference
    from echokdm.evaluate.summary import paired, scored

    table = scored(pd.read_csv(scores, dtype={"case_id": str}))
    loop_of = pd.read_csv(views).set_index("name")["loop"]
    table = table.assign(loop=table["case_id"].map(loop_of))
    models = [p for p in table["predictor"].unique() if table.loc[table.predictor == p, "kind"].iloc[0] == "model"]
    lines = ["| pair | " + " | ".join(PAIR_METRICS) + " | n |", "|---|" + "---|" * (len(PAIR_METRICS) + 1)]
    for a in models:
        for b in PAIRS_AGAINST:
            cells, n = [], 0
            for metric in PAIR_METRICS:
                e = paired_difference(*paired(table, metric, a, b))
                star = "*" if e.n and (e.lo > 0 or e.hi < 0) else ""
                cells.append(f"{e.mean:+.3f} [{e.lo:+.3f}, {e.hi:+.3f}]{star}" if e.n else "n/a")
                n = max(n, e.n)
            lines.append(f"| {a} − {b} | " + " | ".join(cells) + f" | {n} |")
    lines += ["", "| loop | predictor | PSNR | SSIM | LV Dice | EF error | n |", "|---|---|---|---|---|---|---|"]
    for (loop, name), g in table.groupby(["loop", "predictor"], sort=False):
        means = [g[m].mean() for m in PAIR_METRICS]
        lines.append(f"| {loop} | {name} | {means[0]:.2f} | {means[1]:.3f} | {means[2]:.3f} | {means[3]:.1f} | "
                     f"{len(g)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("real_echonet"), help="folder of the data set and the report")
    ap.add_argument("--predictors", default="copy,tps,kdm,kdm-heart:8", help="evaluate's --predictors")
    ap.add_argument("--keypoints", type=int, default=20, choices=(20, 40), help="evaluate's --keypoints")
    ap.add_argument("--report", default=None, help="report folder name under --out (default report or report40)")
    ap.add_argument("--acuson", type=Path, default=Path(REAL_LOOPS[1][1]), help="the second real loop")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (here and in evaluate)")
    ap.add_argument("--weights", default=None,
                    help="evaluate's --weights of the KDM predictors (e.g. an `echokdm train k2f --out DIR`)")
    ap.add_argument("--seg-weights", default="seg_a4c",
                    help="segmenter weights of the stand-in tracings and of evaluate (a candidate segmenter)")
    a = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(a.threads)  # before torch loads; evaluate inherits it
    import torch

    from echokdm.data import sample_path
    from echokdm.segmenter import BuiltinSegmenter

    torch.set_num_threads(a.threads)
    data = a.out / "echonet"
    if not (data / "FileList.csv").exists():
        segmenter = BuiltinSegmenter(weights=a.seg_weights)
        paths = {"sonosite": sample_path("sonosite"), "acuson": a.acuson}
        loops = [real_loop(name, paths[name], keep, segmenter) for name, _, keep in REAL_LOOPS
                 if paths[name].exists()]
        if not loops:
            raise InputError("no real loop found")
        rows, left_out = write_echonet(data, loops)
        print(f"wrote {len(rows)} studies to {data} ({left_out} beat/view pairs left out: cavity outside the crop); "
              + ", ".join(f"{lp.name}: beats {lp.beats}" for lp in loops), flush=True)
    report = a.out / (a.report or ("report" if a.keypoints == 20 else f"report{a.keypoints}"))
    evaluate(data, report, a.predictors, a.keypoints, a.weights, a.seg_weights)  # prints the report's summary
    print("\n## Paired differences (model − baseline, bootstrap 95% CI over studies; * CI excludes 0)\n")
    print(paired_table(report / "scores.csv", data / "views.csv"))


if __name__ == "__main__":
    main()
