#!/usr/bin/env python3
"""Throughput of ``echokdm predict-batch`` (models loaded once per rank) on copies of the bundled sample.

    python pipelines/bench/batch_speed.py [--studies 8] [--ranks 1,2] [--cpus 2] [--steps 10]

For each rank count: a manifest of ``--studies`` copies of the SonoSite sample (ED -> ES, ``--steps``) is run in
a fresh process (1 rank: ``python -m echokdm predict-batch``; more: ``torchrun --nproc_per_node``), each rank with
``--cpus / ranks`` torch threads. Printed: studies per minute of wall time, whole command included (imports and
model loading), and the CPU seconds (user + system of every process) per study, which a loaded machine inflates
less. The reference floor (``/work/shared/bench/unet_floor.py``, 10 steps at 112x112) is timed in the same run.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = Path("/work/shared/bench/unet_floor.py")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``cmd`` and its children."""
    c0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0, children_cpu() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=8)
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--cpus", type=int, default=2, help="torch threads over all ranks")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: predict-batch's)")
    a = ap.parse_args()

    from echokdm.data import sample_path

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = []
        for i in range(a.studies):
            shutil.copyfile(sample_path("sonosite"), folder / f"study{i:03d}.dcm")
            rows.append({"study_id": f"study{i:03d}", "dicom": f"study{i:03d}.dcm"})
        manifest = folder / "manifest.csv"
        with manifest.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["study_id", "dicom"])
            w.writeheader()
            w.writerows(rows)
        results = {}
        for ranks in (int(r) for r in a.ranks.split(",")):
            threads = max(1, a.cpus // ranks)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "ECHOKDM_PROGRESS": "0"}
            out = folder / f"out{ranks}"
            args = ["predict-batch", "--manifest", str(manifest), "--device", "cpu", "--out", str(out),
                    *(["--steps", str(a.steps)] if a.steps else [])]
            launch = ([sys.executable, "-m", "echokdm"] if ranks == 1 else
                      ["torchrun", "--standalone", f"--nproc_per_node={ranks}", "-m", "echokdm"])
            results[ranks] = (threads, *timed(launch + args, env))
            done = len(list((out / ".done").iterdir()))
            if done != a.studies:
                raise SystemExit(f"{ranks} rank(s): {done} of {a.studies} studies done")
    floor = subprocess.run([sys.executable, str(FLOOR), "--res", "112", "--steps", "10", "--threads", str(a.cpus)],
                           capture_output=True, text=True, check=True).stdout.strip()
    print(floor)
    for ranks, (threads, wall, cpu) in results.items():
        print(f"{ranks} rank(s) x {threads} thread(s), steps {a.steps or 'default'}: {a.studies} studies in "
              f"{wall:.1f} s wall = {60 * a.studies / wall:.1f} studies/min; {cpu / a.studies:.2f} CPU s per study "
              f"(whole command: imports and model loading included)")


if __name__ == "__main__":
    main()
