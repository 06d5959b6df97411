#!/usr/bin/env python3
"""Throughput of ``echokdm predict-batch`` (models loaded once per rank) on copies of the bundled sample.

    python pipelines/bench/batch_speed.py [--studies 8] [--ranks 1,2] [--cpus 2] [--steps 10]

For each rank count: a manifest of ``--studies`` copies of the SonoSite sample (ED -> ES, ``--steps``) is run in
a fresh process (1 rank: ``python -m echokdm predict-batch``; more: ``torchrun --nproc_per_node``), each rank with
``--cpus / ranks`` torch threads. Printed: studies per minute of wall time, whole command included (imports and
model loading), the CPU seconds (user + system of every process) per study, which a loaded machine inflates
less, and the steady rate once the models are loaded (ranks / median seconds per study in ``summary.csv``).
The reference floor (``/work/shared/bench/unet_floor.py``, 10 steps at 112x112) is timed in the same run, and
each rate is also given in floors per study beside issue 22's goal (60 studies/min where the floor took
:data:`floor.ISSUE_FLOOR_S`).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from floor import ISSUE_FLOOR_S, floor_seconds, fresh

GOAL_PER_MIN = 60


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
            wall, cpu = fresh(launch + args, env)
            with (out / "summary.csv").open(newline="") as f:
                seconds = [float(r["seconds"]) for r in csv.DictReader(f) if r["status"] == "ok"]
            if len(seconds) != a.studies:
                raise SystemExit(f"{ranks} rank(s): {len(seconds)} of {a.studies} studies done")
            results[ranks] = (threads, wall, cpu, statistics.median(seconds))
    floor, _, line = floor_seconds(10, a.cpus)
    goal_floors = 60 / GOAL_PER_MIN / ISSUE_FLOOR_S
    print(f"{line}; load average {os.getloadavg()[0]:.1f}")
    for ranks, (threads, wall, cpu, per_study) in results.items():
        whole, steady = wall / a.studies, per_study / ranks
        print(f"{ranks} rank(s) x {threads} thread(s), steps {a.steps or 'default'}: {a.studies} studies in "
              f"{wall:.1f} s wall = {60 / whole:.1f} studies/min ({whole / floor:.2f} floors per study), "
              f"{cpu / a.studies:.2f} CPU s per study (whole command: imports and model loading included); "
              f"models loaded: {per_study:.2f} s per study per rank = {60 / steady:.1f} studies/min "
              f"({steady / floor:.2f} floors per study); goal {GOAL_PER_MIN}/min where the floor took "
              f"{ISSUE_FLOOR_S} s = {goal_floors:.2f} floors per study")


if __name__ == "__main__":
    main()
