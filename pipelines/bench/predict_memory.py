"""Peak memory of ``echokdm predict`` on a long, large loop (issue #22: <= 3 GiB for 600 frames of 800x600).

The loop is the real Acuson A4C loop (``../shared/data/real/acuson_a4c.dcm``, 65 frames of 576x456) resized to
800x600 and repeated to 600 frames (about nine beats), written as an uncompressed grey US Multi-frame DICOM
with its frame time and calibrated spacing, so the segmenter finds a real LV in every beat. ``echokdm predict``
then runs in a fresh process whose peak resident memory (VmHWM, Linux) is printed with its wall time.

    python pipelines/bench/predict_memory.py [--frames 600] [--width 800] [--height 600] [--source DCM]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from echokdm.io import read_cine
from echokdm.io.write import write_cine_dicom

ACUSON = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "acuson_a4c.dcm"

# what the echokdm executable runs (echokdm.cli.run), with this process's VmHWM printed before it leaves
CHILD = """
import json, sys
from echokdm.cli import lean_imports, main
lean_imports.install()
status = main(sys.argv[1:])
with open("/proc/self/status") as f:
    kib = int(next(line for line in f if line.startswith("VmHWM:")).split()[1])
print(json.dumps({"peak_rss_kib": kib, "status": status}), file=sys.stderr)
"""


def long_loop(source: Path, frames: int, width: int, height: int) -> tuple[np.ndarray, float, list[float] | None]:
    """The source loop resized to ``width`` x ``height`` and repeated (forward) to ``frames`` frames, with its
    frame time and the spacing scaled to the new grid."""
    grey, meta = read_cine(source, blank_outside_sector=False)
    t, h, w = grey.shape
    small = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in grey])
    loop = small[np.arange(frames) % t]
    sp = meta.get("spacing_mm")
    spacing = [sp[0] * h / height, sp[1] * w / width] if sp else None
    return loop, float(meta.get("frame_time_ms") or 33.3), spacing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--height", type=int, default=600)
    parser.add_argument("--source", type=Path, default=ACUSON)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long_cine.dcm"
        loop, frame_time, spacing = long_loop(args.source, args.frames, args.width, args.height)
        write_cine_dicom(path, loop, frame_time_ms=frame_time, spacing_mm=spacing)
        print(f"wrote {path.name}: {loop.shape[0]} frames of {loop.shape[2]}x{loop.shape[1]} grey, "
              f"{path.stat().st_size / 2**20:.0f} MiB, frame time {frame_time:.1f} ms, from {args.source.name}")
        t0 = time.perf_counter()
        cmd = [sys.executable, "-c", CHILD, "predict", "--dicom", str(path), "--out", str(Path(tmp) / "pred")]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        run = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
    lines = run.stderr.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if run.returncode != 0 or result.get("status") != 0:
        print("\n".join(lines[-5:]))
        raise SystemExit(f"echokdm predict failed (exit {run.returncode}, status {result.get('status')})")
    peak = result["peak_rss_kib"] / 2**20
    print(f"echokdm predict: {wall:.1f} s wall")
    print(f"peak RSS: {peak:.2f} GiB ({'under' if peak <= 3 else 'OVER'} the 3 GiB goal)")


if __name__ == "__main__":
    main()
