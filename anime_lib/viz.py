"""Figures for the lessons: image grids, translation panels, loss curves, interpolation strips, metric bars.

Every function returns a ``matplotlib.figure.Figure`` and never calls ``plt.show()``. The figures are
made with ``Figure()`` directly rather than through ``pyplot``, so a notebook shows each one exactly
once (leave it as the cell's last expression or call ``display(fig)``) and long papermill sweeps do
not pile up open pyplot figures. Save one with ``fig.savefig(path)``.

Images are tensors (N, 3, H, W) (or (N, 1, H, W)) in ``value_range``, by default [-1, 1], the range
the generators in this course produce. They are mapped to [0, 1] explicitly with
``(x - low) / (high - low)`` and clipped; getting this range wrong is the most common reason for
washed-out or black sample grids.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib


def _in_ipython_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _use_agg_without_display() -> None:
    """Pick the Agg backend for scripts and tests on headless machines; leave notebooks alone."""
    if os.environ.get("MPLBACKEND") or _in_ipython_kernel():
        return
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        matplotlib.use("Agg")


_use_agg_without_display()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402
from anime_lib.ranges import to_model_range, to_unit_range  # noqa: E402,F401  (the one home of range conversions)



def _figure_png(fig: Figure) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _register_figure_display() -> None:
    """Let a Jupyter kernel show a bare ``Figure`` as a PNG (cell result or ``display(fig)``).

    Without ``%matplotlib inline`` IPython only knows how to print "<Figure size ...>" for a Figure
    made without pyplot; papermill and nbval outputs would then hold no pictures.
    """
    if not _in_ipython_kernel():
        return
    from IPython import get_ipython

    formatter = get_ipython().display_formatter.formatters["image/png"]
    formatter.for_type(Figure, _figure_png)


_register_figure_display()

__all__ = [
    "to_unit_range",
    "to_model_range",
    "show_landmarks",
    "show_face_detections",
    "grouped_bars",
    "grid_array",
    "show_images",
    "save_grid",
    "translation_panel",
    "plot_losses",
    "interpolation_strip",
    "bar_table",
]

ValueRange = tuple[float, float]


def _as_batch(images: Any) -> torch.Tensor:
    """Accept (N, C, H, W), (C, H, W) or a list of (C, H, W) / (1, C, H, W) tensors -> (N, C, H, W)."""
    if isinstance(images, (list, tuple)):
        parts = [torch.as_tensor(im) for im in images]
        images = torch.cat([p if p.dim() == 4 else p.unsqueeze(0) for p in parts])
    images = torch.as_tensor(images)
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 3, H, W) or (N, 1, H, W), got {tuple(images.shape)}")
    return images


def grid_array(
    images: Any, nrow: int = 8, value_range: ValueRange = (-1.0, 1.0), padding: int = 2, pad_value: float = 1.0
) -> np.ndarray:
    """The grid as an (H, W, 3) float array in [0, 1], ``nrow`` images per row (white padding)."""
    batch = to_unit_range(_as_batch(images), value_range)
    grid = make_grid(batch, nrow=max(1, int(nrow)), padding=padding, pad_value=pad_value)
    return grid.permute(1, 2, 0).numpy()


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _image_figsize(array: np.ndarray, scale: float = 0.025, max_width: float = 14.0) -> tuple[float, float]:
    h, w = array.shape[:2]
    width = min(max_width, max(2.0, w * scale))
    return width, max(1.0, width * h / w)


def show_images(
    images: Any,
    nrow: int = 8,
    title: str | None = None,
    ax: Axes | None = None,
    value_range: ValueRange = (-1.0, 1.0),
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """A grid of images (N, 3, H, W) in ``value_range``, ``nrow`` per row. Returns the Figure."""
    array = grid_array(images, nrow=nrow, value_range=value_range)
    fig, ax = _new_axes(ax, figsize or _image_figsize(array))
    ax.imshow(array, interpolation="nearest", vmin=0.0, vmax=1.0)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def save_grid(
    images: Any, path: str | os.PathLike, nrow: int = 8, value_range: ValueRange = (-1.0, 1.0)
) -> Path:
    """Write the grid as a PNG with one pixel per image pixel (no axes, no resampling). Returns the path."""
    import matplotlib.image as mpimg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mpimg.imsave(path, grid_array(images, nrow=nrow, value_range=value_range))
    return path


def translation_panel(
    inputs: Any,
    outputs: Any,
    targets: Any | None = None,
    titles: Sequence[str] = ("input", "output", "ground truth"),
    value_range: ValueRange = (-1.0, 1.0),
    max_rows: int | None = 8,
) -> Figure:
    """One row per sample: input | output | ground-truth counterpart (if ``targets`` is given).

    All tensors (N, 3, H, W) in ``value_range``; only the first ``max_rows`` samples are shown.
    """
    columns = [_as_batch(inputs), _as_batch(outputs)]
    if targets is not None:
        columns.append(_as_batch(targets))
    n = min(len(c) for c in columns)
    if any(len(c) != n for c in columns):
        raise ValueError(f"inputs, outputs and targets must have the same batch size, got {[len(c) for c in columns]}")
    if max_rows is not None:
        n = min(n, max_rows)
    if len(titles) < len(columns):
        raise ValueError(f"need {len(columns)} titles, got {list(titles)}")
    arrays = [grid_array(c[:n], nrow=1, value_range=value_range) for c in columns]
    h, w = arrays[0].shape[:2]
    col_width = 1.6
    fig = Figure(figsize=(col_width * len(arrays), max(1.5, col_width * h / w + 0.3)), layout="constrained")
    axes = fig.subplots(1, len(arrays), squeeze=False)[0]
    for ax, array, name in zip(axes, arrays, titles):
        ax.imshow(array, interpolation="nearest", vmin=0.0, vmax=1.0)
        ax.set_title(name)
        ax.set_axis_off()
    return fig


def plot_losses(
    history: Any,
    smooth: int = 50,
    ax: Axes | None = None,
    logy: bool = False,
    names: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Loss curves from ``{"step": [...], name: [...]}`` (``LossHistory.as_dict()``) or a LossHistory.

    Raw values are drawn faintly, the trailing moving average over ``smooth`` points on top
    (``smooth <= 1`` draws the raw curves only).
    """
    data: Mapping[str, Sequence] = history.as_dict() if hasattr(history, "as_dict") else history
    if "step" not in data:
        raise ValueError("history needs a 'step' column, e.g. LossHistory.as_dict()")
    steps = np.asarray(data["step"], dtype=float)
    names = list(names) if names is not None else [k for k in data if k != "step"]
    fig, ax = _new_axes(ax, (7.0, 3.5))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(names):
        values = np.array([np.nan if v is None else float(v) for v in data[name]], dtype=float)
        color = colors[i % len(colors)]
        if smooth and smooth > 1:
            ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
            ax.plot(steps, _trailing_mean(values, smooth), color=color, linewidth=1.6, label=name)
        else:
            ax.plot(steps, values, color=color, linewidth=1.2, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if names:
        ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def _trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` finite values at each position (NaN before the first)."""
    finite = np.isfinite(values)
    csum = np.cumsum(np.where(finite, values, 0.0))
    ccount = np.cumsum(finite)
    prev_sum = np.concatenate([np.zeros(window), csum[:-window]])[: len(values)]
    prev_count = np.concatenate([np.zeros(window), ccount[:-window]])[: len(values)]
    count = ccount - prev_count
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum - prev_sum) / np.maximum(count, 1), np.nan)


def interpolation_strip(
    images: Any,
    labels: Sequence[Any] | None = None,
    value_range: ValueRange = (-1.0, 1.0),
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
) -> Figure:
    """Images along an interpolation path, left to right.

    ``images``: a list of (3, H, W) tensors or a tensor (K, 3, H, W) for one strip, or (R, K, 3, H, W)
    for R strips stacked. ``labels`` (e.g. the interpolation weights) are written under the columns.
    """
    if isinstance(images, torch.Tensor) and images.dim() == 5:
        n_rows, k = images.shape[:2]
        batch = images.reshape(n_rows * k, *images.shape[2:])
    else:
        batch = _as_batch(images)
        n_rows, k = 1, len(batch)
    padding = 2
    array = grid_array(batch, nrow=k, value_range=value_range, padding=padding)
    fig, ax = _new_axes(None, (min(14.0, 1.3 * k), 1.3 * n_rows + 0.5))
    ax.imshow(array, interpolation="nearest", vmin=0.0, vmax=1.0)
    for side in ax.spines.values():
        side.set_visible(False)
    h, w = batch.shape[-2:]
    if labels is not None and len(labels) != k:
        raise ValueError(f"got {len(labels)} labels for {k} images per strip")
    ax.set_xticks([padding + i * (w + padding) + w / 2 for i in range(k)])
    ax.set_xticklabels([_fmt(v) for v in labels] if labels is not None else [])
    ax.set_yticks([padding + r * (h + padding) + h / 2 for r in range(n_rows)])
    ax.set_yticklabels(list(row_labels) if row_labels is not None else [])
    ax.tick_params(length=0)
    if title:
        ax.set_title(title)
    return fig


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2g}"
    return str(value)


def bar_table(
    rows: Sequence[Mapping[str, Any]] | Mapping[str, float],
    metric: str,
    label_key: str | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    lower_is_better: bool | None = None,
) -> Figure:
    """A horizontal bar per row for ``metric``, with the value written at the end of each bar.

    ``rows``: a list of dicts such as ``[{"model": "CycleGAN", "fid": 61.2}, ...]`` (rows without the
    metric are skipped) or a plain ``{label: value}`` dict. ``label_key`` defaults to the first of
    name/model/method/run/label present. ``lower_is_better`` adds a hint to the axis label.
    """
    if isinstance(rows, Mapping):
        pairs = [(str(k), float(v)) for k, v in rows.items()]
    else:
        if label_key is None:
            keys = set().union(*(r.keys() for r in rows)) if rows else set()
            label_key = next((k for k in ("name", "model", "method", "run", "label") if k in keys), None)
        pairs = []
        for i, row in enumerate(rows):
            value = row.get(metric)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            pairs.append((str(row.get(label_key, i)) if label_key else str(i), float(value)))
    if not pairs:
        raise ValueError(f"no row has a value for {metric!r}")
    labels = [p[0] for p in pairs]
    values = [p[1] for p in pairs]
    fig, ax = _new_axes(ax, (6.0, 0.45 * len(pairs) + 1.0))
    y = np.arange(len(pairs))
    bars = ax.barh(y, values, color="#4c72b0")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()  # first row on top, like a table
    ax.bar_label(bars, labels=[f"{v:.4g}" for v in values], padding=3, fontsize="small")
    ax.margins(x=0.15)
    hint = {True: " (lower is better)", False: " (higher is better)", None: ""}[lower_is_better]
    ax.set_xlabel(metric + hint)
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def show_landmarks(sets: Sequence[Any], n: int = 6, figsize: tuple[float, float] | None = None) -> Figure:
    """The first ``n`` faces of each ToySet in ``sets`` (one row per set) with their five landmarks, the
    eye line drawn (its angle is the roll) and the recorded roll in each title."""
    fig = Figure(figsize=figsize or (2 * n, 1.7 * len(sets)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(sets), n))
    for row, ds in enumerate(sets):
        for col in range(n):
            ax = axes[row, col]
            ax.imshow(ds.unit(col).permute(1, 2, 0).numpy())
            # imshow centres pixel i at coordinate i, landmarks count from the image's left edge
            p = ds.landmarks[col].numpy() - 0.5
            ax.plot(p[:2, 0], p[:2, 1], color="yellow", linewidth=1)
            ax.scatter(p[:, 0], p[:, 1], c=["red", "red", "lime", "cyan", "cyan"], s=16, edgecolors="black",
                       linewidths=0.5)
            ax.set_title(f"{ds.domain}, roll {float(ds.roll[col]):+.1f}°", fontsize=9)
            ax.set_axis_off()
    return fig


def show_face_detections(photos: Mapping[str, np.ndarray], faces: Mapping[str, Any], aligned: Mapping[str, Any],
                         figsize: tuple[float, float] = (12, 3.3)) -> Figure:
    """Per photo (uint8 H x W x 3): the photo with the detected face box and eye line, then its aligned crop
    (an image or array in ``aligned[name]``).
    ``faces[name]`` has ``x, y, w, h, left_eye, right_eye, roll_degrees`` (a :class:`anime_lib.data.faces.Face`)."""
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=figsize, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, 2 * len(photos)))
    for k, (name, img) in enumerate(photos.items()):
        face = faces[name]
        ax = axes[2 * k]
        ax.imshow(img)
        ax.add_patch(Rectangle((face.x, face.y), face.w, face.h, fill=False, color="yellow", linewidth=1.5))
        (lx, ly), (rx, ry) = face.left_eye, face.right_eye
        ax.plot([lx, rx], [ly, ry], "r.-", markersize=6)
        ax.set_title(f"{name}: roll {face.roll_degrees:+.1f}°", fontsize=9)
        crop = np.asarray(aligned[name])
        axes[2 * k + 1].imshow(crop)
        axes[2 * k + 1].set_title(f"aligned crop, {crop.shape[0]} px", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    return fig


def grouped_bars(groups: Mapping[str, Sequence[Mapping[str, Any]]], series: Sequence[str], label: str = "name",
                 ylabel: str = "", title: str = "", ncols: int = 4, figsize: tuple[float, float] = (13, 5.5)) -> Figure:
    """One panel per group (e.g. an attribute), bars of each series (e.g. a domain) side by side per row's
    ``label`` (e.g. the class). ``groups[g]`` is a list of rows with ``label`` and one value per series."""
    nrows = math.ceil(len(groups) / ncols)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    width = 0.8 / len(series)
    for ax, (name, rows) in zip(axes, groups.items()):
        pos = np.arange(len(rows))
        for j, s in enumerate(series):
            ax.bar(pos + (j - (len(series) - 1) / 2) * width, [r[s] for r in rows], width, label=s)
        ax.set_xticks(pos, [r[label] for r in rows], rotation=45, ha="right", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(groups):]:
        ax.set_axis_off()
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def histogram_figure(hists: Mapping[str, Mapping[str, np.ndarray]], classes: Mapping[str, Sequence[str]],
                     ncols: int = 3, figsize: tuple[float, float] = (14, 9)) -> Figure:
    """Attribute histograms of several image sets side by side: one bar chart per attribute of ``classes``
    (attribute -> class names), the fraction of images in each class, one bar per set (``hists``: set name ->
    attribute -> fractions, as from :func:`anime_lib.metrics.attribute_histograms`)."""
    fig = Figure(figsize=figsize, layout="constrained")
    axes = np.atleast_1d(fig.subplots(math.ceil(len(classes) / ncols), ncols)).ravel()
    width = 0.8 / len(hists)
    for ax, attr in zip(axes, classes):
        xs = np.arange(len(classes[attr]))
        for k, (name, h) in enumerate(hists.items()):
            ax.bar(xs + (k - (len(hists) - 1) / 2) * width, h[attr], width=width, label=name)
        ax.set_xticks(xs, classes[attr], rotation=30, fontsize=8)
        ax.set_title(attr + (" (degrees)" if attr == "roll" else ""), fontsize=10)
    for ax in axes[len(classes):]:
        ax.set_axis_off()
    axes[0].set_ylabel("fraction of images")
    axes[0].legend(fontsize=8)
    return fig


def image_rows(rows: Mapping[str, Any], title: str | None = None, value_range: ValueRange = (-1.0, 1.0),
               size: float = 1.3, fontsize: float = 9) -> Figure:
    """One row of images per entry of ``rows`` ({label: images (N, 3 or 1, H, W) in ``value_range``}), the
    label above its row, e.g. inputs, then each model's outputs, then the ground truth. ``size``: inches per
    image. Rows with fewer images than the longest are left-aligned."""
    batches = {str(label): _as_batch(images) for label, images in rows.items()}
    if not batches:
        raise ValueError("image_rows needs at least one row")
    ncol = max(len(b) for b in batches.values())
    fig = Figure(figsize=(size * ncol, (size + 0.25) * len(batches) + (0.3 if title else 0.0)), layout="constrained")
    for ax, (label, batch) in zip(fig.subplots(len(batches), 1, squeeze=False)[:, 0], batches.items()):
        array = grid_array(batch, nrow=len(batch), value_range=value_range)
        ax.imshow(array, interpolation="nearest", vmin=0.0, vmax=1.0, extent=(0, array.shape[1], array.shape[0], 0))
        ax.set_xlim(0, 2 + ncol * (batch.shape[-1] + 2))  # grid_array's 2 px padding: short rows keep the scale
        ax.set_title(label, fontsize=fontsize, loc="left")
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=fontsize + 1)
    return fig


def loss_panels(histories: Mapping[str, Any], panels: Mapping[str, Sequence[str]], smooth: int = 50,
                logy: Sequence[str] = (), figsize: tuple[float, float] | None = None) -> Figure:
    """Loss curves of several runs side by side: one panel per entry of ``panels`` ({title: loss names}), in it
    one curve per run of ``histories`` ({run: LossHistory or its ``as_dict()``}) that logged all those names: their
    sum per step (None -> gap). A run keeps its colour in every panel; raw values faint, the trailing mean over
    ``smooth`` points on top. Panels whose title is in ``logy`` use a log scale; a panel no run logged says so."""
    data = {run: h.as_dict() if hasattr(h, "as_dict") else h for run, h in histories.items()}
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    fig = Figure(figsize=figsize or (4.6 * len(panels), 3.6), layout="constrained")
    for ax, (title, names) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels.items()):
        ax.set_title(title, fontsize=10)
        drawn = 0
        for i, (run, h) in enumerate(data.items()):
            if not all(n in h for n in names):
                continue
            values = np.sum([[np.nan if v is None else float(v) for v in h[n]] for n in names], axis=0)
            steps, color = np.asarray(h["step"], dtype=float), colors[i % len(colors)]
            if smooth and smooth > 1:
                ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
                values = _trailing_mean(values, smooth)
            ax.plot(steps, values, color=color, linewidth=1.6, label=run)
            drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, "logged by no run", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        if title in logy:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="x-small")
    return fig
