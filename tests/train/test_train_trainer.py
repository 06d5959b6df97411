"""The generic trainer on a tiny regression task: seeding, exact resume, checkpoints, logs, errors."""

import csv
import json
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from echokdm.config import load_config, option
from echokdm.errors import InputError
from echokdm.train import RunConfig, Trainer, TrainTask
from echokdm.train.checkpoint import optimizer_from_flat, optimizer_to_flat


@dataclass
class ToyData:
    n: int = option(48, "training samples")


@dataclass
class ToyConfig(RunConfig):
    data: ToyData = option(ToyData, "data")


class NoisyLine(Dataset):
    """y = 2 * sum(x) + noise; the noise depends on the epoch, like augmentation would."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 * self.epoch + i)
        x = torch.randn(4, generator=g)
        return x, 2 * x.sum(0, keepdim=True) + 0.1 * torch.randn(1, generator=g)


class Toy(TrainTask):
    config_class = ToyConfig

    def build_model(self):
        return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))

    def train_dataset(self):
        return NoisyLine(self.cfg.data.n)

    def val_dataset(self):
        return NoisyLine(10)

    def training_step(self, model, batch, device):
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    def validation_step(self, model, batch, device):
        x, y = batch
        return {"loss": ((model(x) - y) ** 2).mean(1)}


def _cfg(**train):
    return load_config({"train": {"epochs": 3, "batch_size": 8, "lr": 0.02, "warmup_steps": 2, **train}}, ToyConfig)


def test_resume_continues_exactly(tmp_path):
    full = Trainer(Toy(_cfg()), tmp_path / "full").fit()
    part = Trainer(Toy(_cfg()), tmp_path / "part").fit(stop_after_epoch=1)
    assert part.epochs_done == 1 and part.weights_digest != full.weights_digest
    resumed = Trainer(Toy(_cfg()), tmp_path / "part", resume=True).fit()
    assert resumed.epochs_done == 3
    assert resumed.weights_digest == full.weights_digest
    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("full", "part"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with (tmp_path / "part" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    assert sorted(p.name for p in (tmp_path / "part" / "checkpoints").glob("epoch_*")) == ["epoch_0002", "epoch_0003"]
    assert json.loads((tmp_path / "part" / "ranks.json").read_text())["weights_sha256"] == [full.weights_digest]


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = Trainer(Toy(_cfg(epochs=1)), tmp_path / "a").fit()
    b = Trainer(Toy(_cfg(epochs=1)), tmp_path / "b").fit()
    c = Trainer(Toy(_cfg(epochs=1, seed=1)), tmp_path / "c").fit()
    assert a.weights_digest == b.weights_digest != c.weights_digest


def test_resume_refuses_a_different_config_and_fresh_run_refuses_a_used_folder(tmp_path):
    Trainer(Toy(_cfg(epochs=1)), tmp_path / "r").fit()
    with pytest.raises(InputError, match="train.lr"):
        Trainer(Toy(_cfg(epochs=2, lr=0.5)), tmp_path / "r", resume=True).fit()
    with pytest.raises(InputError, match="not empty"):
        Trainer(Toy(_cfg(epochs=1)), tmp_path / "r").fit()
    # more epochs, or another way of using the machine, is fine
    assert Trainer(Toy(_cfg(epochs=2, threads=1, num_workers=1)), tmp_path / "r", resume=True).fit().epochs_done == 2


def test_batch_larger_than_data_is_a_clear_error(tmp_path):
    cfg = load_config({"train": {"batch_size": 64}, "data": {"n": 10}}, ToyConfig)
    with pytest.raises(InputError, match="no full batch"):
        Trainer(Toy(cfg), tmp_path / "x").fit()


def test_optimizer_state_round_trips_without_pickle():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    tensors, meta = optimizer_to_flat(opt.state_dict())
    assert all(torch.is_tensor(t) for t in tensors.values())
    json.dumps(meta)
    opt2 = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    opt2.load_state_dict(optimizer_from_flat(tensors, json.loads(json.dumps(meta))))
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid in s1["state"]:
        for k, v in s1["state"][pid].items():
            assert torch.equal(v, s2["state"][pid][k])
