"""Tests for anime_lib.viz and anime_lib.widgets: figures, value ranges, and the static widget fallback."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from anime_lib.training import LossHistory
from anime_lib.viz import (
    bar_table,
    grid_array,
    interpolation_strip,
    plot_losses,
    save_grid,
    show_images,
    translation_panel,
)
from anime_lib.widgets import StaticFigures, slider_explorer, widgets_available


def _ramp(n=4, size=8, low=-1.0, high=1.0):
    """n images (n, 3, size, size) spanning exactly [low, high]."""
    x = torch.linspace(low, high, n * 3 * size * size).view(n, 3, size, size)
    return x


def _shown(fig, i=0):
    return np.asarray(fig.axes[i].images[0].get_array())


def test_show_images_maps_value_range_to_unit_interval():
    fig = show_images(_ramp(), nrow=2, title="ramp")
    assert isinstance(fig, Figure)
    arr = _shown(fig)
    assert arr.shape == (2 + 2 * 10, 2 + 2 * 10, 3)  # 2x2 grid of 8x8 images with 2 px padding
    inner = arr[2:10, 2:10]  # the first image, without padding
    assert inner.min() == pytest.approx(0.0) and inner.max() < 0.3
    assert arr.min() >= 0.0 and arr.max() <= 1.0
    assert arr[-10:-2, -10:-2].max() == pytest.approx(1.0)  # last image ends at +1 -> 1.0
    assert fig.axes[0].get_title() == "ramp"


def test_value_range_is_respected_and_clipped():
    zeros = torch.zeros(1, 3, 4, 4)
    assert grid_array(zeros, padding=0)[..., 0].mean() == pytest.approx(0.5)  # 0 in [-1, 1] is mid-grey
    assert grid_array(zeros, value_range=(0, 1), padding=0).max() == pytest.approx(0.0)
    assert grid_array(torch.full((1, 3, 4, 4), 1.4), padding=0).max() == pytest.approx(1.0)  # a little over: clipped
    with pytest.raises(ValueError, match="0-255"):  # far outside (a 0-255 image shown as [-1, 1]): refused
        grid_array(torch.full((1, 3, 4, 4), 5.0), padding=0)
    assert grid_array(torch.full((1, 3, 4, 4), 127.5), value_range=(0, 255), padding=0).mean() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="low < high"):
        grid_array(zeros, value_range=(1, -1))


def test_show_images_draws_into_given_axes():
    host = Figure()
    ax = host.add_subplot()
    assert show_images(_ramp(2), ax=ax) is host
    assert len(ax.images) == 1


def test_save_grid_writes_pixel_exact_png(tmp_path):
    images = torch.cat([torch.full((1, 3, 4, 4), -1.0), torch.full((1, 3, 4, 4), 1.0)])
    path = save_grid(images, tmp_path / "sub" / "grid.png", nrow=2)
    assert path.exists()
    png = mpimg.imread(path)
    assert png.shape[:2] == (2 + 6, 2 + 2 * 6)
    assert png[2:6, 2:6, :3].max() == pytest.approx(0.0)  # -1 -> black
    assert png[2:6, 8:12, :3].min() == pytest.approx(1.0)  # +1 -> white


def test_translation_panel_has_one_column_per_role():
    x, y, t = _ramp(3), -_ramp(3), torch.zeros(3, 3, 8, 8)
    fig = translation_panel(x, y, t)
    assert [ax.get_title() for ax in fig.axes] == ["input", "output", "ground truth"]
    for i in range(3):
        arr = _shown(fig, i)
        assert arr.shape == (2 + 3 * 10, 2 + 10, 3)  # one image per row
        assert 0.0 <= arr.min() and arr.max() <= 1.0
    assert _shown(fig, 2)[2:10, 2:10].mean() == pytest.approx(0.5)
    fig2 = translation_panel(x, y, titles=("human", "anime"))
    assert [ax.get_title() for ax in fig2.axes] == ["human", "anime"]
    with pytest.raises(ValueError, match="same batch size"):
        translation_panel(x, y[:2])


def test_plot_losses_raw_and_smoothed_curves():
    h = LossHistory()
    for s in range(20):
        h.add(s, loss_G=1.0 + s, loss_D=None if s < 5 else 0.5)
    fig = plot_losses(h, smooth=4, logy=True)
    ax = fig.axes[0]
    assert len(ax.lines) == 4 and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss_G", "loss_D"]
    smooth_g = ax.lines[1].get_ydata()
    assert smooth_g[-1] == pytest.approx(np.mean([17, 18, 19, 20]))
    assert np.isnan(ax.lines[3].get_ydata()[0]) and ax.lines[3].get_ydata()[-1] == pytest.approx(0.5)
    fig_raw = plot_losses(h.as_dict(), smooth=0, names=["loss_G"])
    assert len(fig_raw.axes[0].lines) == 1


def test_interpolation_strip_labels_and_rows():
    frames = [torch.full((3, 8, 8), v) for v in (-1.0, 0.0, 1.0)]
    fig = interpolation_strip(frames, labels=[0.0, 0.5, 1.0], title="alpha")
    arr = _shown(fig)
    assert arr.shape == (12, 2 + 3 * 10, 3)
    assert arr[2:10, 2:10].max() == pytest.approx(0.0) and arr[2:10, 22:30].min() == pytest.approx(1.0)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "0.5", "1"]
    two_rows = interpolation_strip(torch.zeros(2, 5, 3, 8, 8), row_labels=["a", "b"])
    assert _shown(two_rows).shape == (2 + 2 * 10, 2 + 5 * 10, 3)
    with pytest.raises(ValueError, match="labels"):
        interpolation_strip(frames, labels=[0, 1])


def test_bar_table_bars_match_metric():
    rows = [{"model": "CycleGAN", "fid": 61.0}, {"model": "UGATIT", "fid": 48.5}, {"model": "x", "kid": 1.0}]
    fig = bar_table(rows, "fid", lower_is_better=True)
    ax = fig.axes[0]
    assert [p.get_width() for p in ax.patches] == [61.0, 48.5]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["CycleGAN", "UGATIT"]
    assert "lower is better" in ax.get_xlabel()
    assert [p.get_width() for p in bar_table({"a": 1.0, "b": 2.0}, "score").axes[0].patches] == [1.0, 2.0]
    with pytest.raises(ValueError, match="no row"):
        bar_table(rows, "lpips")


def test_slider_explorer_static_fallback_renders_each_setting(monkeypatch):
    monkeypatch.setenv("ANIME_LIB_STATIC_WIDGETS", "1")
    assert not widgets_available()
    calls = []

    def render(size, blend, style, flip, label):
        calls.append((size, blend, style, flip, label))
        img = torch.full((1, 3, size, size), blend * (1 if style == "light" else -1))
        return img.flip(-1) if flip else img

    controls = {"size": (4, 12, 4), "blend": (0.0, 1.0, 0.25), "style": ["light", "dark"], "flip": False,
                "label": "fixed"}
    figs = slider_explorer(render, controls, static_values=[{"size": 4}, {"blend": 1.0, "style": "dark"}])
    assert isinstance(figs, StaticFigures) and len(figs) == 2
    assert all(isinstance(f, Figure) for f in figs)
    assert calls == [(4, 0.5, "light", False, "fixed"), (8, 1.0, "dark", False, "fixed")]
    assert _shown(figs[0])[2:6, 2:6].mean() == pytest.approx(0.75)  # blend 0.5 in [-1, 1]
    assert _shown(figs[1])[2:10, 2:10].max() == pytest.approx(0.0)  # -1 -> black
    assert "size=8" in figs[1].axes[0].get_title() and "label" not in figs[1].axes[0].get_title()
    defaults = slider_explorer(render, controls)
    assert len(defaults) == 1 and calls[-1] == (8, 0.5, "light", False, "fixed")
    with pytest.raises(ValueError, match="unknown names"):
        slider_explorer(render, controls, static_values=[{"sizes": 3}])


def test_slider_explorer_passes_through_figures():
    made = []

    def render(k):
        fig = Figure()
        fig.add_subplot().plot([0, k])
        made.append(fig)
        return fig

    figs = slider_explorer(render, {"k": [1, 2, 3]}, static_values=[{"k": 1}, {"k": 3}], static=True)
    assert list(figs) == made and figs.values == [{"k": 1}, {"k": 3}]


def test_slider_explorer_live_builds_matching_widgets():
    pytest.importorskip("ipywidgets")
    box = slider_explorer(lambda n, w, c: Figure(), {"n": (0, 10, 2), "w": (0.0, 1.0), "c": {"A": 1, "B": 2}},
                          static=False)
    controls = box.children[0].children
    assert [type(c).__name__ for c in controls] == ["IntSlider", "FloatSlider", "Dropdown"]
    assert (controls[0].min, controls[0].max, controls[0].step, controls[0].value) == (0, 10, 2, 6)
    assert controls[1].value == pytest.approx(0.5) and controls[2].value == 1
