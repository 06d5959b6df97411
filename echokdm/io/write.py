"""Write 8-bit grey loops as DICOM Ultrasound Multi-frame Images (uncompressed, MONOCHROME2)."""

from __future__ import annotations

import datetime
import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid

from echokdm import __version__
from echokdm.errors import InputError

#: Patient and study attributes copied from a source image into a derived one
PATIENT_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)
FRAME_TIME_TAG = 0x00181063


def drop_invalid(ds: Dataset, keywords: tuple[str, ...] = PATIENT_STUDY_KEYWORDS) -> list[str]:
    """Remove from ``ds`` the attributes among ``keywords`` whose value does not conform to its VR (e.g. a
    PatientWeight ``PHIWEIGHT75kg``), before they would be copied into a derived image; values are never shown.

    Returns:
        The keywords removed.
    """
    from pydicom import config
    from pydicom.datadict import tag_for_keyword
    from pydicom.valuerep import validate_value

    dropped = []
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is None or tag not in ds:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                elem = ds[tag]
                values = elem.value if isinstance(elem.value, (list, tuple, MultiValue)) else [elem.value]
                for v in values:  # pydicom validates DS/IS as text, not as its own DSfloat/IS numbers
                    validate_value(elem.VR, str(v) if elem.VR in ("DS", "IS") else v, config.RAISE)
                    if elem.VR in ("DS", "IS") and v not in (None, "") and not np.isfinite(float(v)):
                        raise ValueError("not finite")
        except Exception:  # any failure to read or check the value: the attribute is not copied
            del ds[tag]
            dropped.append(keyword)
    return dropped


def write_cine_dicom(
    path: str | os.PathLike,
    frames: np.ndarray,
    *,
    frame_time_ms: float,
    spacing_mm: Sequence[float] | None = None,
    source: Dataset | None = None,
    series_description: str = "echokdm",
    series_number: int = 900,
    heart_rate_bpm: float | None = None,
    derivation: str | None = None,
    anonymize: Callable[[Dataset], object] | None = None,
) -> None:
    """Write a loop as a DICOM Ultrasound Multi-frame Image Storage file.

    The file is uncompressed (Explicit VR Little Endian), MONOCHROME2, 8-bit, with FrameTime and
    FrameIncrementPointer, and — when ``spacing_mm`` is given — one 2D tissue ultrasound region over the
    whole matrix whose Physical Delta X/Y (cm) read back as exactly ``spacing_mm`` (up to 15 significant
    digits).

    Args:
        path: the output file (overwritten).
        frames: (T, H, W) uint8 grey frames (a single (H, W) frame is written as T=1).
        frame_time_ms: time between frames in ms (> 0).
        spacing_mm: (dy, dx) pixel spacing in mm, or None for no calibration.
        source: the dataset the frames were derived from; its patient and study attributes are copied,
            the new series gets new UIDs, ImageType DERIVED\\SECONDARY and a reference to the source image.
            Without it a new study is made with empty patient name and ID (ImageType DERIVED\\PRIMARY).
        series_description: Series Description.
        series_number: Series Number.
        heart_rate_bpm: Heart Rate to record, if known.
        derivation: Derivation Description (e.g. "echokdm predicted ES frame").
        anonymize: de-identification applied to the finished dataset in place, e.g.
            :class:`echokdm.io.anonymize.Anonymizer` (DICOM PS3.15 basic profile).

    Raises:
        InputError: frames of the wrong shape or type, or a non-positive frame time or spacing.
    """
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3 or frames.dtype != np.uint8 or 0 in frames.shape:
        raise InputError(f"frames must be a non-empty (T, H, W) uint8 array, got {frames.dtype} {frames.shape}")
    if not (frame_time_ms and frame_time_ms > 0 and np.isfinite(frame_time_ms)):
        raise InputError(f"frame_time_ms must be a positive number, got {frame_time_ms!r}")
    t, h, w = frames.shape
    now = datetime.datetime.now()
    sop_uid = generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = sop_uid

    # Patient + General Study
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, keyword, "")
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    if source is not None:
        for keyword in PATIENT_STUDY_KEYWORDS:
            if keyword in source:
                setattr(ds, keyword, source[keyword].value)
        if "SpecificCharacterSet" in source:
            ds.SpecificCharacterSet = source.SpecificCharacterSet

    # General Series, Frame of Reference, Synchronization, General Equipment
    ds.Modality = "US"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.BodyPartExamined = "HEART"  # unpaired, so Laterality is absent
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
    ds.SynchronizationFrameOfReferenceUID = generate_uid()
    ds.SynchronizationTrigger = "NO TRIGGER"
    ds.AcquisitionTimeSynchronized = "N"
    ds.Manufacturer = "echokdm"
    ds.SoftwareVersions = __version__

    # General Image + US Image
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.ImageType = ["DERIVED", "SECONDARY" if source is not None else "PRIMARY"]
    ds.LossyImageCompression = "00"
    if derivation:
        ds.DerivationDescription = derivation
    if source is not None and "SOPInstanceUID" in source and "SOPClassUID" in source:
        ref = Dataset()
        ref.ReferencedSOPClassUID = source.SOPClassUID
        ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
        ds.SourceImageSequence = DicomSequence([ref])

    # Cine + Multi-frame
    ds.NumberOfFrames = t
    ds.FrameIncrementPointer = FRAME_TIME_TAG
    ds.FrameTime = f"{float(frame_time_ms):.6g}"
    ds.CineRate = max(1, round(1000.0 / float(frame_time_ms)))
    if heart_rate_bpm:
        ds.HeartRate = round(float(heart_rate_bpm))

    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = h, w
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0

    if spacing_mm is not None:
        ds.SequenceOfUltrasoundRegions = DicomSequence([_tissue_region(spacing_mm, h, w)])
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    if anonymize is not None:
        anonymize(ds)
    ds.save_as(path, enforce_file_format=True)


def _tissue_region(spacing_mm: Sequence[float], h: int, w: int) -> Dataset:
    dy, dx = (float(v) for v in spacing_mm)
    if not (dy > 0 and dx > 0 and np.isfinite(dy) and np.isfinite(dx)):
        raise InputError(f"spacing_mm must be two positive numbers (dy, dx), got {tuple(spacing_mm)!r}")
    region = Dataset()
    region.RegionSpatialFormat = 1  # 2D
    region.RegionDataType = 1  # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = w - 1
    region.RegionLocationMaxY1 = h - 1
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = dx / 10.0  # read back with echokdm.io.calibration.mm_from_cm: exact
    region.PhysicalDeltaY = dy / 10.0
    return region
