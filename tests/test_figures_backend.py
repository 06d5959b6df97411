"""Library figures leave the user's matplotlib alone: no backend switch, no pyplot figures (notebooks keep
their inline figures)."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from echokdm.evaluate.plots import box_plots
from echokdm.keypoints.draw import plot_keypoints
from echokdm.render import plot_curve


@pytest.fixture
def svg_backend():
    before = matplotlib.get_backend()
    plt.switch_backend("svg")
    yield
    plt.switch_backend(before)


def test_figures_keep_backend_and_pyplot_state(svg_backend, tmp_path):
    open_before = plt.get_fignums()
    kps = np.stack([40 + 20 * np.cos(np.linspace(0, np.pi, 20)), 20 + 30 * np.sin(np.linspace(0, np.pi, 20))], 1)
    plot_keypoints(tmp_path / "k.png", [np.zeros((64, 80))], [kps], ["t"])
    plot_curve(tmp_path / "c.png", np.arange(10.0), "area")
    table = pd.DataFrame({"case_id": ["a", "b"], "predictor": ["copy", "copy"], "skipped": [False, False],
                          "psnr": [20.0, 21.0]})
    box_plots(table, ["copy"], tmp_path / "b.png")
    assert matplotlib.get_backend() == "svg"
    assert plt.get_fignums() == open_before
    for name in ("k.png", "c.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_box_plots_leave_identical_frames_off_the_psnr_scale(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    table = pd.DataFrame({"case_id": ["a", "b", "a", "b"], "predictor": ["copy", "copy", "truth", "truth"],
                          "skipped": [False] * 4, "psnr": [20.0, 24.0, 100.0, 100.0]})
    limits, texts = [], []
    monkeypatch.setattr(Axes, "text", lambda self, x, y, s, **kw: texts.append(s))
    real_savefig = matplotlib.figure.Figure.savefig

    def savefig(fig, *a, **kw):
        limits.append(fig.axes[0].get_ylim())
        return real_savefig(fig, *a, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    box_plots(table, ["copy", "truth"], tmp_path / "b.png")
    assert limits[0][1] < 30  # the capped PSNR of identical frames does not stretch the axis
    assert texts == ["2× =\ntarget"]


@pytest.mark.parametrize(("spacing_known", "unit"), [(True, "mm"), (False, "px")])
def test_box_plots_label_distances_in_pixels_without_spacing(tmp_path, monkeypatch, spacing_known, unit):
    table = pd.DataFrame({"case_id": ["a", "b"], "predictor": ["copy", "copy"], "skipped": [False, False],
                          "ssim": [0.5, 0.6], "hd95": [3.0, 4.0]})
    labels = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def savefig(fig, *a, **kw):
        labels.update({ax.get_title().split()[0]: ax.get_ylabel() for ax in fig.axes if ax.get_title()})
        return real_savefig(fig, *a, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    box_plots(table, ["copy"], tmp_path / "b.png", spacing_known)
    assert labels == {"ssim": "", "hd95": unit}
