"""The command line sets ``OMP_WAIT_POLICY`` once, before any command imports torch; the user's setting wins."""

import os
import subprocess
import sys

import pytest

PROBE = (
    "import os, sys, echokdm.cli; "
    "assert 'torch' not in sys.modules, 'torch imported before the CLI set OMP_WAIT_POLICY'; "
    "print(os.environ.get('OMP_WAIT_POLICY'))"
)


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_cli_sets_omp_wait_policy_before_torch(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
