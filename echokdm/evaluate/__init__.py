"""Evaluation harness: fixed tasks on held-out cases, baselines, per-case scores and a report with CIs.

- :mod:`~echokdm.evaluate.cases`: labelled loops (phantom test split, data folders) at the working size.
- :mod:`~echokdm.evaluate.tasks`: what a predictor gets and must produce (``es``, ``ed``, ``sequence``,
  ``target-ef``).
- :mod:`~echokdm.evaluate.predictors`: ``copy``, ``tps``, ``oracle`` and the registry new ones join.
- :mod:`~echokdm.evaluate.segmenter`: who labels the predictions.
- :mod:`~echokdm.evaluate.scores`, :mod:`~echokdm.evaluate.stats`: per-case metrics, bootstrap CIs.
- :mod:`~echokdm.evaluate.runner`, :mod:`~echokdm.evaluate.report`: the resumable loop and the report;
  :mod:`~echokdm.evaluate.run`: :func:`run_evaluation`, which checks its settings and ``data`` before those load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from echokdm.lazy import lazy_exports

#: exported name -> module under echokdm.evaluate; imported on first use (PEP 562), so that the command line's
#: options and the check of its settings and ``--data`` load neither torch nor a model
_EXPORTS = {
    "Case": "cases",
    "CaseRef": "cases",
    "resolve_cases": "cases",
    "PREDICTORS": "predictors",
    "Predictor": "predictors",
    "get_predictor": "predictors",
    "EvaluationResult": "report",
    "run_evaluation": "run",
    "AtlasSegmenter": "segmenter",
    "Segmenter": "segmenter",
    "load_segmenter": "segmenter",
    "KeypointPrior": "tasks",
    "TASKS": "tasks",
    "Sample": "tasks",
    "make_sample": "tasks",
}

if TYPE_CHECKING:
    from echokdm.evaluate.cases import Case, CaseRef, resolve_cases
    from echokdm.evaluate.predictors import PREDICTORS, Predictor, get_predictor
    from echokdm.evaluate.report import EvaluationResult
    from echokdm.evaluate.run import run_evaluation
    from echokdm.evaluate.segmenter import AtlasSegmenter, load_segmenter
    from echokdm.evaluate.tasks import TASKS, Sample, make_sample
    from echokdm.models.prior import KeypointPrior
    from echokdm.segmenter import Segmenter

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


__all__ = [
    "PREDICTORS",
    "TASKS",
    "AtlasSegmenter",
    "Case",
    "CaseRef",
    "EvaluationResult",
    "KeypointPrior",
    "Predictor",
    "Sample",
    "Segmenter",
    "get_predictor",
    "load_segmenter",
    "make_sample",
    "resolve_cases",
    "run_evaluation",
]
