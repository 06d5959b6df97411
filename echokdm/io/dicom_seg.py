"""Write a label sequence as a DICOM Segmentation (SEG) whose frames point at the frames of their source cine.

The SEG is BINARY, one frame per (segment, source frame) with every frame kept (an empty frame is still a frame
of the loop), segments 1 LV cavity, 2 LV myocardium, 3 left atrium (CAMUS label values, SNOMED CT codes). Each
frame's Derivation Image Sequence names the source instance and its Referenced Frame Number; the frames are
indexed by Referenced Segment Number and Temporal Position Index (the source frame number).

highdicom (0.28) builds a SEG of a multi-frame source only when the source places its frames in patient
coordinates (Plane Position); ultrasound cines never do, so highdicom refuses every US multi-frame source
("Only a single frame is supported when the source image has no Frame of Reference UID", highdicom issues
#200, #284). The SEG is therefore assembled here with pydicom on highdicom's layout for sources without
patient coordinates (no Frame of Reference, Pixel Measures or Plane Position: nothing is claimed about where
the frames lie), with highdicom's segment descriptions and algorithm identification; highdicom reads it back
(``highdicom.seg.segread``, ``get_pixels_by_source_frame``). Sources that cannot be referenced at all (not
DICOM) get no SEG: see :func:`write_segmentation_seg`.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, SegmentationStorage, generate_uid

from echokdm import __version__
from echokdm.errors import InputError
from echokdm.io.write import PATIENT_STUDY_KEYWORDS

#: CAMUS label value -> (segment label, SNOMED CT code value, code meaning)
SEGMENTS = {
    1: ("LV cavity", "87878005", "Left ventricle"),
    2: ("LV myocardium", "49848007", "Left Ventricle Myocardium"),
    3: ("Left atrium", "82471001", "Left atrium"),
}
#: series number of the SEG series (the prediction cine is 900)
SERIES_NUMBER = 902
_TEMPORAL_POSITION_INDEX = 0x00209128
_FRAME_CONTENT_SEQUENCE = 0x00209111
_REFERENCED_SEGMENT_NUMBER = 0x0062000B
_SEGMENT_IDENTIFICATION_SEQUENCE = 0x0062000A


def write_segmentation_seg(
    path: str | os.PathLike,
    labels: np.ndarray,
    source: Dataset,
    *,
    frames: Sequence[int] | None = None,
    algorithm: tuple[str, str] = ("echokdm LV segmenter", __version__),
    series_description: str = "echokdm segmentation",
    anonymize: Callable[[Dataset], object] | None = None,
) -> Dataset:
    """Write CAMUS labels of frames of a DICOM cine as a DICOM SEG in the cine's study (a new series).

    Args:
        path: the output file (overwritten).
        labels: (T, H, W) integer labels 0..3 on the source's pixel grid.
        source: header of the source cine (a multi-frame image with SOP Class and Instance UIDs).
        frames: 0-based source frame of each label frame (default: 0..T-1).
        algorithm: (name, version) of the segmenter.
        series_description: Series Description.
        anonymize: de-identification applied to the finished dataset in place (e.g.
            :class:`echokdm.io.anonymize.Anonymizer`); its UID mapping keeps the references to the source valid
            when the source's copies are de-identified with the same object.

    Returns:
        The dataset written.

    Raises:
        InputError: labels of the wrong shape or values, frames outside the source, a source without UIDs.
    """
    from highdicom import AlgorithmIdentificationSequence
    from highdicom.seg import SegmentDescription
    from pydicom.sr.codedict import codes

    labels = np.asarray(labels)
    if labels.ndim != 3 or 0 in labels.shape or labels.dtype.kind not in "iub":
        raise InputError(f"labels must be a non-empty (T, H, W) integer array, got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() > max(SEGMENTS):
        raise InputError(f"labels must be 0..{max(SEGMENTS)} (CAMUS), got {labels.min()}..{labels.max()}")
    missing = [
        k for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID") if not source.get(k)
    ]
    if missing:
        raise InputError(f"the source image lacks {', '.join(missing)}: a SEG cannot reference it")
    t, h, w = labels.shape
    if (int(source.Rows), int(source.Columns)) != (h, w):
        raise InputError(f"labels are {w}x{h} but the source image is {source.Columns}x{source.Rows}")
    try:
        n_source = int(source.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise InputError(
            f"the source image's Number of Frames {source.get('NumberOfFrames')!r} is not a number"
        ) from None
    frames = list(range(t)) if frames is None else [int(f) for f in frames]
    if len(frames) != t or not all(0 <= f < n_source for f in frames):
        raise InputError(f"frames must name {t} source frames in 0..{n_source - 1}, got {frames}")

    now = datetime.datetime.now()
    ds = _new_dataset(source, now, series_description)
    family = codes.DCM.ArtificialIntelligence
    algo = AlgorithmIdentificationSequence(name=algorithm[0], version=algorithm[1], family=family)
    ds.SegmentSequence = DicomSequence([
        SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=_code(value, "SCT", meaning),
            algorithm_type="AUTOMATIC",
            algorithm_identification=algo,
        )
        for number, (label, value, meaning) in SEGMENTS.items()
    ])

    organization = generate_uid()
    ds.DimensionOrganizationSequence = DicomSequence([_item(DimensionOrganizationUID=organization)])
    ds.DimensionIndexSequence = DicomSequence([
        _item(DimensionOrganizationUID=organization, DimensionIndexPointer=_REFERENCED_SEGMENT_NUMBER,
              FunctionalGroupPointer=_SEGMENT_IDENTIFICATION_SEQUENCE, DimensionDescriptionLabel="Segment"),
        _item(DimensionOrganizationUID=organization, DimensionIndexPointer=_TEMPORAL_POSITION_INDEX,
              FunctionalGroupPointer=_FRAME_CONTENT_SEQUENCE, DimensionDescriptionLabel="Source frame"),
    ])
    ds.SharedFunctionalGroupsSequence = DicomSequence([Dataset()])
    rank = {f: i + 1 for i, f in enumerate(sorted(set(frames)))}
    per_frame, masks = [], []
    for number in SEGMENTS:
        for k, f in enumerate(frames):
            per_frame.append(_frame_item(source, number, f, rank[f]))
            masks.append(labels[k] == number)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.NumberOfFrames = len(masks)
    ds.Rows, ds.Columns = h, w
    ds.PixelData = pack_bits(np.stack(masks).astype(np.uint8))
    if anonymize is not None:
        anonymize(ds)
    ds.save_as(path, enforce_file_format=True)
    return ds


def _new_dataset(source: Dataset, now: datetime.datetime, series_description: str) -> Dataset:
    """Every module of the Segmentation IOD but the segments, dimensions, functional groups and pixels."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SegmentationStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = source.get("SpecificCharacterSet", "ISO_IR 100")
    ds.SOPClassUID = SegmentationStorage
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "ReferringPhysicianName",
                    "StudyID", "AccessionNumber", "StudyDate", "StudyTime"):
        setattr(ds, keyword, "")  # type 2 attributes of Patient and General Study, overwritten from the source
    for keyword in PATIENT_STUDY_KEYWORDS:
        if keyword in source:
            setattr(ds, keyword, source[keyword].value)
    # General Series, Segmentation Series, General Equipment, Enhanced General Equipment
    ds.Modality = "SEG"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = series_description
    ds.Manufacturer = "echokdm"
    ds.ManufacturerModelName = "echokdm"
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = __version__
    # General Image, Segmentation Image
    ds.InstanceNumber = 1
    ds.ContentDate = ds.InstanceCreationDate
    ds.ContentTime = ds.InstanceCreationTime
    ds.PatientOrientation = ""
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ContentLabel = "LV_SEGMENTATION"
    ds.ContentDescription = "LV cavity, LV myocardium and left atrium in every frame"
    ds.ContentCreatorName = ""
    ds.SegmentationType = "BINARY"
    ds.SegmentsOverlap = "NO"
    ds.LossyImageCompression = source.get("LossyImageCompression", "00") or "00"
    for keyword in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if ds.LossyImageCompression == "01" and keyword in source:
            setattr(ds, keyword, source[keyword].value)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelRepresentation = 0
    ds.PresentationLUTShape = "IDENTITY"
    # General Image's Source Image Sequence and Common Instance Reference: the source instance
    ref = _item(ReferencedSOPClassUID=source.SOPClassUID, ReferencedSOPInstanceUID=source.SOPInstanceUID)
    ds.SourceImageSequence = DicomSequence([ref])
    ds.ReferencedSeriesSequence = DicomSequence([
        _item(SeriesInstanceUID=source.SeriesInstanceUID, ReferencedInstanceSequence=DicomSequence([_item(
            ReferencedSOPClassUID=source.SOPClassUID, ReferencedSOPInstanceUID=source.SOPInstanceUID)]))
    ])
    return ds


def _frame_item(source: Dataset, segment: int, frame: int, temporal_index: int) -> Dataset:
    """Per-frame functional groups of one SEG frame: the source frame, dimension values and segment."""
    source_ref = _item(
        ReferencedSOPClassUID=source.SOPClassUID,
        ReferencedSOPInstanceUID=source.SOPInstanceUID,
        ReferencedFrameNumber=frame + 1,
        SpatialLocationsPreserved="YES",
        PurposeOfReferenceCodeSequence=DicomSequence(
            [_code_item("121322", "DCM", "Source image for image processing operation")]
        ),
    )
    derivation = _item(SourceImageSequence=DicomSequence([source_ref]),
                       DerivationCodeSequence=DicomSequence([_code_item("113076", "DCM", "Segmentation")]))
    content = _item(DimensionIndexValues=[segment, temporal_index], TemporalPositionIndex=temporal_index)
    return _item(
        DerivationImageSequence=DicomSequence([derivation]),
        FrameContentSequence=DicomSequence([content]),
        SegmentIdentificationSequence=DicomSequence([_item(ReferencedSegmentNumber=segment)]),
    )


def _item(**attributes) -> Dataset:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    return _item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def _code(value: str, scheme: str, meaning: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(value, scheme, meaning)


def read_segmentation_seg(path: str | os.PathLike, source: Dataset) -> np.ndarray:
    """CAMUS labels of every frame of ``source`` that a SEG (as written here) segments, read with highdicom.

    Args:
        path: the SEG file.
        source: header of the source cine.

    Returns:
        (T, H, W) uint8 labels, one frame per source frame the SEG references, in source frame order.
    """
    import highdicom as hd

    seg = hd.seg.segread(path)
    numbers = sorted({int(r.ReferencedFrameNumber)
                      for f in seg.PerFrameFunctionalGroupsSequence
                      for r in f.DerivationImageSequence[0].SourceImageSequence})
    pixels = seg.get_pixels_by_source_frame(source_sop_instance_uid=source.SOPInstanceUID,
                                            source_frame_numbers=numbers, combine_segments=True)
    return np.asarray(pixels, dtype=np.uint8)


__all__ = ["SEGMENTS", "SERIES_NUMBER", "read_segmentation_seg", "write_segmentation_seg"]
