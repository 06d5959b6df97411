"""Figures drawn with numpy and Pillow (echokdm.panels): colours as matplotlib's, marks where the points are."""

import numpy as np
from PIL import Image

from echokdm.flow import flow_to_rgb
from echokdm.keypoints.draw import PANEL_WIDTH, plot_keypoints
from echokdm.panels import Panel, compose
from echokdm.predict.figures import rdbu_r


def test_colours_match_matplotlib():
    from matplotlib import colormaps
    from matplotlib.colors import hsv_to_rgb

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.random(5000), [0.0, 0.5, 1.0, 1 - 1e-12]])
    assert np.array_equal(rdbu_r(x), (colormaps["RdBu_r"](x)[..., :3] * 255).round().astype(np.uint8))
    flow = rng.normal(size=(2, 40, 50)) * 3
    dy, dx = flow
    hue = (np.arctan2(dy, dx) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, np.ones(dx.shape), np.clip(np.hypot(dx, dy) / 4, 0, 1)], -1)
    assert np.array_equal(flow_to_rgb(flow, 4.0), (hsv_to_rgb(hsv) * 255).round().astype(np.uint8))


def test_panel_keeps_pixels_and_marks_points():
    frame = np.zeros((50, 100))
    frame[:, 50:] = 1.0
    panel = Panel(frame, 200)
    panel.points(np.array([[20.0, 10.0]]), "yellow")
    picture = np.asarray(panel.image())
    assert picture.shape == (100, 200, 3)
    assert (picture[80:, 120:] == 255).all() and (picture[80:, :80] == 0).all()  # scaled 2x, pixels untouched
    x, y = (np.array([20.0, 10.0]) + 0.5) * 2  # pixel centres at integers
    assert tuple(picture[round(y), round(x)]) == (255, 255, 0)


def test_plot_keypoints_draws_contour_and_titles(tmp_path):
    t = np.linspace(0, np.pi, 20)
    kps = np.stack([40 + 20 * np.cos(t), 20 + 30 * np.sin(t)], 1)
    plot_keypoints(tmp_path / "k.png", [np.zeros((64, 80)), np.zeros((64, 80))], [kps, None], ["with", "without"])
    picture = np.asarray(Image.open(tmp_path / "k.png").convert("RGB")).astype(int)
    assert picture.shape[1] > 2 * PANEL_WIDTH
    red = (picture[..., 0] > 150) & (picture[..., 1] < 100)
    assert red[:, : picture.shape[1] // 2].sum() > 100 and red[:, picture.shape[1] // 2 :].sum() == 0
    assert (picture[:12] == 255).all()  # white margin above the titles
    assert (picture[12:40] < 128).any()  # the titles


def test_compose_puts_panels_side_by_side():
    a, b = Image.new("RGB", (30, 20), "red"), Image.new("RGB", (40, 10), "blue")
    canvas = np.asarray(compose([a, b], ["", ""]))
    assert canvas.shape[1] == 30 + 40 + 3 * 12 and canvas.shape[0] == 20 + 2 * 12
    assert tuple(canvas[12, 12]) == (255, 0, 0) and tuple(canvas[12, 12 + 30 + 12]) == (0, 0, 255)
