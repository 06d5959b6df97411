"""Segmenter inference time on the real SonoSite A4C cine (30 frames, 240x320) on CPU.

    python pipelines/bench/seg_speed.py [--weights seg_a4c] [--threads 2] [--repeats 5]

Prints the median and best wall time of LVSegmenter (rank equalisation, network, temporal smoothing,
mapping back to the DICOM grid, connected-component clean-up) for the whole loop; loading the DICOM is
not counted.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle threads sleep (shared CPUs)
import statistics
import time

import torch  # noqa: E402
from pydicom.data import get_testdata_file

from echokdm.defaults import SEG_WEIGHTS
from echokdm.io import load_cine
from echokdm.models.seg import LVSegmenter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=SEG_WEIGHTS, help="shipped name or model.safetensors path")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loop = load_cine(get_testdata_file("examples_ybr_color.dcm"))
    seg = LVSegmenter.from_pretrained(args.weights)
    seg(loop)  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        seg(loop)
        times.append(time.perf_counter() - t0)
    n = loop.shape[1]
    print(f"frames: {n} of {loop.shape[3]}x{loop.shape[2]}, working grid {seg.config.size}, threads: {args.threads}")
    print(
        f"segment loop: median {statistics.median(times):.3f} s, best {min(times):.3f} s "
        f"({n / statistics.median(times):.0f} frames/s)"
    )


if __name__ == "__main__":
    main()
