"""read_segmentation: NIfTI, MHD, PNG (file and folder) and DICOM SEG, with clear errors."""

import imageio.v3 as iio
import numpy as np
import pytest
import SimpleITK as sitk
from a4c_shapes import a4c_loop
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pack_bits
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from echokdm.errors import EchoKDMError, InputError
from echokdm.io import read_segmentation
from echokdm.io.segmentation import SEGMENTATION_STORAGE


@pytest.fixture(scope="module")
def loop():
    return a4c_loop(4, 4.0, shape=(64, 64), a=20, b=10, offset=5, wall=4, base=(32, 50))


def _sitk(arr, spacing):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    return img


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mhd"])
def test_volume_files(tmp_path, loop, suffix):
    sitk.WriteImage(_sitk(loop, (0.3, 0.25, 1.0)), str(tmp_path / f"seg{suffix}"))
    labels, meta = read_segmentation(tmp_path / f"seg{suffix}", image_only=False)
    assert labels.dtype == np.uint8 and labels.shape == (4, 64, 64)
    np.testing.assert_array_equal(labels, loop)
    assert meta["spacing_mm"] == pytest.approx([0.25, 0.3])
    sitk.WriteImage(_sitk(loop[0], (0.3, 0.25)), str(tmp_path / f"one{suffix}"))
    np.testing.assert_array_equal(read_segmentation(tmp_path / f"one{suffix}"), loop[0])


def test_png_file_and_folder(tmp_path, loop):
    iio.imwrite(tmp_path / "one.png", loop[0])
    np.testing.assert_array_equal(read_segmentation(tmp_path / "one.png"), loop[0])
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(loop):
        iio.imwrite(folder / f"frame{t + 8}.png", f)  # natural order: frame8 .. frame11
    out, meta = read_segmentation(folder, image_only=False)
    np.testing.assert_array_equal(out, loop)
    assert meta["spacing_mm"] is None
    grey_rgb = np.repeat(loop[0][..., None], 3, axis=-1)
    iio.imwrite(tmp_path / "rgb.png", grey_rgb)
    np.testing.assert_array_equal(read_segmentation(tmp_path / "rgb.png"), loop[0])


def _seg(path, labels, kind="BINARY", refs=True, spacing=(0.3, 0.25)):
    t, h, w = labels.shape
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SEGMENTATION_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.Modality = SEGMENTATION_STORAGE, "SEG"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = h, w, 1, "MONOCHROME2"
    ds.PixelRepresentation, ds.SegmentationType = 0, kind
    ds.SegmentSequence = [Dataset() for _ in range(3)]
    for s, item in enumerate(ds.SegmentSequence, start=1):
        item.SegmentNumber, item.SegmentLabel = s, ["LV cavity", "LV myocardium", "left atrium"][s - 1]
    frames, per_frame = [], []
    # segments in any order; frames that name their source frame in any order too (only the reference says when)
    times = np.random.default_rng(0).permutation(t) if refs else range(t)
    for s in (3, 1, 2):
        for i in times:
            item = Dataset()
            item.SegmentIdentificationSequence = [Dataset()]
            item.SegmentIdentificationSequence[0].ReferencedSegmentNumber = s
            if refs:
                src = Dataset()
                src.ReferencedFrameNumber = int(i) + 1
                item.DerivationImageSequence = [Dataset()]
                item.DerivationImageSequence[0].SourceImageSequence = [src]
            per_frame.append(item)
            # fractional: the segment at 200/255, the other structures at 100/255 (below half: not this segment)
            frames.append(np.where(labels[i] == s, 200, np.where(labels[i] > 0, 100, 0)))
    ds.NumberOfFrames = len(frames)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    if spacing:
        pm = Dataset()
        pm.PixelSpacing = list(spacing)
        ds.SharedFunctionalGroupsSequence = [Dataset()]
        ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence = [pm]
    stack = np.stack(frames).astype(np.uint8)
    if kind == "BINARY":
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 0
        ds.PixelData = pack_bits(stack == 200)
    else:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.MaximumFractionalValue = 8, 8, 7, 255
        ds.SegmentationFractionalType = "PROBABILITY"
        ds.PixelData = stack.tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("kind,refs", [("BINARY", True), ("BINARY", False), ("FRACTIONAL", True)])
def test_dicom_seg(tmp_path, loop, kind, refs):
    _seg(tmp_path / "seg.dcm", loop, kind, refs)
    labels, meta = read_segmentation(tmp_path / "seg.dcm", image_only=False)
    np.testing.assert_array_equal(labels, loop)
    assert meta["spacing_mm"] == [0.3, 0.25] and meta["format"] == "dicom-seg"


def test_single_frame_dicom_seg(tmp_path, loop):
    _seg(tmp_path / "one.dcm", loop[:1], spacing=None)
    labels, meta = read_segmentation(tmp_path / "one.dcm", image_only=False)
    assert labels.shape == (64, 64) and meta["spacing_mm"] is None


def test_errors(tmp_path, loop):
    with pytest.raises(InputError, match="no such file"):
        read_segmentation(tmp_path / "missing.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no PNG"):
        read_segmentation(tmp_path / "empty")
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 255
    iio.imwrite(tmp_path / "colour.png", colour)
    with pytest.raises(InputError, match="colour"):
        read_segmentation(tmp_path / "colour.png")
    sitk.WriteImage(_sitk(loop.astype(np.float32) + 0.5, (1.0, 1.0, 1.0)), str(tmp_path / "prob.nii.gz"))
    with pytest.raises(InputError, match="non-integer"):
        read_segmentation(tmp_path / "prob.nii.gz")
    sitk.WriteImage(_sitk(loop.astype(np.int16) - 1, (1.0, 1.0, 1.0)), str(tmp_path / "neg.nii.gz"))
    with pytest.raises(InputError, match="0..255"):
        read_segmentation(tmp_path / "neg.nii.gz")
    (tmp_path / "junk.dcm").write_bytes(b"not dicom at all")
    with pytest.raises(InputError, match="not a segmentation"):
        read_segmentation(tmp_path / "junk.dcm")
    (tmp_path / "bad.nii.gz").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot be read"):
        read_segmentation(tmp_path / "bad.nii.gz")
    us = Dataset()
    us.file_meta = FileMetaDataset()
    us.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    us.Modality, us.SOPClassUID, us.SOPInstanceUID = "US", "1.2.840.10008.5.1.4.1.1.3.1", generate_uid()
    us.save_as(tmp_path / "us.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="DICOM US object, not a segmentation"):
        read_segmentation(tmp_path / "us.dcm")


def test_frames_of_different_sizes(tmp_path, loop):
    (tmp_path / "f").mkdir()
    iio.imwrite(tmp_path / "f" / "a1.png", loop[0])
    iio.imwrite(tmp_path / "f" / "a2.png", loop[0][:32])
    with pytest.raises(EchoKDMError, match="differs"):
        read_segmentation(tmp_path / "f")
