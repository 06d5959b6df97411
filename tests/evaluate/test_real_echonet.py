"""``pipelines/bench/real_echonet.py`` writes EchoNet-Dynamic folders that echokdm's reader and ``evaluate`` read
back."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from a4c_shapes import a4c_labels

from echokdm.data.echonet import echonet_datalist, load_echonet_item
from echokdm.evaluate.cases import folder_cases

sys.path.insert(0, str(Path(__file__).parents[2] / "pipelines" / "bench"))
import real_echonet  # noqa: E402
from real_echonet import VIEWS, RealLoop, write_echonet  # noqa: E402

SHAPE = (160, 200)
ED, ES = 1, 4


def _loop(name: str, keep: float) -> RealLoop:
    """Six frames of an analytic A4C heart in a fan (apex row 10), ED at frame 1 and ES at frame 4."""
    sizes = [(38, 19), (40, 20), (38, 19), (36, 17), (33, 15), (35, 16)]
    labels = np.stack([a4c_labels(SHAPE, a=a, b=b, base=(100.0, 110.0)) for a, b in sizes])
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    sector = (rows >= 10) & (np.abs(cols - 100) <= (rows - 10) * 0.9)
    rng = np.random.default_rng(0)
    frames = (np.where(labels == 2, 0.7, 0.15) + 0.1 * rng.random(labels.shape)) * sector
    return RealLoop(name, frames.astype(np.float32), sector, labels, [(ED, ES)], 20.0, keep)


def test_written_folder_reads_back(tmp_path):
    # keep 0.8: every view holds the cavity; keep 0.3: the crop cuts the cavity in every view
    rows, left_out = write_echonet(tmp_path, [_loop("whole", 0.8), _loop("cut", 0.3)])
    assert len(rows) == len(VIEWS) and left_out == len(VIEWS)
    assert {r["loop"] for r in rows} == {"whole"} and len({r["name"] for r in rows}) == len(VIEWS)
    items = echonet_datalist(tmp_path)
    assert [i["filename"] for i in items] == [r["name"] for r in rows]
    assert all((i["ed"], i["es"], i["n_frames"], i["split"]) == (ED, ES, 6, "TEST") for i in items)
    assert all(30 < i["ef"] < 60 for i in items)
    d = load_echonet_item(items[0])
    assert tuple(d["image"].shape) == (1, 6, 112, 112)
    assert d["label_ed"].sum() > d["label_es"].sum() > 100
    assert len(folder_cases(tmp_path, 128)) == len(VIEWS)


def test_evaluate_scores_with_the_candidate_segmenter(tmp_path, monkeypatch):
    """``--seg-weights`` reaches evaluate (the segmenter of the predictions, as of the stand-in tracings); the
    shipped segmenter adds nothing to the command."""
    runs = []
    monkeypatch.setattr(real_echonet.subprocess, "run", lambda cmd, check: runs.append(cmd))
    real_echonet.evaluate(tmp_path, tmp_path / "r", "copy,kdm", 20, None, "cand/model.safetensors")
    real_echonet.evaluate(tmp_path, tmp_path / "r", "copy,kdm", 20)
    assert runs[0][runs[0].index("--seg-weights") + 1] == "cand/model.safetensors"
    assert "--seg-weights" not in runs[1] and "--weights" not in runs[1]
