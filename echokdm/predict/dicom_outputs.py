"""The DICOM SEG and SR of a prediction from a DICOM input (see :mod:`echokdm.io.dicom_results`).

The SEG labels the predicted frames of ``prediction.dcm``; the SR references the source cine (image 0) and
``prediction.dcm`` (image 1), in the source's study (de-identified with the run's anonymizer).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from echokdm.defaults import SEG_WEIGHTS
from echokdm.io.sr import Measured, MeasurementGroup, beat_group

if TYPE_CHECKING:
    from echokdm.io.anonymize import Anonymizer
    from echokdm.outputs import OutputDir
    from echokdm.predict.report import Prediction


def write_dicom_outputs(out: OutputDir, pred: Prediction, prediction_dcm: str,
                        anonymizer: Anonymizer | None = None) -> dict[str, str]:
    """Write ``segmentation_seg.dcm`` and ``measurements_sr.dcm`` of ``pred`` (whose ``header`` is set) next to
    ``prediction_dcm`` (already written in ``out``); returns the keys and names of the files written."""
    from echokdm import __version__
    from echokdm.io.dicom import read_dicom_header
    from echokdm.io.dicom_results import write_dicom_results

    prediction = read_dicom_header(out.file(prediction_dcm))
    # the prediction's study is the source's (de-identified the same way when anonymized)
    source = anonymizer(copy.deepcopy(pred.header)) if anonymizer is not None else pred.header
    seg = pred.weights.get("seg", {}).get("name", SEG_WEIGHTS)
    algorithm = (f"echokdm KDM prediction ({seg} segmenter)", __version__)
    groups = prediction_groups(pred.sections, len(pred.frames))
    return write_dicom_results(out, pred.labels, prediction, groups, [source, prediction], algorithm, anonymizer)[0]


def prediction_groups(sections: dict[str, Any], n_predicted: int) -> list[MeasurementGroup]:
    """SR measurement groups of a prediction's report sections; image 0 is the source cine, image 1
    ``prediction.dcm`` (``n_predicted`` frames).

    The source beat (EF by both methods, Simpson volumes, GLS), the EF implied by the target keypoints (against the
    source frame's keypoints), the EF measured on the last predicted frame (against the segmented source frame),
    and the loop's heart rate; values that are None are left out.
    """
    ef, volumes, phases = sections["ef"], sections["volumes"], sections["phases"]
    ed, es = phases["beat"]
    src, tgt = sections["source_frame"], sections["target_frame"]
    beat = {"ed": ed, "es": es, "ef_simpson": ef["source_beat"], "ef_area_length": ef["source_beat_area_length"],
            "edv_simpson": volumes["source_beat_edv"], "esv_simpson": volumes["source_beat_esv"],
            "gls": sections["strain"]["source_beat_gls"]}
    groups = [beat_group(f"source loop: ED frame {ed}, ES frame {es}", beat, sections["units"]["calibrated"])]
    frames = (src,) if tgt is None else (src, tgt)
    last = (
        f"prediction: EF of predicted frame {n_predicted}",
        ef["prediction"],
        ((0, (src,)), (1, (n_predicted - 1,))),
    )
    for label, value, sources in (
        ("target keypoints: the EF they imply", ef["target_keypoints"], ((0, frames),)),
        last,
    ):
        if value is not None:
            groups.append(MeasurementGroup(label, [Measured("ef", float(value), "simpson", sources)]))
    if phases["heart_rate_bpm"]:
        groups.append(MeasurementGroup("cine loop", [Measured("heart_rate", float(phases["heart_rate_bpm"]))]))
    return groups


__all__ = ["prediction_groups", "write_dicom_outputs"]
