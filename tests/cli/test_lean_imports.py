"""The echokdm executable imports only what a command needs: MONAI initialises without the optional libraries it
hides (which import afterwards), and a bad input is refused before torch, a model or a figure library loads."""

import json
import os
import subprocess
import sys

CODE = """
import sys
from echokdm.cli import lean_imports
lean_imports.install()
from monai.networks.nets import UNet
imported = [m for m in lean_imports.HIDDEN if m in sys.modules]
assert not imported, f"MONAI imported {imported}"
import cv2, jsonschema, matplotlib.pyplot, pandas  # scikit-learn is not installed here
from monai.metrics import compute_dice
print("ok", pandas.DataFrame({"a": [1]}).shape)
"""

#: runs each argv (JSON list in argv[1]) through the console entry point; prints the exit statuses, their stderr and
#: which heavy libraries were imported
BAD_INPUTS = """
import contextlib, io, json, sys
from echokdm.cli import main
runs = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        runs.append((main(argv), err.getvalue()))
heavy = ("torch", "monai", "diffusers", "matplotlib", "highdicom", "pandas")
print(json.dumps({"runs": runs, "imported": [m for m in heavy if m in sys.modules]}))
"""


def test_monai_initialises_without_its_optional_libraries():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok (1, 1)"


def test_a_bad_input_fails_before_torch_loads(tmp_path):
    """predict, segment and evaluate read and check their input first, and that needs no torch, model or figure
    library: a missing file or a non-DICOM one is refused with one line without importing them (the error is then
    fast), and no output folder is made."""
    junk = tmp_path / "junk.dcm"
    junk.write_text("not a dicom")
    missing, out = tmp_path / "missing.dcm", tmp_path / "out"
    argvs = [
        ["predict", "--dicom", missing, "--out", out],
        ["predict", "--dicom", junk, "--out", out],
        ["segment", "--dicom", missing, "--out", out],
        ["segment", "--dicom", junk, "--out", out],
        ["evaluate", "--data", tmp_path / "no_folder", "--report", out],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ECHOKDM_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-c", BAD_INPUTS, json.dumps([list(map(str, a)) for a in argvs])],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for argv, (status, err) in zip(argvs, result["runs"]):
        lines = err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and lines[0].startswith("echokdm: error:"), (argv, err)
        assert str(argv[2]) in lines[0], (argv, err)
    assert result["imported"] == []
    assert not out.exists()
