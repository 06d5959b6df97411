"""Keypoint motion prior: where the LV keypoints go from ED to ES (and every phase between).

A shape/motion model learned from training loops. Each loop's ED keypoints are put in a canonical frame
(origin at the annulus midpoint, y along the long axis towards the apex, unit long-axis length); the
motion is the canonical displacement of every keypoint at ``n_phases`` equally spaced phases of systole.
A ridge regression predicts the motion from the ED shape, so a big round ventricle and a small one move
differently; the residual modes (PCA) describe the variation the shape does not explain.

Asked for a target EF, the prior scales the predicted motion until the EF implied by the returned ES
keypoints (Simpson volumes, :func:`echokdm.metrics.ef_from_keypoints`, on the loop's pixel spacing) equals the
request. Called as a :class:`KeypointPrior`, it is what ``echokdm predict --target-ef`` and the harness's
``target-ef`` task use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from safetensors.numpy import save_file
from scipy.optimize import brentq

from echokdm.defaults import EF_LIMITS, PRIOR_WEIGHTS
from echokdm.errors import EchoKDMError, InputError
from echokdm.keypoints.epicardium import move_epicardium


class KeypointPrior(Protocol):
    """Keypoint motion prior: predicts ES keypoints from ED keypoints for a requested EF."""

    def __call__(
        self, source_keypoints: np.ndarray, *, target_ef: float, spacing_mm: Sequence[float] | None
    ) -> np.ndarray:
        """(K, 2) ED keypoints (x, y) in pixels of (dy, dx) ``spacing_mm`` (None: square pixels) -> (K, 2) ES
        keypoints whose EF is ``target_ef`` percent on that spacing."""


def canonical_frame(kps: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Similarity frame of a keypoint set: (origin (2,), rotation (2, 2) image→canonical, scale).

    Origin: annulus midpoint (mean of the two endocardial hinges, keypoints 0 and 19); the canonical
    y axis points to the apex (the endocardial keypoint farthest from the origin); scale = that distance.
    """
    endo = kps[:20]
    origin = (endo[0] + endo[19]) / 2
    d = np.linalg.norm(endo - origin, axis=1)
    axis = endo[int(np.argmax(d))] - origin
    length = float(np.linalg.norm(axis))
    if length < 1e-6:
        raise EchoKDMError("degenerate keypoints: the apex coincides with the annulus midpoint")
    uy = axis / length
    ux = np.array([uy[1], -uy[0]])
    return origin, np.stack([ux, uy]), length


@dataclass
class KeypointMotionPrior:
    """The fitted model (see the module docstring).

    Args:
        shape_mean: (K*2,) mean canonical ED shape.
        motion_mean: (P*K*2,) mean canonical motion.
        regression: (P*K*2, K*2) ridge coefficients motion ~ shape.
        modes: (M, P*K*2) residual PCA modes; ``mode_std``: (M,) their standard deviations.
        n_keypoints: K (20 or 40); ``n_phases``: P.
    """

    shape_mean: np.ndarray
    motion_mean: np.ndarray
    regression: np.ndarray
    modes: np.ndarray
    mode_std: np.ndarray
    n_keypoints: int
    n_phases: int

    @classmethod
    def fit(
        cls, trajectories: list[np.ndarray], n_phases: int = 10, ridge: float = 1e-2, n_modes: int = 8
    ) -> KeypointMotionPrior:
        """Fit from systolic keypoint trajectories.

        Args:
            trajectories: per loop a (T, K, 2) array from ED (first) to ES (last), T >= 2.
            n_phases: phases of systole the motion is sampled at (1/P, 2/P, ..., 1).
            ridge: ridge penalty of the shape → motion regression (canonical units).
            n_modes: residual modes kept.
        """
        if len(trajectories) < 2:
            raise InputError(f"the motion prior needs at least 2 training trajectories, got {len(trajectories)}")
        k = trajectories[0].shape[1]
        shapes, motions = [], []
        for traj in trajectories:
            traj = np.asarray(traj, dtype=np.float64)
            if traj.ndim != 3 or traj.shape[1:] != (k, 2) or len(traj) < 2:
                raise InputError(f"trajectory of shape {traj.shape} does not match (T>=2, {k}, 2)")
            origin, rot, scale = canonical_frame(traj[0])
            canon = (traj - origin) @ rot.T / scale
            s = np.linspace(0, 1, len(traj))
            phases = np.linspace(0, 1, n_phases + 1)[1:]
            resampled = np.stack(
                [np.stack([np.interp(phases, s, canon[:, i, j]) for j in range(2)], -1) for i in range(k)], 1
            )
            shapes.append(canon[0].ravel())
            motions.append((resampled - canon[0]).ravel())
        x, y = np.array(shapes), np.array(motions)
        xm, ym = x.mean(0), y.mean(0)
        xc, yc = x - xm, y - ym
        reg = np.linalg.solve(xc.T @ xc + ridge * len(x) * np.eye(x.shape[1]), xc.T @ yc).T
        resid = yc - xc @ reg.T
        _, sv, vt = np.linalg.svd(resid, full_matrices=False)
        m = min(n_modes, len(sv))
        return cls(xm, ym, reg, vt[:m], sv[:m] / np.sqrt(max(len(x) - 1, 1)), k, n_phases)

    def predict(
        self, source_kps: np.ndarray, phases: np.ndarray | list[float] | None = None, scale: float = 1.0
    ) -> np.ndarray:
        """Keypoints at the given phases of systole (0 = ED = the source, 1 = ES).

        Args:
            source_kps: (K, 2) ED keypoints (x, y) in pixels.
            phases: phases in [0, 1]; default ``[1.0]`` (ES).
            scale: multiplies the predicted motion (1 = the prior's expectation).

        Returns:
            (N, K, 2) keypoints in pixels, one set per phase.
        """
        src = np.asarray(source_kps, dtype=np.float64)
        if src.shape != (self.n_keypoints, 2):
            raise InputError(f"the motion prior expects ({self.n_keypoints}, 2) keypoints, got {src.shape}")
        phases = np.atleast_1d(np.asarray([1.0] if phases is None else phases, dtype=np.float64))
        if np.any((phases < 0) | (phases > 1)):
            raise InputError(f"phases must lie in [0, 1], got {phases.tolist()}")
        origin, rot, length = canonical_frame(src)
        canon = (src - origin) @ rot.T / length
        motion = (self.motion_mean + self.regression @ (canon.ravel() - self.shape_mean)).reshape(self.n_phases, -1, 2)
        grid = np.linspace(0, 1, self.n_phases + 1)
        full = np.concatenate([np.zeros((1, *motion.shape[1:])), motion])
        at = np.stack(
            [np.stack([np.interp(phases, grid, full[:, i, j]) for j in range(2)], -1) for i in range(full.shape[1])], 1
        )
        return (canon + scale * at) * length @ rot + origin

    def for_target_ef(
        self, source_kps: np.ndarray, target_ef: float, phases: np.ndarray | list[float] | None = None,
        spacing_mm: Sequence[float] | None = None,
    ) -> np.ndarray:
        """Like :meth:`predict`, with the motion scaled so that EF(source, ES keypoints) = ``target_ef``.

        Args:
            source_kps: (K, 2) ED keypoints (x, y) in pixels.
            target_ef: EF in percent.
            phases: see :meth:`predict`.
            spacing_mm: (dy, dx) pixel spacing the EF is measured on; None: square pixels.

        Raises:
            InputError: ``target_ef`` outside :data:`~echokdm.defaults.EF_LIMITS`, or not reachable by scaling
                this heart's motion.
        """
        from echokdm.metrics import ef_from_keypoints

        low, high = EF_LIMITS
        if not low <= target_ef <= high:
            raise InputError(f"target EF must be between {low:g} and {high:g} %, got {target_ef}")
        if spacing_mm is not None and spacing_mm[0] == spacing_mm[1]:
            spacing_mm = None  # EF does not change with the size of square pixels: solve in pixel units

        def gap(c: float) -> float:
            return ef_from_keypoints(source_kps, self.predict(source_kps, [1.0], c)[0], spacing_mm) - target_ef

        hi = 1.0
        while gap(hi) < 0 and hi < 8:
            hi *= 1.5
        if gap(0.0) > 0 or gap(hi) < 0:
            raise InputError(f"target EF {target_ef:g} % cannot be reached from this ventricle's keypoints")
        c = brentq(gap, 0.0, hi, xtol=1e-6)
        return self.predict(source_kps, phases, c)

    def __call__(
        self, source_keypoints: np.ndarray, *, target_ef: float, spacing_mm: Sequence[float] | None
    ) -> np.ndarray:
        """The ES keypoints for ``target_ef`` (:class:`KeypointPrior`): the endocardium of :meth:`for_target_ef` at
        ES; of 40 keypoints, the wall moves with it from the source's keeping its area
        (:func:`echokdm.keypoints.move_epicardium`), as ``echokdm predict --phase`` moves an observed target's:
        the wall motion learned on the phantom (whose ES wall has 1.12 times its ED area) dragged real loops' frames
        (on the Acuson loop a calibrated 35 % measured 28.1 %, now 35.0 %; docs/predict.md)."""
        es = self.for_target_ef(source_keypoints, target_ef, spacing_mm=spacing_mm)[-1]
        return move_epicardium(source_keypoints, es[:20]) if len(es) == 40 else es

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as safetensors (arrays) with its sizes in the metadata."""
        arrays = {
            k: np.ascontiguousarray(getattr(self, k), dtype=np.float32)
            for k in ("shape_mean", "motion_mean", "regression", "modes", "mode_std")
        }
        meta = {"task": "prior", "config": json.dumps({"n_keypoints": self.n_keypoints, "n_phases": self.n_phases})}
        save_file(arrays, str(path), metadata=meta)

    @classmethod
    def load(cls, name: str | os.PathLike = PRIOR_WEIGHTS) -> KeypointMotionPrior:
        """Read a model by shipped name (sha256-checked) or from a file written by :meth:`save` (no pickle)."""
        from echokdm import weights

        w = weights.load(name)
        return cls(**{k: v.double().numpy() for k, v in w.state_dict.items()}, **w.config)
