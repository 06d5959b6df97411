"""Shipped-weights loader: fp16 export, manifest and card, sha256 check, float32 at load."""

import json

import pytest
import torch
from safetensors.torch import save_file

from echokdm import weights
from echokdm.errors import EchoKDMError, InputError


@pytest.fixture
def shipped(tmp_path):
    src = tmp_path / "run" / "model.safetensors"
    src.parent.mkdir()
    state = {"conv.weight": torch.randn(4, 1, 3, 3), "conv.bias": torch.randn(4), "count": torch.tensor([3])}
    save_file(state, str(src), metadata={"task": "toy", "config": json.dumps({"width": 4})})
    root = tmp_path / "weights"
    root.mkdir()
    (root / "MODEL_CARD.md").write_text("# card\n\n<!-- weights-table -->\nold\n<!-- /weights-table -->\n\nend\n")
    entry = weights.export(src, "toy_net", "a toy", root=root)
    return root, state, entry


def test_export_writes_fp16_manifest_and_card(shipped):
    root, state, entry = shipped
    assert entry["sha256"] == weights.sha256_of(root / "toy_net.safetensors")
    assert weights.manifest(root)["toy_net"]["task"] == "toy"
    assert weights.card_is_current(root)
    assert entry["sha256"] in (root / "MODEL_CARD.md").read_text()
    assert (root / "MODEL_CARD.md").read_text().endswith("end\n")
    w = weights.load("toy_net", root=root)
    assert w.config == {"width": 4} and w.task == "toy"
    assert w.state_dict["conv.weight"].dtype == torch.float32
    assert torch.allclose(w.state_dict["conv.weight"], state["conv.weight"], atol=2e-3)
    assert torch.equal(w.state_dict["count"], state["count"])


def test_tampered_file_is_a_clear_error(shipped):
    root, _, _ = shipped
    f = root / "toy_net.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    with pytest.raises(EchoKDMError, match="sha256"):
        weights.load("toy_net", root=root)


def test_stale_card_is_detected(shipped):
    root, _, _ = shipped
    card = root / "MODEL_CARD.md"
    card.write_text(card.read_text().replace("toy_net", "other"))
    assert not weights.card_is_current(root)


def test_unknown_name_lists_what_is_shipped(shipped):
    root, _, _ = shipped
    with pytest.raises(InputError, match="toy_net"):
        weights.load("nope", root=root)
