"""Proxies of the segmenter's real acceptance sets (issue #19), built from phantom test seeds and scored the
way the maintainers score the real studies.

    python pipelines/bench/seg_proxies.py make  --out proxies --n 20 [--renderer NAME]
    python pipelines/bench/seg_proxies.py score --data proxies --weights seg_a4c [--report DIR]

``make`` writes, from seeds of the phantom *test* split (never trained on):

- ``echonet/``: an EchoNet-Dynamic folder (``FileList.csv``, ``VolumeTracings.csv``, ``Videos/*.avi``) of
  loops seen as EchoNet shows them: a square crop of the fan around its apex, zoomed so the fan's sides
  and bottom are cut (the LV kept whole), 112x112, MJPEG at quality 50-90, 25-50 frames/s;
- ``clips/``: 16-frame clips of the same view at about 8 frames/s (2 s: one to two beats);
- ``phantom/``: the default phantom (256x256 DICOM cines with their label maps).

``score`` runs, for every loop, what ``echokdm segment`` runs (``load_cine`` -> ``LVSegmenter`` ->
``measure_loop``) and prints, with bootstrap 95% CIs over loops: LV Dice at the traced (ED/ES) frames,
EF absolute error, bias and correlation against the true EF, and the loops without ED and ES; and for
``echonet/`` also ``echokdm evaluate --predictors truth --keypoints 20`` (Dice and EF error of single
ED/ES frames). ``--renderer`` picks the phantom's image-formation model of every set.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import time
from pathlib import Path

import cv2
import numpy as np

from echokdm.errors import InputError

ECHONET = 112
CLIP_FRAMES = 16
CLIP_FPS = 8.0


def echonet_view(loop, rng: np.random.Generator):
    """The loop as EchoNet-Dynamic shows it: a zoomed square crop of the fan at 112x112.

    Returns:
        frames (T, 112, 112) float32, labels (T, 112, 112) uint8, the (row, col) scale and offset map.
    """
    t, h, w = loop.frames.shape
    depth_px = loop.params["depth_mm"] / loop.spacing_mm[0]
    lv = (loop.labels == 1).any(0) | (loop.labels == 2).any(0)
    rows, cols = np.flatnonzero(lv.any(1)), np.flatnonzero(lv.any(0))
    apex_col = (w - 1) / 2.0
    side = depth_px * rng.uniform(0.7, 1.0)
    for _ in range(20):  # grow the crop until the LV (cavity + wall) fits with a margin
        top = -0.03 * side + 0.06 * side * rng.uniform()
        left = apex_col - side / 2 + 0.12 * side * (rng.uniform() - 0.5)
        if rows[0] >= top + 1 and rows[-1] <= top + side - 2 and cols[0] >= left + 1 and cols[-1] <= left + side - 2:
            break
        side *= 1.05
    scale = ECHONET / side
    m = np.array([[scale, 0, -left * scale], [0, scale, -top * scale]], np.float64)
    blur = max(0.0, 0.5 / scale - 0.5)  # anti-alias before down-sampling
    frames = np.stack(
        [
            cv2.warpAffine(
                cv2.GaussianBlur(f, (0, 0), blur) if blur > 0 else f,
                m,
                (ECHONET, ECHONET),
                flags=cv2.INTER_LINEAR,
                borderValue=0.0,
            )
            for f in loop.frames.astype(np.float32)
        ]
    )
    labels = np.stack(
        [cv2.warpAffine(lab, m, (ECHONET, ECHONET), flags=cv2.INTER_NEAREST, borderValue=0) for lab in loop.labels]
    )
    return frames, labels, (scale, top, left)


def write_avi(path: Path, frames: np.ndarray, fps: float, quality: int) -> None:
    """(T, H, W) float [0, 1] -> MJPEG AVI, three grey channels (as EchoNet-Dynamic's videos)."""
    u8 = np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, u8.shape[:0:-1])
    vw.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
    for f in u8:
        vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    vw.release()


def _loops(n: int, renderer: str | None, **overrides):
    """(seed, loop) for the first ``n`` phantom test seeds the phantom accepts."""
    from echokdm.phantom import sample_params, simulate, split_seeds

    extra = {"renderer": renderer} if renderer else {}
    count = 0
    for seed in split_seeds("test", 20 * n):
        try:
            loop = simulate(sample_params(seed, **overrides, **extra))
        except InputError:
            continue
        yield seed, loop
        count += 1
        if count == n:
            return


def make(out: Path, n: int, renderer: str | None) -> None:
    """Write the three proxy sets into ``out``."""
    from echokdm.outputs import OutputDir
    from echokdm.phantom.layouts import ECHONET_SPLITS, echonet_name, volume_tracing, write_dicom_loop, write_manifest

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(19)
    # echonet/: full loops (1-2 beats) at 25-50 frames/s
    (out / "echonet" / "Videos").mkdir(parents=True, exist_ok=True)
    (out / "echonet" / "Labels").mkdir(parents=True, exist_ok=True)
    fl = ["FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split"]
    vt = ["FileName,X1,Y1,X2,Y2,Frame"]
    for seed, loop in _loops(n, renderer, ui=False):
        step = max(1, int(round(rng.uniform(20.0, 40.0) / loop.frame_time_ms)))
        frames, labels, (scale, top, left) = echonet_view(loop, rng)
        keep = np.arange(0, frames.shape[0], step)
        fps = 1000.0 / (loop.frame_time_ms * step)
        name = echonet_name(seed)
        write_avi(out / "echonet" / "Videos" / f"{name}.avi", frames[keep], fps, int(rng.integers(50, 91)))
        np.save(out / "echonet" / "Labels" / f"{name}.npy", labels[keep])
        fl.append(
            f"{name},{loop.ef:.3f},{loop.esv:.3f},{loop.edv:.3f},{ECHONET},{ECHONET},{fps:.4f},{len(keep)},{ECHONET_SPLITS['test']}"
        )
        ed = int(loop.ed[0] // step)
        es = int(next(e for e in loop.es if e > loop.ed[0]) // step)
        mids = np.asarray(loop.params["mitral_annulus_mid_px"], dtype=np.float64)
        mids = (mids - [top, left]) * scale
        for frame, mid in ((es, mids[1]), (ed, mids[0])):
            if (labels[keep][frame] == 1).sum() < 10:
                continue
            for x1, y1, x2, y2 in volume_tracing(labels[keep][frame] == 1, mid):
                vt.append(f"{name}.avi,{x1:.4f},{y1:.4f},{x2:.4f},{y2:.4f},{frame}")
    (out / "echonet" / "FileList.csv").write_text("\n".join(fl) + "\n")
    (out / "echonet" / "VolumeTracings.csv").write_text("\n".join(vt) + "\n")
    # clips/: 16 frames at about 8 frames/s from three-beat loops
    (out / "clips").mkdir(parents=True, exist_ok=True)
    rows = []
    for seed, loop in _loops(n, renderer, ui=False, n_beats=3):
        step = max(1, int(round(1000.0 / CLIP_FPS / loop.frame_time_ms)))
        frames, labels, _ = echonet_view(loop, rng)
        start = int(rng.integers(0, max(1, frames.shape[0] - step * CLIP_FRAMES)))
        keep = np.arange(start, start + step * CLIP_FRAMES, step)[:CLIP_FRAMES]
        keep = keep[keep < frames.shape[0]]
        name = echonet_name(seed)
        write_avi(
            out / "clips" / f"{name}.avi", frames[keep], 1000.0 / (loop.frame_time_ms * step), int(rng.integers(50, 91))
        )
        np.save(out / "clips" / f"{name}_labels.npy", labels[keep])
        rows.append({"name": name, "ef": round(loop.ef, 3), "frames": len(keep)})
    (out / "clips" / "clips.json").write_text(json.dumps(rows, indent=1))
    # phantom/: the default phantom as DICOM cines
    od = OutputDir(out / "phantom", overwrite=True)
    write_manifest(
        od, [write_dicom_loop(od, f"test{seed:07d}", loop, "test", ddf=False) for seed, loop in _loops(n, renderer)]
    )
    print(f"wrote {n} loops per set to {out}")


def _bootstrap(values: np.ndarray, stat=np.mean, n: int = 2000) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(0)
    boots = [stat(v[rng.integers(0, len(v), len(v))]) for _ in range(n)]
    return float(stat(v)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def _segment(path: Path, segmenter):
    """What ``echokdm segment`` measures: labels of every frame, EF of the loop (None when unmeasurable), and
    the loop's frame time (ms)."""
    from echokdm.io import load_cine

    loop = load_cine(path)
    labels = segmenter(loop).labels
    frame_time = loop.meta.get("frame_time_ms")
    return labels, _loop_ef(labels, frame_time), frame_time


def score(
    data: Path, weights: str, report: Path | None, flip_tta: bool = False, annulus_clip: bool = True
) -> dict:
    """Score ``weights`` on the proxy sets in ``data``; print and return the table."""
    import pandas as pd

    from echokdm.io import read_segmentation
    from echokdm.models.seg import LVSegmenter

    segmenter = LVSegmenter.from_pretrained(weights, flip_tta=flip_tta, annulus_clip=annulus_clip)
    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    # echonet/: Dice at the traced frames, EF of the loop
    fl = pd.read_csv(data / "echonet" / "FileList.csv")
    vt = pd.read_csv(data / "echonet" / "VolumeTracings.csv")
    dice, err, found, floor = [], [], 0, []
    for r in fl.itertuples(index=False):
        labels, ef, frame_time = _segment(data / "echonet" / "Videos" / f"{r.FileName}.avi", segmenter)
        truth = np.load(data / "echonet" / "Labels" / f"{r.FileName}.npy")
        for frame in vt[vt.FileName == f"{r.FileName}.avi"].Frame.unique():
            dice.append(_dice(labels[frame] == 1, truth[frame] == 1))
        if ef is not None:
            found += 1
            err.append(ef - r.EF)
        floor.append(_floor(truth, frame_time, r.EF))
    results["echonet"] = _table(dice, err, found, len(fl), fl.EF.to_numpy(), floor)
    # clips/
    rows = json.loads((data / "clips" / "clips.json").read_text())
    dice, err, found, efs, floor = [], [], 0, [], []
    for row in rows:
        labels, ef, frame_time = _segment(data / "clips" / f"{row['name']}.avi", segmenter)
        truth = np.load(data / "clips" / f"{row['name']}_labels.npy")
        dice.extend(_dice(a == 1, b == 1) for a, b in zip(labels, truth, strict=True))
        if ef is not None:
            found += 1
            err.append(ef - row["ef"])
            efs.append(row["ef"])
        floor.append(_floor(truth, frame_time, row["ef"]))
    results["clips"] = _table(dice, err, found, len(rows), np.array(efs), floor)
    # phantom/
    man = pd.read_csv(data / "phantom" / "manifest.csv")
    dice, err, found, floor = [], [], 0, []
    for r in man.itertuples(index=False):
        labels, ef, frame_time = _segment(data / "phantom" / r.path, segmenter)
        truth = read_segmentation(data / "phantom" / r.path.replace(".dcm", "_label.nii.gz"))
        dice.extend(_dice(a == 1, b == 1) for a, b in zip(labels, truth, strict=True))
        if ef is not None:
            found += 1
            err.append(ef - r.ef)
        floor.append(_floor(truth, frame_time, r.ef))
    results["phantom"] = _table(dice, err, found, len(man), man.ef.to_numpy(), floor)
    results["real"] = real_consistency(segmenter)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    if report is not None:
        results["evaluate_truth"] = _evaluate_truth(data / "echonet", weights, report)
    _print(results, weights)
    return results


#: the two real loops (no labels) and the fraction of the fan's depth their EchoNet-like crops keep
REAL_LOOPS = (("sonosite", "examples_ybr_color.dcm", 0.75), ("acuson", "/work/shared/data/real/acuson_a4c.dcm", 0.8))


def echonet_matrix(sector_mask: np.ndarray, keep: float, shift: float = 0.0) -> np.ndarray:
    """The 2x3 affine matrix from a loop's grid to its EchoNet-like 112-px crop: a square from the fan's apex
    down ``keep`` of its depth, centred on the fan and moved ``shift`` of its side to the right."""
    rows, cols = np.flatnonzero(sector_mask.any(1)), np.flatnonzero(sector_mask.any(0))
    side = (rows[-1] - rows[0]) * keep
    scale = ECHONET / side
    left = (cols[0] + cols[-1]) / 2 - side / 2 + shift * side
    return np.array([[scale, 0, -left * scale], [0, scale, -rows[0] * scale]])


def echonet_frames(frames: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(T, H, W) frames through the crop matrix ``m`` (anti-aliased): (T, 112, 112) float32."""
    blur = 0.5 / m[0, 0]
    return np.stack(
        [cv2.warpAffine(cv2.GaussianBlur(f, (0, 0), blur), m, (ECHONET, ECHONET)) for f in frames.astype(np.float32)]
    )


def echonet_crop(loop, keep: float, shift: float = 0.0, quality: int = 70):
    """The loop as EchoNet-Dynamic would store it (:func:`echonet_matrix`): 112x112, MJPEG at ``quality``. Returns
    the cropped loop (read back from the AVI) and the 2x3 affine matrix from the loop's grid to the crop's."""
    import tempfile

    from echokdm.io import load_cine

    m = echonet_matrix(loop.meta["sector_mask"], keep, shift)
    crop = echonet_frames(loop[0].numpy(), m)
    with tempfile.TemporaryDirectory() as tmp:
        write_avi(Path(tmp) / "crop.avi", crop, 1000.0 / (loop.meta.get("frame_time_ms") or 33.3), quality)
        return load_cine(Path(tmp) / "crop.avi"), m


def real_consistency(segmenter) -> dict:
    """Each real loop segmented at full resolution and as a 112-px EchoNet-like crop (MJPEG q 70): LV Dice of
    the crop's masks against the full-resolution masks mapped onto the crop, and both EFs. No labels exist:
    agreement is necessary for a segmenter that works on EchoNet-format studies, not proof that it does. Also the
    LV myocardium's area at ES over ED (first beat, full resolution): the wall thickens as the cavity shrinks, so
    about 1 (1.12 on the phantom's true labels, 10 loops of both renderers); far below 1, the segmenter takes
    thickened ES wall for cavity."""
    from pydicom.data import get_testdata_file

    from echokdm.io import load_cine

    out = {}
    for name, path, keep in REAL_LOOPS:
        path = Path(path) if "/" in path else Path(get_testdata_file(path))
        if not path.exists():
            continue
        loop = load_cine(path)
        small, m = echonet_crop(loop, keep)
        full = segmenter(loop).labels
        labels = segmenter(small).labels
        mapped = np.stack([cv2.warpAffine(lab, m, (ECHONET, ECHONET), flags=cv2.INTER_NEAREST) for lab in full])
        out[name] = {
            "dice_full_vs_crop": float(np.mean([_dice(a == 1, b == 1) for a, b in zip(mapped, labels, strict=True)])),
            "ef_full": _loop_ef(full, loop.meta.get("frame_time_ms")),
            "ef_crop": _loop_ef(labels, loop.meta.get("frame_time_ms")),
            "myo_es_over_ed": _myo_ratio(full, loop.meta.get("frame_time_ms")),
            "ef_clips": real_clips(segmenter, small[0].numpy(), loop.meta.get("frame_time_ms") or 33.3),
        }
    return out


def real_clips(segmenter, crop: np.ndarray, frame_time_ms: float) -> list[float | None]:
    """EF of every 16-frame clip of a real loop's 112-px crop taken at every 1st to 4th frame from each offset
    (30 down to 7 frames/s, MJPEG q 70), as the acceptance set's short clips are: one heart, so the EFs should
    agree with each other and with the whole crop's (None: a clip without ED and ES)."""
    import tempfile

    from echokdm.io import load_cine

    efs = []
    for step in (1, 2, 3, 4):
        for start in range(step):
            with tempfile.TemporaryDirectory() as tmp:
                write_avi(Path(tmp) / "clip.avi", crop[start::step][:CLIP_FRAMES], 1000.0 / (frame_time_ms * step), 70)
                clip = load_cine(Path(tmp) / "clip.avi")
                efs.append(_loop_ef(segmenter(clip).labels, clip.meta.get("frame_time_ms")))
    return efs


def _loop_ef(labels: np.ndarray, frame_time_ms: float | None) -> float | None:
    from echokdm.metrics import measure_loop
    from echokdm.segment import _unpaired_ef

    try:
        lm = measure_loop(labels, 20, None, frame_time_ms)
    except InputError:
        return None
    ef = lm.summary()["ef_simpson"]
    if ef is None:
        unpaired = _unpaired_ef(lm)
        ef = None if unpaired is None else unpaired["ef_simpson"]
    return ef


def _myo_ratio(labels: np.ndarray, frame_time_ms: float | None) -> float | None:
    """LV myocardium area at ES / at ED of the first beat (phases on the cavity area), None without one."""
    from echokdm.phases import detect_phases

    beats = detect_phases((labels == 1).sum(axis=(1, 2)), frame_time_ms).beats
    if not beats:
        return None
    ed, es = beats[0]
    return float((labels[es] == 2).sum() / max((labels[ed] == 2).sum(), 1))


def _floor(truth: np.ndarray, frame_time_ms: float | None, true_ef: float) -> float:
    """EF error of the true label maps through the same measurement: what sampling and measurement cost a
    perfect segmenter (nan when even the true maps show no ED and ES)."""
    ef = _loop_ef(truth.astype(np.uint8), frame_time_ms)
    return float("nan") if ef is None else ef - true_ef


def _table(dice: list, err: list, found: int, n: int, true_ef: np.ndarray, floor: list) -> dict:
    e = np.asarray(err, dtype=np.float64)
    fl = np.asarray(floor, dtype=np.float64)
    fl = fl[np.isfinite(fl)]
    out = {"n": n, "without_ed_es": n - found, "dice": _bootstrap(np.asarray(dice))}
    if len(fl):
        out["floor_mae"], out["floor_bias"] = float(np.abs(fl).mean()), float(fl.mean())
    if len(e):
        out["ef_mae"] = _bootstrap(np.abs(e))
        out["ef_bias"] = _bootstrap(e)
        if len(e) > 2 and len(true_ef) == len(e):
            out["ef_r"] = float(np.corrcoef(true_ef, true_ef + e)[0, 1])
    return out


def _evaluate_truth(echonet: Path, weights: str, report: Path) -> dict:
    """``echokdm evaluate --data ECHONET --predictors truth --keypoints 20`` with these segmenter weights."""
    import pandas as pd

    from echokdm.evaluate.run import run_evaluation
    from echokdm.segmenter import BuiltinSegmenter

    run_evaluation(
        str(echonet),
        report,
        predictors=["truth"],
        task="es",
        n_keypoints=20,
        segmenter=BuiltinSegmenter(weights=weights),
        overwrite=True,
    )
    s = pd.read_csv(report / "scores.csv")
    return {"dice": _bootstrap(s.dice.to_numpy()), "ef_err": _bootstrap(s.ef_err.dropna().to_numpy())}


def _print(results: dict, weights: str) -> None:
    def f(v, d=3):
        return f"{v[0]:.{d}f} [{v[1]:.{d}f}, {v[2]:.{d}f}]" if isinstance(v, tuple) else "-"

    print(f"weights {weights}   ({results['seconds']} s)")
    print("| set | loops | LV Dice | EF MAE | EF bias | r | without ED/ES | true labels: EF MAE (bias) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("echonet", "clips", "phantom"):
        r = results[name]
        print(
            f"| {name} | {r['n']} | {f(r['dice'])} | {f(r.get('ef_mae'), 1)} | {f(r.get('ef_bias'), 1)} | "
            f"{r.get('ef_r', float('nan')):.2f} | {r['without_ed_es']} | "
            f"{r.get('floor_mae', float('nan')):.1f} ({r.get('floor_bias', float('nan')):+.1f}) |"
        )
    for name, r in results.get("real", {}).items():
        ef = " / ".join("-" if r[k] is None else f"{r[k]:.1f}" for k in ("ef_full", "ef_crop"))
        myo = "-" if r["myo_es_over_ed"] is None else f"{r['myo_es_over_ed']:.3f}"
        print(f"| real {name}: full vs 112-px crop | | {r['dice_full_vs_crop']:.3f} (agreement) | EF {ef} | | | | |"
              f" myocardium area ES/ED {myo}")
        clips = [e for e in r["ef_clips"] if e is not None]
        print(f"| real {name}: {len(r['ef_clips'])} 16-frame clips of the crop | | | EF {np.min(clips):.1f} to "
              f"{np.max(clips):.1f}, median {np.median(clips):.1f} | | | {len(r['ef_clips']) - len(clips)} | |")
    if "evaluate_truth" in results:
        e = results["evaluate_truth"]
        print(f"| echonet, evaluate truth (ED/ES frames alone) | | {f(e['dice'])} | {f(e['ef_err'], 1)} | | | | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--n", type=int, default=20)
    m.add_argument("--renderer", default=None, help="phantom image-formation model (default: the phantom's own draw)")
    s = sub.add_parser("score")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--weights", default="seg_a4c")
    s.add_argument("--report", type=Path, default=None, help="also run evaluate --predictors truth into this folder")
    s.add_argument("--json", type=Path, default=None, help="write the table as JSON")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--flip-tta", action="store_true", help="segment with left-right test-time augmentation")
    s.add_argument("--no-annulus-clip", action="store_true", help="leave cavity beyond the mitral annulus")
    args = ap.parse_args()
    if args.cmd == "make":
        make(args.out, args.n, args.renderer)
    else:
        import torch

        torch.set_num_threads(args.threads)
        res = score(args.data, args.weights, args.report, args.flip_tta, not args.no_annulus_clip)
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
