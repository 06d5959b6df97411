"""The summary's paired comparisons: against the best baseline, and between models (a model against its ablations)."""

import numpy as np
import pandas as pd

from echokdm.evaluate.summary import summary_markdown


def _table(models: dict[str, float]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.7, 30)
    rows = [{"case_id": f"c{i}", "predictor": "copy", "kind": "baseline", "ssim": v} for i, v in enumerate(base)]
    for name, shift in models.items():
        rows += [
            {"case_id": f"c{i}", "predictor": name, "kind": "model", "ssim": v + shift} for i, v in enumerate(base)
        ]
    return pd.DataFrame(rows)


def _section(text: str, title: str) -> list[str]:
    lines = text.split("\n")
    start = lines.index(title)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def test_models_are_compared_with_each_other():
    models = {"kdm": 0.2, "k2f-warp": 0.1, "k2i": 0.1}
    text = summary_markdown(_table(models), ["copy", *models], {}, spacing_known=False)
    rows = _section(text, "## Paired differences between models")
    assert "| metric | kdm − k2f-warp | kdm − k2i | k2f-warp − k2i |" in rows
    ssim = next(r for r in rows if r.startswith("| ssim |")).split(" | ")
    assert ssim[1].startswith("0.100 [0.100, 0.100]") and ssim[1].endswith("*")  # a constant gain is significant
    assert ssim[3].startswith("0.000") and not ssim[3].rstrip(" |").endswith("*")  # no difference is not


def test_one_model_has_no_model_comparison():
    text = summary_markdown(_table({"kdm": 0.2}), ["copy", "kdm"], {}, spacing_known=False)
    assert "## Paired differences between models" not in text
    assert "| ssim | copy | — | 0.200 [0.200, 0.200]* |" in text
