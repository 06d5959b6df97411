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

``--student FILE`` adds a distilled F2I (``echokdm train f2i-distil``) at ``--student-steps`` (K2F at the largest
steps), scored beside the teacher at the same and at the largest steps in the same run, with the same tests;
``--f2i-only`` leaves out the rows that change K2F's steps; ``--frames N`` scores the ES frame of an N-frame ED -> ES
sequence on the real loops (as ``echokdm predict --frames N``), ``--task sequence`` every frame ED -> ES of the
phantom loops (``echokdm evaluate --task sequence``, metrics averaged over the frames).

``--pairs N`` adds the flow table on N cached phantom validation pairs (the table of the model card).

``--k2f FILE`` (repeatable) adds another K2F (e.g. ``echokdm train k2f --init kdm_k2f`` fine-tunes) with the shipped
flow autoencoder and F2I, both stages at the largest steps, scored beside the shipped model in the same run (and in
the flow table at the largest steps). Score a real loop (``--real``) only with K2Fs whose training never saw it.

Two tests against the reference (the largest step counts), each on every data set and metric, on the metric's
worse side (lower PSNR, SSIM and Dice, higher EF error): ``ci``, the row's mean lies beyond the reference's 95% CI
(the issue's test); ``paired``, the 95% bootstrap CI of the paired difference to the reference (same cases or
seeds, same sampling generators) lies wholly below / above 0. Rows failing neither are ``ok``; the last lines name
the fewest steps per stage that are ``ok`` (``--steps`` of ``echokdm predict`` sets both stages: the ``both``
figure is the candidate default). Seconds are CPU seconds (user + system) per prediction, K2F + F2I only.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from echokdm.evaluate.stats import Estimate, bootstrap_ci, paired_difference

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

    def render(self, source, flow, alphas=(1.0,), num_inference_steps=None, generator=None, trust=None):
        t0 = time.process_time()
        out = self.pipe.render(source, flow, alphas, self.f2i_steps, generator, trust)
        self.cpu += time.process_time() - t0
        return out


def phantom_scores(pipes: dict, segmenter, cases: int, size: int, folder: Path, compute: bool = True,
                   task: str = "es") -> dict[str, dict[str, np.ndarray]]:
    """config -> metric -> per-case values on the phantom validation split, scored by ``echokdm evaluate --task
    TASK`` (``sequence``: each metric averaged over the frames ED -> ES; ``compute`` False: only the scores already in
    ``folder``)."""
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
    sub = "phantom-val" if task == "es" else f"phantom-val-{task}"
    refs = [CaseRef(f"phantom{s:07d}", partial(phantom_case, s, size)) for s in split_seeds("val", cases)]
    if compute:
        table = evaluate_cases(refs, models, task, OutputDir(folder / sub, resume=True), segmenter, seed=0)
    else:
        import pandas as pd

        table = pd.read_csv(folder / sub / "scores.csv", dtype={"case_id": str})
        table = table[table["case_id"].isin([r.case_id for r in refs])]
    table = table[~table["skipped"].astype(bool)]
    # one row per case, in the same order for every configuration (paired differences)
    return {p: {m: table.pivot(index="case_id", columns="predictor", values=m)[p].to_numpy(float) for m in METRICS}
            for p in pipes}


def real_scores(pipes: dict, segmenter, cine: Path, seeds: int, cache: Path, compute: bool = True,
                frames: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """config -> metric -> per-seed values of ``echokdm predict`` (ED -> ES against the real ES frame; with ``frames``
    > 1 the last frame of the ED -> ES sequence, ``--frames``) on ``cine``; rows already in the ``cache`` CSV are
    reused (a stopped run resumes; ``compute`` False: only those)."""
    import pandas as pd

    from echokdm.labels import camus_labels
    from echokdm.predict import KDMPredictor, PredictOptions, read_input

    table = pd.read_csv(cache) if cache.exists() else pd.DataFrame(columns=["config", "seed", *METRICS, "cpu"])
    inp, labels = None, None
    for name, pipe in pipes.items():
        for seed in range(seeds):
            if not compute or ((table["config"] == name) & (table["seed"] == seed)).any():
                continue
            if inp is None:
                inp = read_input(cine, PredictOptions(phase="es"))
                labels = camus_labels(segmenter(inp.frames, sector_mask=inp.sector, spacing_mm=inp.spacing,
                                                frame_time_ms=inp.meta.get("frame_time_ms")))
            run = dataclasses.replace(inp, options=PredictOptions(phase="es", seed=seed, frames=frames), labels=labels)
            cpu = pipe.cpu
            r = KDMPredictor(pipe, segmenter).predict_input(run).report
            im, ef = r["image_metrics"], r["ef"]
            err = abs(ef["prediction"] - ef["target_keypoints"]) if ef["prediction"] is not None else np.nan
            row = {"config": name, "seed": seed, "psnr": im["psnr"], "ssim": im["ssim"],
                   "dice": im["dice"] if im["dice"] is not None else np.nan, "ef_err": err, "cpu": pipe.cpu - cpu}
            table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
            table.to_csv(cache, index=False)
    table = table[table["seed"] < seeds].sort_values("seed")
    return {name: {m: table.loc[table["config"] == name, m].to_numpy(float) for m in (*METRICS, "cpu")}
            for name in pipes}


def pair_table(pairs: int, steps: list[int], cache: str, others: dict | None = None) -> None:
    """The flow table: on ``pairs`` phantom validation pairs at the working grid (112x112), end-point error of the
    K2F flow inside the LV, PSNR/SSIM in the sector of the F2I frame (from the K2F flow) and of the K2F flow applied
    by warping only, for each step count (both stages), and for each pipeline of ``others`` (name -> pipeline) at the
    largest; the thin-plate-spline flow is the reference."""
    import glob

    from monai.metrics import SSIMMetric

    from echokdm.flow import endpoint_error
    from echokdm.pipeline import EchoKDMPipeline
    from echokdm.train.pairs import PairDataset, PairSet, cached_pairs

    files = sorted(glob.glob(f"{cache}/pairs_val_*.safetensors"))
    ps = PairSet.load(files[0]) if files else cached_pairs(cache, "val", 6, 112)
    ds = PairDataset(ps)
    idx = np.linspace(0, len(ds) - 1, min(pairs, len(ds))).round().astype(int)
    pipe = EchoKDMPipeline.from_weights()
    ssim = SSIMMetric(spatial_dims=2, data_range=1.0)

    def image_scores(pred, tgt, sector):
        m = sector > 0
        psnr = 10 * np.log10(1 / max(float(((pred - tgt)[m] ** 2).mean()), 1e-10))
        s = ssim(torch.tensor(pred * m)[None, None], torch.tensor(tgt * m)[None, None]).item()
        return psnr, s

    def lv(b):
        return ((b["target_label"] == 1) | (b["target_label"] == 2)).numpy()

    print(f"{len(idx)} validation pairs, 112x112")
    print(f"{'steps':>5s} {'flow EPE LV':>11s} {'PSNR kdm':>9s} {'SSIM kdm':>9s} {'PSNR warp':>9s} {'SSIM warp':>9s} "
          f"{'s/pair':>7s}")
    tps = [endpoint_error(ds[i]["kp_flow"].numpy(), ds[i]["flow"].numpy(), lv(ds[i])) for i in idx]
    rows_of = [(n, "", pipe) for n in steps] + [(steps[-1], name, p) for name, p in (others or {}).items()]
    for n, name, model in rows_of:
        rows, t0 = [], time.perf_counter()
        for i in idx:
            b = ds[i]
            out = model(b["source"][0].numpy(), b["src_kps"].numpy(), b["tgt_kps"].numpy(), num_inference_steps=n,
                        generator=torch.Generator().manual_seed(0))
            tgt, sector = b["target"][0].numpy(), b["sector"].numpy()
            epe = endpoint_error(out.flows[0], b["flow"].numpy(), lv(b))
            rows.append([epe, *image_scores(out.frames[0], tgt, sector), *image_scores(out.warped[0], tgt, sector)])
        r = np.mean(rows, 0)
        print(f"{n:5d} {r[0]:11.3f} {r[1]:9.2f} {r[2]:9.3f} {r[3]:9.2f} {r[4]:9.3f} "
              f"{(time.perf_counter() - t0) / len(idx):7.2f}  {name}")
    print(f"thin-plate-spline flow EPE LV {np.mean(tps):.3f}")


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
    ap.add_argument("--real", default="sonosite,acuson", help="real loops to run (comma-separated; '' for none)")
    ap.add_argument("--pairs", type=int, default=0,
                    help="also the flow table (K2F flow EPE, KDM and warp-only PSNR/SSIM) on this many cached pairs")
    ap.add_argument("--cache", default="data/cache/kdm", help="cache of the training pairs for --pairs (val split)")
    ap.add_argument("--report-only", action="store_true", help="print the table of the scores in --work, compute none")
    ap.add_argument("--student", type=Path, default=None, help="a distilled F2I weights file to score beside the rest")
    ap.add_argument("--student-steps", type=int, default=5, help="F2I steps of --student")
    ap.add_argument("--frames", type=int, default=1,
                    help="real loops: score the ES frame of an ED -> ES sequence of this many frames (--frames)")
    ap.add_argument("--task", choices=("es", "sequence"), default="es",
                    help="phantom task: the ES frame, or every frame ED -> ES (metrics averaged over the frames)")
    ap.add_argument("--f2i-only", action="store_true", help="only the rows with K2F at the largest steps")
    ap.add_argument("--k2f", type=Path, action="append", default=[],
                    help="another K2F weights file to score beside the shipped one (repeatable)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from echokdm.data import sample_path
    from echokdm.pipeline import EchoKDMPipeline
    from echokdm.segmenter import BuiltinSegmenter

    steps = sorted({int(s) for s in a.steps.split(",")})
    k2fs = {f.stem if f.stem not in ("best", "model") else f.parent.name: f for f in a.k2f}
    if a.pairs:
        pair_table(a.pairs, steps, a.cache, {n: EchoKDMPipeline.from_weights(k2f=str(f)) for n, f in k2fs.items()})
    ref = (steps[-1], steps[-1])
    # the reference first, then both stages at the same steps, then one stage at a time (a stopped run has the most
    # useful rows)
    grid = {(ref[0], s) for s in steps} if a.f2i_only else (
        {(s, ref[1]) for s in steps} | {(ref[0], s) for s in steps} | {(s, s) for s in steps})
    configs = sorted(grid, key=lambda c: (c != ref, c[0] != c[1], c))
    pipe = EchoKDMPipeline.from_weights()
    segmenter = BuiltinSegmenter()
    pipes = {f"k2f{k}_f2i{f}": StepPipeline(pipe, k, f) for k, f in configs}
    if a.student is not None:
        # the student beside the teacher at its steps; named after its file (the --work scores are keyed by name)
        configs.append((ref[0], a.student_steps))
        student = EchoKDMPipeline.from_weights(f2i=str(a.student))
        pipes[f"k2f{ref[0]}_f2i{a.student_steps}_{a.student.stem}"] = StepPipeline(student, ref[0], a.student_steps)
    for name, f in k2fs.items():  # other K2Fs at the largest steps, named after their file (or its run folder)
        configs.append(ref)
        pipes[f"k2f{ref[0]}_f2i{ref[1]}_{name}"] = StepPipeline(EchoKDMPipeline.from_weights(k2f=str(f)), *ref)
    extra = len(pipes) - len(grid)
    datasets = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        compute = not a.report_only
        if not a.skip_phantom:
            datasets[f"phantom-val {a.task} ({a.cases} loops)"] = phantom_scores(pipes, segmenter, a.cases, a.size,
                                                                                 work, compute, a.task)
        loops = {"sonosite": sample_path("sonosite"), "acuson": a.acuson}
        suffix = f"_frames{a.frames}" if a.frames > 1 else ""
        for name in filter(None, a.real.split(",")):
            datasets[f"{name} ({a.seeds} seeds)"] = real_scores(pipes, segmenter, loops[name], a.seeds,
                                                                work / f"{Path(loops[name]).stem}{suffix}.csv",
                                                                compute, a.frames)
    # CPU seconds of K2F + F2I per prediction on the real loops
    real = [d for label, d in datasets.items() if not label.startswith("phantom")]
    cpu = {name: float(np.mean(np.concatenate([d[name]["cpu"] for d in real]))) if real else float("nan")
           for name in pipes}

    ref_name = f"k2f{ref[0]}_f2i{ref[1]}"
    tests = {"ci": dict.fromkeys(pipes, True), "paired": dict.fromkeys(pipes, True)}
    for label, scores in datasets.items():
        print(f"\n{label}: mean [95% CI]; -/+ = mean outside the CI of {ref_name}, on its worse/better side")
        print(f"{'K2F':>4} {'F2I':>4} " + "".join(f"{m:>26}" for m in METRICS))
        ref_ci = {m: bootstrap_ci(scores[ref_name][m]) for m in METRICS}
        for (k, f), name in zip(configs, pipes):
            cells = []
            for m in METRICS:
                e = bootstrap_ci(scores[name][m])
                cell, worse = mark(e, (e.mean, e.mean), (ref_ci[m].lo, ref_ci[m].hi), m)
                tests["ci"][name] &= not worse
                cells.append(cell)
            print(f"{k:>4} {f:>4} " + "".join(f"{c:>26}" for c in cells) + f"  {name}")
        print(f"{label}: paired difference to {ref_name} [95% bootstrap CI]; -/+ = CI wholly on the worse/better side")
        for (k, f), name in zip(configs, pipes):
            if name == ref_name:
                continue
            cells = []
            for m in METRICS:
                d = paired_difference(scores[name][m], scores[ref_name][m])
                cell, worse = mark(d, (d.lo, d.hi), (0.0, 0.0), m)
                tests["paired"][name] &= not worse
                cells.append(cell)
            print(f"{k:>4} {f:>4} " + "".join(f"{c:>26}" for c in cells) + f"  {name}")
    print(f"\nCPU seconds of K2F + F2I per real-loop prediction (threads {a.threads}); ci: no mean on the worse side "
          f"of the CI of {ref_name}; paired: no paired difference to it significantly worse (no '-' on any data set)")
    for (k, f), name in zip(configs, pipes):
        flags = "  ".join(f"{t} {'ok' if tests[t][name] else '-'}" for t in tests)
        print(f"{k:>4} {f:>4} {cpu[name]:8.2f} s  {flags}  {name}")
    teacher = dict(list(zip(pipes, configs))[: len(pipes) - extra])  # the fewest-steps lines: the shipped model's
    for t, ok in [*tests.items(), ("both tests", {n: tests["ci"][n] and tests["paired"][n] for n in pipes})]:
        fine = [c for name, c in teacher.items() if ok[name]]
        k2f = min((k for k, f in fine if f == ref[1]), default=ref[0])
        f2i = min((f for k, f in fine if k == ref[0]), default=ref[1])
        both = min((s for s, u in fine if s == u), default=ref[0])
        print(f"fewest steps ({t}): K2F {k2f} (F2I {ref[1]}), F2I {f2i} (K2F {ref[0]}), both {both}")


def mark(e: Estimate, span: tuple[float, float], ref: tuple[float, float], metric: str) -> tuple[str, bool]:
    """``e`` formatted, marked ``-`` when ``span`` (a mean: both ends equal; or a difference's CI) lies wholly
    beyond ``ref`` (the reference's CI; or 0) on the metric's worse side, ``+`` on its better side; and whether
    worse."""
    (lo, hi), (rlo, rhi) = span, ref
    worse = e.n == 0 or (lo > rhi if metric == "ef_err" else hi < rlo)
    better = not worse and (hi < rlo if metric == "ef_err" else lo > rhi)
    return e.format(3 if metric in ("ssim", "dice") else 2) + ("-" if worse else "+" if better else " "), worse

if __name__ == "__main__":
    main()
