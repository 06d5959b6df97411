"""Write LV measurements as a DICOM Comprehensive SR: a TID 1500 Measurement Report built with highdicom.

One TID 1501 measurement group per thing measured (a beat of the loop, the target keypoints, the prediction),
named by its tracking identifier, with LOINC / DCM codes, UCUM units, the measurement method (single-plane
method of disks or area-length) and, for each value, the source image frames it was measured on (``Source of
Measurement`` with Referenced Frame Numbers: EDV on the ED frame, ESV on the ES frame, EF and GLS on both). The
document goes into the study of the first image as a new series; it is complete, preliminary and unverified
(an algorithm's measurements, for a reader to confirm).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from echokdm import __version__
from echokdm.errors import InputError
from echokdm.io.write import PATIENT_STUDY_KEYWORDS

Quantity = Literal["ef", "edv", "esv", "gls", "heart_rate"]
#: quantity -> (code value, coding scheme, code meaning) of its concept, (UCUM unit, its meaning)
QUANTITIES: dict[str, tuple[tuple[str, str, str], tuple[str, str]]] = {
    "ef": (("18043-0", "LN", "Left Ventricular Ejection Fraction by US"), ("%", "percent")),
    "edv": (("18026-5", "LN", "Left Ventricular End Diastolic Volume"), ("ml", "milliliter")),
    "esv": (("18148-7", "LN", "Left Ventricular End Systolic Volume"), ("ml", "milliliter")),
    "gls": (("130687", "DCM", "LV End-systolic GLS 4CH (Endocardial)"), ("%", "percent")),
    "heart_rate": (("8867-4", "LN", "Heart rate"), ("{H.B}/min", "heart beats per minute")),
}
#: method -> code of the measurement method (DICOM CID 12227 Echocardiography Measurement Method)
METHODS = {
    "simpson": ("125208", "DCM", "Method of Disks, Single Plane"),
    "area_length": ("125205", "DCM", "Area-Length Single Plane"),
}
#: decimals of the values written (0.1 %, 0.1 mL, 0.1 per minute)
DECIMALS = 1
#: series number of the SR series (the prediction cine is 900, the SEG 902)
SERIES_NUMBER = 901
#: the Device Observer UID of echokdm (the same for every document)
DEVICE_UID = generate_uid(entropy_srcs=["echokdm device observer"])


@dataclass(frozen=True)
class Measured:
    """One reported value.

    Args:
        quantity: ``ef`` / ``gls`` (percent), ``edv`` / ``esv`` (mL), ``heart_rate`` (per minute).
        value: the value in that unit.
        method: ``simpson`` or ``area_length`` for volumes and EF, else None.
        sources: what it was measured on: (index of the image in the document's ``images``, its 0-based frames
            (none: the whole image)) for each image.
    """

    quantity: Quantity
    value: float
    method: str | None = None
    sources: tuple[tuple[int, tuple[int, ...]], ...] = ((0, ()),)


@dataclass(frozen=True)
class MeasurementGroup:
    """One TID 1501 group: what was measured (its tracking identifier) and its values."""

    label: str
    values: list[Measured] = field(default_factory=list)


def beat_group(label: str, beat: Mapping[str, Any], calibrated: bool, image: int = 0) -> MeasurementGroup:
    """The values of one ED/ES pair (keys as :meth:`echokdm.metrics.LoopMetrics.beats`: ``ed``, ``es``,
    ``ef_simpson``, ``ef_area_length``, ``edv_simpson``, ``esv_simpson``, ``edv_area_length``,
    ``esv_area_length``, ``gls``; missing or None values are left out). Volumes only when ``calibrated``
    (pixel volumes have no UCUM unit)."""
    ed, es = int(beat["ed"]), int(beat["es"])
    wanted = [("ef", m, f"ef_{m}", (ed, es)) for m in METHODS]
    if calibrated:
        wanted += [(q, m, f"{q}_{m}", (ed,) if q == "edv" else (es,)) for m in METHODS for q in ("edv", "esv")]
    wanted.append(("gls", None, "gls", (ed, es)))
    values = [Measured(q, float(beat[key]), m, ((image, frames),)) for q, m, key, frames in wanted
              if beat.get(key) is not None and np.isfinite(beat[key])]
    return MeasurementGroup(label, values)


def write_measurement_sr(
    path: str | os.PathLike,
    groups: Sequence[MeasurementGroup],
    images: Sequence[Dataset],
    *,
    algorithm: tuple[str, str] = ("echokdm LV segmenter", __version__),
    series_description: str = "echokdm measurements",
    anonymize: Callable[[Dataset], object] | None = None,
) -> Dataset:
    """Write a TID 1500 Measurement Report of LV measurements as a Comprehensive SR.

    Args:
        path: the output file (overwritten).
        groups: the measurement groups (empty groups are left out; at least one value overall).
        images: headers of the images measured; the first one's patient and study are the document's.
        algorithm: (name, version) of the algorithm that measured.
        series_description: Series Description.
        anonymize: de-identification applied to the finished dataset in place (e.g.
            :class:`echokdm.io.anonymize.Anonymizer`).

    Returns:
        The dataset written.

    Raises:
        InputError: no values, an unknown quantity or method, a value that is not finite, a reference to a
            missing image or frame.
    """
    import highdicom as hd
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    groups = [g for g in groups if g.values]
    if not groups:
        raise InputError("the measurement report holds no values")
    images = [_evidence(im) for im in images]
    for im in images:
        if missing := [
            k for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID") if not im.get(k)
        ]:
            raise InputError(f"an image of the report lacks {', '.join(missing)}: the SR cannot reference it")
    items = []
    for g in groups:
        measurements = []
        for m in g.values:
            if m.quantity not in QUANTITIES or (m.method is not None and m.method not in METHODS):
                raise InputError(f"unknown measurement {m.quantity!r} (method {m.method!r})")
            if not np.isfinite(m.value):
                raise InputError(f"{g.label}: {m.quantity} is not a finite number ({m.value})")
            (concept, (unit, unit_meaning)) = QUANTITIES[m.quantity]
            measurements.append(hd.sr.Measurement(
                name=CodedConcept(*concept),
                value=round(float(m.value), DECIMALS),
                unit=CodedConcept(unit, "UCUM", unit_meaning),
                method=CodedConcept(*METHODS[m.method]) if m.method else None,
                referenced_images=[_source_image(images, m, image, frames) for image, frames in m.sources],
            ))
        items.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=g.label),
            finding_type=codes.SCT.LeftVentricle,
            algorithm_id=hd.sr.AlgorithmIdentification(name=algorithm[0], version=algorithm[1]),
            measurements=measurements,
        ))
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=DEVICE_UID, name="echokdm", manufacturer_name="echokdm", model_name=f"echokdm {__version__}"),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=CodedConcept("40701008", "SCT", "Echocardiography"),
        imaging_measurements=items,
    )
    with warnings.catch_warnings():  # highdicom doubts one-component patient names, which the source has anyway
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        ds = hd.sr.ComprehensiveSR(
            evidence=images,
            content=report[0],
            series_instance_uid=generate_uid(),
            series_number=SERIES_NUMBER,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="echokdm",
            is_complete=True,
            series_description=series_description,
        )
    ds.SoftwareVersions = __version__
    if anonymize is not None:
        anonymize(ds)
    ds.save_as(path, enforce_file_format=True)
    return ds


def _source_image(images: list[Dataset], m: Measured, index: int, frames: tuple[int, ...]):
    """``Source of Measurement``: an image and the (1-based) frames of it a value was measured on."""
    from highdicom.sr import SourceImageForMeasurement

    if not 0 <= index < len(images):
        raise InputError(f"{m.quantity} refers to image {index}; the report has {len(images)}")
    image = images[index]
    n = int(image.get("NumberOfFrames", 1) or 1)
    if any(not 0 <= f < n for f in frames):
        raise InputError(f"{m.quantity} refers to frames {list(frames)} of an image of {n} frames")
    numbers = [f + 1 for f in frames] if frames and "NumberOfFrames" in image else None
    return SourceImageForMeasurement(image.SOPClassUID, image.SOPInstanceUID, numbers)


def _evidence(image: Dataset) -> Dataset:
    """What the SR takes from an image header: its UIDs, frame count and the patient and study modules (as a
    derived image of the study does, see :data:`echokdm.io.write.PATIENT_STUDY_KEYWORDS`), with the type 2
    attributes highdicom copies present (empty when the image lacks them). Nothing else (equipment,
    institution, station) reaches the SR, and the caller's header is never touched."""
    out = Dataset()
    for keyword in ("SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                    "Modality", "NumberOfFrames", *PATIENT_STUDY_KEYWORDS):
        if keyword in image:
            setattr(out, keyword, copy.deepcopy(image[keyword].value))
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                    "StudyDate", "StudyTime", "ReferringPhysicianName"):
        if keyword not in out:
            setattr(out, keyword, "")
    return out


def read_measurements(path: str | os.PathLike) -> dict[str, list[tuple[str, float, str, str | None, list[int]]]]:
    """The values of a report written here, read back with highdicom.

    Returns:
        tracking identifier -> [(code meaning, value, UCUM unit, method meaning or None, referenced frame
        numbers (1-based)), ...].
    """
    import highdicom as hd

    sr = hd.sr.srread(path)
    report = hd.sr.MeasurementReport.from_sequence(sr.content)
    out = {}
    for group in report.get_image_measurement_groups():
        out[group.tracking_identifier] = [
            (m.name.meaning, float(m.value), m.unit.value, m.method.meaning if m.method is not None else None,
             [int(f) for r in m.referenced_images for f in (r.referenced_frame_numbers or [])])
            for m in group.get_measurements()
        ]
    return out


__all__ = ["DEVICE_UID", "METHODS", "QUANTITIES", "Measured", "MeasurementGroup", "beat_group", "read_measurements",
           "write_measurement_sr"]
