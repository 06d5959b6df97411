"""The evaluation harness on the phantom test split: baseline ordering, and ``echokdm evaluate`` as a user runs it."""

import copy
import subprocess
import sys

import pandas as pd
import pytest
from hardening_files import echokdm_inprocess

from echokdm.evaluate.run import run_evaluation


@pytest.fixture(scope="module", autouse=True)
def _each_loop_simulated_once():
    """The report's example strip simulates its picked cases again, and a resumed run its cases: in this module each
    phantom loop is simulated once (``echokdm.phantom.simulate`` memoized on its parameters; the phantom's own
    tests, determinism included, use the real one)."""
    import echokdm.phantom as phantom

    simulate, loops = phantom.simulate, {}

    def once(params):
        if repr(params) not in loops:
            loops[repr(params)] = simulate(params)
        return copy.deepcopy(loops[repr(params)])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(phantom, "simulate", once)
        yield


@pytest.fixture(scope="module")
def phantom_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "report"
    return run_evaluation("phantom-test:4", out, predictors=["copy", "tps", "oracle"], task="es", segmenter="atlas",
                          size=96)  # the ordering of the baselines, not the default working size, is tested


def test_oracle_beats_tps_beats_copy(phantom_report):
    rows = phantom_report.table[~phantom_report.table["skipped"].astype(bool)]
    assert rows["case_id"].nunique() >= 3
    mean = rows.groupby("predictor")[["ssim", "psnr", "dice"]].mean()
    assert mean.loc["oracle", "ssim"] > mean.loc["tps", "ssim"] > mean.loc["copy", "ssim"]
    assert mean.loc["oracle", "psnr"] > mean.loc["tps", "psnr"] > mean.loc["copy", "psnr"]
    assert mean.loc["tps", "dice"] > mean.loc["copy", "dice"] + 0.05
    assert mean.loc["oracle", "dice"] > mean.loc["copy", "dice"] + 0.05
    # TPS puts the LV border exactly through the target keypoints, so on Dice it is level with the oracle
    # (the oracle's warp of the true ED mask itself reaches only ~0.97-0.98): allow a small margin.
    assert mean.loc["oracle", "dice"] >= mean.loc["tps", "dice"] - 0.02


def run_cli(*args):
    """``echokdm evaluate ARGS`` in a child process: the real entry point."""
    return subprocess.run(
        [sys.executable, "-m", "echokdm", "evaluate", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_cli_writes_and_resumes_a_report(tmp_path):
    args = [
        "--data",
        "phantom-test:2",
        "--predictors",
        "copy,tps",
        "--report",
        str(tmp_path / "r"),
        "--segmenter",
        "atlas",
        "--size",
        "96",
    ]
    first = echokdm_inprocess("evaluate", *args, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "| ssim |" in first.stdout
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"scores.csv", "summary.md", "boxplots.png", "bland_altman.png", "strip.png", "run.json"} <= names
    scores = pd.read_csv(tmp_path / "r" / "scores.csv")
    second = echokdm_inprocess("evaluate", *args, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "resumed: 2 case(s)" in second.stdout
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "r" / "scores.csv"), scores)


def test_cli_bad_input_in_a_subprocess(tmp_path):
    r = run_cli("--data", "/no/such/folder", "--report", str(tmp_path / "r"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "echokdm: error: --data /no/such/folder: no such file or folder; expected phantom-test[:N], one cine file "
        "or a CAMUS, EchoNet-Dynamic or echokdm phantom folder"
    ]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "phantom-test:zero"], "phantom-test:N"),
        (["--data", "phantom-test:2", "--predictors", "copy,kdm2"], "unknown predictor 'kdm2'"),
        (["--data", "phantom-test:2", "--predictors", ","], "no predictor given"),
        (["--data", "phantom-test:2", "--task", "target-ef", "--prior", "/no/prior.safetensors"], "does not exist"),
        (["--data", "phantom-test:2", "--size", "8"], "working size"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, args, message):
    from echokdm.cli import main

    assert main(["evaluate", *args, "--report", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("echokdm: error:")
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()

