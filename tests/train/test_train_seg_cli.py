"""``echokdm train seg`` end to end on a tiny config: DDP with two CPU processes, exact resume, CLI errors."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from echokdm.cli import main
from echokdm.config import load_config
from echokdm.train.seg import SegRunConfig

TINY = {
    "train": {"epochs": 2, "batch_size": 4, "lr": 0.003, "schedule": "constant", "threads": 1},
    "model": {"size": 32, "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0},
    "data": {"train_loops": 2, "val_loops": 1, "frames_per_loop": 4, "phantom": {"size": 96, "frames": 8}},
}


def _config(tmp_path, name="tiny.yaml", **train):
    cfg = json.loads(json.dumps(TINY))
    cfg["train"].update(train)
    cfg["data"]["cache_dir"] = str(tmp_path / "cache")
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_two_processes_under_torchrun_finish_with_identical_weights(tmp_path):
    cfg = _config(tmp_path)
    out = tmp_path / "ddp"
    env = {**os.environ, "ECHOKDM_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "echokdm", "train", "seg", "--config", str(cfg), "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = json.loads((out / "ranks.json").read_text())["weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert (out / "metrics.csv").read_text().count("\n") == 3
    assert "val_dice_lv" in (out / "metrics.csv").read_text()
    assert proc.stdout.count("trained seg for 2 epochs") == 1  # only rank 0 prints


def test_resume_continues_where_it_stopped(tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", "seg", "--config", str(_config(tmp_path)), "--out", str(full)]) == 0
    assert main(["train", "seg", "--config", str(_config(tmp_path, "one.yaml", epochs=1)), "--out", str(part)]) == 0
    assert main(["train", "seg", "--config", str(_config(tmp_path)), "--out", str(part), "--resume"]) == 0
    a, b = load_file(str(full / "model.safetensors")), load_file(str(part / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert (full / "metrics.csv").read_text().splitlines()[1:][-1].split(",")[3] == (
        (part / "metrics.csv").read_text().splitlines()[1:][-1].split(",")[3]
    )  # same train loss in the last epoch


def test_print_config_is_a_valid_default_config(capsys):
    assert main(["train", "seg", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "# working resolution" in text
    assert load_config(yaml.safe_load(text), SegRunConfig) == SegRunConfig()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "nosuch", "--config", "x.yaml"], "unknown model 'nosuch'"),
        (["train", "seg"], "--config FILE or --data KIND:PATH is required"),
        (["train", "seg", "--data", "nifti:/x"], "expected KIND:PATH"),
        (["train", "seg", "--data", "phantom:lots"], "phantom takes a number"),
        (["train", "seg", "--data", "phantom:2", "--device", "tpu"], "device"),
        pytest.param(["train", "seg", "--data", "phantom:2", "--device", "cuda"], "CUDA is not available",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
        (["train", "seg", "--config", "missing.yaml"], "does not exist"),
    ],
)
def test_cli_errors_are_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unknown_config_key_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {sise: 64}\n")
    assert main(["train", "seg", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "unknown key(s) sise" in capsys.readouterr().err


@pytest.mark.parametrize("frames, expected", [("all", None), ("diastole", [True, False]), ("systole", [False, True])])
def test_area_frames_pick_the_samples_the_area_term_weighs(frames, expected):
    from echokdm.train.seg import SegTask

    cfg = SegRunConfig()
    cfg.loss.area_frames = frames
    task, seen = SegTask(cfg), {}
    task.loss_fn = lambda logits, label, partial, mask: seen.setdefault("mask", mask)
    batch = {"image": torch.zeros(2, 1, 8, 8), "label": torch.zeros(2, 1, 8, 8, dtype=torch.long),
             "valve_open": torch.tensor([True, False])}  # fmt: skip
    task.training_step(lambda x: torch.zeros(2, 4, 8, 8), batch, "cpu")
    assert seen["mask"] is None if expected is None else seen["mask"].tolist() == expected
