#!/usr/bin/env python3
"""Speed of writing a prediction's files (issue 22: <= 0.15 s): one ES prediction of the bundled SonoSite sample,
then its files written ``--repeats`` times into fresh folders (:func:`echokdm.predict.files.write_prediction`, the
``write`` stage of ``echokdm predict`` without the report files); median and minimum wall and CPU seconds (CPU:
user + system of every thread of this process), and the SR alone. The reference floor is timed in the same run:
the median wall is also given in floors beside the goal's (0.15 s where the floor took :data:`floor.ISSUE_FLOOR_S`).

    python pipelines/bench/write_speed.py [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the echokdm command

from floor import ISSUE_FLOOR_S, floor_seconds  # noqa: E402

GOAL_S = 0.15


def timed(fn, repeats: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) of each of ``repeats`` calls of ``fn(i)`` after one warm-up call."""
    fn(-1)
    wall, cpu = [], []
    for i in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn(i)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    from echokdm.data import sample_path
    from echokdm.io.dicom import read_dicom_header
    from echokdm.io.sr import write_measurement_sr
    from echokdm.outputs import OutputDir
    from echokdm.predict import KDMPredictor, PredictOptions
    from echokdm.predict.dicom_outputs import prediction_groups
    from echokdm.predict.files import FILES, write_prediction

    pred = KDMPredictor.from_weights(None, "cpu").predict(sample_path("sonosite"), PredictOptions(phase="es"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def write(i: int) -> None:
            out = OutputDir(folder / f"run{i}", overwrite=True)
            write_prediction(out, pred)
            out.release()

        rows = {"write_prediction": timed(write, a.repeats)}
        prediction = read_dicom_header(folder / "run0" / FILES["dicom"])
        groups = prediction_groups(pred.sections, len(pred.frames))
        rows["measurements_sr.dcm"] = timed(
            lambda i: write_measurement_sr(folder / "sr.dcm", groups, [pred.header, prediction]), a.repeats
        )
    floor, _, line = floor_seconds(10, a.threads)
    print(f"{line}; torch threads {a.threads}, {a.repeats} repeats, load average {os.getloadavg()[0]:.1f}")
    for name, (wall, cpu) in rows.items():
        print(f"{name:<20} wall median {statistics.median(wall):.3f} s (min {min(wall):.3f}) = "
              f"{statistics.median(wall) / floor:.3f} floors, CPU median {statistics.median(cpu):.3f} s "
              f"(min {min(cpu):.3f})")
    print(f"goal: writing {GOAL_S} s where the floor took {ISSUE_FLOOR_S} s = {GOAL_S / ISSUE_FLOOR_S:.3f} floors")


if __name__ == "__main__":
    main()
