"""Shipped model weights: fp16 safetensors files, verified by sha256 against ``manifest.json`` at load.

``manifest.json`` is the single source of truth for what is shipped::

    {"seg_a4c": {"file": "seg_a4c.safetensors", "sha256": "...", "bytes": 1234, "task": "seg",
                 "description": "..."}}

The file table in ``MODEL_CARD.md`` (between the ``<!-- weights-table -->`` markers) is generated from
the manifest by :func:`export`; :func:`card_table` renders it so tests can check the card is current.
Each weights file carries the network's config as JSON in its safetensors metadata (key ``config``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from echokdm.errors import EchoKDMError, InputError
from echokdm.outputs import atomic_write

WEIGHTS_DIR = Path(__file__).resolve().parent
_TABLE = re.compile(r"(<!-- weights-table -->\n)(.*?)(<!-- /weights-table -->)", re.S)


@dataclass
class Weights:
    """Loaded weights.

    Attributes:
        state_dict: parameter name -> float32 tensor.
        config: the network config stored with the file (rebuilds the network).
        task: registry name of the model that produced them (e.g. ``"seg"``).
        sha256: hash of the file.
    """

    state_dict: dict[str, torch.Tensor]
    config: dict
    task: str
    sha256: str


def manifest(root: str | os.PathLike = WEIGHTS_DIR) -> dict[str, dict]:
    """The shipped-weights manifest (name -> entry); empty when there is none."""
    path = Path(root) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def load(name: str | os.PathLike, root: str | os.PathLike = WEIGHTS_DIR) -> Weights:
    """Load weights by shipped name (sha256-checked), from a ``.safetensors`` path, or from a training run's folder
    (``echokdm train ... --out DIR``: its ``DIR/model.safetensors``).

    Args:
        name: a name in the manifest (``"seg_a4c"``), the path of a safetensors file, or a folder holding
            ``model.safetensors``.
        root: folder of the manifest and shipped files.

    Returns:
        :class:`Weights` with float32 tensors.

    Raises:
        InputError: unknown name or missing file.
        EchoKDMError: the file's sha256 differs from the manifest (corrupt or replaced file).
    """
    entries = manifest(root)
    if str(name) in entries:
        entry = entries[str(name)]
        path = Path(root) / entry["file"]
        if not path.is_file():
            raise InputError(f"shipped weights {name!r} are missing: {path} does not exist (reinstall echokdm)")
        digest = sha256_of(path)
        if digest != entry["sha256"]:
            raise EchoKDMError(
                f"weights file {path} has sha256 {digest} but the manifest expects {entry['sha256']}; "
                "the file is corrupt or was replaced (reinstall echokdm or re-export the weights)"
            )
    else:
        path = Path(name)
        if path.is_dir() and (path / "model.safetensors").is_file():
            path = path / "model.safetensors"
        if path.suffix != ".safetensors" or not path.is_file():
            known = ", ".join(sorted(entries)) or "none shipped"
            raise InputError(
                f"weights {str(name)!r} are neither a shipped name ({known}), a .safetensors file nor a training "
                "run's folder with model.safetensors"
            )
        digest = sha256_of(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for malformed headers
        raise InputError(f"{path} is not a readable safetensors file: {e}") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return Weights(
        state_dict=state, config=json.loads(meta.get("config", "{}")), task=meta.get("task", ""), sha256=digest
    )


def export(
    source: str | os.PathLike,
    name: str,
    description: str,
    root: str | os.PathLike = WEIGHTS_DIR,
) -> dict:
    """Ship a trained ``model.safetensors`` as fp16 ``<root>/<name>.safetensors``; update manifest and card.

    Args:
        source: a weights file written by the trainer (float32, config in its metadata).
        name: shipped name.
        description: one line for the manifest and the card.
        root: target folder.

    Returns:
        The new manifest entry.
    """
    src = load(source)
    half = {k: v.half().contiguous() if v.is_floating_point() else v for k, v in src.state_dict.items()}
    target = Path(root) / f"{name}.safetensors"
    with atomic_write(target) as tmp:
        save_file(half, str(tmp), metadata={"task": src.task, "config": json.dumps(src.config, sort_keys=True)})
    target.chmod(0o644)
    entries = manifest(root)
    entries[name] = {
        "file": target.name,
        "sha256": sha256_of(target),
        "bytes": target.stat().st_size,
        "task": src.task,
        "description": description,
    }
    (Path(root) / "manifest.json").write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    card = Path(root) / "MODEL_CARD.md"
    if card.is_file():
        card.write_text(_TABLE.sub(lambda m: m.group(1) + card_table(entries) + m.group(3), card.read_text()))
    return entries[name]


def card_table(entries: dict[str, dict]) -> str:
    """The Markdown file table of the model card for the given manifest entries."""
    lines = ["| name | file | task | size | sha256 |", "|---|---|---|---|---|"]
    for name, e in sorted(entries.items()):
        size = f"{e['bytes'] / 2**20:.2f} MiB"
        lines.append(f"| {name} | `{e['file']}` | {e['task']} | {size} | `{e['sha256']}` |")
    return "\n".join(lines) + "\n"


def card_is_current(root: str | os.PathLike = WEIGHTS_DIR) -> bool:
    """True when ``MODEL_CARD.md``'s file table matches the manifest."""
    m = _TABLE.search((Path(root) / "MODEL_CARD.md").read_text())
    return m is not None and m.group(2) == card_table(manifest(root))


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = ["WEIGHTS_DIR", "Weights", "card_is_current", "card_table", "export", "load", "manifest", "sha256_of"]
