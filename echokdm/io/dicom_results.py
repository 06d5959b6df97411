"""The DICOM SEG and SR that ``segment`` and ``predict`` write next to their other results, in one place.

Both go into the study of the images they reference as new series; both are de-identified with the caller's
:class:`~echokdm.io.anonymize.Anonymizer` (the one that de-identified the other DICOM outputs of the run, so the
references between them hold).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydicom.dataset import Dataset

from echokdm.errors import InputError
from echokdm.io.dicom_seg import write_segmentation_seg
from echokdm.io.sr import MeasurementGroup, write_measurement_sr

if TYPE_CHECKING:
    from echokdm.io.anonymize import Anonymizer
    from echokdm.outputs import OutputDir

#: file key -> name of the DICOM results
DICOM_FILES = {"seg_dicom": "segmentation_seg.dcm", "sr": "measurements_sr.dcm"}


def write_dicom_results(
    out: OutputDir,
    labels: np.ndarray,
    seg_source: Dataset,
    groups: Sequence[MeasurementGroup],
    images: Sequence[Dataset],
    algorithm: tuple[str, str],
    anonymizer: Anonymizer | None = None,
) -> tuple[dict[str, str], str | None]:
    """Write the SEG of ``labels`` (the frames of ``seg_source``, in order) and, when ``groups`` hold values, the
    SR of the measurements on ``images``.

    Args:
        out: the output folder.
        labels: (T, H, W) CAMUS labels of the T frames of ``seg_source``.
        seg_source: header of the multi-frame image segmented.
        groups: the SR's measurement groups.
        images: headers of the images the measurements refer to (the first one's study is the SR's).
        algorithm: (name, version) of the algorithm.
        anonymizer: de-identification of both files.

    Returns:
        The keys and names of the files written, and why one was not (None when both were): a header that
        cannot be referenced, or no measurements.
    """
    written: dict[str, str] = {}
    try:
        with out.atomic(DICOM_FILES["seg_dicom"]) as tmp:
            write_segmentation_seg(tmp, labels, seg_source, algorithm=algorithm, anonymize=anonymizer)
        written["seg_dicom"] = DICOM_FILES["seg_dicom"]
        if not any(g.values for g in groups):
            return written, f"no {DICOM_FILES['sr']}: nothing was measured"
        with out.atomic(DICOM_FILES["sr"]) as tmp:
            write_measurement_sr(tmp, groups, images, algorithm=algorithm, anonymize=anonymizer)
        written["sr"] = DICOM_FILES["sr"]
    except InputError as e:  # a header the SEG or SR cannot reference: the other results stand
        return written, f"no {' or '.join(f for k, f in DICOM_FILES.items() if k not in written)}: {e}"
    return written, None


__all__ = ["DICOM_FILES", "write_dicom_results"]
