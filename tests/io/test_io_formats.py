"""Non-DICOM loops through the same loader: NIfTI/MHD sequences, AVI/MP4 video, animated GIF, PNG/JPEG frames."""

from __future__ import annotations

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import SimpleITK as sitk
from io_files import moving_fan

from echokdm.errors import InputError
from echokdm.io import load_cine, read_cine
from echokdm.transforms import LoadCineLoopd


@pytest.mark.parametrize("suffix", [".nii.gz", ".mhd"])
def test_image_sequences_keep_frames_and_header_spacing(tmp_path, suffix):
    frames = moving_fan(t=6, h=40, w=50)
    image = sitk.GetImageFromArray(frames)  # (T, H, W) -> x=W, y=H, z=T
    image.SetSpacing((0.31, 0.27, 1.0))
    path = tmp_path / f"seq{suffix}"
    sitk.WriteImage(image, str(path))
    got, meta = read_cine(path, blank_outside_sector=False)
    assert np.array_equal(got, frames)
    assert meta["spacing_mm"] == pytest.approx([0.27, 0.31]) and meta["spacing_source"] == "image header"
    assert meta["frame_time_ms"] is None and meta["frame_time_source"] == "unknown"


def test_float_sequence_is_scaled_to_unit_range(tmp_path):
    arr = np.linspace(-5.0, 20.0, 3 * 8 * 9, dtype=np.float32).reshape(3, 8, 9)
    path = tmp_path / "f.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    img = load_cine(path, blank_outside_sector=False)
    assert float(img.min()) == 0.0 and float(img.max()) == 1.0
    assert img.meta["intensity_range"] == [-5.0, 20.0]


def test_avi_video_frames_and_frame_rate(tmp_path):
    frames = moving_fan(t=10, h=112, w=112)
    path = tmp_path / "echo.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (112, 112))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    img = load_cine(path, blank_outside_sector=False)
    assert tuple(img.shape) == (1, 10, 112, 112)
    assert img.meta["frame_time_ms"] == pytest.approx(20.0) and img.meta["frame_time_source"] == "video frame rate"
    assert np.abs(img[0].numpy() * 255 - frames).mean() < 6  # MJPG is lossy


def test_mp4_video_frames_and_frame_rate(tmp_path):
    frames = moving_fan(t=12, h=112, w=112)
    path = tmp_path / "echo.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (112, 112))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    img = load_cine(path, blank_outside_sector=False)
    assert tuple(img.shape) == (1, 12, 112, 112)
    assert img.meta["frame_time_ms"] == pytest.approx(40.0) and img.meta["frame_time_source"] == "video frame rate"
    assert np.abs(img[0].numpy() * 255 - frames).mean() < 8  # MPEG-4 is lossy


def test_animated_gif_frames_and_frame_time(tmp_path):
    from PIL import Image

    frames = moving_fan(t=8, h=60, w=70)
    path = tmp_path / "loop.gif"
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)
    img = load_cine(path, blank_outside_sector=False)
    assert tuple(img.shape) == (1, 8, 60, 70)
    assert img.meta["frame_time_ms"] == pytest.approx(40.0) and img.meta["frame_time_source"] == "GIF frame durations"
    assert np.abs(img[0].numpy() * 255 - frames).mean() < 2  # palette quantisation only


def test_png_folder_in_natural_order_and_single_png(tmp_path):
    frames = moving_fan(t=12, h=30, w=40)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        iio.imwrite(folder / f"frame_{i}.png", np.repeat(f[..., None], 3, axis=2))  # RGB grey
    out = LoadCineLoopd(keys="image")({"image": folder})["image"]
    assert tuple(out.shape) == (1, 12, 30, 40)
    got, _ = read_cine(folder, blank_outside_sector=False)
    assert np.array_equal(got, frames)  # frame_10 after frame_9
    single = load_cine(folder / "frame_3.png", blank_outside_sector=False)
    assert tuple(single.shape) == (1, 1, 30, 40)


def test_frames_of_different_sizes_are_refused(tmp_path):
    iio.imwrite(tmp_path / "a1.png", np.zeros((10, 10), np.uint8))
    iio.imwrite(tmp_path / "a2.png", np.zeros((10, 12), np.uint8))
    with pytest.raises(InputError, match="differs from the first frame"):
        read_cine(tmp_path)


def test_broken_video_and_volume_are_input_errors(tmp_path):
    (tmp_path / "x.avi").write_bytes(b"not a video")
    (tmp_path / "x.nii.gz").write_bytes(b"not nifti")
    (tmp_path / "x.gif").write_bytes(b"GIF89a truncated")
    with pytest.raises(InputError, match="video"):
        read_cine(tmp_path / "x.avi")
    with pytest.raises(InputError, match="GIF cannot be read"):
        read_cine(tmp_path / "x.gif")
    with pytest.raises(InputError, match="cannot be read"):
        read_cine(tmp_path / "x.nii.gz")
