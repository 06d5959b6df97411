"""Every CLI command that takes an input, on every broken input of ``tests/broken_inputs.py``: the expected
outcome per (command, case), one clear line on stderr, no traceback, bounded time, nothing partial left in the
output folder, inputs untouched. Plus hypothesis mutations of a real loop (pydicom's SonoSite cine).

Commands run in this process through :func:`echokdm.cli.main` (the console entry point); a few are checked
to behave the same in a child process, and the memory-bound cases under an address-space limit.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from broken_inputs import (
    CASES,
    SEG_CASES,
    Hang,
    all_runs,
    argv,
    build_case,
    digest,
    evaluate_folder,
    judge,
    make_base,
    run,
    run_inprocess,
    try_case,
    unreadable_is_readable,
)
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st
from pydicom.dataelem import DataElement

from echokdm.data import sample_path
from echokdm.errors import EchoKDMError
from echokdm.io import load_cine, read_cine

SONOSITE = sample_path("sonosite").read_bytes()
#: where the SonoSite file's pixel data element starts (header before, JPEG fragments after)
PIXELS_AT = SONOSITE.index(b"\xe0\x7f\x10\x00OB")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_base(tmp_path_factory.mktemp("bad_inputs_base"))


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("ECHOKDM_PROGRESS", "0")


@pytest.fixture(scope="module", autouse=True)
def _models_loaded_once():
    """The rows run predict and predict-batch hundreds of times on the same tiny weights: each set of weights is
    loaded once in this module (``KDMPredictor.from_weights`` memoized). Every row still runs the command through
    the console entry point; loading itself is tested in tests/models and tests/predict."""
    from echokdm.predict import KDMPredictor

    load, loaded = KDMPredictor.from_weights.__func__, {}

    def once(cls, weights=None, device="auto", precision="auto"):
        key = repr(weights), device, precision
        if key not in loaded:
            loaded[key] = load(cls, weights, device, precision)
        return loaded[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KDMPredictor, "from_weights", classmethod(once))
        yield


#: odd loops that the loader reads to the same frames and meta, bar the file name (each value unknown, with the
#: same warning if any; :func:`test_odd_loops_of_a_class_load_alike`)
LOAD_ALIKE = [
    ("frame_time_nan", "frame_time_inf", "frame_time_negative", "frame_time_zero"),
    ("spacing_nan", "pixel_spacing_negative", "spacing_negative", "spacing_vr_text", "spacing_zero"),
    ("spacing_inf", "spacing_huge", "spacing_tiny"),
]
#: commands that see a loop only through the loader (``read_cine`` / ``load_cine``): on the loops of one class of
#: :data:`LOAD_ALIKE` they run the same code, so they run on its first loop only
LOADER_ONLY = ("metrics", "evaluate")
SAME_RUN = {(command, case) for command in LOADER_ONLY for alike in LOAD_ALIKE for case in alike[1:]}


@pytest.mark.parametrize(("command", "case"), [run for run in all_runs() if run not in SAME_RUN])
def test_command_on_broken_input(command, case, base, tiny_weights, tmp_path):
    outcome, problems = try_case(command, case, tmp_path, base, tiny_weights)
    assert not problems, f"echokdm {command} on {case} ({(CASES.get(case) or SEG_CASES[case]).what}): {problems}"
    assert outcome.seconds < 60


def test_odd_loops_of_a_class_load_alike(base, tmp_path):
    def loaded(case):
        frames, meta = read_cine(build_case(case, tmp_path / case, base))
        return frames, {k: np.asarray(v).tolist() for k, v in meta.items() if k != "filename_or_obj"}

    for first, *others in LOAD_ALIKE:
        frames, meta = loaded(first)
        for case in others:
            again, other = loaded(case)
            np.testing.assert_array_equal(again, frames, err_msg=case)
            assert other == meta, (case, {k: (v, meta.get(k)) for k, v in other.items() if v != meta.get(k)})


def test_odd_values_are_reported_unknown_not_invented(base, tmp_path):
    def info(case):
        status, out, err = run_inprocess(["info", "--json", str(build_case(case, tmp_path / case, base))])
        assert status == 0 and err == "", err
        return json.loads(out, parse_constant=lambda c: pytest.fail(f"info --json of {case} holds {c}"))

    for case in ("frame_time_negative", "frame_time_nan", "frame_time_zero", "frame_time_inf", "frame_time_tiny",
                 "frame_time_vector_inf"):
        record = info(case)
        assert record["frame_time_ms"] is None and record["frame_time_source"] == "unknown", case
        assert record["frame_rate_hz"] is None and record["duration_s"] is None
    assert info("frame_time_vr_text")["frame_time_source"] == "CineRate"  # the next source in the standard's order
    for case in ("spacing_negative", "spacing_nan", "spacing_zero", "spacing_vr_text", "pixel_spacing_negative",
                 "spacing_inf", "spacing_huge", "spacing_tiny"):
        record = info(case)
        assert record["spacing_mm"] is None and record["spacing_source"] == "unknown", case
    record = info("single_frame")
    assert record["frames"] == 1 and record["is_loop"] is False


#: (command, case) pairs run again in a child process: same exit status and same stderr as in this process.
#: They include the outputs that only a real process shows: pydicom warnings, and what ITK and FFmpeg write
#: straight to the process's stderr.
SUBPROCESS_CHECKS = [
    ("info", "truncated_jpeg_tail"),
    ("info", "mhd_truncated"),
    ("info", "avi_truncated"),
    ("metrics-seg", "truncated_jpeg"),
    ("predict-batch", "text"),
    ("segment", "single_frame"),
    ("info", "frame_time_nan"),
]


@pytest.mark.parametrize(("command", "case"), SUBPROCESS_CHECKS)
def test_subprocess_behaves_as_in_process(command, case, base, tiny_weights, tmp_path):
    inproc, problems = try_case(command, case, tmp_path / "a", base, tiny_weights)
    assert not problems, problems
    child, problems = try_case(command, case, tmp_path / "b", base, tiny_weights, in_subprocess=True)
    assert not problems, problems
    assert child.status == inproc.status
    assert child.stderr.replace(str(tmp_path / "b"), "") == inproc.stderr.replace(str(tmp_path / "a"), "")
    assert child.left == inproc.left


#: cases that would allocate gigabytes if echokdm believed their headers
ENORMOUS = ["frames_huge_jpeg", "frames_huge_native", "enormous_dims", "nifti_enormous", "png_bomb"]


def info_capped(target: Path) -> subprocess.CompletedProcess:
    """``echokdm info TARGET`` in a child process whose address space is capped at 768 MiB: enough to describe
    the 30-frame SonoSite loop, far below what the enormous cases claim."""
    limit = 768 * 2**20

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "ECHOKDM_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "echokdm", "info", str(target)], capture_output=True, text=True,
                          timeout=120, env=env, preexec_fn=cap)


@pytest.fixture(scope="module")
def capped_info_works():
    """The cap lets a real loop through (so the refusals below are the cases', not the cap's); checked once."""
    r = info_capped(sample_path("sonosite"))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("case", ENORMOUS)
def test_enormous_claims_fail_fast_without_allocating(case, base, tmp_path, capped_info_works):
    r = info_capped(build_case(case, tmp_path, base))
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("echokdm: error: "), r.stderr
    assert CASES[case].message in r.stderr.lower()


def _without_dac_override() -> None:
    """In a child about to exec as root: drop the capabilities that let root read any file, so chmod 000 applies."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, from the bounding set (exec recomputes root's caps)
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


#: (command, exit status, stderr line) for a chmod-000 loop that this process cannot read
UNREADABLE = [
    ("info", 2, "echokdm: error: {path}: file cannot be read (permission denied)"),
    ("metrics", 2, "echokdm: error: {path}: file cannot be read (permission denied)"),
    ("metrics-seg", 2, "echokdm: error: {path}: file cannot be read (permission denied)"),
    ("manifest", 2, "echokdm: error: manifest {path} cannot be read: Permission denied"),
    ("predict-batch", 1, "failed unreadable: {path}: file cannot be read (permission denied)"),
]


@pytest.fixture(scope="module")
def unreadable_runs(base, tiny_weights, tmp_path_factory) -> dict[str, tuple[Path, Path, int, list[str]]]:
    """Each command of :data:`UNREADABLE` on its own chmod-000 loop: command -> (input, work folder, exit status,
    stderr lines). Where chmod 000 does not stop this process (root), they run in one child process of root
    without the capabilities that bypass file permissions (each through the console entry point, in that child)."""
    root = tmp_path_factory.mktemp("unreadable")
    runs = {}
    for command, _, _ in UNREADABLE:
        path = build_case("unreadable", root / command / "input", base)
        runs[command] = path, root / command, argv(command, "unreadable", path, root / command, base, tiny_weights)
    if not unreadable_is_readable():
        return {c: (path, work, *_status_lines(*run_inprocess(args)[::2])) for c, (path, work, args) in runs.items()}
    assert os.geteuid() == 0, "chmod 000 does not stop reads, yet this is not root: a file system without permissions?"
    code = ("import json, sys\nfrom broken_inputs import run_inprocess\n"
            "print(json.dumps([run_inprocess(args)[::2] for args in json.loads(sys.argv[1])]))")
    env = {**os.environ, "ECHOKDM_PROGRESS": "0", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    r = subprocess.run([sys.executable, "-c", code, json.dumps([args for _, _, args in runs.values()])],
                       capture_output=True, text=True, timeout=300, env=env, preexec_fn=_without_dac_override)
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout.strip().splitlines()[-1])
    return {c: (path, work, *_status_lines(*res)) for (c, (path, work, _)), res in zip(runs.items(), results)}


def _status_lines(status: int, stderr: str) -> tuple[int, list[str]]:
    return status, stderr.strip().splitlines()


@pytest.mark.parametrize(("command", "status", "line"), UNREADABLE)
def test_unreadable_file(command, status, line, unreadable_runs):
    """chmod 000 is refused with 'permission denied' where it stops reads. Where it does not (root), the file is a
    good loop, read as one by the corpus test, and the refusal is checked here without the capabilities that
    bypass file permissions (:func:`unreadable_runs`)."""
    path, work, *got = unreadable_runs[command]
    assert tuple(got) == (status, [line.format(path=path)])
    out = work / "out"
    assert not out.exists() or command == "predict-batch" and not (out / "unreadable").exists()


def test_one_bad_study_never_stops_the_batch(base, tiny_weights, tmp_path):
    bad = build_case("truncated_jpeg", tmp_path / "input", base)
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerows([("study_id", "dicom", "seg"), ("bad", bad, base.labels), ("good", base.loop, base.labels)])
    before = digest(bad), digest(base.loop)
    out = tmp_path / "out"
    o = run(
        [
            "predict-batch",
            "--manifest",
            str(manifest),
            "--steps",
            "1",
            "--weights",
            str(tiny_weights),
            "--out",
            str(out),
        ],
        out,
    )
    assert o.status == 1 and o.stderr.strip().splitlines() == [
        f"failed bad: {bad}: pixel data is truncated: fragment 13 runs past the end of the file"
    ]
    assert (out / "good" / "report.json").is_file() and not (out / "bad").exists()
    rows = {r["study_id"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["good"]["status"] == "ok" and rows["bad"]["status"] == "failed"
    assert [r["study_id"] for r in csv.DictReader((out / "failures.csv").open())] == ["bad"]
    assert (digest(bad), digest(base.loop)) == before


def test_evaluate_scores_the_good_cases_and_lists_the_bad(base, tmp_path):
    data = evaluate_folder(base.loop, tmp_path / "data", base)
    bad = build_case("jpeg_garbage_fragment", tmp_path / "input", base)
    with open(data / "manifest.csv", "a", newline="") as f:
        csv.writer(f).writerow(["bad", str(bad), "dicom"])
    (data / "bad.json").write_text((data / "case.json").read_text().replace(str(base.loop), str(bad)))
    out = tmp_path / "report"
    o = run(
        [
            "evaluate",
            "--data",
            str(data),
            "--predictors",
            "copy",
            "--segmenter",
            "atlas",
            "--size",
            "32",
            "--report",
            str(out),
        ],
        out,
    )
    assert o.status == 0 and o.stderr == "", o.stderr
    summary = (out / "summary.md").read_text()
    assert "bad" in summary and "pixel data is truncated or corrupt at frame 5" in summary


def test_judge_catches_wrong_outcomes(base, tmp_path):
    """The contract check itself: a success where an error is expected, a second stderr line, a leftover file."""
    from broken_inputs import Outcome

    out = tmp_path / "out"
    out.mkdir()
    (out / "partial.png").write_bytes(b"")
    line = f"echokdm: error: {tmp_path}/input/study.dcm: is an empty file (0 bytes)"
    assert judge("info", "empty", Outcome(2, "", line + "\n", 0.1, out, [])) == []
    assert judge("info", "empty", Outcome(0, "ok", "", 0.1, out, []))
    assert judge("info", "empty", Outcome(2, "", "UserWarning: x\n" + line + "\n", 0.1, out, []))
    assert judge("segment", "empty", Outcome(2, "", line + "\n", 0.1, out, ["partial.png"]))
    assert judge("info", "empty", Outcome(1, "", "echokdm: internal error: KeyError: 'x'\n", 0.1, out, []))


# ---- property-based: mutations of the real SonoSite loop ---------------------------------------------------
def _load_within(path: Path, seconds: float = 60):
    """``load_cine(path)``, stopped with :class:`Hang` after ``seconds``."""

    def alarm(signum, frame):
        raise Hang(f"load_cine({path}) ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return load_cine(path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _check_contract(path: Path) -> None:
    """The loader gives a valid loop or an EchoKDMError; ``echokdm info`` exits 0 or 2 with one line; the file
    is unchanged."""
    before = digest(path)
    try:
        loop = _load_within(path)
    except EchoKDMError as e:
        assert "\n" not in str(e) and str(path) in str(e), str(e)
    else:
        assert loop.ndim == 4 and loop.shape[0] == 1 and loop.dtype.is_floating_point
        values = loop.numpy()
        assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
        ft, sp = loop.meta["frame_time_ms"], loop.meta["spacing_mm"]
        assert ft is None or (np.isfinite(ft) and ft > 0)
        assert sp is None or (len(sp) == 2 and all(np.isfinite(v) and v > 0 for v in sp))
    status, _, err = run_inprocess(["info", str(path)], timeout=60)
    lines = err.strip().splitlines()
    assert (status, lines) == (0, []) or (
        status == 2 and len(lines) == 1 and lines[0].startswith(f"echokdm: error: {path}: ")
    ), (status, err)
    assert digest(path) == before


#: 25 generated examples per property (a fixed set: derandomized), on top of the explicit ``@example`` rows: one
#: per outcome class that 400 random examples of each strategy reached (a success with each of frame time and
#: spacing known or unknown, and every distinct error of the loader), so every class runs on every run
PROPERTY = settings(max_examples=25, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def byte_edits(draw) -> tuple[list[tuple[int, int]], int | None]:
    """(offset, new byte) pairs in the SonoSite file's header or in its JPEG data, and perhaps a length to cut it to."""
    lo, hi = draw(st.sampled_from([(132, PIXELS_AT), (PIXELS_AT, len(SONOSITE))]))
    edits = draw(st.lists(st.tuples(st.integers(lo, hi - 1), st.integers(0, 255)), min_size=1, max_size=8))
    return edits, draw(st.none() | st.integers(0, len(SONOSITE)))


@pytest.mark.slow
@PROPERTY
@given(edit=byte_edits())
@example(edit=([(516, 0)], None))  # a header byte that changes nothing: loads, spacing known
@example(edit=([(82627, 0)], None))  # a JPEG byte: loads, spacing unknown (the image's calibration is lost)
@example(edit=([(2868, 80)], 2102))  # cut in the header: lacks Rows
@example(edit=([(132, 0)], None))  # file meta damaged: no transfer syntax
@example(edit=([(35040, 0)], None))  # the pixel data tag damaged: no pixel data
@example(edit=([(0, 0)], 110))  # cut before the DICM marker: not a DICOM file
@example(edit=([(6537, 44)], 170))  # cut right after the preamble: header incomplete
@example(edit=([(35397, 110)], 153386))  # cut in the JPEG data: pixel data truncated
@example(edit=([(0, 0)], 0))  # cut to nothing: an empty file
@example(edit=([(132, 251), (785, 255)], None))  # an unknown VR: header corrupt
@example(edit=([(149949, 214)], 1051))  # a value of the wrong length: header corrupt
@example(edit=([(77630, 234)], None))  # a JPEG byte the decoder refuses: pixel data corrupt at a frame
def test_byte_mutations_of_a_real_loop(edit, tmp_path_factory):
    edits, cut = edit
    data = bytearray(SONOSITE)
    for offset, value in edits:
        data[offset] = value
    path = tmp_path_factory.mktemp("bytes") / "study.dcm"
    path.write_bytes(bytes(data[:cut]))
    _check_contract(path)


#: attributes whose values the tag mutations replace, and candidate values (written with the attribute's VR)
TAG_VALUES = {
    "Rows": st.sampled_from([0, 1, 2, 120, 239, 240, 241, 480, 8192, 8193, 65535]),
    "Columns": st.sampled_from([0, 1, 2, 160, 319, 320, 321, 640, 8192, 8193, 65535]),
    "NumberOfFrames": st.sampled_from(["0", "-1", "1", "2", "29", "30", "31", "60", "100000", "abc", ""]),
    "BitsAllocated": st.sampled_from([0, 1, 7, 8, 12, 16, 32, 64]),
    "BitsStored": st.sampled_from([0, 1, 7, 8, 9, 12, 16, 40]),
    "HighBit": st.sampled_from([0, 7, 8, 15, 63]),
    "SamplesPerPixel": st.integers(0, 5),
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422",
                                                  "PALETTE COLOR", "YBR_ICT", "", "HSV"]),
    "PlanarConfiguration": st.integers(0, 3),
    "PixelRepresentation": st.integers(0, 2),
    "FrameTime": st.sampled_from(["0", "-33.3", "NaN", "inf", "1e400", "abc", "", "1e-300", "33.3"]),
    "HeartRate": st.sampled_from(["0", "-60", "abc", "", "1000000"]),
    "Modality": st.sampled_from(["US", "CT", "MR", "", "SR"]),
    "SOPClassUID": st.sampled_from(["1.2.840.10008.5.1.4.1.1.3.1", "1.2.840.10008.5.1.4.1.1.2", "1.2.3", ""]),
}
REGION_FIELDS = {
    "PhysicalDeltaX": st.floats(allow_nan=True, allow_infinity=True, width=64),
    "PhysicalDeltaY": st.floats(allow_nan=True, allow_infinity=True, width=64),
    "RegionLocationMinX0": st.integers(0, 2**32 - 1),
    "RegionLocationMaxY1": st.integers(0, 2**32 - 1),
    "PhysicalUnitsXDirection": st.integers(0, 12),
}
mutation = st.one_of(
    st.tuples(st.just("delete"), st.sampled_from([*TAG_VALUES, "SequenceOfUltrasoundRegions", "PixelData"]), st.none()),
    st.sampled_from(sorted(TAG_VALUES)).flatmap(lambda k: st.tuples(st.just("set"), st.just(k), TAG_VALUES[k])),
    st.tuples(
        st.just("wrong_vr"), st.sampled_from(sorted(TAG_VALUES)), st.sampled_from(["abc", "", "-1", "1e9", "\\"])
    ),
    st.sampled_from(sorted(REGION_FIELDS)).flatmap(
        lambda k: st.tuples(st.just("region"), st.just(k), REGION_FIELDS[k])
    ),
)


@pytest.mark.slow
@PROPERTY
@given(mutations=st.lists(mutation, min_size=1, max_size=4))
@example(mutations=[('set', 'BitsStored', 7)])  # loads, spacing unknown
@example(mutations=[('set', 'HighBit', 8)])  # loads, spacing known
@example(mutations=[('set', 'FrameTime', '0')])  # loads, frame time unknown
@example(mutations=[('set', 'FrameTime', ''), ('delete', 'SequenceOfUltrasoundRegions', None)])  # loads, both unknown
@example(mutations=[('region', 'PhysicalDeltaX', float('nan'))])  # loads, a NaN calibration ignored
@example(mutations=[('wrong_vr', 'Rows', '')])  # malformed attribute (not a number)
@example(mutations=[('wrong_vr', 'NumberOfFrames', '\\')])  # malformed attribute (two values)
@example(mutations=[('set', 'BitsAllocated', 0)])  # Bits Allocated refused
@example(mutations=[('set', 'BitsStored', 9)])  # Bits Stored refused
@example(mutations=[('delete', 'Columns', None)])  # a required attribute missing
@example(mutations=[('delete', 'NumberOfFrames', None)])  # frame count contradicts the fragments
@example(mutations=[('set', 'NumberOfFrames', '60')])  # more frames claimed than fragments
@example(mutations=[('set', 'NumberOfFrames', '0')])  # no frame
@example(mutations=[('set', 'SamplesPerPixel', 0)])  # Samples per Pixel refused
@example(mutations=[('wrong_vr', 'PhotometricInterpretation', 'abc')])  # photometric interpretation refused
@example(mutations=[('set', 'Rows', 0)])  # absurd image size
@example(mutations=[('delete', 'SamplesPerPixel', None)])  # the decoder lacks an attribute
@example(mutations=[('set', 'Columns', 319)])  # frames of the wrong size
@example(mutations=[('set', 'PixelRepresentation', 1)])  # signed colour pixels refused by the decoder
@example(mutations=[('wrong_vr', 'PlanarConfiguration', '')])  # an attribute value the decoder refuses
@example(mutations=[('delete', 'PixelData', None)])  # no pixel data
@example(mutations=[('wrong_vr', 'Modality', ''), ('delete', 'SOPClassUID', None)])  # header incomplete
@example(mutations=[('set', 'SOPClassUID', '1.2.840.10008.5.1.4.1.1.2'), ('set', 'Modality', 'CT')])  # not ultrasound
@example(mutations=[('set', 'SOPClassUID', '1.2.3'), ('delete', 'Modality', None)])  # no Modality, unknown class
def test_tag_mutations_of_a_real_loop(mutations, tmp_path_factory):
    path = tmp_path_factory.mktemp("tags") / "study.dcm"
    ds = pydicom.dcmread(sample_path("sonosite"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for kind, keyword, value in mutations:
                tag = pydicom.datadict.tag_for_keyword(keyword)
                if kind == "delete":
                    if keyword in ds:
                        delattr(ds, keyword)
                elif kind == "set":
                    ds[tag] = DataElement(tag, pydicom.datadict.dictionary_VR(tag), value)
                elif kind == "wrong_vr":
                    ds[tag] = DataElement(tag, "LO", value)
                elif "SequenceOfUltrasoundRegions" in ds:
                    setattr(ds.SequenceOfUltrasoundRegions[0], keyword, value)
            ds.save_as(path, enforce_file_format=False)
    except Exception:  # pydicom refuses some values (e.g. 'abc' as IS, 70000 as US) when they are set or written
        reject()
    _check_contract(path)
