"""The echokdm executable imports only what a command needs: a bad input is refused before torch, a model or a
figure library loads, and MONAI initialises without the optional libraries it hides (which import afterwards).
Both need a fresh interpreter: one child checks both, bad inputs first (they must import none of MONAI's hidden
libraries, so MONAI then initialises as in a fresh process)."""

import json
import os
import subprocess
import sys

import pytest

#: runs each argv (JSON list in argv[1]) through the console entry point, then initialises MONAI lean; prints the
#: exit statuses and stderr of the runs, which heavy libraries they imported, and what MONAI's initialisation imported
#: of the libraries it should not
CODE = """
import contextlib, io, json, sys
from echokdm.cli import lean_imports, main
runs = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        runs.append((main(argv), err.getvalue()))
heavy = ("torch", "monai", "diffusers", "matplotlib", "highdicom", *lean_imports.HIDDEN)
imported = [m for m in heavy if m in sys.modules]
lean_imports.install()
from monai.networks.nets import UNet
by_monai = [m for m in lean_imports.HIDDEN if m in sys.modules]
import cv2, jsonschema, matplotlib.pyplot, pandas  # scikit-learn is not installed here
from monai.metrics import compute_dice
shape = list(pandas.DataFrame({"a": [1]}).shape)
print(json.dumps({"runs": runs, "imported": imported, "by_monai": by_monai, "shape": shape}))
"""


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> tuple[list[list[str]], dict]:
    """(argvs, the child's report): predict, segment (a missing and a non-DICOM file), evaluate, metrics and
    predict-batch (missing inputs), all writing to one ``out`` that must never appear."""
    root = tmp_path_factory.mktemp("lean")
    junk = root / "junk.dcm"
    junk.write_text("not a dicom")
    missing, out = root / "missing.dcm", root / "out"
    argvs = [
        ["predict", "--dicom", missing, "--out", out],
        ["predict", "--dicom", junk, "--out", out],
        ["segment", "--dicom", missing, "--out", out],
        ["segment", "--dicom", junk, "--out", out],
        ["evaluate", "--data", root / "no_folder", "--report", out],
        ["metrics", "--seg", root / "missing.nii.gz", "--out", out],
        ["predict-batch", "--manifest", root / "missing.csv", "--out", out],
    ]
    argvs = [[str(a) for a in argv] for argv in argvs]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ECHOKDM_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-c", CODE, json.dumps(argvs)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert not out.exists()
    return argvs, json.loads(done.stdout)


def test_a_bad_input_fails_before_torch_loads(bad_inputs):
    """predict, segment, evaluate, metrics and predict-batch read and check their input first, and that needs no
    torch, model or figure library: a missing file or a non-DICOM one is refused with one line without importing
    them (the error is then fast), and no output folder is made (checked by the fixture)."""
    argvs, result = bad_inputs
    for argv, (status, err) in zip(argvs, result["runs"], strict=True):
        lines = err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and lines[0].startswith("echokdm: error:"), (argv, err)
        assert argv[2] in lines[0], (argv, err)
    assert result["imported"] == []


def test_monai_initialises_without_its_optional_libraries(bad_inputs):
    _, result = bad_inputs
    assert result["by_monai"] == [], f"MONAI imported {result['by_monai']}"
    assert result["shape"] == [1, 1]  # and they import afterwards
