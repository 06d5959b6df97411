"""Faults: ``predict-batch`` killed with SIGKILL and started again, a read-only and a full output location.

The read-only and full locations are real where the test can make them (a read-only or a tiny tmpfs mounted
by root), else the closest honest stand-in: a chmod 0555 folder for a non-root user, and RLIMIT_FSIZE (the
write fails with EFBIG, as on a file system whose file size limit is reached) for the full disk.
"""

from __future__ import annotations

import fcntl
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import pytest
from hardening_files import (
    ENV,
    assert_complete_study,
    checksums,
    echokdm_inprocess,
    leftovers,
    one_error_line,
    read_csv,
    write_manifest,
)

#: the good studies: three, so that a kill after the first leaves two to do (one per torchrun rank)
GOOD = [f"s{i}" for i in range(3)]


@pytest.fixture(scope="module")
def batch_inputs(tmp_path_factory) -> Path:
    """Three small phantom studies (96x96, 20 frames, one beat; DICOM + true labels), one non-DICOM ``bad.dcm``
    and the manifest ``studies.csv`` listing them (bad third)."""
    from echokdm.io import write_cine_dicom, write_label_sequence
    from echokdm.labels import camus_labels
    from echokdm.phantom import sample_params, simulate

    root = tmp_path_factory.mktemp("batch_inputs")
    rows = []
    for i, sid in enumerate(GOOD):
        lp = simulate(sample_params(20 + i, size=96, frames=20, n_beats=1))
        write_cine_dicom(
            root / f"{sid}.dcm",
            (lp.frames * 255).round().astype(np.uint8),
            frame_time_ms=lp.frame_time_ms,
            spacing_mm=lp.spacing_mm,
        )
        write_label_sequence(root / f"{sid}.nii.gz", camus_labels(lp.labels), lp.spacing_mm)
        rows.append((sid, f"{sid}.dcm", f"{sid}.nii.gz"))
    (root / "bad.dcm").write_text("this is not a DICOM file")
    rows.insert(2, ("bad", "bad.dcm", ""))
    write_manifest(root / "studies.csv", rows)
    return root


def batch_command(inputs: Path, out: Path, weights: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "echokdm",
        "predict-batch",
        "--manifest",
        str(inputs / "studies.csv"),
        "--out",
        str(out),
        "--steps",
        "2",
        "--weights",
        str(weights),
    ]


def kill_after_first_study(cmd: list[str], out: Path, group: bool = False) -> dict[str, os.stat_result]:
    """Start the batch ``cmd`` writing to ``out`` and SIGKILL it (``group``: its whole process group) right
    after the first study is finished; returns the finished studies' report.json stats."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                            start_new_session=group)
    deadline = time.monotonic() + 400
    while not any(out.glob(".done/*")):
        assert proc.poll() is None, "the batch ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    return {p.name: (out / p.name / "report.json").stat() for p in out.glob(".done/*")}


def wait_for_unlock(out: Path, timeout: float = 400) -> None:
    """Wait until no process holds a lock on the batch folder's markers (``.echokdm``, ``.echokdm.rank<r>``): the
    orphaned ranks of a killed torchrun have ended (polling the locks costs nothing; relaunching torchrun to
    find out costs three interpreters)."""
    deadline = time.monotonic() + timeout
    for marker in sorted(out.glob(".echokdm*")):
        fd = os.open(marker, os.O_RDONLY)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    assert time.monotonic() < deadline, f"{marker} still locked after {timeout} s"
                    time.sleep(0.02)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def assert_every_study_done_once(out: Path, finished: dict[str, os.stat_result]) -> None:
    """After the restart: the studies finished before the kill were not run again, every good study is complete
    and readable, nothing is half-written, and the summary lists every study in manifest order."""
    for sid, stat in finished.items():
        now = (out / sid / "report.json").stat()
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    for sid in GOOD:
        assert_complete_study(out / sid)
    assert leftovers(out) == []
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and p.name not in (".failed", ".done")) == GOOD
    summary = read_csv(out / "summary.csv")
    assert [row["study_id"] for row in summary] == ["s0", "s1", "bad", "s2"]
    assert {row["study_id"]: row["status"] for row in summary} == {**dict.fromkeys(GOOD, "ok"), "bad": "failed"}


@pytest.mark.slow
def test_sigkill_and_restart_leave_every_study_done_once(batch_inputs, tiny_weights, tmp_path):
    before = checksums(batch_inputs)
    out = tmp_path / "batch"
    cmd = batch_command(batch_inputs, out, tiny_weights)
    finished = kill_after_first_study(cmd, out)
    assert 1 <= len(finished) < len(GOOD)
    # what a kill in the middle of writing leaves, made certain: a study folder with half of its files and
    # orphaned temporary files in the batch folder, the failure notes and a study folder
    todo = [s for s in GOOD if s not in finished]
    half = out / todo[-1]
    if not half.exists():
        half.mkdir()
        (half / ".echokdm").touch()
    (half / "flow.npy").write_bytes(b"\x93NUMPY half")
    (half / ".prediction.dcm.k1ll3d.dcm.part").write_bytes(b"DICM half")
    (out / ".summary.csv.k1ll3d.csv.part").write_text("study_id,sta")
    (out / ".failed").mkdir(exist_ok=True)
    (out / ".failed" / ".bad.txt.k1ll3d.txt.part").write_text("half a rea")

    r = echokdm_inprocess(*cmd[3:])  # the restart: in this process (the kill needed a child, the restart does not)
    assert r.returncode == 1, r.stderr  # the bad study fails
    assert f"{len(todo)} predicted, {len(finished)} already done, 1 failed" in r.stdout, r.stderr
    assert_every_study_done_once(out, finished)
    failures = read_csv(out / "failures.csv")
    assert [f["study_id"] for f in failures] == ["bad"] and "not a DICOM file" in failures[0]["reason"]
    assert checksums(batch_inputs) == before


@pytest.mark.slow
def test_sigkill_of_torchrun_group_and_immediate_restart(batch_inputs, tiny_weights, tmp_path):
    """torchrun starts its ranks in their own sessions: killing torchrun's process group leaves them running.
    A restart at once must not run a second batch beside them (one clear line naming the running one) and,
    once they are gone, ends with every study done exactly once with every file."""
    out = tmp_path / "batch"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd = [*launcher, *batch_command(batch_inputs, out, tiny_weights)[1:]]
    finished = kill_after_first_study(cmd, out, group=True)
    refusals = []
    while True:  # restart at once, and again once the orphaned ranks let go of the folder
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV)
        if "in use by another echokdm run" not in r.stderr:
            break
        refusals.append(r.stderr)
        assert len(refusals) < 5, r.stderr
        wait_for_unlock(out)
    print(f"killed after {len(finished)} finished; {len(refusals)} restart(s) refused while orphans ran")
    for err in refusals:
        line = next(x for x in err.splitlines() if "in use" in x)
        assert "echokdm: error: " in line and "pid " in line and "predict-batch" in line, err
    assert "Traceback" not in r.stderr and "ChildFailedError" not in r.stderr, r.stderr
    assert_every_study_done_once(out, finished)


def test_second_batch_into_a_running_one_is_refused(batch_inputs, tiny_weights, tmp_path):
    out = tmp_path / "batch"
    cmd = batch_command(batch_inputs, out, tiny_weights)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.monotonic() + 300
        while not (out / ".echokdm").is_file() or not (out / ".echokdm").read_text():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        r = echokdm_inprocess(*cmd[3:])  # the lock is between processes: this one and the holder
        line = one_error_line(r)
        assert r.returncode == 2 and "in use by another echokdm run" in line and f"pid {proc.pid}" in line, line
    finally:
        proc.kill()
        proc.wait()
    r = echokdm_inprocess(*cmd[3:], "--steps", "1")  # the killed holder's lock went with it: never stale
    assert "in use" not in r.stderr and r.returncode == 1, r.stderr


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process cannot write to: a read-only tmpfs (root), chmod 0555 (other users), or a folder
    under /sys (root where mounting is not allowed). Yields (folder, how)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder, "chmod"
        folder.chmod(0o755)
    elif _mount(folder, "ro,size=64k"):
        yield folder, "read-only mount"
        subprocess.run(["umount", str(folder)], check=True)
    else:
        yield Path("/sys/echokdm-test"), "sysfs"


@pytest.fixture
def full(tmp_path):
    """Yields (folder, limit, reason): a 96 KiB tmpfs (root; writes fail with ENOSPC) and no limit, or a plain
    folder and a context in which this process may write no file beyond 96 KiB (writes fail with EFBIG)."""
    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() == 0 and _mount(folder, "size=96k"):
        yield folder, nullcontext(), "No space left on device"
        subprocess.run(["umount", str(folder)], check=True)
    else:
        yield folder, file_size_limit(96 * 1024), "File too large"


@contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """Files this process writes may not grow beyond ``size`` bytes (RLIMIT_FSIZE; Python ignores SIGXFSZ, so the
    write fails with EFBIG as on a file system whose file size limit is reached)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _mount(folder: Path, options: str) -> bool:
    if shutil.which("mount") is None:
        return False
    return (
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode
        == 0
    )


def _input_args(command: str, inputs: Path) -> list:
    """The input options of ``predict`` (one study with its segmentation) or ``predict-batch`` (the manifest)."""
    if command == "predict":
        return ["--dicom", inputs / "s0.dcm", "--seg", inputs / "s0.nii.gz"]
    return ["--manifest", inputs / "studies.csv"]


@pytest.mark.parametrize("command", ["predict", "predict-batch"])
def test_read_only_output_is_one_clear_error(command, unwritable, batch_inputs, tiny_weights):
    folder, how = unwritable
    before = checksums(batch_inputs)
    out = folder / "out"
    source = _input_args(command, batch_inputs)
    r = echokdm_inprocess(command, *source, "--steps", 1, "--weights", tiny_weights, "--out", out)
    assert r.returncode == 2, (how, r.stdout, r.stderr)
    line = one_error_line(r)
    assert line.startswith("echokdm: error:") and "cannot write" in line and str(out) in line, (how, line)
    assert not out.exists()
    assert checksums(batch_inputs) == before


@pytest.mark.parametrize("command", ["predict", "predict-batch"])
def test_full_disk_is_one_clear_error_and_leaves_nothing(command, full, batch_inputs, tiny_weights):
    folder, limit, reason = full
    before = checksums(batch_inputs)
    out = folder / "out"
    source = _input_args(command, batch_inputs)
    with limit:
        r = echokdm_inprocess(command, *source, "--steps", 1, "--weights", tiny_weights, "--out", out)
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = one_error_line(r)
    assert line.startswith("echokdm: error: cannot write") and reason in line, line
    # nothing partial: no study folder (predict removes the folder it made; the batch keeps only its marker)
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []
    assert left in ([], [".echokdm"]), left
    assert checksums(batch_inputs) == before

