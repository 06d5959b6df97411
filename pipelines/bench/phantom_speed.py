"""Phantom simulation speed: frames per second at 256x256 with 2 threads in one process.

    python pipelines/bench/phantom_speed.py [--loops 5] [--size 256] [--threads 2]

Each loop is a sampled subject (1-3 beats, 30-60 frames per beat) simulated end to end: labels, both
displacement fields, images. The whole time (set-up included) is counted, as wall time and as CPU time
(the process's threads together; on a shared machine the wall time depends on the other jobs, printed as
the load average).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loops", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    from echokdm.phantom import sample_params, simulate

    torch.set_num_threads(args.threads)
    frames = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for seed in range(args.loops):
        loop = simulate(sample_params(seed, size=args.size))
        frames += loop.frames.shape[0]
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.loops} loops, {frames} frames at {args.size}x{args.size}, {args.threads} threads: "
          f"{dt:.2f} s wall, {frames / dt:.1f} frames/s ({1000 * dt / frames:.1f} ms/frame); "
          f"{cpu:.2f} s CPU ({frames / cpu:.1f} frames per CPU-second); machine load average {load:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
