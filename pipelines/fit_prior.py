#!/usr/bin/env python3
"""Fit the keypoint motion prior on the training loops' ED→ES keypoint trajectories.

    python pipelines/fit_prior.py --config pipelines/configs/k2f.yaml --out runs/prior.safetensors

Uses the same cached phantom training pairs as the KDM models (``data:`` section of the config), then
reports how well it predicts ES keypoints on the validation loops (mean keypoint error in pixels, and
the EF the predicted keypoints imply vs the truth).
"""

import argparse

import numpy as np

from echokdm.config import load_config
from echokdm.metrics import ef_from_keypoints
from echokdm.models.prior import KeypointMotionPrior
from echokdm.train.kdm import K2FRunConfig
from echokdm.train.pairs import cached_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="pipelines/configs/k2f.yaml")
    ap.add_argument("--out", default="runs/prior.safetensors")
    a = ap.parse_args()
    d = load_config(a.config, K2FRunConfig).data
    train = cached_pairs(d.cache_dir, "train", d.train_loops, d.size, d.n_keypoints, d.every)
    val = cached_pairs(d.cache_dir, "val", d.val_loops, d.size, d.n_keypoints, d.every)
    prior = KeypointMotionPrior.fit(train.systoles())
    prior.save(a.out)
    errs, ef_pred, ef_true = [], [], []
    for traj in val.systoles():
        es = prior.predict(traj[0])[0]
        errs.append(np.linalg.norm(es - traj[-1], axis=1).mean())
        ef_pred.append(ef_from_keypoints(traj[0], es))
        ef_true.append(ef_from_keypoints(traj[0], traj[-1]))
    diff = np.array(ef_pred) - np.array(ef_true)
    print(f"prior fitted on {len(train.ed)} loops -> {a.out}")
    print(
        f"val ES keypoint error {np.mean(errs):.2f} px (mean over {len(errs)} loops); "
        f"EF prior-vs-true MAE {np.abs(diff).mean():.1f} points (the prior predicts a typical heart, not this one's EF)"
    )


if __name__ == "__main__":
    main()
