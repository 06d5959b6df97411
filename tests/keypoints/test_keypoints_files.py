"""Keypoint JSON/CSV files: exact round trips, schema, clear errors."""

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from echokdm.errors import InputError
from echokdm.keypoints import KeypointTrack, load_keypoints, save_keypoints

SCHEMA = json.loads((Path(__file__).parents[2] / "data_specs" / "keypoints.schema.json").read_text())


def _track(n=40, spacing=(0.154, 0.3081), frames=(0, 3, 11)):
    rng = np.random.default_rng(3)
    kps = rng.uniform(0, 300, size=(len(frames), n, 2)) + rng.standard_normal((len(frames), n, 2)) * 1e-7
    return KeypointTrack(kps, list(frames), spacing_mm=spacing, image_size=(256, 320), phases={0: "ED", 11: "ES"})


@pytest.mark.parametrize("n", [20, 40])
@pytest.mark.parametrize("spacing", [(0.154, 0.3081), None])
def test_json_round_trip_is_exact(tmp_path, n, spacing):
    t = _track(n, spacing)
    save_keypoints(tmp_path / "k.json", t)
    doc = json.loads((tmp_path / "k.json").read_text())
    jsonschema.validate(doc, SCHEMA)
    back = load_keypoints(tmp_path / "k.json")
    assert np.array_equal(back.keypoints, t.keypoints)
    assert back.frames == t.frames and back.phases == t.phases
    assert back.spacing_mm == t.spacing_mm and back.image_size == t.image_size


@pytest.mark.parametrize("n", [20, 40])
def test_csv_round_trip_is_exact(tmp_path, n):
    t = _track(n)
    save_keypoints(tmp_path / "k.csv", t)
    lines = (tmp_path / "k.csv").read_text().splitlines()
    assert lines[0] == "frame,phase,structure,index,x,y,x_mm,y_mm"
    assert len(lines) == 1 + 3 * n
    back = load_keypoints(tmp_path / "k.csv")
    assert np.array_equal(back.keypoints, t.keypoints)
    assert back.frames == t.frames and back.phases == t.phases and back.spacing_mm == t.spacing_mm
    row = lines[1 + n].split(",")  # first point of the second frame
    assert row[:4] == ["3", "", "endo", "0"]
    assert float(row[6]) == pytest.approx(float(row[4]) * 0.3081) and float(row[7]) == pytest.approx(
        float(row[5]) * 0.154
    )


def test_csv_without_spacing_leaves_mm_empty(tmp_path):
    save_keypoints(tmp_path / "k.csv", _track(20, None))
    assert (tmp_path / "k.csv").read_text().splitlines()[1].endswith(",,")
    assert load_keypoints(tmp_path / "k.csv").spacing_mm is None


def test_schema_rejects_a_40_point_file_without_epicardium(tmp_path):
    save_keypoints(tmp_path / "k.json", _track(40))
    doc = json.loads((tmp_path / "k.json").read_text())
    del doc["frames"][0]["epi"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)


def test_explicit_format_for_temporary_names(tmp_path):
    save_keypoints(tmp_path / "k.part", _track(20), fmt="csv")
    assert (tmp_path / "k.part").read_text().startswith("frame,phase")


@pytest.mark.parametrize(
    "content,name,message",
    [
        ('{"format": "other"}', "a.json", "not a valid echokdm keypoint file"),
        ("not json", "a.json", "not a valid"),
        ("frame,x\n1,2\n", "a.csv", "missing columns"),
        ("frame,phase,structure,index,x,y,x_mm,y_mm\n0,,endo,0,1,2,,\n", "a.csv", "all 20 points"),
        ("", "a.txt", ".json or .csv"),
    ],
)
def test_bad_files_fail_clearly(tmp_path, content, name, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message):
        load_keypoints(tmp_path / name)


def test_missing_file_and_bad_tracks(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_keypoints(tmp_path / "nope.json")
    with pytest.raises(InputError, match="shape"):
        KeypointTrack(np.zeros((2, 7, 2)), [0, 1])
    with pytest.raises(InputError, match="increasing"):
        KeypointTrack(np.zeros((2, 20, 2)), [1, 1])
    with pytest.raises(InputError, match="phases"):
        KeypointTrack(np.zeros((1, 20, 2)), [0], phases={0: "mid"})
    with pytest.raises(InputError, match="spacing"):
        KeypointTrack(np.zeros((1, 20, 2)), [0], spacing_mm=(0, 1))
