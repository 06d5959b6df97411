"""Keypoints and volumes on analytic A4C-like label maps: invariance and closed-form accuracy.

Prints (1) how far the keypoints of a rotated / translated / scaled label map are from the same
transform applied to the original keypoints (random poses, 256 x 256 maps, LV 100 px long), and (2) the
area-length and Simpson volumes from extracted keypoints against their closed forms. Usage::

    python pipelines/bench/keypoints_analytic.py --poses 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[2] / "tests"))
from a4c_shapes import a4c_labels, cavity_area, cavity_long_axis, cavity_volume, to_image, to_shape  # noqa: E402

from echokdm.keypoints import extract_keypoints  # noqa: E402
from echokdm.metrics import measure_frame  # noqa: E402

SHAPE = dict(a=80.0, b=40.0, offset=20.0, wall=12.0)
BASE = (128.0, 200.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--poses", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    ref = extract_keypoints(a4c_labels((256, 256), base=BASE, **SHAPE), 40)
    print("keypoint invariance (40 keypoints; error = |keypoints of moved map - moved keypoints|, px)")
    print(f"{'angle':>7} {'scale':>6} {'dx':>6} {'dy':>6} {'mean':>6} {'max':>6} {'endo max':>8} {'epi max':>8}")
    means, maxes, all_err = [], [], []
    for _ in range(args.poses):
        angle, scale = rng.uniform(-35, 35), rng.uniform(0.8, 1.2)
        base = (BASE[0] + rng.uniform(-10, 10), BASE[1] + rng.uniform(-10, 10))
        moved = extract_keypoints(a4c_labels((256, 256), base=base, angle_deg=angle, scale=scale, **SHAPE), 40)
        err = np.linalg.norm(moved - to_image(to_shape(ref, BASE), base, angle, scale), axis=1)
        means.append(err.mean())
        maxes.append(err.max())
        all_err.append(err)
        print(f"{angle:7.1f} {scale:6.3f} {base[0] - BASE[0]:6.2f} {base[1] - BASE[1]:6.2f} {err.mean():6.3f} "
              f"{err.max():6.3f} {err[:20].max():8.3f} {err[20:].max():8.3f}")  # fmt: skip
    e = np.concatenate(all_err)
    print(f"over {args.poses} poses: mean {np.mean(means):.3f} px, worst pose mean {np.max(means):.3f} px, "
          f"median point {np.median(e):.3f} px, 95th percentile {np.percentile(e, 95):.3f} px, "
          f"points > 0.5 px {100 * (e > 0.5).mean():.1f}%, worst point {np.max(maxes):.3f} px")  # fmt: skip

    print("\nvolumes from extracted keypoints vs closed forms (256 x 256, annulus at a sub-pixel offset)")
    print(f"{'a':>4} {'b':>4} {'cut':>4} {'angle':>6} {'area %':>7} {'L %':>6} {'AL %':>6} {'Simpson %':>9}")
    worst = 0.0
    for a, b, offset in ((80, 40, 0), (80, 40, 20), (76, 34, -10), (90, 38, 10)):
        for angle in (0.0, 12.0, -25.0):
            lab = a4c_labels((256, 256), a=a, b=b, offset=offset, wall=12, base=(128.3, 200.2), angle_deg=angle)
            m = measure_frame(extract_keypoints(lab, 20))
            area, length = cavity_area(a, b, offset), cavity_long_axis(a, offset)
            errs = (
                100 * (m.area / area - 1),
                100 * (m.long_axis / length - 1),
                100 * (m.volume_area_length / (8 * area**2 / (3 * np.pi * length)) - 1),
                100 * (m.volume_simpson / cavity_volume(a, b, offset) - 1),
            )
            worst = max(worst, abs(errs[2]), abs(errs[3]))
            print(f"{a:4d} {b:4d} {offset:4d} {angle:6.1f} {errs[0]:7.2f} {errs[1]:6.2f} {errs[2]:6.2f} {errs[3]:9.2f}")
    print(f"worst volume error: {worst:.2f}%")


if __name__ == "__main__":
    main()
