"""Biplane Simpson EF of a CAMUS folder against the EF of its Info files.

For every patient, the ED/ES pairs of the 2CH and 4CH views give a biplane Simpson EF twice: from the ground
truth masks (how close the method itself comes to the reported EF) and from the segmenter's masks of the
whole ED->ES sequence of each view (what a user gets).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from echokdm.errors import InputError
from echokdm.progress import progress
from echokdm.segmenter import Segmenter

#: columns of ``biplane.csv``
COLUMNS = ["patient", "ef_reported", "ef_biplane_truth", "ef_biplane_seg", "error"]


def _pair_metrics(labels: np.ndarray, spacing):
    from echokdm.metrics import measure_loop

    return measure_loop(labels, 20, spacing, ed_es=(0, 1))


def camus_biplane(root: str | Path, segmenter: Segmenter) -> pd.DataFrame:
    """One row per patient with both views (:data:`COLUMNS`; ``error`` says why an EF is missing)."""
    from echokdm.data.camus import camus_datalist, load_camus_item
    from echokdm.metrics import biplane_ef

    views = {v: {i["patient"]: i for i in camus_datalist(root, v)} for v in ("4CH", "2CH")}
    rows = []
    for patient in progress(sorted(set(views["4CH"]) & set(views["2CH"])), "biplane EF"):
        row = {"patient": patient, "ef_reported": views["4CH"][patient]["ef"], "error": ""}
        truth, seg, errors = {}, {}, []
        for view in ("4CH", "2CH"):
            item = views[view][patient]
            d = load_camus_item(item)
            spacing = d["spacing"] if None not in d["spacing"] else None
            try:
                truth[view] = _pair_metrics(np.stack([d["label_ed"], d["label_es"]]), spacing)
            except InputError as e:
                errors.append(f"{view} ground truth: {e}")
            try:
                frames = d["image"][0].numpy()
                mask = np.asarray(d["image"].meta["sector_mask"], dtype=bool)
                labels = segmenter(frames, sector_mask=mask, spacing_mm=spacing)
                seg[view] = _pair_metrics(labels[[item["ed"], item["es"]]], spacing)
            except InputError as e:
                errors.append(f"{view} segmenter: {e}")
        row["error"] = "; ".join(errors)
        row["ef_biplane_truth"] = biplane_ef(truth["4CH"], truth["2CH"])["ef_biplane"] if len(truth) == 2 else None
        row["ef_biplane_seg"] = biplane_ef(seg["4CH"], seg["2CH"])["ef_biplane"] if len(seg) == 2 else None
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def biplane_markdown(table: pd.DataFrame) -> str:
    """A ``summary.md`` section: mean absolute and signed error of both biplane EFs against the reported EF."""
    lines = ["", "## Biplane Simpson EF against the reported EF (Info_2CH/4CH.cfg)", "",
             "| masks | patients | mean abs error (EF points) | mean error |", "|---|---|---|---|"]  # fmt: skip
    for col, name in (("ef_biplane_truth", "ground truth"), ("ef_biplane_seg", "segmenter")):
        ok = table.dropna(subset=[col, "ef_reported"])
        err = ok[col].astype(float) - ok["ef_reported"].astype(float)
        if len(ok):
            lines.append(f"| {name} | {len(ok)} | {err.abs().mean():.2f} | {err.mean():+.2f} |")
        else:
            lines.append(f"| {name} | 0 | - | - |")
    return "\n".join(lines) + "\n"


__all__ = ["COLUMNS", "biplane_markdown", "camus_biplane"]
