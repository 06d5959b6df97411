"""Peak memory and time to load a long colour cine: 600 frames of 800x600 RGB (issue: < 2 GiB peak RSS).

Writes a synthetic US Multi-frame DICOM (moving speckle fan + burned-in coloured UI) to a temporary
folder, then loads it with ``echokdm.io.load_cine`` in a fresh Python process and prints that process's
peak resident memory (VmHWM, Linux), its peak before loading (imports), and the load time.

    python pipelines/bench/load_memory.py [--frames 600] [--width 800] [--height 600] [--encoding native|jpeg]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, UltrasoundMultiFrameImageStorage, generate_uid

# VmHWM (this process's peak RSS) rather than ru_maxrss, which Linux carries over from the forking parent
CHILD = """
import json, sys, time
from echokdm.io import load_cine
import torch, monai  # counted in the baseline, as in any real use
def hwm_kib():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])
before = hwm_kib()
t0 = time.perf_counter()
img = load_cine(sys.argv[1])
seconds = time.perf_counter() - t0
peak = hwm_kib()
print(json.dumps({"shape": list(img.shape), "dtype": str(img.dtype), "load_s": seconds,
                  "rss_before_load_kib": before, "peak_rss_kib": peak}))
"""


def synthetic_frames(t: int, h: int, w: int, seed: int = 0):
    """Yield (H, W, 3) uint8 RGB frames: a grey speckle fan that moves, plus static coloured UI."""
    rng = np.random.default_rng(seed)
    speckle = rng.integers(0, 200, size=(h, w + t), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    angle = np.arctan2(xx - w / 2, yy + 1)
    fan = (np.abs(angle) < 0.6) & (yy > h * 0.05) & (np.hypot(xx - w / 2, yy) < h * 0.9)
    for i in range(t):
        grey = np.where(fan, speckle[:, i : i + w], 0).astype(np.uint8)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        rgb[h - 30 : h - 10, 20 : w - 20] = (40, 80, 160)  # UI bar
        rgb[10:30, 10:200] = (255, 255, 0)  # burned-in text block
        yield rgb


def write_synthetic(path: Path, t: int, h: int, w: int, encoding: str) -> None:
    """A US Multi-frame RGB file, uncompressed or JPEG baseline, written without holding decoded frames."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit if encoding == "jpeg" else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames = h, w, t
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.FrameTime, ds.FrameIncrementPointer = 20.0, 0x00181063
    if encoding == "jpeg":
        from PIL import Image

        def jpeg(rgb: np.ndarray) -> bytes:
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
            return buf.getvalue()

        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PixelData = encapsulate([jpeg(f) for f in synthetic_frames(t, h, w)])
        ds["PixelData"].VR = "OB"
    else:
        ds.PhotometricInterpretation = "RGB"
        ds.PixelData = b"".join(f.tobytes() for f in synthetic_frames(t, h, w))
    ds.save_as(path, enforce_file_format=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--height", type=int, default=600)
    parser.add_argument("--encoding", choices=["native", "jpeg"], default="native")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic_cine.dcm"
        t0 = time.perf_counter()
        write_synthetic(path, args.frames, args.height, args.width, args.encoding)
        print(f"wrote {path.name}: {args.frames} x {args.width}x{args.height} RGB, {args.encoding}, "
              f"{path.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - t0:.1f} s")
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    peak = result["peak_rss_kib"] / 2**20
    print(f"loaded tensor {tuple(result['shape'])} {result['dtype']} "
          f"({np.prod(result['shape']) * 4 / 2**30:.2f} GiB as float32)")
    print(f"load time: {result['load_s']:.1f} s")
    print(f"peak RSS before load (imports): {result['rss_before_load_kib'] / 2**20:.2f} GiB")
    print(f"peak RSS: {peak:.2f} GiB ({'under' if peak < 2 else 'OVER'} the 2 GiB limit)")


if __name__ == "__main__":
    main()
