"""The YAML config loader: defaults, nesting, type checks, unknown keys, round trip, documentation."""

from dataclasses import dataclass, fields, is_dataclass
from typing import get_type_hints

import pytest
import yaml

from echokdm.config import describe_config, dump_config, load_config, option
from echokdm.errors import InputError
from echokdm.train import TASKS, RunConfig, task_class


@dataclass
class Inner:
    size: tuple[int, int] = option((4, 4), "a size")
    mode: str = option("a", "a mode")


@dataclass
class Outer(RunConfig):
    inner: Inner = option(Inner, "nested section")
    ratio: float = option(0.5, "a ratio")
    names: list[str] = option(["x"], "some names")
    maybe: int | None = option(None, "optional number")


def test_defaults_and_nested_values(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train: {epochs: 3}\ninner: {size: [8, 16]}\nratio: 1\nmaybe: 7\n")
    cfg = load_config(p, Outer)
    assert cfg.train.epochs == 3 and cfg.train.batch_size == 16
    assert cfg.inner.size == (8, 16) and cfg.inner.mode == "a"
    assert cfg.ratio == 1.0 and isinstance(cfg.ratio, float)
    assert cfg.maybe == 7 and cfg.names == ["x"]
    assert load_config(None, Outer).names is not cfg.names


@pytest.mark.parametrize(
    "text, message",
    [
        ("inner: {sise: [1, 2]}", "unknown key(s) sise"),
        ("train: {epochs: ten}", "train: epochs: expected an integer"),
        ("train: {optimizer: adam}", "'adam' is not one of"),
        ("inner: {size: [1, 2, 3]}", "expected 2 values"),
        ("ratio: true", "expected a finite number"),
        ("- 1\n- 2", "expected a mapping"),
        ("a: [unclosed", "not valid YAML"),
        ("!!python/object/apply:os.system ['echo hi']", "not valid YAML"),
    ],
)
def test_bad_configs_are_clear_errors(tmp_path, text, message):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        load_config(p, Outer)
    assert message in str(e.value)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", Outer)


def test_dump_round_trip_and_describe_is_a_valid_default_config():
    cfg = load_config({"inner": {"size": [2, 3]}, "names": ["a", "b"]}, Outer)
    assert load_config(yaml.safe_load(dump_config(cfg)), Outer) == cfg
    text = describe_config(Outer)
    assert "# a ratio" in text and "# seed of weights" in text
    assert load_config(yaml.safe_load(text), Outer) == Outer()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_registered_config_field_is_documented(name):
    def walk(cls):
        hints = get_type_hints(cls)
        for f in fields(cls):
            assert f.metadata.get("doc"), f"{cls.__name__}.{f.name} has no description"
            if is_dataclass(hints[f.name]):
                walk(hints[f.name])

    walk(task_class(name).config_class)
