"""The EF check (:mod:`echokdm.predict.ef_check`): when a second prediction is made, which one is kept, and the EF
miss it measures (its use by ``predict``: ``test_predict_cli.py``; by the harness: ``tests/test_cavity_check.py``)."""

import numpy as np
import pytest
from a4c_shapes import a4c_labels

from echokdm.keypoints import extract_keypoints
from echokdm.predict.ef_check import checked_prediction, ef_miss


def _run(misses: dict[bool, float | None], limit: float = 5.0, same: bool = False):
    calls = []

    def predict(strict: bool) -> str:
        calls.append(strict)
        return "second" if strict else "first"

    kept, check = checked_prediction(predict, lambda p: misses[p == "second"], limit, lambda p: same)
    return kept, check, calls


@pytest.mark.parametrize(
    ("first", "second", "made", "kept"),
    [
        (3.0, 1.0, False, "first"),  # within the limit: no second attempt
        (5.0, 1.0, False, "first"),  # at the limit too
        (None, 1.0, False, "first"),  # nothing to compare with
        (12.0, 4.0, True, "second"),  # closer: kept
        (12.0, 15.0, True, "first"),  # further: the first stays
        (12.0, 12.0, True, "first"),  # no closer
        (12.0, None, True, "first"),  # the second cannot be measured
    ],
)
def test_the_second_attempt_is_made_past_the_limit_and_kept_only_when_closer(first, second, made, kept):
    got, check, calls = _run({False: first, True: second})
    assert calls == ([False, True] if made else [False])
    assert got == kept and check.kept == kept
    assert check.as_dict() == {"limit": 5.0, "first": first, "second": second if made else None, "kept": kept,
                               "unchanged": False}


def test_no_second_attempt_where_a_strict_run_would_make_the_same_frames():
    got, check, calls = _run({False: 12.0, True: 4.0}, same=True)
    assert calls == [False] and got == "first"
    assert (check.first, check.second, check.kept, check.unchanged) == (12.0, None, "first", True)
    got, check, calls = _run({False: 3.0, True: 4.0}, same=True)  # within the limit: nothing to say
    assert calls == [False] and not check.unchanged


def test_ef_miss_is_the_gap_between_the_segmented_and_the_keypoint_ef():
    ed, es = a4c_labels(a=40, b=20), a4c_labels(a=34, b=14)
    ed_kps, es_kps = (extract_keypoints(lab, 40) for lab in (ed, es))
    labels = np.stack([ed, es])
    assert ef_miss(labels, ed_kps, es_kps, True, (0.3, 0.3)) == pytest.approx(0.0, abs=1e-9)
    wider = extract_keypoints(a4c_labels(a=34, b=18), 40)  # keypoints of a larger ES cavity: a lower EF
    assert ef_miss(labels, ed_kps, wider, True, (0.3, 0.3)) > 5
    assert ef_miss(np.stack([ed, np.zeros_like(es)]), ed_kps, es_kps, True, None) is None  # no LV to measure
