"""Security: no code runs from data. Weights load only from safetensors, shipped ones sha256-checked against the
manifest; no pickle, eval/exec or unsafe YAML in echokdm's code; configs are data checked key by key."""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import pytest
import torch
from hardening_files import ENV, echokdm, echokdm_inprocess, one_error_line
from safetensors import safe_open

import echokdm as package
from echokdm.config import load_config
from echokdm.errors import InputError
from echokdm.train.registry import task_class

ROOT = Path(package.__file__).resolve().parents[1]
#: modules whose loading runs code from the data it reads
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "jsonpickle"}


def unsafe_calls(source: str) -> list[str]:
    """Code that can run what a file or string holds: pickle-like imports, ``eval``/``exec``/``__import__``,
    ``torch.load`` without ``weights_only=True``, ``yaml.load`` without a safe loader, ``yaml.unsafe_load`` /
    ``full_load``, ``numpy.load(..., allow_pickle=True)``, ``pandas.read_pickle``, ``os.system`` and
    ``shell=True``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"import {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if name in ("eval", "exec", "__import__", "os.system", "pd.read_pickle", "pandas.read_pickle",
                    "yaml.unsafe_load", "yaml.full_load"):
            found.append(name)
        elif name == "torch.load" and kw.get("weights_only") != "True":
            found.append("torch.load without weights_only=True")
        elif name == "yaml.load" and kw.get("Loader") not in ("yaml.SafeLoader", "yaml.CSafeLoader", "SafeLoader"):
            found.append("yaml.load without SafeLoader")
        elif name in ("np.load", "numpy.load") and kw.get("allow_pickle") not in (None, "False"):
            found.append("numpy.load with allow_pickle")
        elif kw.get("shell") not in (None, "False"):
            found.append(f"{name} with shell=True")
    return found


@pytest.mark.parametrize(
    "code",
    [
        "import pickle",
        "from dill import loads",
        "x = eval(s)",
        "exec(code)",
        "torch.load(p)",
        "torch.load(p, weights_only=False)",
        "yaml.load(f)",
        "yaml.load(f, Loader=yaml.Loader)",
        "yaml.unsafe_load(f)",
        "np.load(p, allow_pickle=True)",
        "pd.read_pickle(p)",
        "subprocess.run(c, shell=True)",
        "os.system(c)",
        "__import__(name)",
    ],
)
def test_the_scan_finds_unsafe_code(code):
    assert unsafe_calls(code), code


@pytest.mark.parametrize(
    "code",
    [
        "model.eval()",
        "torch.load(p, weights_only=True)",
        "yaml.safe_load(f)",
        "yaml.load(f, Loader=yaml.SafeLoader)",
        "np.load(p)",
        "subprocess.run(c, check=True)",
        "from safetensors.torch import load_file",
    ],
)
def test_the_scan_passes_safe_code(code):
    assert unsafe_calls(code) == []


def test_no_unsafe_code_in_echokdm_or_pipelines():
    files = sorted((ROOT / "echokdm").rglob("*.py")) + sorted((ROOT / "pipelines").rglob("*.py"))
    assert len(files) > 50
    found = {str(p.relative_to(ROOT)): hits for p in files if (hits := unsafe_calls(p.read_text()))}
    assert found == {}


def test_tampered_shipped_weights_are_refused_with_one_line(tmp_path):
    """A copy of the installed package whose shipped F2I weights lost one bit: predict refuses to start."""
    shutil.copytree(ROOT / "echokdm", tmp_path / "echokdm", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "echokdm" / "weights" / "kdm_f2i.safetensors"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 1
    target.write_bytes(bytes(data))
    env = {**ENV, "PYTHONPATH": str(tmp_path)}
    r = echokdm("predict", "--sample", "--steps", 1, "--out", tmp_path / "out", cwd=tmp_path, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    line = one_error_line(r)
    # the path shows the copy was the one imported
    assert f"{tmp_path}/echokdm/weights/kdm_f2i.safetensors has sha256" in line and "corrupt or was replaced" in line
    assert not (tmp_path / "out").exists()


class _Payload:
    """Unpickling this would create ``marker`` (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_named_safetensors_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in ("seg_a4c", "kdm_flow_vae", "kdm_k2f", "kdm_f2i", "kdm_prior"):
        torch.save({"state": _Payload(marker)}, folder / f"{name}.safetensors")  # a pickle, whatever its name
    r = echokdm_inprocess("predict", "--sample", "--steps", 1, "--weights", folder, "--out", tmp_path / "out")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "is not a readable safetensors file" in one_error_line(r)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_yaml_configs_cannot_run_code(tmp_path):
    from echokdm.train.seg import SegRunConfig

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"epochs: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(evil, SegRunConfig)
    r = echokdm_inprocess("train", "seg", "--config", evil, "--out", tmp_path / "run")
    assert r.returncode == 2 and "not valid YAML" in one_error_line(r)
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("data", [{"__class__": "os.system"}, {"model": {"_target_": "os.system"}}])
def test_configs_reject_unknown_keys(data):
    from echokdm.train.seg import SegRunConfig

    with pytest.raises(InputError, match="unknown key"):
        load_config(data, SegRunConfig)


def test_model_names_come_from_the_registry_only():
    with pytest.raises(InputError, match="unknown model"):
        task_class("os:system")


def test_the_predictor_opens_only_safetensors(monkeypatch):
    """Loading the shipped predictor (and its motion prior) opens every weights file with safetensors and never
    calls torch.load (which would unpickle). In this process: weights are opened through the module attribute
    ``echokdm.weights.safe_open`` and nothing caches them, so a load here opens every file again."""
    import echokdm.weights as w
    from echokdm.predict import KDMPredictor

    def no_torch_load(*args, **kwargs):
        raise AssertionError("torch.load called")

    opened = []
    monkeypatch.setattr(w, "safe_open", lambda *a, **k: (opened.append(a[0]), safe_open(*a, **k))[1])
    monkeypatch.setattr(torch, "load", no_torch_load)
    assert KDMPredictor.from_weights(None, "cpu").prior is not None
    assert len(opened) == 5 and all(p.endswith(".safetensors") for p in opened), opened
