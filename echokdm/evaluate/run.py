"""``run_evaluation``: a whole evaluation run into one report folder.

The settings and ``--data`` are checked first, with neither torch, a model nor a figure library imported, so that a
bad one fails fast; the run itself is :func:`~echokdm.evaluate.report.evaluate_and_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from echokdm.defaults import SEG_WEIGHTS
from echokdm.errors import InputError
from echokdm.evaluate.cases import CaseRef, resolve_cases
from echokdm.evaluate.tasks import TASKS

if TYPE_CHECKING:
    from echokdm.evaluate.report import EvaluationResult
    from echokdm.models.prior import KeypointPrior
    from echokdm.segmenter import Segmenter


def run_evaluation(
    data: str | Sequence[CaseRef],
    report: str | Path,
    predictors: Sequence[str] = ("copy", "tps", "oracle"),
    task: str = "es",
    segmenter: str | Segmenter = "auto",
    n_keypoints: int = 40,
    size: int = 128,
    seed: int = 0,
    overwrite: bool = False,
    prior: KeypointPrior | str | Path | None = None,
    device: str = "auto",
    seg_weights: str = SEG_WEIGHTS,
    kdm_weights: str | None = None,
) -> EvaluationResult:
    """Evaluate ``predictors`` on ``task`` over the cases of ``data`` and write the report.

    The report folder gets ``scores.csv`` (one row per case and predictor), ``summary.md`` (mean and bootstrap
    95% CI per metric and predictor, paired differences against the best baseline), ``boxplots.png``,
    ``bland_altman.png``, ``strip.png`` (best, median and worst case) and ``run.json`` (the settings); a CAMUS
    folder adds ``biplane.csv`` (biplane Simpson EF of each patient against its Info file's EF, see
    :mod:`echokdm.evaluate.biplane`) and its section of ``summary.md``.
    Re-running into the same folder with the same settings skips the cases already scored. The same seed
    gives the same numbers.

    Args:
        data: ``phantom-test[:N]`` (the frozen phantom test split, N cases, default 50), a folder (CAMUS,
            EchoNet-Dynamic or a folder written by ``echokdm phantom``), or the cases themselves (used at their
            own size).
        report: the report folder.
        predictors: registered predictor names.
        task: one of :data:`~echokdm.evaluate.tasks.TASKS`.
        segmenter: ``auto`` (built-in when it has weights, else atlas), ``builtin``, ``atlas`` or a
            :class:`~echokdm.segmenter.Segmenter`.
        n_keypoints: 20 or 40.
        size: edge of the square working grid in pixels.
        seed: fixes every random choice.
        overwrite: replace an existing report instead of resuming it.
        prior: keypoint motion prior for ``target-ef``, or the path of a saved one (default: the shipped one).
        device: where the models run: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (bf16 autocast on CUDA).
        seg_weights: weights of the built-in segmenter: a shipped name, a ``.safetensors`` file or a training
            run's folder (``echokdm train seg --out DIR``).
        kdm_weights: weights of the KDM predictors (``kdm``, ``kdm-adapt``, ``k2f-warp``) as ``echokdm predict
            --weights`` takes them: a folder named like the shipped files, or one trained flow autoencoder, K2F or
            F2I (an ``echokdm train --out DIR`` folder or its model.safetensors; shipped weights for the rest).

    Returns:
        The scores table and the paths written.

    Raises:
        InputError: bad task, predictor, keypoint count, size or data.
        UnsupportedError: ``target-ef`` without a keypoint motion prior; ``builtin`` segmenter without weights.
        OutputError: the report folder is not usable.
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if n_keypoints not in (20, 40):
        raise InputError(f"keypoints must be 20 or 40, got {n_keypoints}")
    if not 32 <= size <= 1024:
        raise InputError(f"working size must be 32 to 1024 pixels, got {size}")
    cases = resolve_cases(data, size=size) if isinstance(data, str) else list(data)
    from echokdm.evaluate.report import evaluate_and_report

    return evaluate_and_report(data, cases, report, predictors, task, segmenter, n_keypoints, size, seed, overwrite,
                               prior, device, seg_weights, kdm_weights)
