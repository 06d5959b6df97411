#!/usr/bin/env python3
"""``echokdm predict --target-ef`` on real shapes: the requested EF, the EF of the target keypoints and the EF the
segmenter measures on the predicted frame, on the bundled SonoSite sample, the Acuson loop and a phantom loop.

    python pipelines/bench/target_ef.py [--efs 35 50 60] [--out /tmp/target_ef] [--loops sonosite acuson phantom]
        [--prior FILE]

``--response 20 30 ...``: instead, the EF measured on the prediction for each keypoint EF asked of the prior
(no calibration; :class:`echokdm.predict.ef_request.PredictionEFResponse`), one line per loop.

``--prior``: a motion prior file (``pipelines/fit_prior.py``) instead of the shipped one; one fitted on a real loop
must not score that loop (``--loops``: the others).

A generator-free reference sits beside each prediction: ``warp_ef``, the EF the same segmenter measures on the
source frame warped exactly onto the target keypoints (their thin-plate-spline flow, on the source grid). Where
``prediction_ef`` follows ``warp_ef`` rather than ``keypoints_ef``, the frames move as the keypoints ask and the
gap is how the segmenter reads a deformed ED frame. Rows ``request = es`` ask for the loop's own ES (``--phase
es``): keypoints of the real ES frame, and ``real_ef`` is what the segmenter measures on that frame.

Each prediction is written to ``OUT/<loop>_<request>/`` (look at its ``comparison.png``); the table is printed and
saved as ``OUT/target_ef.csv``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from echokdm.labels import camus_labels

ACUSON = Path("/work/shared/data/real/acuson_a4c.dcm")


def loops(folder: Path) -> dict[str, Path]:
    """The loops of the benchmark: the bundled sample, the Acuson loop (when present) and phantom seed 11."""
    from echokdm.data import sample_path
    from echokdm.io import write_cine_dicom
    from echokdm.phantom import sample_params, simulate

    lp = simulate(sample_params(11, size=256))
    phantom = folder / "phantom.dcm"
    frames8 = (lp.frames * 255).round().astype(np.uint8)
    write_cine_dicom(phantom, frames8, frame_time_ms=lp.frame_time_ms, spacing_mm=lp.spacing_mm)
    out = {"sonosite": Path(sample_path("sonosite"))}
    if ACUSON.is_file():
        out["acuson"] = ACUSON
    out["phantom"] = phantom
    return out


def seg_ef(segmenter, inp, source: np.ndarray, target: np.ndarray) -> float:
    """EF between the segmenter's labels of ``source`` and of ``target`` (each segmented on its own), NaN when
    either has no usable LV."""
    from echokdm.defaults import N_KEYPOINTS
    from echokdm.labels import camus_labels
    from echokdm.metrics import prediction_ef

    labels = [segmenter(f[None], sector_mask=inp.sector, spacing_mm=inp.spacing)[0] for f in (source, target)]
    ef = prediction_ef(camus_labels(np.stack(labels)), True, inp.spacing, N_KEYPOINTS).ef
    return float("nan") if ef is None else ef


def warp_ef(segmenter, inp, source: np.ndarray, source_kps: np.ndarray, target_kps: np.ndarray) -> float:
    """EF the segmenter measures on the source frame warped by the keypoints' thin-plate-spline flow."""
    from echokdm.flow import keypoint_flow, warp

    flow = torch.from_numpy(np.asarray(keypoint_flow(source_kps, target_kps, source.shape), dtype=np.float32))
    warped = warp(torch.from_numpy(source)[None, None].float(), flow[None])[0, 0].numpy()
    return seg_ef(segmenter, inp, source, warped)


def real_ef(segmenter, inp, pred) -> float:
    """EF the segmenter measures between the source frame and the loop's real target frame."""
    return seg_ef(segmenter, inp, pred.source, pred.target)


def response(predictor, path: Path):
    """The :class:`~echokdm.predict.ef_request.PredictionEFResponse` of the loop at ``path`` (its first beat's
    ED, default steps and seed 0, as ``predict --target-ef`` calibrates)."""
    from echokdm.predict import PredictOptions, read_input
    from echokdm.predict.ef_request import PredictionEFResponse
    from echokdm.predict.study import find_study

    opts = PredictOptions(target_ef=50)
    inp = read_input(path, opts)
    labels = camus_labels(predictor.segmenter(inp.frames, sector_mask=inp.sector, spacing_mm=inp.spacing,
                                              frame_time_ms=inp.meta.get("frame_time_ms")))
    study = find_study(inp, labels, lambda: predictor.prior)
    source = inp.frames[study.source_frame]
    return PredictionEFResponse(predictor.pipeline, predictor.prior, lambda f: seg_labels(predictor, inp, f), source,
                                inp.sector, study.source_kps, inp.spacing, opts.steps, opts.seed)


def seg_labels(predictor, inp, frame: np.ndarray) -> np.ndarray:
    """CAMUS labels of one frame by the predictor's segmenter."""
    return camus_labels(predictor.segmenter(frame[None], sector_mask=inp.sector, spacing_mm=inp.spacing))[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--efs", type=float, nargs="+", default=[35.0, 50.0, 60.0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/target_ef"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--loops", nargs="+", default=["sonosite", "acuson", "phantom"])
    ap.add_argument("--prior", help="motion prior file (default: the shipped one)")
    ap.add_argument("--response", type=float, nargs="+", help="keypoint EFs: print the prediction's EF of each")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from echokdm.predict import KDMPredictor, PredictOptions, PredictWeights, read_input, save_prediction

    weights = PredictWeights(prior=a.prior) if a.prior else None
    predictor = KDMPredictor.from_weights(weights, device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in loops(Path(tmp)).items():
            if name not in a.loops:
                continue
            if a.response:
                measure = response(predictor, path)
                print(name, {ef: None if (m := measure(ef)) is None else round(m, 1) for ef in a.response}, flush=True)
                continue
            inp = read_input(path)
            for ef in [*a.efs, "es"]:
                t0, c0 = time.perf_counter(), time.process_time()
                opts = PredictOptions(phase="es") if ef == "es" else PredictOptions(target_ef=ef)
                pred = predictor.predict(path, opts)
                seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                save_prediction(pred, a.out / f"{name}_{ef if ef == 'es' else f'{ef:g}'}", overwrite=True)
                e = pred.sections["ef"]
                pred_ef = None if e["prediction"] is None else round(e["prediction"], 1)
                warped = warp_ef(predictor.segmenter, inp, pred.source, pred.source_keypoints, pred.target_keypoints)
                rows.append({
                    "loop": name, "request": ef, "keypoints_ef": round(e["target_keypoints"], 1),
                    "prediction_ef": pred_ef,
                    "error": None if pred_ef is None or ef == "es" else round(pred_ef - ef, 1),
                    "warp_ef": round(warped, 1),
                    "real_ef": round(real_ef(predictor.segmenter, inp, pred), 1) if ef == "es" else None,
                    "wall_s": round(seconds, 1), "cpu_s": round(cpu, 1),
                })
                print(rows[-1], flush=True)
    if a.response:
        return
    table = pd.DataFrame(rows)
    a.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.out / "target_ef.csv", index=False)
    print(table.to_string(index=False))
    asked = table[table["request"] != "es"]
    print(f"within 5 points of the request: {int((asked['error'].abs() <= 5).sum())} of {len(asked)}")


if __name__ == "__main__":
    main()
