"""The echokdm executable initialises MONAI without the optional libraries it hides, which import afterwards."""

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


def test_monai_initialises_without_its_optional_libraries():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok (1, 1)"
