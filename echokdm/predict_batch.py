"""What ``echokdm predict-batch`` does: :func:`echokdm.predict.predict_study` for every study of a manifest.

The manifest is a CSV with the columns ``study_id`` and ``dicom`` and, optionally, the per-study options
``phase``, ``target_ef``, ``keypoints``, ``seg``, ``source_frame`` and ``frames`` (an empty cell keeps the
default; relative paths are relative to the manifest's folder). Each study is written to ``OUT/<study_id>/``.

- Sharding: under ``torchrun`` rank ``r`` of ``W`` takes studies ``r, r + W, ...`` (``RANK`` / ``WORLD_SIZE``).
- One batch at a time: rank 0 holds an exclusive ``flock`` on the folder's ``.echokdm`` marker and every other
  rank one on ``.echokdm.rank<r>``; a second batch into the folder stops with one line naming the running one
  (pid, start, command), also while ranks of a killed torchrun still run. A killed holder's lock goes with it.
  Ranks whose torchrun died stop after their current study.
- Resuming: a study is finished when its completion marker ``.done/<study_id>`` exists, written after every
  file of the study; the others (failed or interrupted) are run again from scratch. Every file is written
  atomically, so a batch killed at any moment (even SIGKILL) and started again ends with every study done
  once with every file; the temporary files a killed run leaves are removed when the batch starts again.
- Output apart from input: an output folder that holds the manifest or an input of a study (or lies in an
  input folder) is refused before anything is written.
- Models: loaded when the first study to predict has read its input (a batch of bad inputs never waits for
  them), then kept for the others; weights that cannot be loaded stop the batch with that one error.
- Failures: a bad study never stops the batch; its folder is removed and its one-line reason kept until it
  succeeds. When every rank is done, rank 0 writes ``summary.csv`` (one row per study: status and the main
  numbers) and ``failures.csv`` (study, input, reason). An unusable output location (read-only, full) stops
  the batch with that one error: every further study would fail the same way.
- ``anonymize``: every ``prediction.dcm`` is de-identified with one :class:`~echokdm.io.anonymize.Anonymizer`
  (its key shared by all ranks), so studies of one run that share an original UID share its replacement.
- DICOMweb (instead of a manifest, see :mod:`echokdm.pacs`): the ultrasound cines of the given studies (or of
  all studies) are the rows, each in ``OUT/<SOP Instance UID>/`` (``cine-<hash>`` with ``anonymize``), retrieved
  only while it is predicted; ``instances.csv`` lists every instance found and what was done with it. With
  ``store`` the DICOM results of each study go back into its study (STOW-RS) and ``stored.json`` notes it; a
  refused store is that study's failure but keeps its results, and the next run stores them. A server that
  cannot be reached stops the batch (every further study would fail the same way); run it again to resume.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
import shutil
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echokdm.errors import EchoKDMError, InputError, OutputError, RemoteError, StoreError
from echokdm.outputs import MARKER, PART, OutputDir, hold_lock

if TYPE_CHECKING:
    from echokdm.pacs import DicomWeb, DicomWebBatch
    from echokdm.predict import KDMPredictor

REQUIRED = ("study_id", "dicom")
OPTIONAL = ("phase", "target_ef", "keypoints", "seg", "source_frame", "frames")
SUMMARY_CSV, FAILURES_CSV, INSTANCES_CSV = "summary.csv", "failures.csv", "instances.csv"
#: what a batch stopped by an unreachable server says
RESUME = "finished studies are kept: run the same command again to resume"
#: where the reasons of failed studies wait for the summary (hidden: not a result)
STATE_DIR = ".failed"
#: where the completion markers of finished studies lie (written after all of a study's files)
DONE_DIR = ".done"
#: (column, path in report.json: keys, or indices of lists) of summary.csv
SUMMARY_COLUMNS = (
    ("source_frame", ("source_frame",)),
    ("target_frame", ("target_frame",)),
    ("ed_frame", ("phases", "beat", 0)),  # an ES frame before the ED frame: ED and ES of neighbouring beats
    ("es_frame", ("phases", "beat", 1)),
    ("ef_source_beat", ("ef", "source_beat")),
    ("ef_requested", ("ef", "requested")),
    ("ef_target_keypoints", ("ef", "target_keypoints")),
    ("ef_prediction", ("ef", "prediction")),
    ("ef_consistency", ("ef", "consistency", "seg_vs_keypoints")),
    ("ef_check_kept", ("ef_check", "kept")),  # "second": made again with K2F held to the keypoints (EF check)
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
    error: str | None = None  #: why the row cannot be run (the study fails with it; the batch goes on)


@dataclass
class BatchResult:
    """Outcome of the studies of this rank (and, on rank 0, the summary files).

    Attributes:
        done: studies predicted by this run.
        skipped: studies already finished before this run.
        failed: study id -> one-line reason.
        summary: path of summary.csv (rank 0) or None.
        not_predicted: DICOMweb instances that are not cines to predict -> why (see instances.csv).
        neighbouring_beats: finished studies whose ED and ES come from neighbouring beats (rank 0).
    """

    done: list[str]
    skipped: list[str]
    failed: dict[str, str]
    summary: Path | None
    not_predicted: dict[str, str] = field(default_factory=dict)
    neighbouring_beats: list[str] = field(default_factory=list)


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
    columns = {c for c in rows[0] if c is not None}
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
        error = None
        if sid in (SUMMARY_CSV, FAILURES_CSV):
            error = f"manifest {p} line {line}: study_id {sid!r} is the name of a batch file; rename the study"
        elif not (r["dicom"] or "").strip():
            error = f"manifest {p} line {line}: the dicom cell is empty"
        elif r.get(None):
            error = f"manifest {p} line {line}: {len(r[None])} cell(s) more than the header's {len(columns)} columns"
        out.append(ManifestRow(sid, str(_resolve(p, (r["dicom"] or "").strip())), opts, error))
    return out


def predict_batch(
    manifest: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    dicomweb: DicomWeb | None = None,
    studies: Sequence[str] = (),
    store: bool = False,
    steps: int | None = None,
    k2f_steps: int | None = None,
    ef_check: bool = True,
    seed: int = 0,
    device: str = "auto",
    weights=None,
    predictor=None,
    command: str | None = None,
    anonymize: bool = False,
) -> BatchResult:
    """Predict every study of ``manifest`` (or every cine found on ``dicomweb``) into ``out/<study_id>/`` (this
    rank's share under torchrun).

    Args:
        manifest: the studies (see the module docstring), or None with ``dicomweb``.
        out: the batch folder (created, or resumed when it is an earlier batch of echokdm).
        dicomweb: a DICOMweb server to take the cines from instead of a manifest.
        studies: Study Instance UIDs on ``dicomweb`` (default: all its studies).
        store: store the DICOM results back into their studies on ``dicomweb``.
        steps: denoising steps of F2I (default :data:`echokdm.defaults.DEFAULT_STEPS`).
        k2f_steps: denoising steps of K2F (default :data:`echokdm.defaults.K2F_STEPS`).
        ef_check: run the EF check (:mod:`echokdm.predict.ef_check`).
        seed: sampling seed of every study.
        device: ``auto``, ``cpu``, ``cuda`` (each rank takes its local GPU) or ``cuda:N``.
        weights: :class:`echokdm.predict.PredictWeights` (default: shipped).
        predictor: already loaded models (instead of ``weights``/``device``).
        command: command line recorded in every report (none with ``anonymize``).
        anonymize: de-identify the DICOM outputs and keep input paths out of the reports (see the module docstring).

    Returns:
        This rank's :class:`BatchResult`.

    Raises:
        InputError: a bad manifest or combination of options; OutputError: an unusable batch folder (also when it
            turns read-only or full during the batch); RemoteError: a DICOMweb server that cannot be reached or
            refuses to search or retrieve. Single studies never raise.
    """
    from echokdm.defaults import DEFAULT_STEPS, K2F_STEPS

    _check_source(manifest, dicomweb, studies, store, anonymize)
    rows = read_manifest(manifest) if manifest is not None else []
    paths = [v for r in rows if not r.error for v in (r.dicom, r.options.get("keypoints"), r.options.get("seg"))]
    OutputDir.check(out, resume=True, inputs=[manifest, *paths])
    from echokdm.io.anonymize import Anonymizer  # torch once the manifest and folder are good; the models at need
    from echokdm.pacs import DicomWebBatch
    from echokdm.predict import PredictOptions, predict_study
    from echokdm.progress import progress
    from echokdm.train.distributed import init_distributed, shutdown_distributed

    remote, found, out_dir, locks = None, {}, None, []
    ctx = init_distributed(device)
    try:
        out_dir, locks = _lock_batch(out, ctx)
        if dicomweb is not None:
            remote = DicomWebBatch(dicomweb, out_dir.path, pseudonymous=anonymize)
            found = remote.instances(studies)
            rows = [
                ManifestRow(name, "" if anonymize else i.path, {}) for name, i in found.items() if not i.skip_reason
            ]
            if ctx.is_main:
                columns, listing = remote.listing(found)
                out_dir.write_text(INSTANCES_CSV, _csv(listing, columns))
        anonymizer = Anonymizer(_shared_key(ctx)) if anonymize else False

        @functools.cache
        def models() -> KDMPredictor:
            from echokdm.predict import KDMPredictor

            try:
                return predictor or KDMPredictor.from_weights(weights, str(ctx.device))
            except EchoKDMError as e:  # not the study's: every further study would fail the same way
                raise _ModelsError(e) from e

        done, skipped, failed = [], [], {}
        launcher = os.getppid()
        for row in progress(rows[ctx.rank :: ctx.world_size], "predict-batch"):
            if os.environ.get("TORCHELASTIC_RUN_ID") and os.getppid() != launcher:
                raise OutputError("torchrun stopped (killed?): this rank stops too; start the batch again")
            folder = out_dir.path / row.study_id
            state = out_dir.path / STATE_DIR / f"{row.study_id}.txt"
            if is_done(out_dir.path, row.study_id):
                skipped.append(row.study_id)
                if store and not remote.stored(folder):
                    _store(remote, folder, row.study_id, state, out_dir, failed)
                continue
            try:
                if row.error:
                    raise InputError(row.error)
                if _foreign(folder):
                    raise InputError(f"{folder} exists and was not made by echokdm; move it away")
                opts = PredictOptions(
                    **_typed(row.options), steps=steps or DEFAULT_STEPS, k2f_steps=k2f_steps or K2F_STEPS,
                    ef_check=ef_check, seed=seed,
                )
                (out_dir.path / DONE_DIR / row.study_id).unlink(missing_ok=True)  # a stale marker of a lost study
                with remote.local(row.study_id, found[row.study_id]) if remote else nullcontext(row.dicom) as cine:
                    predict_study(cine, folder, opts, models, overwrite=True, command=command, anonymize=anonymizer)
                out_dir.write_text(Path(DONE_DIR) / row.study_id, "")  # last: the study is finished
            except OutputError:
                raise
            except _ModelsError as e:
                raise e.args[0] from None
            except RemoteError as e:
                raise RemoteError(f"{e}; {RESUME}") from None
            except EchoKDMError as e:
                failed[row.study_id] = str(e)
            except Exception as e:  # one bad study never stops the batch
                failed[row.study_id] = f"internal error: {type(e).__name__}: {e}"
            else:
                done.append(row.study_id)
                state.unlink(missing_ok=True)
                if store:
                    _store(remote, folder, row.study_id, state, out_dir, failed)
                continue
            if (folder / MARKER).is_file():  # an earlier interrupted attempt of ours
                shutil.rmtree(folder, ignore_errors=True)
            out_dir.write_text(state.relative_to(out_dir.path), _one_line(failed[row.study_id]) + "\n")
        ctx.barrier()
        summary, apart = write_summary(out_dir, rows, store) if ctx.is_main else (None, [])
    finally:  # a batch stopped by an error (server gone, disk full) lets the next run resume at once
        for fd in locks:
            os.close(fd)
        if out_dir is not None:
            out_dir.release()
        shutdown_distributed()
    not_predicted = {name: i.skip_reason for name, i in found.items() if i.skip_reason} if remote else {}
    return BatchResult(done, skipped, failed, summary, not_predicted, apart)


class _ModelsError(Exception):
    """The batch's models failed to load while a study ran (``args[0]``: the error; it stops the batch)."""


def is_done(out: Path, study_id: str) -> bool:
    """True when the study's completion marker, written after every file of the study, exists."""
    return (out / DONE_DIR / study_id).is_file() and (out / study_id / "report.json").is_file()


def _lock_batch(out: str | os.PathLike, ctx) -> tuple[OutputDir, list[int]]:
    """Make sure no other batch runs in ``out`` and keep it so: rank 0 locks the folder (its marker) and checks
    that no rank of an earlier batch still holds its lock (torchrun killed, ranks left running); then every
    other rank locks ``.echokdm.rank<r>``. Rank 0 also removes the temporary files a killed run left.

    Raises:
        OutputError: on every rank, when another batch runs there (rank 0's message names it).
    """
    error, out_dir, locks = "", None, []
    if ctx.is_main:
        try:
            out_dir = OutputDir(out, resume=True)
            for f in sorted(out_dir.path.glob(f"{MARKER}.rank*")):
                os.close(hold_lock(f, f"batch folder {out}"))
            _remove_leftovers(out_dir.path)
        except EchoKDMError as e:
            error = str(e)
            if out_dir is not None:
                out_dir.release()
    if not ctx.all_ok(not error):
        raise OutputError(error or f"batch folder {out} cannot be used (see rank 0)")
    if not ctx.is_main:
        out_dir = OutputDir(out, resume=True, lock=False)
        locks.append(hold_lock(out_dir.path / f"{MARKER}.rank{ctx.rank}", f"batch folder {out}"))
    return out_dir, locks


def write_summary(out: OutputDir, rows: list[ManifestRow], store: bool = False) -> tuple[Path, list[str]]:
    """Write ``summary.csv`` and ``failures.csv`` from the study folders and failure notes in ``out`` (with
    ``store``, a ``stored`` column and the studies whose results were not stored); returns the path of
    ``summary.csv`` and the finished studies whose ES frame precedes their ED frame (neighbouring beats)."""
    from echokdm.pacs import DicomWebBatch

    summary, failures = [], []
    for row in rows:
        report = out.path / row.study_id / "report.json"
        state = out.path / STATE_DIR / f"{row.study_id}.txt"
        entry: dict[str, Any] = {"study_id": row.study_id, "status": "ok", "reason": ""}
        if is_done(out.path, row.study_id):
            rep = json.loads(report.read_text())
            entry.update({col: _pick(rep, keys) for col, keys in SUMMARY_COLUMNS})
            if store:
                entry["stored"] = "yes" if DicomWebBatch.stored(report.parent) else "no"
                if entry["stored"] == "no":
                    entry["status"] = "not stored"
                    entry["reason"] = state.read_text().strip() if state.is_file() else "not stored yet (interrupted?)"
                    failures.append({"study_id": row.study_id, "dicom": row.dicom, "reason": entry["reason"]})
        else:
            entry["status"] = "failed" if state.is_file() else "not run"
            entry["reason"] = state.read_text().strip() if state.is_file() else "not run yet (interrupted?)"
            failures.append({"study_id": row.study_id, "dicom": row.dicom, "reason": entry["reason"]})
        summary.append(entry)
    columns = ["study_id", "status", "reason", *(c for c, _ in SUMMARY_COLUMNS), *(["stored"] if store else [])]
    out.write_text(SUMMARY_CSV, _csv(summary, columns))
    out.write_text(FAILURES_CSV, _csv(failures, ["study_id", "dicom", "reason"]))
    apart = [e["study_id"] for e in summary if e.get("es_frame", "") != "" and e["es_frame"] < e["ed_frame"]]
    return out.file(SUMMARY_CSV), apart


def _foreign(folder: Path) -> bool:
    """True when ``folder`` is something of someone else's (a file, or a non-empty folder without our marker)."""
    if not folder.exists() and not folder.is_symlink():
        return False
    return folder.is_symlink() or not folder.is_dir() or (any(folder.iterdir()) and not (folder / MARKER).is_file())


def _remove_leftovers(out: Path) -> None:
    """Temporary files that a killed run left in the batch folder, its failure notes and completion markers,
    and cines it was retrieving (a study folder without ``report.json`` is cleared anyway when its study runs
    again)."""
    from echokdm.pacs import RETRIEVED

    for folder in (out, out / STATE_DIR, out / DONE_DIR):
        for tmp in folder.glob(f".*{PART}"):
            tmp.unlink(missing_ok=True)
    shutil.rmtree(out / RETRIEVED, ignore_errors=True)


def _check_source(manifest, dicomweb, studies: Sequence[str], store: bool, anonymize: bool) -> None:
    if (manifest is None) == (dicomweb is None):
        raise InputError(
            "give the studies either as a manifest (--manifest) or on a DICOMweb server (--dicomweb), one of them"
        )
    if dicomweb is None and (studies or store):
        raise InputError("--study and --store need a DICOMweb server (--dicomweb)")
    if store and anonymize:
        raise InputError(
            "--store puts results back into the original studies, which --anonymize would de-identify; use one of them"
        )


def _store(
    remote: DicomWebBatch, folder: Path, study_id: str, state: Path, out: OutputDir, failed: dict[str, str]
) -> None:
    """Store a finished study's results; a refusal is the study's failure (its results stay)."""
    try:
        remote.store(folder)
    except StoreError as e:
        failed[study_id] = str(e)
        out.write_text(state.relative_to(out.path), _one_line(str(e)) + "\n")
    except RemoteError as e:
        raise RemoteError(f"{e}; {RESUME}") from None
    else:
        state.unlink(missing_ok=True)


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


def _pick(d: Any, keys: tuple[str | int, ...]) -> Any:
    for k in keys:
        if isinstance(k, int) and isinstance(d, list) and k < len(d):
            d = d[k]
        elif isinstance(k, str) and isinstance(d, dict) and d.get(k) is not None:
            d = d[k]
        else:
            return ""
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
