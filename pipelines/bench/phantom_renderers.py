"""The phantom's two renderers next to two real A4C loops: speckle, grey levels, autocorrelation, speed;
writes a picture of one anatomy under both renderers and several random probes beside the real frames.

    python pipelines/bench/phantom_renderers.py [--seeds 4] [--acuson PATH] [--picture docs/phantom_renderers.png]

Loops: ``--seeds`` test-split seeds per renderer (256x256, 24 frames, no UI), pydicom's SonoSite cine and
the Acuson Sequoia A4C loop (default ``../shared/data/real/acuson_a4c.dcm`` beside the repository;
skipped with a note when that default is missing). Regions: on the phantom from its labels (mid-LV
cavity and myocardium, :func:`phantom_realism.phantom_rois`), on the real loops from hand-drawn boxes
(SonoSite: those of ``phantom_realism.py``; Acuson: below, checked on frame 0). Measures, per loop:

* myocardial speckle SNR: mean / standard deviation of the grey levels (0-255) in the myocardium;
* grey-level mean, standard deviation and skewness in the LV cavity and in the myocardium, and their
  contrast 20 log10(myocardium / cavity);
* autocorrelation length: axial and lateral FWHM of the high-passed image's autocorrelation on tissue
  (:func:`phantom_realism.speckle_fwhm`), in per mille of the sector depth (the Acuson file has no
  spacing) and in mm where the spacing is known;
* for the phantom, the CPU seconds to simulate the loop.
Phantom columns are the mean (and standard deviation) over the seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from phantom_realism import SONOSITE_CAVITY, SONOSITE_MYO, boxes_mask, phantom_rois, speckle_fwhm  # noqa: E402

from echokdm.errors import EchoKDMError  # noqa: E402
from echokdm.io import read_cine  # noqa: E402
from echokdm.phantom import sample_params, simulate, split_seeds  # noqa: E402

DEFAULT_ACUSON = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "acuson_a4c.dcm"
# hand-drawn boxes (x0, y0, x1, y1, inclusive) on the 576x456 Acuson loop: mid-LV cavity; septum and
# lateral wall beside it
ACUSON_CAVITY = [(285, 150, 325, 215)]
ACUSON_MYO = [(249, 150, 259, 225), (365, 225, 378, 255)]
#: what a "random probe" changes in the picture (the anatomy stays that of the picture's seed)
ACQUISITION = (
    "frequency_mhz", "bandwidth", "f_number", "focus_mm", "n_beams", "reverb", "axial_fwhm_mm", "lateral_fwhm_deg",
    "phase_coupling", "attenuation_db_cm_mhz", "tgc_error_db", "dynamic_range_db", "gray_gamma", "smoothing_mm",
    "display_gain", "gain_db", "noise_db", "blood_db", "haze", "dropout",
)
TILE_H = 260


def measure(frames: np.ndarray, sector: np.ndarray, cav: np.ndarray, myo: np.ndarray, spacing: float | None) -> dict:
    """The table's measures of one loop (uint8 frames (T, H, W); masks (H, W) or (T, H, W))."""
    f = frames.astype(np.float64)
    out: dict[str, float] = {}
    for name, m in (("cavity", cav), ("myocardium", myo)):
        v = f[np.broadcast_to(m, f.shape)]
        sd = v.std()
        out[f"{name} mean"], out[f"{name} sd"] = v.mean(), sd
        out[f"{name} skew"] = float(((v - v.mean()) ** 3).mean() / max(sd, 1e-9) ** 3)
    out["speckle SNR (myo)"] = out["myocardium mean"] / max(out["myocardium sd"], 1e-9)
    out["contrast dB"] = 20.0 * np.log10(out["myocardium mean"] / max(out["cavity mean"], 0.5))
    rows, cols = np.nonzero(sector)
    depth_px = rows.max() - rows.min()
    ax, lat = speckle_fwhm(frames, sector, 1.0, 0.5 * (cols.min() + cols.max()))
    out["autocorr axial o/oo"], out["autocorr lateral o/oo"] = 1000 * ax / depth_px, 1000 * lat / depth_px
    out["autocorr axial mm"] = ax * spacing if spacing else float("nan")
    out["autocorr lateral mm"] = lat * spacing if spacing else float("nan")
    return out


def real_loop(path: str, cav_boxes, myo_boxes) -> tuple[dict, np.ndarray]:
    """Measures and the first frame (cropped to its sector) of a real loop."""
    frames, meta = read_cine(path)
    sector = meta["sector_mask"]
    spacing = float(meta["spacing_mm"][0]) if meta.get("spacing_mm") else None
    cav, myo = boxes_mask(sector.shape, cav_boxes), boxes_mask(sector.shape, myo_boxes)
    return measure(frames, sector, cav, myo, spacing), crop(frames[0], sector)


def crop(img: np.ndarray, sector: np.ndarray) -> np.ndarray:
    """The sector's bounding box, scaled to TILE_H rows (uint8)."""
    rows, cols = np.nonzero(sector)
    c = img[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return cv2.resize(c, (int(round(c.shape[1] * TILE_H / c.shape[0])), TILE_H), interpolation=cv2.INTER_AREA)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)


def picture(path: Path, seed: int, probes: list[int], real_tiles: list[tuple[str, np.ndarray]]) -> None:
    """Rows: the real frames; the anatomy of ``seed`` at ED under the scatter renderer with the
    acquisitions of ``probes``; the same under the cole renderer."""
    rows = [list(real_tiles)]
    for renderer in ("scatter", "cole"):
        base = sample_params(seed, renderers=(renderer,), ui=False, n_beats=1, frames=12)
        rows.append([])
        for k in probes:
            q = sample_params(k, renderers=(renderer,), ui=False, n_beats=1, frames=12)
            p = base.replace(**{f: getattr(q, f) for f in ACQUISITION})
            loop = simulate(p)
            label = (f"cole {p.frequency_mhz:.1f}MHz B{p.bandwidth:.2f} F/{p.f_number:.1f} {p.n_beams} lines"
                     if renderer == "cole" else f"scatter {p.axial_fwhm_mm:.1f}mm x {p.lateral_fwhm_deg:.1f}deg")
            rows[-1].append((label, crop(to_uint8(loop.frames[loop.ed[0]]), loop.sector_mask)))
    width = max(t.shape[1] for row in rows for _, t in row)
    n_col = max(len(row) for row in rows)
    canvas = np.zeros((len(rows) * (TILE_H + 24), n_col * (width + 8)), np.uint8)
    for r, row in enumerate(rows):
        for c, (label, t) in enumerate(row):
            y, x = r * (TILE_H + 24) + 22, c * (width + 8) + (width - t.shape[1]) // 2
            canvas[y : y + TILE_H, x : x + t.shape[1]] = t
            cv2.putText(
                canvas, label, (c * (width + 8) + 4, y - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), canvas)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=4, help="phantom loops per renderer (test-split seeds)")
    ap.add_argument("--acuson", help=f"the Acuson A4C DICOM (default {DEFAULT_ACUSON}, skipped if missing)")
    ap.add_argument("--picture", default="docs/phantom_renderers.png", help="picture PNG ('' to skip)")
    ap.add_argument("--picture-seed", type=int, default=2000003, help="anatomy seed of the picture")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        print(f"error: --seeds {args.seeds}; expected at least 1", file=sys.stderr)
        return 2
    from pydicom.data import get_testdata_file

    reals = [("SonoSite", get_testdata_file("examples_ybr_color.dcm"), SONOSITE_CAVITY, SONOSITE_MYO)]
    acuson = args.acuson or (str(DEFAULT_ACUSON) if DEFAULT_ACUSON.exists() else None)
    if acuson is None:
        print(f"note: {DEFAULT_ACUSON} not found; the Acuson loop is left out")
    else:
        reals.append(("Acuson", acuson, ACUSON_CAVITY, ACUSON_MYO))
    columns, tiles = {}, []
    for name, path, cav_boxes, myo_boxes in reals:
        try:
            columns[name], tile = real_loop(path, cav_boxes, myo_boxes)
        except EchoKDMError as e:
            print(f"error: {path}: {e}", file=sys.stderr)
            return 2
        tiles.append((f"real {name}", tile))
    for renderer in ("scatter", "cole"):
        runs = []
        for seed in split_seeds("test", args.seeds):
            p = sample_params(seed, renderers=(renderer,), size=256, frames=24, n_beats=1, ui=False)
            c0 = time.process_time()
            loop = simulate(p)
            cpu = time.process_time() - c0
            cav, myo = phantom_rois(loop.labels)
            runs.append(
                {**measure(to_uint8(loop.frames), loop.sector_mask, cav, myo, loop.spacing_mm[0]), "CPU s / loop": cpu}
            )
            print(f"  {renderer} seed {seed}: {cpu:.2f} s CPU", flush=True)
        columns[renderer] = {
            k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs]))) for k in runs[0]
        }
    keys = list(columns["scatter"])
    print(f"\n{'measure':<24}" + "".join(f"{n:>12}" for n in columns if n not in ("scatter", "cole"))
          + f"{'scatter':>17}{'cole':>17}")
    for k in keys:
        real = "".join(f"{columns[n].get(k, float('nan')):>12.2f}" for n in columns if n not in ("scatter", "cole"))
        ph = "".join(f"{columns[n][k][0]:>10.2f} ±{columns[n][k][1]:>5.2f}" for n in ("scatter", "cole"))
        print(f"{k:<24}{real}{ph}")
    if args.picture:
        picture(Path(args.picture), args.picture_seed, [args.picture_seed, 11, 23, 5], tiles)
        print(f"\npicture: {args.picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
