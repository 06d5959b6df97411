"""The echokdm executable initialises MONAI without pyplot and pandas, which still import afterwards."""

import subprocess
import sys

CODE = """
import sys
from echokdm.cli import lean_imports
lean_imports.install()
from monai.networks.nets import UNet
assert "matplotlib.pyplot" not in sys.modules and "pandas" not in sys.modules, "MONAI imported them"
import matplotlib.pyplot, pandas
from monai.metrics import compute_dice
print("ok", pandas.DataFrame({"a": [1]}).shape)
"""


def test_monai_initialises_without_pyplot_and_pandas():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok (1, 1)"
