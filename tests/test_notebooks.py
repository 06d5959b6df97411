"""The notebooks: committed without outputs, and each runs top to bottom (this venv's kernel) writing only to
OUT_DIR."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def execute(name: str, tmp_path: Path, settings: str = "") -> tuple[nbformat.NotebookNode, Path]:
    """Run ``notebooks/<name>.ipynb`` in ``tmp_path`` with OUT_DIR set there (papermill-style: a cell after the
    parameters cell), checking that the kernel is this venv's Python; returns the executed notebook and OUT_DIR."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    out = tmp_path / "out"
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(
        f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix\nOUT_DIR = Path({str(out)!r})\n{settings}"))
    before = sorted(p.name for p in NOTEBOOKS.iterdir())
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert sorted(p.name for p in NOTEBOOKS.iterdir()) == before, "a notebook wrote next to itself"
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "a notebook wrote outside OUT_DIR"
    return nb, out


def test_notebooks_are_committed_without_outputs():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["clinician_review.ipynb", "phantom_and_metrics.ipynb"]
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), (
            f"{name}: strip its outputs before committing"
        )
        assert "widgets" not in nb.metadata, f"{name}: strip its widget state before committing"
        assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, f"{name}: one cell tagged parameters"


@pytest.mark.slow
def test_clinician_review_runs_on_the_bundled_sample(tmp_path):
    nb, out = execute("clinician_review", tmp_path,  # two frames and one step: how the notebook runs, not how well
                      'FRAMES, STEPS = 2, 1\nDECISION, COMMENT, REVIEWER = "flag", "LA not followed", "CI"')
    case = out / "examples_ybr_color"
    for name in ("prediction/report.json", "prediction/comparison.png", "segmentation/segmentation.nii.gz",
                 "figures/ed_es_keypoints.png"):
        assert (case / name).is_file(), name
    review = pd.read_csv(out / "review.csv", dtype=str, keep_default_na=False)
    assert review[["case_id", "decision", "comment", "reviewer"]].values.tolist() == [
        ["examples_ybr_color", "flag", "LA not followed", "CI"]
    ]
    shown = outputs(nb)
    assert sum("image/png" in o.get("data", {}) for o in shown) >= 2  # keypoints, comparison
    assert any("new Animation(frames" in o.get("data", {}).get("text/html", "") for o in shown)  # the loop player
    assert sum("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in shown) == 2  # slider, form
    assert any("consistency" in o.get("data", {}).get("text/html", "") for o in shown)  # the EF table


@pytest.mark.slow
def test_phantom_and_metrics_runs(tmp_path):
    # one loop (its figures loop over however many there are) and two evaluation cases: how the notebook runs,
    # not how well
    nb, out = execute("phantom_and_metrics", tmp_path, 'N_LOOPS, SIZE, EVAL_DATA = 1, 96, "phantom-test:2"')
    for name in ("truth.png", "keypoints.png", "area_curves.png", "evaluation/scores.csv",
                 "evaluation/summary.md", "evaluation/boxplots.png", "evaluation/bland_altman.png"):
        assert (out / name).is_file(), name
    scores = pd.read_csv(out / "evaluation" / "scores.csv")
    assert set(scores["predictor"]) == {"copy", "tps", "oracle"} and scores["case_id"].nunique() == 2
    assert sum("image/png" in o.get("data", {}) for o in outputs(nb)) >= 6  # truth, keypoints, areas, 3 report plots
