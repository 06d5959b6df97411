#!/usr/bin/env python3
"""Paired comparison of one predictor across two ``echokdm evaluate`` reports of the same cases (e.g. ``kdm`` with
the shipped weights and with ``--weights DIR``, which one run cannot hold both of).

    python pipelines/bench/compare_reports.py REPORT_A REPORT_B [--predictor kdm] [--label-a shipped] [--label-b new]

Prints, per metric (PSNR, SSIM, LV Dice, EF error), the mean of each report and B − A on the cases both scored:
mean with its bootstrap 95% CI (:func:`echokdm.evaluate.stats.paired_difference`, cases resampled), and n.
"""

from __future__ import annotations

import argparse
from pathlib import Path

METRICS = {"psnr": "PSNR", "ssim": "SSIM", "dice": "LV Dice", "ef_err": "EF error"}


def compare(a: Path, b: Path, predictor: str = "kdm", labels: tuple[str, str] = ("A", "B")) -> str:
    """Markdown table of ``predictor``'s scores in reports ``a`` and ``b`` and their paired difference b − a."""
    import pandas as pd

    from echokdm.evaluate.stats import paired_difference
    from echokdm.evaluate.summary import scored

    tables = [scored(pd.read_csv(p / "scores.csv", dtype={"case_id": str})) for p in (a, b)]
    wide = [t[t.predictor == predictor].set_index("case_id") for t in tables]
    cases = wide[0].index.intersection(wide[1].index)
    head = f"| metric | {labels[0]} | {labels[1]} | {labels[1]} − {labels[0]} [95% CI] | n |"
    lines = [head, "|---|---|---|---|---|"]
    for col, name in METRICS.items():
        if col not in wide[0] or col not in wide[1]:
            continue
        va, vb = (w.loc[cases, col].to_numpy(float) for w in wide)
        e = paired_difference(vb, va)
        star = "*" if e.n and (e.lo > 0 or e.hi < 0) else ""
        lines.append(f"| {name} | {va.mean():.4f} | {vb.mean():.4f} | {e.mean:+.4f} [{e.lo:+.4f}, {e.hi:+.4f}]{star} "
                     f"| {e.n} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report_a", type=Path)
    ap.add_argument("report_b", type=Path)
    ap.add_argument("--predictor", default="kdm")
    ap.add_argument("--label-a", default="A")
    ap.add_argument("--label-b", default="B")
    a = ap.parse_args()
    print(compare(a.report_a, a.report_b, a.predictor, (a.label_a, a.label_b)))


if __name__ == "__main__":
    main()
