"""echokdm.review: the loop player, the sequence viewer and its fallback, the EF table and the review log."""

from __future__ import annotations

import base64
import re
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from echokdm.errors import InputError, OutputError, UnsupportedError
from echokdm.metrics import ef_consistency
from echokdm.review import (
    REVIEW_COLUMNS,
    ReviewLog,
    ef_table,
    frame_strip,
    loop_player,
    review_form,
    sequence_viewer,
    widgets_available,
)


def frames(n: int = 4, h: int = 24, w: int = 32) -> np.ndarray:
    """(n, h, w, 3) frames, frame t filled with grey level 40 t + 10 (tells frames apart after PNG coding)."""
    return np.stack([np.full((h, w, 3), 40 * t + 10, np.uint8) for t in range(n)])


def report(mode: str = "phase", ef_pred: float | None = 30.0) -> dict:
    target_ef = 35.0 if mode == "target_ef" else None
    ef_kp = 35.0 if mode == "target_ef" else 44.0
    return {
        "request": {"mode": mode},
        "phases": {"beat": [20, 5]},
        "source_frame": 20,
        "target_frame": 5 if mode == "phase" else None,
        "ef": {
            "source_beat": 44.0,
            "source_beat_area_length": 46.0,
            "target_keypoints": ef_kp,
            "requested": target_ef,
            "prediction": ef_pred,
            "prediction_note": None if ef_pred is not None else "EF of the prediction cannot be measured: no cavity",
            "consistency": ef_consistency(ef_kp, ef_pred, target_ef if mode == "target_ef" else ef_kp)
            if ef_pred is not None
            else None,
        },
    }


def test_loop_player_embeds_every_frame_in_order():
    rgb = frames(5)
    html = loop_player(rgb, 25.0, [f"t{t}" for t in range(5)])
    embedded = dict(re.findall(r'frames\[(\d+)\] = "data:image/png;base64,([^"]+)"', html))
    assert sorted(int(k) for k in embedded) == list(range(5))
    # each embedded picture shows its own frame: the grey level at the centre of the image
    centres = [iio.imread(base64.b64decode(embedded[str(t)]))[..., :3] for t in range(5)]
    levels = [int(np.median(c[c.shape[0] // 2 - 2 : c.shape[0] // 2 + 2, c.shape[1] // 2])) for c in centres]
    assert levels == [10, 50, 90, 130, 170]
    assert re.search(r"new Animation\(frames, img_id, slider_id, 25\.0,", html)


@pytest.mark.parametrize(
    "bad", [np.zeros((3, 8, 8), np.uint8), np.zeros((0, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 4), np.uint8)]
)
def test_bad_frames_are_refused(bad):
    with pytest.raises(InputError, match="frames must be"):
        loop_player(bad)


def test_frame_strip_has_a_titled_panel_per_frame():
    fig = frame_strip(frames(5), list("abcde"), columns=3)
    titled = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titled == list("abcde")
    assert len(fig.axes) == 6  # two rows of three, the last one empty
    with pytest.raises(InputError, match="5 frames need 5 titles, got 4"):
        frame_strip(frames(5), list("abcd"))


def test_sequence_viewer_slider_shows_each_frame():
    rgb = frames(3)
    box = sequence_viewer(rgb, ["ED", "mid", "ES"])
    label, image, slider = box.children
    assert (slider.min, slider.max, label.value) == (0, 2, "ED")
    slider.value = 2
    assert label.value == "ES"
    assert np.array_equal(iio.imread(image.value), rgb[2])


def test_without_ipywidgets_the_viewer_is_a_strip_and_the_form_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets now raises ImportError
    assert not widgets_available()
    fig = sequence_viewer(frames(3), ["ED", "mid", "ES"])
    assert [ax.get_title() for ax in fig.axes if ax.get_images()] == ["ED", "mid", "ES"]
    with pytest.raises(UnsupportedError, match=r"log.record\('case1'"):
        review_form(ReviewLog(tmp_path / "review"), "case1")


def test_ef_table_rows_for_an_observed_target():
    t = ef_table(report())
    assert list(t.index) == [
        "source beat",
        "source beat, area-length",
        "target keypoints",
        "prediction",
        "|prediction - target keypoints|",
    ]
    assert t["EF (%)"].tolist() == [44.0, 46.0, 44.0, 30.0, 14.0]
    assert "ED frame 20 and ES frame 5" in t.loc["source beat", "from"]
    assert "real frame 5" in t.loc["target keypoints", "from"]


def test_ef_table_for_a_target_ef_and_an_unmeasurable_prediction():
    t = ef_table(report("target_ef", ef_pred=20.0))
    assert t.loc["requested", "EF (%)"] == 35.0
    assert t.loc["|prediction - requested|", "EF (%)"] == 15.0
    assert "target ef" in t.loc["target keypoints", "from"]
    t = ef_table(report(ef_pred=None))
    assert np.isnan(t.loc["prediction", "EF (%)"]) and "no cavity" in t.loc["prediction", "from"]
    assert np.isnan(t.loc["|prediction - target keypoints|", "EF (%)"])


def test_review_log_appends_and_survives_a_new_session(tmp_path):
    folder = tmp_path / "review"
    log = ReviewLog(folder)
    assert log.table().empty and list(log.table().columns) == list(REVIEW_COLUMNS)
    log.record("case1", "accept", "fine", reviewer="AB", report=tmp_path / "r.json")
    log.record("case2", "flag", 'LA, "not" followed\nsecond line')
    again = ReviewLog(folder)  # a later session continues the same file
    again.record("case1", "flag", "changed my mind")
    t = again.table()
    assert t["case_id"].tolist() == ["case1", "case2", "case1"]
    assert t["decision"].tolist() == ["accept", "flag", "flag"]
    assert t.loc[1, "comment"] == 'LA, "not" followed\nsecond line'
    assert t.loc[0, "reviewer"] == "AB" and t.loc[0, "report"] == str(tmp_path / "r.json")
    assert t["time_utc"].str.endswith("+00:00").all()


def test_review_log_refuses_bad_decisions_and_foreign_files(tmp_path):
    log = ReviewLog(tmp_path / "review")
    with pytest.raises(InputError, match="decision must be one of accept, flag, got 'maybe'"):
        log.record("case1", "maybe")
    with pytest.raises(InputError, match="case id"):
        log.record(" ", "accept")
    assert not log.path.exists()
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(OutputError, match="not made by echokdm"):
        ReviewLog(foreign)
    (log.path).write_text("a,b\n1,2\n")
    with pytest.raises(OutputError, match="not an echokdm review log"):
        ReviewLog(tmp_path / "review")


def test_review_form_saves_the_chosen_decision(tmp_path):
    log = ReviewLog(tmp_path / "review")
    form = review_form(log, "case7", reviewer="CD")
    _, decision, comment, row = form.children
    save, status = row.children
    save.click()
    assert "choose accept or flag" in status.value and not log.path.exists()
    decision.value, comment.value = "flag", "apex foreshortened"
    save.click()
    t = log.table()
    assert t[["case_id", "decision", "comment", "reviewer"]].values.tolist() == [
        ["case7", "flag", "apex foreshortened", "CD"]
    ]
    assert "saved: case7 flag" in status.value
