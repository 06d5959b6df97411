"""A whole evaluation run: scores (resumable), summary table and figures in one report folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from echokdm.data.camus import is_camus_folder
from echokdm.defaults import SEG_WEIGHTS
from echokdm.device import resolve_device
from echokdm.errors import EchoKDMError, InputError, OutputError
from echokdm.evaluate.biplane import biplane_markdown, camus_biplane
from echokdm.evaluate.cases import CaseRef
from echokdm.evaluate.plots import bland_altman, box_plots, case_strip
from echokdm.evaluate.predictors import PREDICTORS, Predictor, get_predictor, predictor_class
from echokdm.evaluate.runner import SCORES_CSV, evaluate_cases, predict_and_segment, score_prediction, segmenter_inputs
from echokdm.evaluate.segmenter import load_segmenter
from echokdm.evaluate.summary import best_baseline, scored, summary_markdown
from echokdm.evaluate.tasks import Sample, load_prior, make_sample
from echokdm.models.prior import KeypointPrior
from echokdm.outputs import OutputDir
from echokdm.segmenter import BuiltinSegmenter, Segmenter

RUN_JSON = "run.json"


@dataclass
class EvaluationResult:
    """What :func:`~echokdm.evaluate.run.run_evaluation` produced.

    Args:
        table: every row of ``scores.csv``.
        summary: path of ``summary.md``.
        figures: paths of the PNG figures.
        resumed: cases found already scored in the report folder (not computed again).
    """

    table: pd.DataFrame
    summary: Path
    figures: list[Path]
    resumed: int = 0


def _check_settings(out: OutputDir, settings: dict) -> None:
    """Record the run settings, or refuse to resume a report made with different ones."""
    path = out.file(RUN_JSON)
    if path.exists():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if diff:
            what = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise OutputError(
                f"report folder {out.path} holds a run with other settings ({what}); use another folder or --overwrite"
            )
    out.write_json(RUN_JSON, settings)


def _strip_cases(table: pd.DataFrame, predictors: Sequence[str]) -> list[tuple[str, str]]:
    """(title, case id) of the best, median and worst case of the reference predictor.

    The reference is the first predictor of kind ``model``, else the best baseline by SSIM; cases are ranked by
    its SSIM (by its EF error when there is no SSIM, as in target-ef).
    """
    rows = scored(table)
    kinds = rows.groupby("predictor")["kind"].first()
    has_ssim = "ssim" in rows and rows["ssim"].notna().any()
    metric = "ssim" if has_ssim else "ef_err_target"
    models = [p for p in predictors if kinds.get(p) == "model"]
    ref = models[0] if models else best_baseline(rows, metric, predictors) or predictors[0]
    ranked = (
        rows[rows["predictor"] == ref]
        .dropna(subset=[metric])
        .sort_values(metric, ascending=not has_ssim, kind="stable")
    )
    ids = ranked["case_id"].tolist()
    if not ids:
        return []
    picks = [("best", ids[0]), ("median", ids[len(ids) // 2]), ("worst", ids[-1])]
    return [p for i, p in enumerate(picks) if p[1] not in [q[1] for q in picks[:i]]]


def evaluate_and_report(
    data: str | Sequence[CaseRef],
    cases: Sequence[CaseRef],
    report: str | Path,
    predictors: Sequence[str],
    task: str,
    segmenter: str | Segmenter,
    n_keypoints: int,
    size: int,
    seed: int,
    overwrite: bool,
    prior: KeypointPrior | str | Path | None,
    device: str,
    seg_weights: str,
    kdm_weights: str | None,
) -> EvaluationResult:
    """:func:`~echokdm.evaluate.run.run_evaluation` once it has checked the settings and named the ``cases`` of
    ``data``: load the predictors and segmenter, score the cases and write the report (arguments as there)."""
    predictors = list(dict.fromkeys(predictors))
    if not predictors:
        raise InputError("no predictor given; expected some of " + ", ".join(sorted(PREDICTORS)))
    dev = resolve_device(device)
    weights = evaluation_kdm_weights(kdm_weights)
    models = {name: build_predictor(name, weights).to(dev) for name in predictors}  # once: models load weights
    prior_name = str(prior) if isinstance(prior, (str, Path)) else None
    if task == "target-ef" and (prior is None or prior_name is not None):
        prior = load_prior(prior_name)
    data_name = data if isinstance(data, str) else f"{len(data)} given cases"
    seg, seg_name = _resolve_segmenter(segmenter, str(dev), seg_weights)
    out = OutputDir(report, overwrite=overwrite, resume=not overwrite, inputs=[data_name, prior_name])
    settings = {
        "data": data_name,
        "task": task,
        "keypoints": n_keypoints,
        "size": size,
        "seed": seed,
        "segmenter": seg_name,
    }
    if task == "target-ef":
        settings["prior"] = prior_name or type(prior).__name__
    if kdm_weights is not None:
        settings["kdm_weights"] = str(kdm_weights)
    _check_settings(out, settings)
    before = pd.read_csv(out.file(SCORES_CSV), dtype={"case_id": str}) if out.file(SCORES_CSV).exists() else None
    resumed = 0 if before is None else sum(
        set(predictors) <= set(before.loc[before["case_id"] == c.case_id, "predictor"]) for c in cases
    )
    table = evaluate_cases(
        cases, models, task, out, seg, n_keypoints=n_keypoints, seed=seed, prior=prior, myocardium=_wall_segmenter(seg)
    )
    rows = scored(table)
    if rows.empty:
        first = table.dropna(subset=["error"]).iloc[0] if "error" in table and table["error"].notna().any() else None
        why = f" (e.g. {first['case_id']}: {first['error']})" if first is not None else ""
        raise InputError(f"no case of {data_name} could be scored by {', '.join(predictors)}{why}")
    shown = [p for p in predictors if p in set(rows["predictor"])]
    header = {
        "data": f"`{data_name}`",
        "task": task,
        "predictors": ", ".join(shown),
        "working grid": f"{size}x{size}",
        "keypoints": str(n_keypoints) + (
            " (scored on these; KDM conditions on 40 where the source's wall is known from its labels or the built-in "
            "segmenter, the targets' wall moved along: `echokdm.evaluate.tasks.walled_keypoints`)"
            if n_keypoints == 20 else ""),
        "segmenter of predictions": seg_name,
        "seed": str(seed),
    }
    spacing_known = bool(rows["spacing_known"].all()) if "spacing_known" in rows else True
    text = summary_markdown(table, shown, header, spacing_known, seed=seed)
    if isinstance(data, str) and is_camus_folder(data):
        biplane = camus_biplane(data, seg)
        with out.atomic("biplane.csv") as tmp:
            biplane.to_csv(tmp, index=False)
        text += biplane_markdown(biplane)
    summary = out.write_text("summary.md", text)
    figures = [out.file("boxplots.png"), out.file("bland_altman.png")]
    with out.atomic("boxplots.png") as tmp:
        box_plots(table, shown, tmp, spacing_known)
    with out.atomic("bland_altman.png") as tmp:
        bland_altman(table, shown, tmp)
    examples = _examples(
        cases, _strip_cases(table, shown), {p: models[p] for p in shown}, task, seg, n_keypoints, seed, prior
    )
    if examples:
        with out.atomic("strip.png") as tmp:
            case_strip(examples, tmp)
        figures.append(out.file("strip.png"))
    return EvaluationResult(table=table, summary=summary, figures=figures, resumed=resumed)


def evaluation_kdm_weights(folder: str | None):
    """The :class:`~echokdm.predict.PredictWeights` of ``--weights`` (None: shipped).

    Raises:
        InputError: as :meth:`PredictWeights.from_dir`, or a segmenter (``--seg-weights`` takes it).
    """
    if folder is None:
        return None
    from echokdm.predict import PredictWeights

    w = PredictWeights.from_dir(folder)
    if w.seg != SEG_WEIGHTS and (w.flow_vae, w.k2f, w.f2i) == (PredictWeights.flow_vae, PredictWeights.k2f,
                                                                  PredictWeights.f2i):
        raise InputError(f"--weights {folder} is a segmenter; evaluate takes it as --seg-weights")
    return w


def build_predictor(name: str, weights) -> Predictor:
    """The predictor ``name``, given ``weights`` when it is a KDM pipeline predictor and they are not None (only
    then is the KDM module, with diffusers, imported here)."""
    if weights is None:
        return get_predictor(name)
    from echokdm.evaluate.kdm import KDMModel

    takes = issubclass(predictor_class(name), KDMModel)
    return get_predictor(name, **({"weights": weights} if takes else {}))


def _resolve_segmenter(
    segmenter: str | Segmenter, device: str = "cpu", weights: str = SEG_WEIGHTS
) -> tuple[Segmenter, str]:
    if not isinstance(segmenter, str):
        return segmenter, type(segmenter).__name__
    named = "builtin" if weights == SEG_WEIGHTS else f"builtin ({weights})"
    if segmenter == "auto":
        if weights != SEG_WEIGHTS:  # weights the user named must load: no silent fall-back
            return load_segmenter("builtin", device, weights), named
        try:
            return load_segmenter("builtin", device), "builtin"
        except EchoKDMError:  # no built-in weights: fall back to registration; the report says which was used
            return load_segmenter("atlas"), "atlas"
    return load_segmenter(segmenter, device, weights), named if segmenter == "builtin" else segmenter


def _wall_segmenter(seg: Segmenter) -> Segmenter | None:
    """The segmenter that gives cavity-only tracings their wall for 40 keypoints: the built-in one when it labels the
    predictions (the atlas segmenter only carries the tracing's labels, which have no wall)."""
    return seg if isinstance(seg, BuiltinSegmenter) else None


def _examples(
    cases: Sequence[CaseRef],
    picks: list[tuple[str, str]],
    models: dict[str, Predictor],
    task: str,
    seg: Segmenter,
    n_keypoints: int,
    seed: int,
    prior: KeypointPrior | None,
) -> list[tuple[str, Sample, dict[str, tuple[np.ndarray, np.ndarray, dict[str, float]]]]]:
    """Predictions of the picked cases for the strip, computed again (cheaper than storing every prediction)."""
    by_id = {c.case_id: c for c in cases}
    out = []
    for title, case_id in picks:
        if case_id not in by_id:
            continue
        case, myocardium = by_id[case_id].load(), _wall_segmenter(seg)
        sample = make_sample(case, task, n_keypoints=n_keypoints, prior=prior, seed=seed, myocardium=myocardium)
        source_seg = seg(sample.source[None], **segmenter_inputs(sample))[0]
        preds = {}
        for name, model in models.items():
            if model.applicable(sample):
                pred, labels, _ = predict_and_segment(sample, model, seg, seed)
                preds[name] = (pred, labels, score_prediction(sample, pred, labels, source_seg, n_keypoints))
        out.append((title, sample, preds))
    return out
