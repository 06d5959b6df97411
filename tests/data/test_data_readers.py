"""Readers of a user's data sets on phantom-written layouts named as the real releases: CAMUS 2023 (NIfTI) and
2019 (MHD/raw), EchoNet-Dynamic with broken rows, DICOM cine folders, stable splits."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from echokdm.data.camus import camus_datalist, load_camus_item
from echokdm.data.cines import cine_folder_datalist
from echokdm.data.echonet import echonet_datalist
from echokdm.data.splits import stable_split
from echokdm.errors import InputError
from echokdm.phantom.layouts import generate

#: every file of one patient of each CAMUS release, as the releases name them
CAMUS_2023 = {
    f"patient0001_{v}_{s}.nii.gz"
    for v in ("2CH", "4CH")
    for s in ("ED", "ED_gt", "ES", "ES_gt", "half_sequence", "half_sequence_gt")
} | {"Info_2CH.cfg", "Info_4CH.cfg"}
CAMUS_2019 = {
    f"patient0001_{v}_{s}.{e}" for v in ("2CH", "4CH") for s in ("ED", "ED_gt", "ES", "ES_gt", "sequence")
    for e in ("mhd", "raw")
} | {"Info_2CH.cfg", "Info_4CH.cfg"}  # fmt: skip


@pytest.fixture(scope="module")
def camus(tmp_path_factory):
    root = tmp_path_factory.mktemp("camus")
    out = {}
    for layout in ("camus", "camus2019"):
        out[layout] = root / layout
        generate(out[layout], 2, layout, size=96, frames=8)
    return out


@pytest.mark.parametrize("layout, names", [("camus", CAMUS_2023), ("camus2019", CAMUS_2019)])
def test_phantom_names_files_as_each_camus_release(camus, layout, names):
    found = {p.name for p in (camus[layout] / "patient0001").iterdir()}
    assert names <= found and found - names == {"patient0001_4CH_phantom.json"}


def test_both_releases_read_to_the_same_ed_es_pairs(camus):
    a = camus_datalist(camus["camus"], "2CH")
    b = camus_datalist(camus["camus2019"], "2CH")
    assert [i["release"] for i in a + b] == ["2023"] * 2 + ["2019"] * 2
    assert [i["ef"] for i in a] == [i["ef"] for i in b] and a[0]["ef"] is not None
    x, y = load_camus_item(a[0]), load_camus_item(b[0])
    assert y["label"] is None and x["label"].shape[0] == x["image"].shape[1]
    np.testing.assert_array_equal(x["label_ed"], y["label_ed"])
    np.testing.assert_array_equal(x["label_es"], y["label_es"])
    assert set(np.unique(x["label_ed"])) <= {0, 1, 2, 3} and (x["label_ed"] == 1).any()
    np.testing.assert_allclose(x["image"].numpy(), y["image"].numpy(), atol=1 / 255)
    assert x["spacing"] == pytest.approx(y["spacing"], rel=1e-5)


def test_camus_splits_follow_the_release_files(camus):
    (camus["camus"] / "database_split" / "subgroup_training.txt").write_text("patient0001\n")
    (camus["camus"] / "database_split" / "subgroup_testing.txt").write_text("patient0002\n")
    try:
        assert [i["patient"] for i in camus_datalist(camus["camus"], split="test")] == ["patient0002"]
        assert [i["patient"] for i in camus_datalist(camus["camus"], split="train")] == ["patient0001"]
    finally:
        (camus["camus"] / "database_split" / "subgroup_testing.txt").unlink()
        (camus["camus"] / "database_split" / "subgroup_training.txt").write_text("patient0001\npatient0002\n")
    # the 2019 layout has no split files: a stable hash of the patient name decides
    want = [f"patient000{k}" for k in (1, 2) if stable_split(f"patient000{k}") == "train"]
    assert [i["patient"] for i in camus_datalist(camus["camus2019"], split="train")] == want


@pytest.mark.parametrize("view, split, words", [("3CH", "all", "view must be"), ("4CH", "dev", "split must be")])
def test_camus_bad_arguments_are_input_errors(camus, view, split, words):
    with pytest.raises(InputError, match=words):
        camus_datalist(camus["camus"], view, split)


def test_echonet_rows_without_video_or_tracings_are_counted_when_asked(tmp_path):
    root = tmp_path / "echonet"
    generate(root, 3, "echonet", frames=8)
    names = pd.read_csv(root / "FileList.csv")["FileName"].tolist()
    (root / "Videos" / f"{names[0]}.avi").unlink()
    vt = pd.read_csv(root / "VolumeTracings.csv")
    vt[vt["FileName"] != f"{names[1]}.avi"].to_csv(root / "VolumeTracings.csv", index=False)
    with pytest.raises(InputError, match="missing"):
        echonet_datalist(root)
    skipped = Counter()
    items = echonet_datalist(root, "all", skipped=skipped)
    assert [i["filename"] for i in items] == [names[2]]
    assert skipped == {"missing video": 1, "no tracings": 1}


def test_cine_folder_finds_cines_recursively_and_counts_the_rest(tmp_path):
    root = tmp_path / "studies"
    generate(root / "a", 1, "dicom", size=96, frames=8)
    generate(root / "b" / "c", 1, "dicom", size=96, frames=8, seed=3)
    (root / "notes.txt").write_text("not a cine")
    found = cine_folder_datalist(root)
    assert [i["name"] for i in found.items] == ["a/phantom_0000000.dcm", "b/c/phantom_0000003.dcm"]
    assert all(i["n_frames"] == 8 for i in found.items)
    others = sum(1 for p in root.rglob("*") if p.is_file()) - 2
    assert found.skipped == {"not DICOM": others} and f"skipped {others} file(s)" in found.describe()
    shutil.rmtree(root / "a")
    shutil.rmtree(root / "b")
    with pytest.raises(InputError, match="no ultrasound DICOM cine"):
        cine_folder_datalist(root)


def test_stable_split_is_stable_and_roughly_80_10_10():
    names = [f"study_{k}" for k in range(2000)]
    counts = Counter(stable_split(n) for n in names)
    assert [stable_split(n) for n in names[:50]] == [stable_split(n) for n in names[:50]]
    assert 0.76 < counts["train"] / 2000 < 0.84 and 0.07 < counts["val"] / 2000 < 0.13
