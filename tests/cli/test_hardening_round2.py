"""Issue 18, hardening round 2: locks, outputs apart from inputs, bad studies of a batch, privacy, physical
ranges, impossible results, nothing outside --out, internal errors and the contract's details.

The corpus cases added for the issue (odd headers, pipes, a DICOMDIR, ...) run in test_bad_inputs.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from broken_inputs import run_inprocess
from hardening_files import ENV, checksums, echokdm_inprocess, read_csv, sealed_env, write_manifest

from echokdm.config import load_config
from echokdm.errors import InputError, OutputError
from echokdm.outputs import MARKER, OutputDir, json_text
from echokdm.predict.report import implausible_efs
from echokdm.predict_batch import read_manifest


def _error(status: int, err: str, *words: str) -> str:
    """The one error line of a refused command, holding ``words``."""
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("echokdm: error: "), (status, err)
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# ---- 1 and 6: one writer per output folder; a killed holder leaves no stale lock ----------------------------
def test_second_writer_into_an_output_folder_is_refused(tmp_path):
    first = OutputDir(tmp_path / "o")
    (tmp_path / "o" / "result.txt").write_text("first")
    with pytest.raises(OutputError, match=f"in use by another echokdm run \\(pid {os.getpid()} since "):
        OutputDir(tmp_path / "o", overwrite=True)
    assert (tmp_path / "o" / "result.txt").read_text() == "first"  # the refused run cleared nothing
    first.release()
    OutputDir(tmp_path / "o", overwrite=True).release()
    assert not (tmp_path / "o" / "result.txt").exists()


def test_lock_of_a_killed_holder_is_not_stale(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from echokdm.outputs import OutputDir; o = OutputDir({str(tmp_path / 'o')!r}); "
         "print('held', flush=True); import time; time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=f"pid {holder.pid}"):
            OutputDir(tmp_path / "o", overwrite=True)
    finally:
        holder.kill()
        holder.wait()
    OutputDir(tmp_path / "o", overwrite=True).release()


# ---- 2: an output folder never holds an input; no empty --out ----------------------------------------------
@pytest.fixture
def out_with_inputs(phantom_study, tmp_path) -> Path:
    """An earlier echokdm output folder that holds the loop and its labels."""
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).touch()
    shutil.copy(phantom_study.dicom, out / "loop.dcm")
    shutil.copy(phantom_study.labels_nii, out / "labels.nii.gz")
    return out


#: command line (out, weights, study) -> argv of a command whose input lies in --out
INSIDE_OUT = {
    "segment": lambda out, w, s: ["segment", "--dicom", f"{out}/loop.dcm"],
    "metrics-seg": lambda out, w, s: ["metrics", "--seg", f"{out}/labels.nii.gz"],
    "metrics-dicom": lambda out, w, s: ["metrics", "--seg", str(s.labels_nii), "--dicom", f"{out}/loop.dcm"],
    "predict": lambda out, w, s: ["predict", "--dicom", f"{out}/loop.dcm", "--weights", str(w)],
    "predict-seg": lambda out, w, s: ["predict", "--dicom", str(s.dicom), "--seg", f"{out}/labels.nii.gz"],
}


@pytest.mark.parametrize("case", sorted(INSIDE_OUT))
def test_overwrite_never_deletes_an_input_inside_out(case, out_with_inputs, tiny_weights, phantom_study):
    before = checksums(out_with_inputs)
    argv = INSIDE_OUT[case](out_with_inputs, tiny_weights, phantom_study)
    status, _, err = run_inprocess([*argv, "--out", str(out_with_inputs), "--overwrite"])
    _error(status, err, "holds the input")
    assert checksums(out_with_inputs) == before


def test_batch_folder_holding_the_manifest_is_refused(out_with_inputs):
    manifest = write_manifest(out_with_inputs / "m.csv", [("a", "loop.dcm", "labels.nii.gz")])
    status, _, err = run_inprocess(["predict-batch", "--manifest", str(manifest), "--out", str(out_with_inputs)])
    _error(status, err, "holds the input")


def test_out_inside_an_input_folder_of_frames_is_refused(tmp_path, phantom_study):
    import imageio.v3 as iio

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(phantom_study.frames[:4]):
        iio.imwrite(frames / f"f{i}.png", f)
    status, _, err = run_inprocess(["segment", "--dicom", str(frames), "--out", str(frames / "out")])
    _error(status, err, "lies inside the input folder")
    assert sorted(p.name for p in frames.iterdir()) == [f"f{i}.png" for i in range(4)]


@pytest.mark.parametrize("command", ["segment", "predict", "metrics", "phantom", "predict-batch"])
def test_empty_out_is_refused(command, phantom_study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("the current folder")
    inputs = {
        "segment": ["--dicom", str(phantom_study.dicom)],
        "predict": ["--dicom", str(phantom_study.dicom)],
        "metrics": ["--seg", str(phantom_study.labels_nii)],
        "phantom": ["--n", "1"],
        "predict-batch": ["--manifest", str(write_manifest(tmp_path / "m.csv", [("a", phantom_study.dicom, "")]))],
    }[command]
    overwrite = [] if command == "predict-batch" else ["--overwrite"]
    status, _, err = run_inprocess([command, *inputs, "--out", "", *overwrite])
    _error(status, err, "output folder is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "m.csv"]


# ---- 3 and 4: bad studies fail alone; no attribute value is ever shown ---------------------------------------
def test_manifest_rows_that_cannot_run_become_their_study_failures(tmp_path):
    (tmp_path / "m.csv").write_text(
        "study_id,dicom\nsummary.csv,a.dcm\nfailures.csv,a.dcm\nextra,a.dcm,surplus\nempty,\ngood,a.dcm\n"
    )
    rows = {r.study_id: r.error for r in read_manifest(tmp_path / "m.csv")}
    assert "name of a batch file" in rows["summary.csv"] and "name of a batch file" in rows["failures.csv"]
    assert "1 cell(s) more than the header" in rows["extra"]
    assert "dicom cell is empty" in rows["empty"]
    assert rows["good"] is None
    (tmp_path / "first.csv").write_text("study_id,dicom\na,a.dcm,surplus\n")  # an extra cell on the first row
    assert "more than the header" in read_manifest(tmp_path / "first.csv")[0].error


@pytest.fixture
def junk_weight_loop(phantom_study, tmp_path) -> Path:
    """The phantom loop with PatientWeight 'PHIWEIGHT75kg' (not a decimal string) and a patient name."""
    ds = pydicom.dcmread(phantom_study.dicom)
    ds.PatientWeight, ds.PatientName = "1.234567890123", "PHI^NAME"
    ds.save_as(tmp_path / "weight.dcm")
    data = (tmp_path / "weight.dcm").read_bytes().replace(b"1.234567890123", b"PHIWEIGHT75kg ")
    (tmp_path / "weight.dcm").write_bytes(data)
    return tmp_path / "weight.dcm"


def test_bad_studies_fail_alone_and_no_value_is_shown(junk_weight_loop, phantom_study, tiny_weights, tmp_path):
    out = tmp_path / "batch"
    (out / "foreign").mkdir(parents=True)
    (out / "foreign" / "theirs.txt").write_text("not ours")
    (out / MARKER).touch()
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "study_id,dicom,seg,frames\n"
        f"weight,{junk_weight_loop},{phantom_study.labels_nii},\n"
        f"summary.csv,{phantom_study.dicom},,\n"
        f"foreign,{phantom_study.dicom},,\n"
        f"huge,{phantom_study.dicom},,100000\n"
        f"extra,{phantom_study.dicom},,,surplus\n"
    )
    r = echokdm_inprocess("predict-batch", "--manifest", manifest, "--out", out, "--steps", 1, "--weights",
                          tiny_weights, "--anonymize", timeout=900)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "1 predicted, 0 already done, 4 failed" in r.stdout, (r.stdout, r.stderr)
    status = {row["study_id"]: (row["status"], row["reason"]) for row in read_csv(out / "summary.csv")}
    assert status["weight"] == ("ok", "")
    assert "name of a batch file" in status["summary.csv"][1]
    assert "was not made by echokdm" in status["foreign"][1]
    assert "frames must be an integer from 1 to 1000, got 100000" in status["huge"][1]
    assert "more than the header" in status["extra"][1]
    assert (out / "foreign" / "theirs.txt").read_text() == "not ours"
    shown = r.stdout + r.stderr + (out / "summary.csv").read_text() + (out / "failures.csv").read_text()
    assert "PHIWEIGHT" not in shown and "PHI^NAME" not in shown
    ds = pydicom.dcmread(out / "weight" / "prediction.dcm")
    assert "PatientWeight" not in ds and str(ds.PatientName) != "PHI^NAME"


def test_frames_beyond_memory_are_refused_before_work(monkeypatch):
    from echokdm.predict import study

    monkeypatch.setattr(study, "available_memory", lambda: 2**30)
    study.check_memory(10, (96, 96))
    with pytest.raises(InputError, match="need about .* GiB of memory; 1.0 GiB are available"):
        study.check_memory(1000, (720, 960))


# ---- 5: physical ranges at the edge; valid JSON -------------------------------------------------------------
def test_json_never_holds_nan_or_infinity():
    text = json_text({"a": float("inf"), "b": [float("nan"), 1.5], "c": {"d": float("-inf")}})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"JSON holds {c}")) == {
        "a": None, "b": [None, 1.5], "c": {"d": None}
    }


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--frame-time", "-5"], "--frame-time must be 1 to 2000 ms, got -5"),
        (["--frame-time", "1e-9"], "--frame-time must be"),
        (["--spacing", "0", "0.3"], "--spacing must be"),
        (["--spacing", "inf", "inf"], "--spacing must be"),
    ],
)
def test_metrics_options_out_of_physical_range(option, words, phantom_study, tmp_path):
    status, _, err = run_inprocess(["metrics", "--seg", str(phantom_study.labels_nii), *option, "--out",
                                    str(tmp_path / "o")])
    _error(status, err, words)
    assert not (tmp_path / "o").exists()


# ---- 6: impossible results are flagged -----------------------------------------------------------------------
def test_implausible_efs_are_listed():
    ef = {"source_beat": 55.0, "source_beat_area_length": 101.0, "target_keypoints": -819.6, "prediction": None}
    assert implausible_efs(ef) == ["source_beat_area_length", "target_keypoints"]
    assert implausible_efs({"prediction": float("nan")}) == ["prediction"]


# ---- 7: nothing outside --out, nothing extra on stderr -------------------------------------------------------
def test_nothing_is_written_outside_out(tmp_path):
    """``phantom``; ``predict`` and ``metrics`` are checked so in their own child runs (test_predict_cli.py,
    test_metrics_cli.py)."""
    with sealed_env(tmp_path) as env:
        r = subprocess.run([sys.executable, "-m", "echokdm", "phantom", "--n", "1", "--frames", "8", "--size", "64",
                            "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=900, env=env,
                           cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "o", "tmp"]


def test_relative_cache_dir_lies_inside_out(tmp_path):
    from echokdm.train.trainer import cache_inside

    assert cache_inside(tmp_path / "run", "cache") == str(tmp_path / "run" / "cache")
    assert cache_inside(tmp_path / "run", "/srv/cache") == "/srv/cache"
    assert cache_inside(tmp_path / "run", "") == ""


# ---- 8: internal errors and the hang --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["predict", "--sample", "--seed", str(2**64)], "'--seed': 18446744073709551616 is not in the range"),
        (["predict", "--sample", "--seed", "-1"], "'--seed'"),
        (["evaluate", "--seed", "-5", "--report", "{tmp}/r"], "'--seed': -5 is not in the range"),
        (["predict", "--sample", "--out", "{tmp}/afile"], "'--out': Directory"),
        (["predict", "--sample", "--frames", "100000", "--out", "{tmp}/o"], "frames must be an integer from 1 to"),
        (["predict", "--sample", "--k2f-steps", "0", "--out", "{tmp}/o"], "k2f_steps must be an integer from 1 to"),
    ],
)
def test_usage_errors_are_one_line(args, words, tmp_path):
    (tmp_path / "afile").write_text("a file")
    argv = [a.format(tmp=tmp_path) for a in args]
    if "--out" not in argv and argv[0] != "evaluate":
        argv += ["--out", str(tmp_path / "o")]
    status, _, err = run_inprocess(argv)
    assert status == 2 and len(err.strip().splitlines()) == 1 and words in err, err


@pytest.mark.parametrize(
    ("content", "words"),
    [("[1, 2, 3]", "holds a JSON list"), ("[" * 100000 + "]" * 100000, "nested too deeply"),
     ('{"format": "echokdm-keypoints", "version": 1, "n_keypoints": 40, "frames": [[1]]}', "not a valid")],
)
def test_bad_keypoint_files(content, words, phantom_study, tiny_weights, tmp_path):
    (tmp_path / "k.json").write_text(content)
    status, _, err = run_inprocess(["predict", "--dicom", str(phantom_study.dicom), "--keypoints",
                                    str(tmp_path / "k.json"), "--weights", str(tiny_weights), "--out",
                                    str(tmp_path / "o")])
    _error(status, err, "k.json", words)


@pytest.mark.parametrize(
    ("yaml_text", "words"),
    [
        ("train: {epochs: -1}", "epochs must be >= 1, got -1"),
        ("train: {epochs: 0}", "epochs must be >= 1"),
        ("train: {batch_size: 0}", "batch_size must be >= 1, got 0"),
        ("train: {lr: .nan}", "lr: expected a finite number, got nan"),
        ("train: {lr: .inf}", "expected a finite number"),
        ("model: {dropout: 2}", "dropout must be from 0 to 0.99, got 2.0"),
        ("model: {size: 0}", "size must be from 16 to 1024, got 0"),
        (b"train:\n  epochs: 1 \xff\n", "is not UTF-8 text"),
    ],
)
def test_bad_train_configs(yaml_text, words, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(yaml_text if isinstance(yaml_text, bytes) else yaml_text.encode())
    status, _, err = run_inprocess(["train", "seg", "--config", str(path), "--out", str(tmp_path / "o")])
    _error(status, err, words)
    assert not (tmp_path / "o").exists()


def test_config_ranges_apply_to_the_library_too(tmp_path):
    from echokdm.train.seg import SegRunConfig

    with pytest.raises(InputError, match="epochs must be >= 1"):
        load_config({"train": {"epochs": -1}}, SegRunConfig)


@pytest.mark.parametrize(
    ("option", "what"), [("--keypoints", "keypoint file"), ("--config", "config file"), ("--prior", "prior")]
)
def test_a_pipe_given_as_a_file_is_named_as_such(option, what, phantom_study, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    argv = {
        "--keypoints": ["predict", "--dicom", str(phantom_study.dicom), "--keypoints", str(tmp_path / "pipe"),
                        "--out", str(tmp_path / "o")],
        "--config": ["train", "seg", "--config", str(tmp_path / "pipe"), "--out", str(tmp_path / "o")],
        "--prior": ["evaluate", "--data", "phantom-test:1", "--task", "target-ef", "--prior", str(tmp_path / "pipe"),
                    "--report", str(tmp_path / "o")],
    }[option]
    status, _, err = run_inprocess(argv, timeout=60)
    _error(status, err, what, "is a pipe, socket or device")


def test_weights_option_pointing_at_a_file(phantom_study, tmp_path):
    status, _, err = run_inprocess(["predict", "--dicom", str(phantom_study.dicom), "--weights",
                                    str(phantom_study.dicom), "--out", str(tmp_path / "o")])
    _error(status, err, "is not a folder; --weights takes the folder")


# ---- 8 and 9: a non-UTF-8 path, progress lines, --debug after the sub-command ---------------------------------
def test_non_utf8_path_and_progress_lines(phantom_study, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("ECHOKDM_PROGRESS", "1")
    odd = os.fsencode(tmp_path) + b"/loop\xff.dcm"
    shutil.copyfile(phantom_study.dicom, odd)
    status, out, err = run_inprocess(["predict", "--dicom", os.fsdecode(odd), "--seg", str(phantom_study.labels_nii),
                                      "--steps", "1", "--weights", str(tiny_weights), "--out", str(tmp_path / "o")])
    assert status == 0, err
    for stage in ("read", "segment", "keypoints", "k2f", "f2i", "measure", "write"):
        assert f"predict: {stage} ..." in err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["ef"]["implausible"] == [k for k in ("source_beat", "source_beat_area_length",
                                                       "target_keypoints", "prediction")
                                           if report["ef"][k] is not None and not 0 <= report["ef"][k] <= 100]
    assert "loop" in (tmp_path / "o" / "report.csv").read_text(encoding="utf-8")
    monkeypatch.setenv("ECHOKDM_PROGRESS", "0")  # progress off: the same run prints no stage line
    status, out, err = run_inprocess(["predict", "--dicom", os.fsdecode(odd), "--seg", str(phantom_study.labels_nii),
                                      "--steps", "1", "--weights", str(tiny_weights), "--out", str(tmp_path / "o"),
                                      "--overwrite"])
    assert status == 0 and "predict:" not in err, err


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_sub_command(where, tmp_path):
    argv = ["info", str(tmp_path / "missing.dcm")]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    status, _, err = run_inprocess(argv)
    assert status == 2 and "Traceback" in err and err.strip().endswith("missing.dcm: no such file or folder")


def test_a_second_batch_waits_for_none(tmp_path, phantom_study, tiny_weights):
    """A batch refused for a running one names it and exits at once (no waiting)."""
    out = tmp_path / "batch"
    holder = OutputDir(out, resume=True)
    manifest = write_manifest(tmp_path / "m.csv", [("a", phantom_study.dicom, phantom_study.labels_nii)])
    t0 = time.monotonic()
    status, _, err = run_inprocess(["predict-batch", "--manifest", str(manifest), "--out", str(out), "--weights",
                                    str(tiny_weights)])
    holder.release()
    _error(status, err, "in use by another echokdm run", f"pid {os.getpid()}")
    assert time.monotonic() - t0 < 60
