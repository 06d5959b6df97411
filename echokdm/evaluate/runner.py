"""Score predictors on evaluation cases: the resumable loop behind ``echokdm evaluate``."""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from echokdm.errors import EchoKDMError
from echokdm.evaluate.cases import CaseRef
from echokdm.evaluate.predictors import Predictor, get_predictor
from echokdm.evaluate.scores import area_jitter, keypoint_distance, one_thread, warp_residual
from echokdm.evaluate.tasks import Sample, make_sample
from echokdm.metrics import ef_between, image_scores, prediction_ef
from echokdm.models.prior import KeypointPrior
from echokdm.outputs import OutputDir
from echokdm.progress import progress
from echokdm.segmenter import Segmenter

SCORES_CSV = "scores.csv"


def case_generator(seed: int, case_id: str) -> torch.Generator:
    """The random generator handed to predictors for ``case_id``: fixed by the run seed and the case."""
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(case_id.encode())) % 2**63)


def segmenter_inputs(sample: Sample) -> dict:
    """Keyword arguments of a :class:`~echokdm.segmenter.Segmenter` call for frames of ``sample``."""
    return {
        "sector_mask": sample.sector_mask,
        "spacing_mm": sample.spacing_mm,
        "atlas": (sample.source, sample.source_labels),
    }


def predict_and_segment(
    sample: Sample, predictor: Predictor, segmenter: Segmenter, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Run ``predictor`` on ``sample`` and segment its output.

    Returns:
        (prediction (N, H, W), its labels (N, H, W), seconds the prediction took).
    """
    t0 = time.perf_counter()
    pred = predictor(sample, generator=case_generator(seed, sample.sample_id))
    seconds = time.perf_counter() - t0
    labels = segmenter(pred, **segmenter_inputs(sample))
    return pred, labels, seconds


def score_prediction(
    sample: Sample, pred: np.ndarray, pred_labels: np.ndarray, source_seg: np.ndarray, n_keypoints: int
) -> dict[str, float]:
    """All scores of one prediction.

    Args:
        sample: the problem.
        pred: (N, H, W) predicted frames.
        pred_labels: (N, H, W) their segmentation.
        source_seg: (H, W) segmentation of the source frame by the same segmenter (EF of the prediction is
            measured between it and the last predicted frame, so segmenter bias cancels).
        n_keypoints: 20 or 40.

    Returns:
        metric name -> value (see :data:`echokdm.evaluate.scores.METRICS`), plus ``ef_pred`` (EF of the
        prediction), ``ef_kp`` (EF implied by the target keypoints) and ``ef_true`` (the true EF: ``ef_kp``, or
        the requested EF in target-ef).
    """
    with one_thread():
        return _scores(sample, pred, pred_labels, source_seg, n_keypoints)


def _scores(
    sample: Sample, pred: np.ndarray, pred_labels: np.ndarray, source_seg: np.ndarray, n_keypoints: int
) -> dict[str, float]:
    sp = sample.spacing_mm
    out: dict[str, float] = {}
    if sample.targets is not None:
        out.update(image_scores(pred, sample.targets, pred_labels, sample.target_labels, sample.sector_mask, sp))
    measured = prediction_ef(np.concatenate([source_seg[None], pred_labels]), sample.source_is_ed, sp, n_keypoints)
    if sample.targets is not None:
        kps = measured.keypoints[1:]
        errs = [keypoint_distance(k, t, sp) if k is not None else np.nan for k, t in zip(kps, sample.target_keypoints)]
        out["kp_err"] = float(np.mean(errs))
    out["ef_pred"] = measured.ef if measured.ef is not None else float("nan")
    out["ef_kp"] = ef_between(sample.source_keypoints, sample.target_keypoints[-1], sample.source_is_ed, sp)
    out["ef_err"] = abs(out["ef_pred"] - out["ef_kp"])
    if sample.target_ef is not None:
        out["ef_true"] = sample.target_ef
        out["ef_err_target"] = abs(out["ef_pred"] - sample.target_ef)
    else:
        out["ef_true"] = out["ef_kp"]  # the target keypoints are those of the true masks
    if sample.task == "sequence":
        out["warp_residual"] = warp_residual(np.concatenate([sample.source[None], pred]), sample.sector_mask)
        out["area_jitter"] = area_jitter(np.concatenate([source_seg[None], pred_labels]))
    return out


def evaluate_cases(
    cases: Sequence[CaseRef],
    predictors: Sequence[str] | Mapping[str, Predictor],
    task: str,
    out: OutputDir,
    segmenter: Segmenter,
    n_keypoints: int = 40,
    seed: int = 0,
    prior: KeypointPrior | None = None,
    myocardium: Segmenter | None = None,
) -> pd.DataFrame:
    """Score every predictor on every case, appending to ``scores.csv`` in ``out`` after each case.

    Cases whose rows are already in ``scores.csv`` for every requested predictor are skipped, so an
    interrupted run continues where it stopped. A case that cannot be used (e.g. no label on a frame the task
    needs) and a predictor that a case cannot serve (the oracle without exact motion) get rows marked
    ``skipped`` with the reason in ``error``.

    Args:
        cases: the cases, loaded lazily.
        predictors: registered predictor names, or name -> ready predictor.
        task: one of :data:`echokdm.evaluate.tasks.TASKS`.
        out: the report folder.
        segmenter: labels predicted frames.
        n_keypoints: 20 or 40.
        seed: fixes every random choice of the run.
        prior: keypoint motion prior (``target-ef``).
        myocardium: segments the LV wall of cavity-only tracings for 40 keypoints
            (:func:`~echokdm.evaluate.tasks.wall_keypoints`).

    Returns:
        All rows of ``scores.csv``: one per case and predictor.
    """
    models = dict(predictors) if isinstance(predictors, Mapping) else {name: get_predictor(name) for name in predictors}
    path = out.file(SCORES_CSV)
    table = pd.read_csv(path, dtype={"case_id": str}) if path.exists() else pd.DataFrame()
    done = set(zip(table["case_id"], table["predictor"])) if len(table) else set()
    for ref in progress(cases, desc=f"evaluate {task}"):
        todo = [p for p in models if (ref.case_id, p) not in done]
        if not todo:
            continue
        try:
            case = ref.load()
            sample = make_sample(case, task, n_keypoints=n_keypoints, prior=prior, seed=seed, myocardium=myocardium)
        except EchoKDMError as e:  # one unusable case does not stop the run; the summary lists it
            rows = [
                {"case_id": ref.case_id, "predictor": name, "task": task, "skipped": True, "error": str(e)}
                for name in todo
            ]
        else:
            source_seg = segmenter(sample.source[None], **segmenter_inputs(sample))[0]
            rows = []
            for name in todo:
                row = {"case_id": case.case_id, "predictor": name, "kind": models[name].kind, "task": task,
                       "spacing_known": case.spacing_mm is not None, **case.info}
                if not models[name].applicable(sample):
                    rows.append(
                        {
                            **row,
                            "skipped": True,
                            "error": f"{name} needs {', '.join(sorted(models[name].requires))}, "
                            "which this task and data do not provide",
                        }
                    )
                    continue
                pred, labels, seconds = predict_and_segment(sample, models[name], segmenter, seed)
                scores = score_prediction(sample, pred, labels, source_seg, n_keypoints)
                rows.append({**row, "skipped": False, "seconds": seconds, **scores})
        table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
        with out.atomic(SCORES_CSV) as tmp:
            table.to_csv(tmp, index=False)
    return table
