"""Figures of an evaluation: box plots per metric, Bland–Altman of EF, and a strip of example cases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from echokdm.evaluate.scores import METRICS
from echokdm.evaluate.summary import metrics_present, scored
from echokdm.evaluate.tasks import Sample
from echokdm.metrics import PSNR_CAP


def box_plots(table: pd.DataFrame, predictors: Sequence[str], path: Path, spacing_known: bool = True) -> None:
    """One panel per metric with a box (and the per-case points) per predictor; distances in px where
    ``spacing_known`` is False."""
    table = scored(table)
    metrics = metrics_present(table)
    cols = min(4, len(metrics))
    rows = -(-len(metrics) // cols)
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, m in zip(axes.ravel(), metrics):
        data = [table.loc[table["predictor"] == p, m].to_numpy(dtype=float) for p in predictors]
        data = [d[np.isfinite(d)] for d in data]
        capped = [int((d >= PSNR_CAP).sum()) if m == "psnr" else 0 for d in data]
        data = [d[d < PSNR_CAP] if m == "psnr" else d for d in data]  # identical frames would flatten the scale
        ax.boxplot(data, showfliers=False)
        for i, (d, n_cap) in enumerate(zip(data, capped), start=1):
            jitter = np.random.default_rng(i).uniform(-0.12, 0.12, d.size)
            ax.plot(i + jitter, d, ".", ms=3, alpha=0.5, color="tab:blue")
            if n_cap:
                ax.text(
                    i, 1.0, f"{n_cap}× =\ntarget", transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=7
                )
        ax.set_xticks(range(1, len(predictors) + 1), predictors, rotation=30)
        spec = METRICS[m]
        ax.set_title(f"{m} ({'↑' if spec.higher_is_better else '↓'})", fontsize=10)
        if spec.unit:
            ax.set_ylabel(spec.unit_for(spacing_known))
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")


def bland_altman(table: pd.DataFrame, predictors: Sequence[str], path: Path) -> None:
    """Bland–Altman panels, one per predictor: EF of the prediction vs true EF (bias and 95% limits)."""
    table = scored(table)
    fig = Figure(figsize=(3.6 * len(predictors), 3.4))
    axes = fig.subplots(1, len(predictors), squeeze=False, sharey=True)
    for ax, p in zip(axes[0], predictors):
        rows = table[table["predictor"] == p]
        a, b = rows["ef_pred"].to_numpy(dtype=float), rows["ef_true"].to_numpy(dtype=float)
        ok = np.isfinite(a) & np.isfinite(b)
        mean, diff = (a[ok] + b[ok]) / 2, a[ok] - b[ok]
        ax.plot(mean, diff, "o", ms=4, alpha=0.7)
        if diff.size:
            bias, sd = diff.mean(), diff.std(ddof=1) if diff.size > 1 else 0.0
            for y, style in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
                ax.axhline(y, color="tab:red", ls=style, lw=1)
            ax.set_title(f"{p}: bias {bias:+.1f}, LoA ±{1.96 * sd:.1f}", fontsize=10)
        ax.axhline(0, color="gray", lw=0.5)
        ax.set_xlabel("mean of EF pred and EF true (%)")
    axes[0, 0].set_ylabel("EF pred − EF true (EF points)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")


def case_strip(
    examples: Sequence[tuple[str, Sample, dict[str, tuple[np.ndarray, np.ndarray, dict[str, float]]]]], path: Path
) -> None:
    """Rows of example cases: source | target | each prediction (last target frame of a sequence).

    The true target LV contour is drawn in green on the target and on every prediction, the target keypoints
    in cyan on the target, and the contour of the prediction's segmentation in orange.

    Args:
        examples: (row title, sample, predictor -> (prediction (N, H, W), its labels (N, H, W), scores)).
        path: the PNG to write.
    """
    names = list(dict.fromkeys(name for _, _, preds in examples for name in preds))
    cols = 2 + len(names)
    fig = Figure(figsize=(2.4 * cols, 2.6 * len(examples)))
    axes = fig.subplots(len(examples), cols, squeeze=False)
    for r, (title, sample, preds) in enumerate(examples):
        truth = sample.target_labels[-1] == 1 if sample.target_labels is not None else None
        panels = [("source", sample.source, sample.source_labels == 1, None)]
        if sample.targets is not None:
            n = len(sample.targets)
            panels.append(("target" if n == 1 else f"target (last of {n})", sample.targets[-1], None, None))
        else:  # target-ef: no true image; show where the requested keypoints lie on the source
            panels.append((f"target keypoints, EF {sample.target_ef:.0f}%", sample.source, None, None))
        for name in names:
            if name not in preds:
                panels.append((f"{name}\nnot applicable", np.zeros_like(sample.source), None, None))
                continue
            pred, labels, s = preds[name]
            score = ", ".join(f"{k} {s[k]:.2f}" for k in ("ssim", "dice") if np.isfinite(s.get(k, np.nan)))
            if np.isfinite(s.get("ef_pred", np.nan)):
                score += f"{', ' if score else ''}EF {s['ef_pred']:.0f}%"
            panels.append((f"{name}\n{score}" if score else name, pred[-1], None, labels[-1] == 1))
        for c, (label, img, own, seg) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            if own is not None:
                ax.contour(own, levels=[0.5], colors="tab:green", linewidths=0.8)
            if truth is not None and c > 0:
                ax.contour(truth, levels=[0.5], colors="tab:green", linewidths=0.8)
            if seg is not None and seg.any():
                ax.contour(seg, levels=[0.5], colors="tab:orange", linewidths=0.8)
            if c == 1:
                ax.plot(*sample.target_keypoints[-1].T, ".", color="tab:cyan", ms=2.5)
            ax.set_title(label, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(f"{title}\n{sample.sample_id}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
