#!/usr/bin/env python3
"""Harness predictors on the two real loops at full resolution, scored as ``echokdm predict`` scores its report.

    python pipelines/bench/real_loops.py [--predictors copy,tps,kdm,k2f-warp] [--seeds 3] [--acuson DCM] \
        [--weights DIR] [--phantom N]

For each real loop (the bundled SonoSite sample and ``--acuson``) the study is found as ``echokdm predict
--phase es`` finds it (built-in segmenter, ED -> ES of the first beat); each predictor of ``echokdm evaluate``
(``copy``, ``tps``, ``kdm``, ``kdm-adapt:SECONDS``, ...) gets that study as a full-resolution sample (the loop, its
labels and the target frame to leave out included) and its prediction is scored by the report's own code
(:func:`echokdm.predict.report.measure`): PSNR and SSIM in the sector against the real ES frame, LV Dice of the
prediction's segmentation against the real ES frame's, and |EF of the prediction - EF of the target keypoints|.
``echokdm evaluate --data LOOP.dcm`` scores the same predictors on its 128-px square grid instead, which hides
the full-resolution texture. Sampling predictors run ``--seeds`` seeds (mean and range printed); the others once.
``--phantom N`` adds N loops of the phantom's test split (256 px DICOM cines, built-in segmenter, the same path)
as a reference whose segmented walls are reliable; one row per predictor, the mean over loops and seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ACUSON = Path("/work/shared/data/real/acuson_a4c.dcm")
METRICS = ("psnr", "ssim", "dice", "ef_err")
PHANTOM = "phantom-"  # name prefix of the --phantom loops


def study_of(cine: Path, segmenter):
    """The predict study (ED -> ES) of ``cine`` with the built-in segmenter's labels."""
    from echokdm.labels import camus_labels
    from echokdm.predict import PredictOptions, read_input
    from echokdm.predict.study import find_study

    inp = read_input(cine, PredictOptions(phase="es"))
    labels = camus_labels(segmenter(inp.frames, sector_mask=inp.sector, spacing_mm=inp.spacing,
                                    frame_time_ms=inp.meta.get("frame_time_ms")))
    inp = dataclasses.replace(inp, labels=labels)
    return find_study(inp, labels, lambda: None)


def sample_of(study):
    """The study as a harness sample on the full-resolution source grid."""
    from echokdm.evaluate.tasks import Sample

    inp = study.input
    return Sample(
        sample_id=inp.name, task="es", source=inp.frames[study.source_frame],
        source_labels=study.labels[study.source_frame], source_keypoints=study.source_kps,
        target_keypoints=study.target_kps[None], sector_mask=inp.sector, spacing_mm=inp.spacing,
        source_is_ed=study.source_is_ed, targets=inp.frames[study.target_frame][None],
        target_labels=study.labels[study.target_frame][None], loop=inp.frames, target_frames=[study.target_frame],
        loop_labels=dict(enumerate(study.labels)),
    )


def score(study, frames: np.ndarray, segmenter) -> dict[str, float]:
    """The report's image metrics and EF error of predicted ``frames`` (1, H, W)."""
    from echokdm.labels import camus_labels
    from echokdm.predict.report import measure

    inp = study.input
    both = np.concatenate([inp.frames[study.source_frame][None], frames])
    labels = camus_labels(np.stack([segmenter(f[None], sector_mask=inp.sector, spacing_mm=inp.spacing)[0]
                                    for f in both]))
    sections = measure(study, frames, labels)
    im, ef = sections["image_metrics"], sections["ef"]
    err = abs(ef["prediction"] - ef["target_keypoints"]) if ef["prediction"] is not None else np.nan
    return {"psnr": im["psnr"], "ssim": im["ssim"], "dice": im["dice"] or np.nan, "ef_err": err}


def run(predictors: list[str], loops: dict[str, Path], seeds: int, keep: Path | None = None,
        weights: str | None = None) -> list[dict]:
    """Rows (loop, predictor, seed, metrics, seconds) of every predictor on every loop; with ``keep``, the
    predicted frames are saved there as ``LOOP_PREDICTOR_SEED.npy`` (and the source and target once); ``weights``:
    the KDM predictors' weights as evaluate's ``--weights`` takes them (None: shipped)."""
    from echokdm.evaluate.report import build_predictor, evaluation_kdm_weights
    from echokdm.segmenter import BuiltinSegmenter

    segmenter = BuiltinSegmenter()
    kdm_weights = evaluation_kdm_weights(weights)
    built = {name: build_predictor(name, kdm_weights) for name in predictors}
    rows = []
    for loop, path in loops.items():
        study = study_of(path, segmenter)
        sample = sample_of(study)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            np.save(keep / f"{loop}_source.npy", sample.source)
            np.save(keep / f"{loop}_target.npy", sample.targets[0])
        for name, predictor in built.items():
            for seed in range(seeds if predictor.kind == "model" else 1):
                t0 = time.perf_counter()
                with torch.no_grad():
                    frames = predictor(sample, torch.Generator().manual_seed(seed))
                seconds = time.perf_counter() - t0
                if keep is not None:
                    np.save(keep / f"{loop}_{name.replace(':', '-')}_{seed}.npy", frames[-1])
                rows.append({"loop": loop, "predictor": name, "seed": seed, **score(study, frames, segmenter),
                             "seconds": seconds})
                print(f"  {loop} {name} seed {seed}: " + " ".join(f"{m} {rows[-1][m]:.4f}" for m in METRICS),
                      flush=True)
    return rows


def phantom_loops(folder: Path, n: int) -> dict[str, Path]:
    """``n`` loops of the phantom's test split written as 256-px DICOM cines into ``folder``, by name."""
    from echokdm.io import write_cine_dicom
    from echokdm.phantom import sample_params, simulate
    from echokdm.phantom.sampling import split_seeds

    loops = {}
    for seed in split_seeds("test", n):
        lp = simulate(sample_params(seed, size=256))
        path = folder / f"{PHANTOM}{seed}.dcm"
        frames = (lp.frames * 255).round().astype(np.uint8)
        write_cine_dicom(path, frames, frame_time_ms=lp.frame_time_ms, spacing_mm=lp.spacing_mm)
        loops[path.stem] = path
    return loops


def table(rows: list[dict]) -> str:
    """Markdown table: mean over seeds (min-max when several) per loop and predictor; the phantom loops together."""
    import pandas as pd

    df = pd.DataFrame(rows)
    n_phantom = df["loop"].str.startswith(PHANTOM).groupby(df["loop"]).first().sum()
    df["loop"] = df["loop"].where(~df["loop"].str.startswith(PHANTOM), f"phantom x{n_phantom}")
    lines = ["| loop | predictor | runs | PSNR | SSIM | LV Dice | EF error | s |", "|---|---|---|---|---|---|---|---|"]
    for (loop, name), g in df.groupby(["loop", "predictor"], sort=False):
        cells = []
        for m, fmt in zip(METRICS, (".2f", ".3f", ".3f", ".1f")):
            v = g[m].to_numpy(float)
            cells.append(f"{v.mean():{fmt}}" + (f" ({v.min():{fmt}}-{v.max():{fmt}})" if len(v) > 1 else ""))
        lines.append(f"| {loop} | {name} | {len(g)} | " + " | ".join(cells) + f" | {g['seconds'].mean():.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--predictors", default="copy,tps,kdm,k2f-warp", help="comma-separated harness predictors")
    ap.add_argument("--seeds", type=int, default=3, help="sampling seeds of the model predictors")
    ap.add_argument("--acuson", type=Path, default=ACUSON, help="the second real loop")
    ap.add_argument("--loops", default="sonosite,acuson", help="real loops to run (comma-separated)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--phantom", type=int, default=0, help="also N loops of the phantom's test split")
    ap.add_argument("--keep", type=Path, default=None, help="folder to save the predicted frames in (.npy)")
    ap.add_argument("--weights", default=None,
                    help="KDM predictors' weights, as evaluate's --weights (e.g. an `echokdm train k2f --out DIR`)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from echokdm.data import sample_path

    paths = {"sonosite": sample_path("sonosite"), "acuson": a.acuson}
    loops = {name: paths[name] for name in a.loops.split(",") if name}
    with tempfile.TemporaryDirectory() as tmp:
        if a.phantom:
            loops.update(phantom_loops(Path(tmp), a.phantom))
        rows = run(a.predictors.split(","), loops, a.seeds, a.keep, a.weights)
    print(table(rows))


if __name__ == "__main__":
    main()
