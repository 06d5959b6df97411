"""The calibrated target-EF request (echokdm.predict.ef_request) on stand-in generators with known responses."""

import pytest

from echokdm.predict.ef_request import MAX_EXTRA, PLAUSIBLE_EF, calibrate_request, plausible_range


class Generator:
    """Measured EF = ``gain`` * keypoint EF + ``offset``; records every keypoint EF asked."""

    def __init__(self, gain: float, offset: float) -> None:
        self.gain, self.offset, self.asked = gain, offset, []

    def __call__(self, ef: float) -> float:
        self.asked.append(ef)
        return self.gain * ef + self.offset


@pytest.mark.parametrize(("gain", "offset"), [(0.83, -3.0), (0.6, 5.0), (1.0, 8.0)])
def test_under_and_over_delivery_are_corrected(gain, offset):
    gen = Generator(gain, offset)
    cal = calibrate_request(gen, 40.0)
    assert abs(cal.measured - 40.0) <= 1.0 and not cal.bounded
    assert cal.keypoints_ef == pytest.approx((40.0 - offset) / gain, abs=1.0 / gain)
    assert gen.asked[0] == 40.0 and len(gen.asked) <= 4
    assert [t[0] for t in cal.tried] == gen.asked


def test_a_request_the_plausible_range_cannot_meet_keeps_the_closest_and_says_so():
    gen = Generator(0.4, 2.0)  # the Acuson loop: a third of the keypoints' contraction shows
    cal = calibrate_request(gen, 50.0)
    low, high = plausible_range(50.0)
    assert high == min(PLAUSIBLE_EF, 50.0 + MAX_EXTRA)
    assert all(low <= ef <= high for ef in gen.asked)
    assert cal.bounded and cal.keypoints_ef == high and cal.measured == pytest.approx(0.4 * high + 2.0)


def test_the_result_is_the_closest_prediction_made():
    responses = {40.0: 30.0, 50.0: 45.0}
    cal = calibrate_request(lambda ef: responses.get(round(ef, 6), 20.0), 40.0, max_renders=3)
    assert (cal.keypoints_ef, cal.measured) == (50.0, 45.0)


def test_unmeasurable_predictions_keep_the_request():
    cal = calibrate_request(lambda ef: None, 35.0)
    assert (cal.keypoints_ef, cal.measured, cal.tried) == (35.0, None, [(35.0, None)])


def test_requests_above_the_plausible_ceiling_are_used_as_they_are():
    assert plausible_range(85.0) == (65.0, 85.0)
    assert plausible_range(10.0) == (5.0, 30.0)
