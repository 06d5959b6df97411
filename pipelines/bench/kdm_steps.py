#!/usr/bin/env python3
"""How many denoising steps KDM needs: quality of ES predictions against the K2F and F2I step counts.

    python pipelines/bench/kdm_steps.py [--cases 30] [--seeds 5] [--steps 1,2,4,10] [--work DIR]

With ``--work DIR`` the per-case scores are kept there and a stopped run resumes (two runs, one of them with
``--skip-phantom``, can share the work; a last one then prints the whole table from it).

For each pair of step counts (K2F steps, F2I steps) -- each of ``--steps`` for one stage with the other at the
largest, and both equal -- ED -> ES predictions are scored:

- ``phantom-val``: the first ``--cases`` loops of the phantom validation split at ``--size``, scored exactly as
  ``echokdm evaluate --task es`` scores them (:func:`echokdm.evaluate.runner.evaluate_cases`: PSNR and SSIM in the
  sector, LV Dice of the built-in segmentation against the true mask, |EF of the prediction - EF of the target
  keypoints|); mean and bootstrap 95% CI over the cases;
- the two real loops (the bundled SonoSite sample and ``--acuson``), predicted as ``echokdm predict`` does (ES
  from ED against the loop's real ES frame: the report's PSNR, SSIM, Dice against the real frame's segmentation
  and |EF prediction - EF target keypoints|); one loop each, so the CI is over ``--seeds`` sampling seeds.

A row is marked ``ok`` when every metric's mean lies inside the 95% CI of the reference (the largest step counts)
on every data set; the last line names the fewest steps per stage that are ``ok``. Seconds are CPU seconds
(user + system) per prediction, K2F + F2I only.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from echokdm.evaluate.stats import Estimate, bootstrap_ci

METRICS = ("psnr", "ssim", "dice", "ef_err")
ACUSON = Path("/work/shared/data/real/acuson_a4c.dcm")


class StepPipeline:
    """An :class:`~echokdm.pipeline.EchoKDMPipeline` whose K2F and F2I run their own step counts."""

    def __init__(self, pipe, k2f_steps: int, f2i_steps: int) -> None:
        self.pipe, self.k2f_steps, self.f2i_steps = pipe, k2f_steps, f2i_steps
        self.cpu = 0.0

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def generate_flow(self, source, source_keypoints, target_keypoints, num_inference_steps=None, generator=None):
        t0 = time.process_time()
        out = self.pipe.generate_flow(source, source_keypoints, target_keypoints, self.k2f_steps, generator)
        self.cpu += time.process_time() - t0
        return out

    def render(self, source, flow, alphas=(1.0,), num_inference_steps=None, generator=None):
        t0 = time.process_time()
        out = self.pipe.render(source, flow, alphas, self.f2i_steps, generator)
        self.cpu += time.process_time() - t0
        return out


def phantom_scores(pipes: dict, segmenter, cases: int, size: int, folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """config -> metric -> per-case values on the phantom validation split, scored by ``echokdm evaluate``."""
    from functools import partial

    from echokdm.evaluate.cases import CaseRef, phantom_case
    from echokdm.evaluate.kdm import KDMModel
    from echokdm.evaluate.runner import evaluate_cases
    from echokdm.outputs import OutputDir
    from echokdm.phantom import split_seeds

    class StepKDM(KDMModel):
        """The harness's ``kdm`` predictor around a step-split pipeline."""

        def __init__(self, pipe: StepPipeline) -> None:
            self.steps, self.pipe = None, pipe

    models = {name: StepKDM(pipe) for name, pipe in pipes.items()}
    refs = [CaseRef(f"phantom{s:07d}", partial(phantom_case, s, size)) for s in split_seeds("val", cases)]
    table = evaluate_cases(refs, models, "es", OutputDir(folder / "phantom-val"), segmenter, seed=0)
    table = table[~table["skipped"].astype(bool)]
    return {p: {m: table.loc[table["predictor"] == p, m].to_numpy(float) for m in METRICS} for p in pipes}


def real_scores(pipes: dict, segmenter, cine: Path, seeds: int, cache: Path) -> dict[str, dict[str, np.ndarray]]:
    """config -> metric -> per-seed values of ``echokdm predict`` (ED -> ES against the real ES frame) on ``cine``;
    rows already in the ``cache`` CSV are reused (a stopped run resumes)."""
    import pandas as pd

    from echokdm.labels import camus_labels
    from echokdm.predict import KDMPredictor, PredictOptions, read_input

    table = pd.read_csv(cache) if cache.exists() else pd.DataFrame(columns=["config", "seed", *METRICS, "cpu"])
    inp, labels = None, None
    for name, pipe in pipes.items():
        for seed in range(seeds):
            if ((table["config"] == name) & (table["seed"] == seed)).any():
                continue
            if inp is None:
                inp = read_input(cine, PredictOptions(phase="es"))
                labels = camus_labels(segmenter(inp.frames, sector_mask=inp.sector, spacing_mm=inp.spacing,
                                                frame_time_ms=inp.meta.get("frame_time_ms")))
            run = dataclasses.replace(inp, options=PredictOptions(phase="es", seed=seed), labels=labels)
            cpu = pipe.cpu
            r = KDMPredictor(pipe, segmenter).predict_input(run).report
            im, ef = r["image_metrics"], r["ef"]
            err = abs(ef["prediction"] - ef["target_keypoints"]) if ef["prediction"] is not None else np.nan
            row = {"config": name, "seed": seed, "psnr": im["psnr"], "ssim": im["ssim"],
                   "dice": im["dice"] if im["dice"] is not None else np.nan, "ef_err": err, "cpu": pipe.cpu - cpu}
            table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
            table.to_csv(cache, index=False)
    table = table[table["seed"] < seeds]
    return {name: {m: table.loc[table["config"] == name, m].to_numpy(float) for m in (*METRICS, "cpu")}
            for name in pipes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=30, help="phantom validation loops")
    ap.add_argument("--seeds", type=int, default=5, help="sampling seeds on each real loop")
    ap.add_argument("--steps", default="1,2,4,10")
    ap.add_argument("--size", type=int, default=128, help="working grid of the phantom cases (evaluate's default)")
    ap.add_argument("--acuson", type=Path, default=ACUSON, help="the second real loop")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None,
                    help="folder of the per-case scores (default: temporary); a stopped run resumes from it")
    ap.add_argument("--skip-phantom", action="store_true", help="the real loops only")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from echokdm.data import sample_path
    from echokdm.pipeline import EchoKDMPipeline
    from echokdm.segmenter import BuiltinSegmenter

    steps = sorted({int(s) for s in a.steps.split(",")})
    ref = (steps[-1], steps[-1])
    # the reference first, then both stages at the same steps, then one stage at a time (a stopped run has the most
    # useful rows)
    configs = sorted({(s, ref[1]) for s in steps} | {(ref[0], s) for s in steps} | {(s, s) for s in steps},
                     key=lambda c: (c != ref, c[0] != c[1], c))
    pipe = EchoKDMPipeline.from_weights()
    segmenter = BuiltinSegmenter()
    pipes = {f"k2f{k}_f2i{f}": StepPipeline(pipe, k, f) for k, f in configs}
    datasets = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not a.skip_phantom:
            datasets[f"phantom-val ({a.cases} loops)"] = phantom_scores(pipes, segmenter, a.cases, a.size, work)
        for label, cine in ((f"sonosite sample ({a.seeds} seeds)", sample_path("sonosite")),
                            (f"acuson_a4c ({a.seeds} seeds)", a.acuson)):
            datasets[label] = real_scores(pipes, segmenter, cine, a.seeds, work / f"{Path(cine).stem}.csv")
    # CPU seconds of K2F + F2I per prediction on the real loops
    cpu = {name: float(np.mean([d[name]["cpu"] for d in list(datasets.values())[-2:]])) for name in pipes}

    ref_name = f"k2f{ref[0]}_f2i{ref[1]}"
    ok = {name: True for name in pipes}
    for label, scores in datasets.items():
        print(f"\n{label}: mean [95% CI]; * = mean outside the CI of {ref_name}")
        print(f"{'K2F':>4} {'F2I':>4} " + "".join(f"{m:>24}" for m in METRICS))
        ref_ci = {m: bootstrap_ci(scores[ref_name][m]) for m in METRICS}
        for (k, f), name in zip(configs, pipes):
            cells = []
            for m in METRICS:
                e: Estimate = bootstrap_ci(scores[name][m])
                inside = ref_ci[m].lo <= e.mean <= ref_ci[m].hi
                ok[name] &= inside
                cells.append(e.format(3 if m in ("ssim", "dice") else 2) + ("" if inside else "*"))
            print(f"{k:>4} {f:>4} " + "".join(f"{c:>24}" for c in cells))
    print(f"\nCPU seconds of K2F + F2I per real-loop prediction (threads {a.threads}); ok = every mean inside the "
          f"CI of {ref_name} on every data set")
    for (k, f), name in zip(configs, pipes):
        print(f"{k:>4} {f:>4} {cpu[name]:8.2f} s  {'ok' if ok[name] else '-'}")
    fine = [c for c, name in zip(configs, pipes) if ok[name]]
    k2f = min((k for k, f in fine if f == ref[1]), default=ref[0])
    f2i = min((f for k, f in fine if k == ref[0]), default=ref[1])
    both = min((s for s, t in fine if s == t), default=ref[0])
    print(f"fewest steps within the CI: K2F {k2f} (F2I {ref[1]}), F2I {f2i} (K2F {ref[0]}), both {both}")


if __name__ == "__main__":
    main()
