#!/usr/bin/env python3
"""Fit the keypoint motion prior on the training loops' ED→ES keypoint trajectories.

    python pipelines/fit_prior.py --config pipelines/configs/k2f.yaml --out runs/prior.safetensors \\
        [--data KIND:PATH ...] [--seg-weights W] [--real LOOP.dcm ...] [--real-weight W]

Uses the same cached phantom training pairs as the KDM models (``data:`` section of the config), plus the
segmenter's keypoints of every frame of each beat (ED→ES) of other loops, each counted ``--real-weight`` times:
the training split's cines of each ``--data`` source (``echonet``, ``camus``, ``cine-folder``, as ``echokdm train
--data`` takes them) and the DICOM loops of ``--real``. ``--seg-weights`` is the segmenter giving those keypoints
(default: the shipped one; the reproduce chain passes the one it fine-tuned on the data set). Then reports how
well it predicts ES keypoints on the phantom validation loops (mean keypoint error in pixels, and the EF the
predicted keypoints imply vs the truth) and on each ``--score`` loop (the prior asked for the beat's own EF: mean
keypoint distance to the real ES keypoints in % of the ED long axis; honest only for a loop left out of the fit).
"""

import argparse

import numpy as np

from echokdm.config import load_config
from echokdm.defaults import SEG_WEIGHTS
from echokdm.metrics import ef_from_keypoints
from echokdm.models.prior import KeypointMotionPrior, canonical_frame
from echokdm.predict import read_input
from echokdm.segmenter import BuiltinSegmenter
from echokdm.train.kdm import K2FRunConfig
from echokdm.train.pairs import cached_pairs
from echokdm.train.sources import SourceConfig, parse_data_option
from echokdm.train.trajectories import beat_trajectories, source_trajectories


def real_systoles(path: str, segment: BuiltinSegmenter) -> tuple[list[np.ndarray], tuple[float, float] | None]:
    """The keypoint trajectories ED→ES of each beat of the DICOM loop at ``path``, and its spacing."""
    inp = read_input(path)
    return beat_trajectories(segment, inp.frames, inp.sector, inp.meta.get("frame_time_ms")), inp.spacing


def real_es_error(prior: KeypointMotionPrior, systoles: list[np.ndarray], spacing) -> float:
    """Mean keypoint distance (% of the ED long axis) of the prior's ES at each beat's own EF to its real ES."""
    errs = []
    for traj in systoles:
        es = prior(traj[0], target_ef=ef_from_keypoints(traj[0], traj[-1], spacing), spacing_mm=spacing)
        errs.append(100 * np.linalg.norm(es - traj[-1], axis=1).mean() / canonical_frame(traj[0])[2])
    return float(np.mean(errs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="pipelines/configs/k2f.yaml")
    ap.add_argument("--out", default="runs/prior.safetensors")
    ap.add_argument("--data", action="append", default=[], metavar="KIND:PATH",
                    help="a data set (echonet, camus, cine-folder) whose training cines' keypoints join the fit")
    ap.add_argument("--seg-weights", default=SEG_WEIGHTS, help="segmenter giving the keypoints of --data and --real")
    ap.add_argument("--real", nargs="*", default=[], help="real loops (DICOM) whose segmenter keypoints join the fit")
    ap.add_argument("--score", nargs="*", default=[], help="real loops to score on (keep them out of --real)")
    ap.add_argument("--real-weight", type=int, default=1, help="times each real trajectory is counted")
    a = ap.parse_args()
    d = load_config(a.config, K2FRunConfig).data
    train = cached_pairs(d.cache_dir, "train", d.train_loops, d.size, d.n_keypoints, d.every)
    val = cached_pairs(d.cache_dir, "val", d.val_loops, d.size, d.n_keypoints, d.every)
    segment = BuiltinSegmenter(weights=a.seg_weights)
    real = [t for path in a.real for t in real_systoles(path, segment)[0]]
    for text in a.data:
        beats, n = source_trajectories(SourceConfig(**parse_data_option(text)), segment)
        print(f"--data {text}: {len(beats)} beats ED -> ES from {n} training cines")
        real += beats
    prior = KeypointMotionPrior.fit(train.systoles() + real * a.real_weight)
    prior.save(a.out)
    errs, ef_pred, ef_true = [], [], []
    for traj in val.systoles():
        es = prior.predict(traj[0])[0]
        errs.append(np.linalg.norm(es - traj[-1], axis=1).mean())
        ef_pred.append(ef_from_keypoints(traj[0], es))
        ef_true.append(ef_from_keypoints(traj[0], traj[-1]))
    diff = np.array(ef_pred) - np.array(ef_true)
    print(f"prior fitted on {len(train.ed)} phantom loops + {len(real)} other beats x {a.real_weight} -> {a.out}")
    print(
        f"val ES keypoint error {np.mean(errs):.2f} px (mean over {len(errs)} loops); "
        f"EF prior-vs-true MAE {np.abs(diff).mean():.1f} points (a typical heart, not this one's EF); "
        f"at the true EF: {real_es_error(prior, val.systoles(), None):.2f} % of the long axis"
    )
    for path in a.score:
        err = real_es_error(prior, *real_systoles(path, segment))
        print(f"{path}: ES at the beat's own EF vs the real ES keypoints: {err:.2f} % of the long axis")


if __name__ == "__main__":
    main()
