"""What ``echokdm predict-batch`` does: :func:`echokdm.predict.predict_study` for every study of a manifest.

The manifest is a CSV with the columns ``study_id`` and ``dicom`` and, optionally, the per-study options
``phase``, ``target_ef``, ``keypoints``, ``seg``, ``source_frame`` and ``frames`` (an empty cell keeps the
default; relative paths are relative to the manifest's folder). Each study is written to ``OUT/<study_id>/``.

- Sharding: under ``torchrun`` rank ``r`` of ``W`` takes studies ``r, r + W, ...`` (``RANK`` / ``WORLD_SIZE``).
- Resuming: a study whose ``report.json`` exists is finished and skipped; the others (failed or interrupted)
  are run again. Every file is written atomically and ``report.json`` last, so a batch killed at any moment
  (even SIGKILL) and started again ends with every study done once; the temporary files a killed run leaves
  are removed when the batch starts again.
- Failures: a bad study never stops the batch; its folder is removed and its one-line reason kept until it
  succeeds. When every rank is done, rank 0 writes ``summary.csv`` (one row per study: status and the main
  numbers) and ``failures.csv`` (study, input, reason). An unusable output location (read-only, full) stops
  the batch with that one error: every further study would fail the same way.
- ``anonymize``: every ``prediction.dcm`` is de-identified with one :class:`~echokdm.io.anonymize.Anonymizer`
  (its key shared by all ranks), so studies of one run that share an original UID share its replacement.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echokdm.errors import EchoKDMError, InputError, OutputError
from echokdm.outputs import MARKER, PART, OutputDir

REQUIRED = ("study_id", "dicom")
OPTIONAL = ("phase", "target_ef", "keypoints", "seg", "source_frame", "frames")
SUMMARY_CSV, FAILURES_CSV = "summary.csv", "failures.csv"
#: where the reasons of failed studies wait for the summary (hidden: not a result)
STATE_DIR = ".failed"
#: (column, path in report.json) of summary.csv
SUMMARY_COLUMNS = (
    ("source_frame", ("source_frame",)),
    ("target_frame", ("target_frame",)),
    ("ef_source_beat", ("ef", "source_beat")),
    ("ef_target_keypoints", ("ef", "target_keypoints")),
    ("ef_prediction", ("ef", "prediction")),
    ("ef_consistency", ("ef", "consistency", "seg_vs_keypoints")),
    ("psnr", ("image_metrics", "psnr")),
    ("ssim", ("image_metrics", "ssim")),
    ("dice", ("image_metrics", "dice")),
    ("psnr_copy_source", ("image_metrics", "copy_source", "psnr")),
    ("ssim_copy_source", ("image_metrics", "copy_source", "ssim")),
    ("dice_copy_source", ("image_metrics", "copy_source", "dice")),
    ("seconds", ("timings_s", "total")),
)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class ManifestRow:
    """One study: its id, input loop and per-study options (as given, not yet validated)."""

    study_id: str
    dicom: str
    options: dict[str, Any]


@dataclass
class BatchResult:
    """Outcome of the studies of this rank (and, on rank 0, the summary files).

    Attributes:
        done: studies predicted by this run.
        skipped: studies already finished before this run.
        failed: study id -> one-line reason.
        summary: path of summary.csv (rank 0) or None.
    """

    done: list[str]
    skipped: list[str]
    failed: dict[str, str]
    summary: Path | None


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Read and check a manifest (see the module docstring).

    Raises:
        InputError: missing file or columns, unknown columns, empty, duplicate or unsafe study ids.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"manifest {p} does not exist" if not p.exists() else f"manifest {p} is not a file")
    try:
        rows = list(csv.DictReader(io.StringIO(p.read_text(encoding="utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"manifest {p} is not a readable CSV file: {e}") from None
    except OSError as e:
        raise InputError(f"manifest {p} cannot be read: {e.strerror or e}") from None
    if not rows:
        raise InputError(f"manifest {p} lists no studies")
    columns = set(rows[0])
    if missing := [c for c in REQUIRED if c not in columns]:
        raise InputError(f"manifest {p} lacks the column(s) {', '.join(missing)}")
    if unknown := sorted(columns - set(REQUIRED) - set(OPTIONAL)):
        raise InputError(
            f"manifest {p} has unknown column(s) {', '.join(unknown)}; known: {', '.join(REQUIRED + OPTIONAL)}"
        )
    out, seen = [], set()
    for line, r in enumerate(rows, start=2):
        sid = (r["study_id"] or "").strip()
        if not _SAFE_ID.match(sid):
            raise InputError(
                f"manifest {p} line {line}: study_id {sid!r} is not a safe folder name (letters, digits, . _ -)"
            )
        if sid in seen:
            raise InputError(f"manifest {p} line {line}: study_id {sid!r} appears twice")
        seen.add(sid)
        opts = {k: r[k].strip() for k in OPTIONAL if r.get(k) and r[k].strip()}
        for k in ("keypoints", "seg"):
            if k in opts:
                opts[k] = str(_resolve(p, opts[k]))
        out.append(ManifestRow(sid, str(_resolve(p, (r["dicom"] or "").strip())), opts))
    return out


def predict_batch(
    manifest: str | os.PathLike,
    out: str | os.PathLike,
    *,
    steps: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    weights=None,
    predictor=None,
    command: str | None = None,
    anonymize: bool = False,
) -> BatchResult:
    """Predict every study of ``manifest`` into ``out/<study_id>/`` (this rank's share under torchrun).

    Args:
        manifest: the studies (see the module docstring).
        out: the batch folder (created, or resumed when it is an earlier batch of echokdm).
        steps: denoising steps (default :data:`echokdm.defaults.DEFAULT_STEPS`).
        seed: sampling seed of every study.
        device: ``cpu`` or ``cuda`` (each rank takes its local GPU).
        weights: :class:`echokdm.predict.PredictWeights` (default: shipped).
        predictor: already loaded models (instead of ``weights``/``device``).
        command: command line recorded in every report (none with ``anonymize``).
        anonymize: de-identify the DICOM outputs and keep input paths out of the reports (see the module docstring).

    Returns:
        This rank's :class:`BatchResult`.

    Raises:
        InputError: a bad manifest; OutputError: an unusable batch folder (also when it turns read-only or
            full during the batch). Single studies never raise.
    """
    from echokdm.defaults import DEFAULT_STEPS
    from echokdm.io.anonymize import Anonymizer
    from echokdm.predict import KDMPredictor, PredictOptions, predict_study
    from echokdm.progress import progress
    from echokdm.train.distributed import init_distributed, shutdown_distributed

    rows = read_manifest(manifest)
    out_dir = OutputDir(out, resume=True)
    ctx = init_distributed("cuda" if str(device).startswith("cuda") else "cpu")
    try:
        if ctx.is_main:
            _remove_leftovers(out_dir.path)
        ctx.barrier()
        anonymizer = Anonymizer(_shared_key(ctx)) if anonymize else False
        predictor = predictor or KDMPredictor.from_weights(weights, str(ctx.device))
        done, skipped, failed = [], [], {}
        for row in progress(rows[ctx.rank :: ctx.world_size], "predict-batch"):
            folder = out_dir.path / row.study_id
            state = out_dir.path / STATE_DIR / f"{row.study_id}.txt"
            if (folder / "report.json").is_file():
                skipped.append(row.study_id)
                continue
            try:
                opts = PredictOptions(**_typed(row.options), steps=steps or DEFAULT_STEPS, seed=seed)
                predict_study(row.dicom, folder, opts, predictor, overwrite=True, command=command, anonymize=anonymizer)
            except OutputError:
                raise
            except EchoKDMError as e:
                failed[row.study_id] = str(e)
            except Exception as e:  # one bad study never stops the batch
                failed[row.study_id] = f"internal error: {type(e).__name__}: {e}"
            else:
                done.append(row.study_id)
                state.unlink(missing_ok=True)
                continue
            if (folder / MARKER).is_file():  # an earlier interrupted attempt of ours
                shutil.rmtree(folder, ignore_errors=True)
            out_dir.write_text(state.relative_to(out_dir.path), _one_line(failed[row.study_id]) + "\n")
        ctx.barrier()
        summary = write_summary(out_dir, rows) if ctx.is_main else None
    finally:
        shutdown_distributed()
    return BatchResult(done, skipped, failed, summary)


def write_summary(out: OutputDir, rows: list[ManifestRow]) -> Path:
    """Write ``summary.csv`` and ``failures.csv`` from the study folders and failure notes in ``out``."""
    summary, failures = [], []
    for row in rows:
        report = out.path / row.study_id / "report.json"
        state = out.path / STATE_DIR / f"{row.study_id}.txt"
        entry: dict[str, Any] = {"study_id": row.study_id, "status": "ok", "reason": ""}
        if report.is_file():
            rep = json.loads(report.read_text())
            entry.update({col: _pick(rep, keys) for col, keys in SUMMARY_COLUMNS})
        else:
            entry["status"] = "failed" if state.is_file() else "not run"
            entry["reason"] = state.read_text().strip() if state.is_file() else "not run yet (interrupted?)"
            failures.append({"study_id": row.study_id, "dicom": row.dicom, "reason": entry["reason"]})
        summary.append(entry)
    columns = ["study_id", "status", "reason", *(c for c, _ in SUMMARY_COLUMNS)]
    out.write_text(SUMMARY_CSV, _csv(summary, columns))
    out.write_text(FAILURES_CSV, _csv(failures, ["study_id", "dicom", "reason"]))
    return out.file(SUMMARY_CSV)


def _remove_leftovers(out: Path) -> None:
    """Temporary files that a killed run left in the batch folder and its failure notes (a study folder
    without ``report.json`` is cleared anyway when its study runs again)."""
    for folder in (out, out / STATE_DIR):
        for tmp in folder.glob(f".*{PART}"):
            tmp.unlink(missing_ok=True)


def _shared_key(ctx) -> bytes:
    """32 random bytes of rank 0, known to every rank (the UID key of --anonymize)."""
    import torch

    mine = torch.tensor(list(os.urandom(32)) if ctx.is_main else [0] * 32)
    return bytes(ctx.all_sum(mine).round().to(torch.uint8).tolist())


def _typed(options: dict[str, str]) -> dict[str, Any]:
    """Manifest cells -> PredictOptions keyword arguments."""
    out: dict[str, Any] = dict(options)
    try:
        for k, cast in (("target_ef", float), ("source_frame", int), ("frames", int)):
            if k in out:
                out[k] = cast(out[k])
    except ValueError as e:
        raise InputError(f"manifest value is not a number: {e}") from None
    return out


def _resolve(manifest: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else manifest.parent / p


def _pick(d: Any, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return ""
        d = d[k]
    return d


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


__all__ = ["BatchResult", "ManifestRow", "predict_batch", "read_manifest", "write_summary"]
