#!/usr/bin/env python3
"""Speed of ``echokdm predict``: stage breakdown of an ES prediction, sequence vs independent predictions.

1. ES prediction (ED -> ES, built-in segmenter, default steps) on the bundled SonoSite sample and on a
   phantom DICOM (256x256): median seconds per stage over ``--repeats`` runs after one warm-up, writing
   every output file. Model loading is timed once, apart (a batch pays it once).
2. A 16-frame sequence (one K2F run, F2I for 16 alphas) against 16 single-frame predictions (each one
   K2F + F2I run: what 16 separate ``echokdm predict`` calls compute) on the phantom, models loaded once:
   ratios of the whole prediction, of what follows loading and segmenting the loop, and of K2F + F2I alone.
3. The reference compute floor of this machine (``/work/shared/bench/unet_floor.py``, same resolution and
   threads, ``--floor-steps`` steps: 10, the floor of issue 22) run in the same job, and each time as a ratio to it.

Fresh processes are timed too: ``echokdm --help``, a bad input (a missing file: one error line) and the whole
``echokdm predict --sample`` command (imports included). Beside wall seconds, CPU seconds (user + system, all
threads) are printed, with the floor's CPU seconds: on a loaded machine the CPU ratio drifts less.
The two figures of the write stage are timed apart (``comparison.png``, ``flow.png``).

    python pipelines/bench/predict_speed.py [--weights DIR] [--steps 10] [--k2f-steps 2] [--no-ef-check] \
        [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# the OpenMP wait policy of the echokdm command (echokdm.cli), here and in the floor's process: spinning threads
# inflate both wall and CPU seconds on a loaded machine, the floor's most of all
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from floor import ISSUE_FLOOR_S, floor_seconds, fresh

from echokdm.defaults import DEFAULT_STEPS, K2F_STEPS

WRITE_GOAL_S = 0.15  # issue 22's writing goal, set where the floor took ISSUE_FLOOR_S
STAGES = (
    "load",
    "segment",
    "keypoints",
    "prepare",
    "k2f",
    "f2i",
    "transfer",
    "segment_prediction",
    "measure",
    "write",
    "total",
)


def phantom_dicom(folder: Path, seed: int = 11) -> Path:
    from echokdm.io import write_cine_dicom
    from echokdm.phantom import sample_params, simulate

    lp = simulate(sample_params(seed, size=256))
    path = folder / "phantom.dcm"
    write_cine_dicom(
        path, (lp.frames * 255).round().astype(np.uint8), frame_time_ms=lp.frame_time_ms, spacing_mm=lp.spacing_mm
    )
    return path


def median_timings(predictor, cine: Path, options, repeats: int, folder: Path) -> dict[str, float]:
    """Median seconds per stage, ``cpu`` (CPU seconds of the whole prediction) and ``figures`` (the two figures
    of the write stage, drawn again apart)."""
    from echokdm.predict import comparison_figure, flow_figure, predict_study

    predict_study(cine, folder / "warmup", options, predictor, overwrite=True)
    runs = []
    for _ in range(repeats):
        c0 = time.process_time()
        pred = predict_study(cine, folder / "run", options, predictor, overwrite=True)
        timings = {**pred.timings, "cpu": time.process_time() - c0}
        box = pred.sections["input"]["sector_box"]
        t0 = time.perf_counter()
        comparison_figure(folder / "comparison.png", pred, box)
        flow_figure(folder / "flow.png", pred.flows[-1], pred.source, box)
        runs.append({**timings, "figures": time.perf_counter() - t0})
    return {s: statistics.median(r.get(s, 0.0) for r in runs) for s in (*STAGES, "cpu", "figures")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="weights folder (default: the shipped weights)")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="denoising steps of F2I")
    ap.add_argument("--k2f-steps", type=int, default=K2F_STEPS, help="denoising steps of K2F")
    ap.add_argument("--no-ef-check", dest="ef_check", action="store_false", help="one prediction per study")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--floor-steps", type=int, default=10, help="steps of the reference floor (issue 22: 10)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from echokdm.data import sample_path
    from echokdm.predict import KDMPredictor, PredictOptions, PredictWeights, predict_study

    weights = PredictWeights.from_dir(a.weights) if a.weights else PredictWeights()
    t0 = time.perf_counter()
    predictor = KDMPredictor.from_weights(weights, a.device)
    load_models = time.perf_counter() - t0
    print(f"device {a.device}, torch threads {a.threads}, steps F2I {a.steps} K2F {a.k2f_steps}, "
          f"EF check {'on' if a.ef_check else 'off'}; "
          f"loading the models: {load_models:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = {"sonosite": sample_path("sonosite"), "phantom": phantom_dicom(folder)}
        es = PredictOptions(phase="es", steps=a.steps, k2f_steps=a.k2f_steps, ef_check=a.ef_check)
        table = {name: median_timings(predictor, path, es, a.repeats, folder / name) for name, path in inputs.items()}
        print(f"\nES prediction, median of {a.repeats} runs (seconds)")
        print(f"{'stage':<20}" + "".join(f"{n:>12}" for n in table))
        for s in STAGES:
            print(f"{s:<20}" + "".join(f"{table[n][s]:>12.3f}" for n in table))

        # a sequence from one K2F run against the same number of single-frame predictions
        n = a.frames
        seq = predict_study(
            inputs["phantom"], folder / "seq",
            PredictOptions(phase="es", frames=n, steps=a.steps, k2f_steps=a.k2f_steps, ef_check=a.ef_check), predictor,
        ).timings
        singles = [
            predict_study(
                inputs["phantom"],
                folder / "single",
                PredictOptions(phase="es", steps=a.steps, k2f_steps=a.k2f_steps, ef_check=a.ef_check),
                predictor,
                overwrite=True,
            ).timings
            for _ in range(n)
        ]
        print(f"\n{n}-frame sequence vs {n} single-frame predictions (phantom; models loaded once)")
        print("sequence stages: " + ", ".join(f"{k} {v:.2f}" for k, v in seq.items()))
        for label, f in (("end to end (load ... write)", lambda t: t["total"]),
                         ("after loading + segmenting the loop", lambda t: t["total"] - t["load"] - t["segment"]),
                         ("K2F + F2I only", lambda t: t["k2f"] + t["f2i"])):
            one, many = f(seq), sum(f(t) for t in singles)
            print(
                f"{label:<34} sequence {one:7.2f} s   {n} singles {many:7.2f} s   "
                f"ratio {many / one:5.2f}x (target >= 1.8x)"
            )

        # the whole command in a fresh process (imports, model loading, every file)
        cmd = [sys.executable, "-m", "echokdm", "predict", "--dicom", str(inputs["sonosite"]), "--phase", "es",
               "--steps", str(a.steps), "--k2f-steps", str(a.k2f_steps), "--device", a.device,
               *([] if a.ef_check else ["--no-ef-check"]),
               "--out", str(folder / "cli")]
        if a.weights:
            cmd += ["--weights", a.weights]
        env = {"OMP_NUM_THREADS": str(a.threads), **_env()}
        cold = {
            "echokdm --help": fresh([sys.executable, "-m", "echokdm", "--help"], env),
            "echokdm predict (missing input file)": fresh(
                [sys.executable, "-m", "echokdm", "predict", "--dicom", str(folder / "missing.dcm"), "--out",
                 str(folder / "bad")], env, check=False),
            "echokdm predict --sample (whole command)": fresh(cmd, env),
        }

    floor, floor_cpu, line = floor_seconds(a.floor_steps, a.threads, a.device)
    print(f"\n{line}; CPU seconds per sampling run {floor_cpu:.3f}")
    for name in table:
        t = table[name]
        print(f"{name:<9} ES end to end {t['total']:6.2f} s = {t['total'] / floor:5.2f}x floor "
              f"(CPU {t['cpu']:6.2f} s = {t['cpu'] / floor_cpu:5.2f}x floor CPU);  "
              f"K2F + F2I {t['k2f'] + t['f2i']:6.2f} s = {(t['k2f'] + t['f2i']) / floor:5.2f}x floor;  "
              f"write {t['write']:5.2f} s = {t['write'] / floor:4.2f}x floor "
              f"(goal {WRITE_GOAL_S / ISSUE_FLOOR_S:.2f}x), "
              f"of it the two figures {t['figures']:5.2f} s")
    for label, (wall, cpu) in cold.items():
        print(f"{label:<42} {wall:6.2f} s = {wall / floor:5.1f}x floor;  CPU {cpu:6.2f} s = "
              f"{cpu / floor_cpu:5.1f}x floor CPU")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


if __name__ == "__main__":
    main()
