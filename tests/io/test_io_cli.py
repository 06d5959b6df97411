"""``echokdm info`` end to end: output, JSON schema, no PHI, and one-line errors (in this process through the
console entry point; the sample, ``--debug`` and a missing decoder plugin in a child process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pydicom
import pytest
from broken_inputs import run_inprocess
from io_files import copy_testdata, moving_fan, pydicom_file, sha256, write_us
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG4HP41, JPEGBaseline8Bit

SCHEMA = json.loads((Path(__file__).parents[2] / "data_specs" / "info.schema.json").read_text())


def info(*args: str, child: bool = False) -> subprocess.CompletedProcess:
    """``echokdm info ARGS`` in this process (``child``: in a child process, the real entry point)."""
    if child:
        return subprocess.run([sys.executable, "-m", "echokdm", "info", *args], capture_output=True, text=True,
                              timeout=120)
    status, out, err = run_inprocess(["info", *args], timeout=120)
    return subprocess.CompletedProcess(["echokdm", "info", *args], status, out, err)


def test_info_on_the_sonosite_sample():
    out = info("--sample", child=True)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for expected in ("frames           30", "33.333 ms (from FrameTime)", "30.00 /s", "1.000 s", "320 x 240",
                     "1.0210 x 1.0210 mm", "640x480", "JPEG Baseline (Process 1)", "YBR_FULL_422",
                     "SonoSite", "sector box"):
        assert expected in text, expected
    record = json.loads(info("--sample", "--json").stdout)
    jsonschema.validate(record, SCHEMA)
    assert record["frames"] == 30 and record["spacing_source"] == "ultrasound_region_rescaled"


def test_info_never_prints_patient_fields(tmp_path):
    ds = pydicom.dcmread(pydicom_file("examples_ybr_color.dcm"))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PID-4711", "19500101"
    path = tmp_path / "phi.dcm"
    ds.save_as(path)
    for args in ((str(path),), (str(path), "--json")):
        out = info(*args)
        assert out.returncode == 0
        for secret in ("Doe", "Jane", "PID-4711", "19500101", "PLA"):  # PLA: the sample's own patient name
            assert secret not in out.stdout + out.stderr


def test_info_on_a_single_frame_and_schema(tmp_path):
    out = info(str(pydicom_file("examples_rgb_color.dcm")), "--json")
    record = json.loads(out.stdout)
    jsonschema.validate(record, SCHEMA)
    assert record["frames"] == 1 and record["is_loop"] is False and record["frame_time_ms"] is None
    assert "a single image, not a loop" in info(str(pydicom_file("examples_rgb_color.dcm"))).stdout


def _not_dicom(tmp: Path) -> Path:
    p = tmp / "notes.dcm"
    p.write_text("this is not a DICOM file\n")
    return p


def _not_us(tmp: Path) -> Path:
    return copy_testdata("CT_small.dcm", tmp / "ct.dcm")


def _no_pixels(tmp: Path) -> Path:
    def drop(ds):
        del ds.PixelData

    return write_us(tmp / "nopix.dcm", edit=drop)


def _truncated_native(tmp: Path) -> Path:
    p = write_us(tmp / "trunc.dcm")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 5000])
    return p


def _truncated_jpeg(tmp: Path) -> Path:
    p = tmp / "trunc_jpeg.dcm"
    data = pydicom_file("examples_ybr_color.dcm").read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _corrupt_jpeg(tmp: Path) -> Path:
    def garbage(ds):
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([b"\xff\xd8 not a jpeg stream " * 10] * int(ds.NumberOfFrames))
        ds["PixelData"].VR = "OB"

    return write_us(tmp / "corrupt.dcm", edit=garbage)


def _mpeg(tmp: Path) -> Path:
    def video(ds):
        ds.file_meta.TransferSyntaxUID = MPEG4HP41
        ds.PixelData = encapsulate([b"\x00\x00\x01\xb3 fake h264 stream"])
        ds["PixelData"].VR = "OB"

    return write_us(tmp / "video.dcm", edit=video)


def _zero_frames(tmp: Path) -> Path:
    def zero(ds):
        ds.NumberOfFrames = 0

    return write_us(tmp / "zero.dcm", edit=zero)


def _absurd(tmp: Path) -> Path:
    def huge(ds):
        ds.Rows, ds.Columns = 60000, 60000

    return write_us(tmp / "absurd.dcm", edit=huge)


def _empty_folder(tmp: Path) -> Path:
    (tmp / "folder").mkdir()
    (tmp / "folder" / "readme.txt").write_text("no frames here")
    return tmp / "folder"


BAD_INPUTS = {
    "missing": (lambda tmp: tmp / "does_not_exist.dcm", "no such file"),
    "directory": (_empty_folder, "is a folder without PNG/JPEG frames"),
    "not_dicom": (_not_dicom, "not a DICOM file"),
    "not_ultrasound": (_not_us, "not an ultrasound image (Modality CT"),
    "no_pixel_data": (_no_pixels, "has no pixel data"),
    "truncated_native": (_truncated_native, "pixel data is truncated"),
    "truncated_jpeg": (_truncated_jpeg, "truncated"),
    "corrupt_jpeg": (_corrupt_jpeg, "truncated or corrupt"),
    "undecodable_syntax": (
        _mpeg,
        "MPEG-4 AVC/H.264 High Profile / Level 4.1 (1.2.840.10008.1.2.4.102) cannot be decoded",
    ),
    "zero_frames": (_zero_frames, "Number of Frames is 0"),
    "absurd_dimensions": (_absurd, "absurd image size 60000x60000"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_and_leaves_the_file_alone(tmp_path, case):
    make, message = BAD_INPUTS[case]
    path = make(tmp_path)
    before = sha256(path) if path.is_file() else None
    out = info(str(path))
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("echokdm: error: ") and message in lines[0], lines[0]
    assert "Traceback" not in out.stderr
    if before is not None:
        assert sha256(path) == before


def test_debug_flag_shows_the_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "echokdm", "--debug", "info", str(_not_us(tmp_path))],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" in out.stderr


def test_good_input_is_not_modified(tmp_path):
    path = write_us(tmp_path / "ok.dcm", moving_fan(t=4))
    before = sha256(path)
    assert info(str(path)).returncode == 0
    assert sha256(path) == before


def test_missing_decoder_plugin_is_named(tmp_path):
    # the same file, with the JPEG plugins made unimportable in the child process
    block = "import sys\nfor m in ('pylibjpeg', 'PIL', 'libjpeg', 'jpeg_ls', 'gdcm'):\n    sys.modules[m] = None\n"
    run = block + "from echokdm.cli import main\nsys.exit(main(['info', sys.argv[1]]))\n"
    path = pydicom_file("examples_ybr_color.dcm")
    out = subprocess.run([sys.executable, "-c", run, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "JPEG Baseline (Process 1)" in out.stderr and "pip install pylibjpeg pylibjpeg-libjpeg" in out.stderr
