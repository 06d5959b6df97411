"""The markdown summary of an evaluation: mean and bootstrap 95% CI per metric and predictor, paired
differences against the best baseline, and paired differences between models (a model against its ablations)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from echokdm.evaluate.scores import METRICS
from echokdm.evaluate.stats import Estimate, bootstrap_ci, paired_difference


def scored(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``scores.csv`` that hold scores (not the skipped predictor/case pairs)."""
    if "skipped" not in table:
        return table
    return table[~table["skipped"].astype(bool)]


def metrics_present(table: pd.DataFrame) -> list[str]:
    """The metrics of :data:`METRICS` that have at least one finite value in ``table``."""
    return [m for m in METRICS if m in table and np.isfinite(table[m].to_numpy(dtype=float)).any()]


def paired(table: pd.DataFrame, metric: str, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``metric`` for predictors ``a`` and ``b`` on the cases both were scored on, aligned."""
    wide = table.pivot_table(index="case_id", columns="predictor", values=metric, aggfunc="first", dropna=False)
    wide = wide.reindex(columns=[a, b]).dropna(how="any")
    return wide[a].to_numpy(dtype=float), wide[b].to_numpy(dtype=float)


def best_baseline(table: pd.DataFrame, metric: str, predictors: Sequence[str]) -> str | None:
    """The predictor of kind ``baseline`` with the best mean ``metric`` (None when there is none)."""
    kinds = table.groupby("predictor")["kind"].first()
    means = table.groupby("predictor")[metric].mean()
    base = [p for p in predictors if kinds.get(p) == "baseline" and np.isfinite(means.get(p, np.nan))]
    if not base:
        return None
    sign = 1.0 if METRICS[metric].higher_is_better else -1.0
    return max(base, key=lambda p: sign * means[p])


def _paired_cell(table: pd.DataFrame, metric: str, a: str, b: str, seed: int) -> str:
    """``a − b`` on ``metric`` with its bootstrap CI, starred when the CI excludes 0."""
    e = paired_difference(*paired(table, metric, a, b), seed=seed)
    star = "*" if e.n and (e.lo > 0 or e.hi < 0) else ""
    return e.format(METRICS[metric].digits) + star


def _cell(e: Estimate, digits: int, total: int) -> str:
    text = e.format(digits)
    return text if e.n in (0, total) else f"{text} (n={e.n})"


def summary_markdown(
    table: pd.DataFrame, predictors: Sequence[str], header: dict[str, str], spacing_known: bool, seed: int = 0
) -> str:
    """The summary report.

    Args:
        table: rows of ``scores.csv``.
        predictors: predictor names in column order.
        header: run description shown as a list (data, task, grid, segmenter, seed, ...).
        spacing_known: whether distances are in mm (else pixels).
        seed: seed of the bootstrap.

    Returns:
        Markdown text.
    """
    skipped = table[table["skipped"].astype(bool)] if "skipped" in table else table.iloc[:0]
    table = scored(table)
    predictors = [p for p in predictors if p in set(table["predictor"])]
    kinds = table.groupby("predictor")["kind"].first()
    n_cases = table["case_id"].nunique()
    lines = ["# echokdm evaluation", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    lines += [f"- cases scored: {n_cases}", ""]
    metrics = metrics_present(table)

    def unit(m: str) -> str:
        return METRICS[m].unit_for(spacing_known)

    lines += ["## Mean and bootstrap 95% CI per predictor", ""]
    lines += ["| metric | unit | better | " + " | ".join(f"{p} ({kinds[p]})" for p in predictors) + " |"]
    lines += ["|---|---|---|" + "---|" * len(predictors)]
    for m in metrics:
        spec = METRICS[m]
        cells = []
        for p in predictors:
            v = table.loc[table["predictor"] == p, m].to_numpy(dtype=float)
            cells.append(_cell(bootstrap_ci(v, seed=seed), spec.digits, int((table["predictor"] == p).sum())))
        lines += [f"| {m} | {unit(m)} | {'higher' if spec.higher_is_better else 'lower'} | " + " | ".join(cells) + " |"]

    lines += ["", "## Paired differences against the best baseline", ""]
    lines += ["Predictor minus the baseline (copy, tps, ...) with the best mean on that metric, over the cases both "
              "were scored on; `*` marks a 95% CI that excludes 0.", ""]
    lines += ["| metric | best baseline | " + " | ".join(f"{p} − best" for p in predictors) + " |"]
    lines += ["|---|---|" + "---|" * len(predictors)]
    for m in metrics:
        ref = best_baseline(table, m, predictors)
        if ref is None:
            continue
        cells = ["—" if p == ref else _paired_cell(table, m, p, ref, seed) for p in predictors]
        lines += [f"| {m} | {ref} | " + " | ".join(cells) + " |"]

    models = [p for p in predictors if kinds[p] == "model"]
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    if pairs:
        lines += ["", "## Paired differences between models", ""]
        lines += ["Each model minus each model listed after it (e.g. KDM minus its ablations), over the cases both "
                  "were scored on; `*` marks a 95% CI that excludes 0.", ""]
        lines += ["| metric | " + " | ".join(f"{a} − {b}" for a, b in pairs) + " |", "|---|" + "---|" * len(pairs)]
        lines += [
            f"| {m} | " + " | ".join(_paired_cell(table, m, a, b, seed) for a, b in pairs) + " |" for m in metrics
        ]

    if len(skipped):
        lines += ["", "## Not scored", ""]
        reasons = skipped.groupby("error")["case_id"].unique()
        for reason, ids in reasons.items():
            shown = ", ".join(sorted(ids)[:5]) + (", ..." if len(ids) > 5 else "")
            lines += [f"- {len(ids)} case(s): {reason} ({shown})"]

    lines += ["", "## Metrics", ""]
    lines += [f"- `{m}` ({unit(m) or 'unitless'}): {METRICS[m].description}" for m in metrics]
    lines += [
        "- EFs are single-plane Simpson (method of disks) EFs of keypoint contours; the prediction's EF takes the "
        "keypoints of the segmenter's labels of the source frame and of the (last) predicted frame, so a bias of the "
        "segmenter largely cancels.",
        "",
        "Plots: `boxplots.png` (per-case values), `bland_altman.png` (EF of the prediction vs true EF), "
        "`strip.png` (best, median and worst case: source | target | predictions).",
        "",
    ]
    return "\n".join(lines)
