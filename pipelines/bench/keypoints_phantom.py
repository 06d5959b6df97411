"""Keypoints, phases and EF on phantom loops against the phantom's ground truth.

For each loop: keypoints of every frame from the exact label maps, ED/ES from the keypoint area curve,
EF by area-length (the phantom's own definition of its true EF) and by Simpson; printed per loop and
aggregated (MAE, bias, 95% limits of agreement). Usage::

    python pipelines/bench/keypoints_phantom.py --n 20 --size 192 --keypoints 20
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from echokdm.errors import EchoKDMError
from echokdm.metrics import agreement, measure_loop
from echokdm.phantom import sample_params, simulate, split_seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="number of loops")
    ap.add_argument("--size", type=int, default=192, help="loop height and width in pixels")
    ap.add_argument("--keypoints", type=int, default=20, choices=(20, 40))
    ap.add_argument("--split", default="test")
    args = ap.parse_args()

    print(f"{'seed':>8} {'T':>3} {'ED true':>10} {'ED found':>10} {'ES true':>10} {'ES found':>10} "
          f"{'EF true':>7} {'EF AL':>6} {'EF Simp':>7} {'GLS':>6} {'sec':>5}")  # fmt: skip
    ef_true, ef_al, ef_simpson, phase_err, missed = [], [], [], [], 0
    for seed in split_seeds(args.split, args.n):
        t0 = time.perf_counter()
        try:
            loop = simulate(sample_params(seed, height=args.size, width=args.size))
        except EchoKDMError as e:  # a phantom that cannot be drawn is the phantom's problem, not ours
            print(f"{seed:>8} skipped: {e}")
            continue
        lm = measure_loop(loop.labels, args.keypoints, loop.spacing_mm, loop.frame_time_ms)
        found = dict(lm.phases.beats)
        errs = []
        for ed, es in zip(loop.ed, loop.es):
            match = [(e, s) for e, s in found.items() if abs(e - ed) <= 1]
            if not match:
                missed += 1
                continue
            e, s = match[0]
            errs += [abs(e - ed), abs(s - es)]
        phase_err += errs
        beat = next(((e, s) for e, s in found.items() if abs(e - loop.ed[0]) <= 1), None)
        al = simp = gls = float("nan")
        if beat is not None:
            b = next(x for x in lm.beats() if x["ed"] == beat[0])
            al, simp, gls = b["ef_area_length"], b["ef_simpson"], b["gls"]
        ef_true.append(loop.ef)
        ef_al.append(al)
        ef_simpson.append(simp)
        print(f"{seed:>8} {len(loop.labels):>3} {str(loop.ed):>10} {str(lm.phases.ed):>10} {str(loop.es):>10} "
              f"{str(lm.phases.es):>10} {loop.ef:7.2f} {al:6.2f} {simp:7.2f} {gls:6.1f} "
              f"{time.perf_counter() - t0:5.1f}")
    pe = np.array(phase_err)
    print(f"\nphases: {len(pe)} ED/ES frames compared, max error {pe.max():.0f} frame(s), "
          f"{(pe > 1).sum()} beyond one frame, {missed} true beat(s) not found")  # fmt: skip
    for name, values in (("area-length", ef_al), ("Simpson", ef_simpson)):
        g = agreement(values, ef_true)
        worst = np.nanmax(np.abs(np.asarray(values) - np.asarray(ef_true)))
        print(f"EF {name:>11} vs truth (n={g.n}): MAE {g.mae:.2f}, bias {g.bias:+.2f}, "
              f"LoA [{g.loa_low:+.2f}, {g.loa_high:+.2f}], worst {worst:.2f} points")  # fmt: skip


if __name__ == "__main__":
    main()
