"""Slider explorers for the lessons, with a static fallback for papermill, CI and plain Python.

``slider_explorer(render_fn, controls)`` turns a small spec into ipywidgets controls and re-renders
``render_fn(**values)`` whenever one moves. Without a live notebook frontend it renders a few fixed
settings instead and returns those figures (static matplotlib figures), so every notebook still runs
top to bottom, never waits for a frontend, and still shows pictures.

Headless means any of (see :func:`is_headless`):

- ``ANIME_LIB_HEADLESS=1`` in the environment: the course runner and the sweeps set it for every kernel
  they start, and the test suite sets it (``tests/conftest.py``) for the kernels of nbval, nbclient and
  papermill; ``ANIME_LIB_STATIC_WIDGETS=1`` is the older name and still works;
- ``ANIME_LIB_PROFILE=smoke`` in the environment (automated test runs);
- no IPython kernel (plain Python), or ipywidgets not installed.

A notebook opened in Jupyter, Colab or VS Code has none of these and gets live sliders.

Control spec (one entry per keyword argument of ``render_fn``):

=========================  ============================================  ==========================
spec                       control                                       default value
=========================  ============================================  ==========================
``(0, 10, 1)``             IntSlider (all ints) / FloatSlider            middle, snapped to step
``(0.0, 1.0, 0.1, 0.3)``   slider with an explicit default               the 4th element
``(0.0, 1.0)``             FloatSlider, 100 steps (ints: step 1)         middle
``["a", "b"]``             Dropdown of the choices                       the first choice
``{"label": value}``       Dropdown showing labels, passing values       the first value
``True`` / ``False``       Checkbox                                      the given bool
anything else              a fixed value passed through unchanged        the value
an ipywidgets widget       used as is                                    its ``value``
=========================  ============================================  ==========================
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import partial
from numbers import Integral, Real
from typing import Any, Callable, Mapping, Sequence

__all__ = ["is_headless", "widgets_available", "slider_explorer", "StaticFigures"]

STATIC_ENV = "ANIME_LIB_STATIC_WIDGETS"
HEADLESS_ENV = "ANIME_LIB_HEADLESS"
_TRUE = ("1", "true", "yes", "on")


def is_headless() -> bool:
    """True when automatic execution is signalled: ``ANIME_LIB_HEADLESS`` or ``ANIME_LIB_STATIC_WIDGETS``
    set to 1/true/yes, or ``ANIME_LIB_PROFILE=smoke``. No frontend will ever draw a widget then."""
    env = os.environ
    if any(env.get(k, "").strip().lower() in _TRUE for k in (HEADLESS_ENV, STATIC_ENV)):
        return True
    return env.get("ANIME_LIB_PROFILE", "").strip().lower() == "smoke"


def widgets_available() -> bool:
    """True when live widgets can be shown: not :func:`is_headless`, ipywidgets importable, and
    running in an IPython kernel (Jupyter, Colab, VS Code)."""
    if is_headless():
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


@dataclass
class _Control:
    kind: str  # "int", "float", "choice", "bool", "fixed", "widget"
    default: Any
    low: Any = None
    high: Any = None
    step: Any = None
    options: Any = None  # list of choices or list of (label, value) pairs
    widget: Any = None


def _is_number(x: Any) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool)


def _parse_control(name: str, spec: Any) -> _Control:
    if type(spec).__module__.startswith("ipywidgets"):
        return _Control("widget", getattr(spec, "value", None), widget=spec)
    if isinstance(spec, bool):
        return _Control("bool", spec)
    if isinstance(spec, tuple) and 2 <= len(spec) <= 4 and all(_is_number(v) for v in spec):
        low, high = spec[0], spec[1]
        if not high > low:
            raise ValueError(f"control {name!r}: slider needs min < max, got {spec}")
        is_int = all(isinstance(v, Integral) for v in spec)
        step = spec[2] if len(spec) >= 3 else (1 if is_int else (high - low) / 100)
        if step <= 0:
            raise ValueError(f"control {name!r}: slider step must be > 0, got {step}")
        if len(spec) == 4:
            default = spec[3]
        else:
            default = low + math.floor((high - low) / 2 / step + 0.5) * step  # halves round up
        if is_int:
            return _Control("int", int(default), int(low), int(high), int(step))
        return _Control("float", float(default), float(low), float(high), float(step))
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"control {name!r}: an empty list of choices")
        return _Control("choice", spec[0], options=list(spec))
    if isinstance(spec, Mapping):
        if not spec:
            raise ValueError(f"control {name!r}: an empty dict of choices")
        pairs = [(str(k), v) for k, v in spec.items()]
        return _Control("choice", pairs[0][1], options=pairs)
    if isinstance(spec, tuple):
        raise ValueError(
            f"control {name!r}: a tuple must be (min, max[, step[, default]]) numbers, got {spec!r}; "
            f"use a list for choices"
        )
    return _Control("fixed", spec)


def _make_widget(name: str, c: _Control):
    import ipywidgets as w

    if c.kind == "widget":
        return c.widget
    if c.kind == "int":
        return w.IntSlider(value=c.default, min=c.low, max=c.high, step=c.step, description=name,
                           continuous_update=False)
    if c.kind == "float":
        return w.FloatSlider(value=c.default, min=c.low, max=c.high, step=c.step, description=name,
                             continuous_update=False, readout_format=".3g")
    if c.kind == "choice":
        return w.Dropdown(options=c.options, value=c.default, description=name)
    if c.kind == "bool":
        return w.Checkbox(value=c.default, description=name)
    raise AssertionError(c.kind)


class StaticFigures(list):
    """A list of Figures (one per setting) that a notebook displays as figures, not as a list repr.

    ``values`` holds the keyword arguments each figure was rendered with.
    """

    def __init__(self, figures: Sequence[Any] = (), values: Sequence[dict] = ()):
        super().__init__(figures)
        self.values = list(values)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        for fig in self:
            display(fig)


def _to_figure(result: Any, caption: str | None = None):
    """A Figure from what a render function returned: a Figure, an image tensor, an array or a PIL image."""
    from matplotlib.figure import Figure

    if isinstance(result, Figure):
        return result
    import numpy as np
    import torch

    from anime_lib.viz import show_images

    if isinstance(result, torch.Tensor):
        return show_images(result, title=caption)
    if hasattr(result, "mode") and hasattr(result, "size") and not isinstance(result, np.ndarray):  # PIL image
        result = np.asarray(result)
    if isinstance(result, np.ndarray):
        fig = Figure(figsize=(4, 4), layout="constrained")
        ax = fig.add_subplot()
        ax.imshow(result, cmap="gray" if result.ndim == 2 else None)
        ax.set_axis_off()
        if caption:
            ax.set_title(caption)
        return fig
    raise TypeError(
        f"render_fn returned {type(result).__name__}; return a matplotlib Figure, an image tensor "
        f"(N, 3, H, W) or (3, H, W) in [-1, 1], or an image array"
    )


def _caption(values: Mapping[str, Any], controls: Mapping[str, _Control]) -> str:
    parts = []
    for k, v in values.items():
        if controls[k].kind == "fixed":
            continue
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def slider_explorer(
    render_fn: Callable[..., Any],
    controls: Mapping[str, Any],
    static_values: Sequence[Mapping[str, Any]] | None = None,
    *,
    static: bool | None = None,
):
    """Explore ``render_fn(**values)`` with sliders and dropdowns built from ``controls``.

    ``render_fn`` returns a matplotlib Figure or an image tensor ((N, 3, H, W) or (3, H, W) in [-1, 1]).

    Live mode (a notebook with widgets): returns an ``ipywidgets.VBox`` of the controls and an output
    area; leave it as the cell's last expression to show it.
    Static mode (``static=True``, or ``widgets_available()`` is False): renders one figure per dict
    of ``static_values`` (each dict overrides some defaults; ``None`` means just the defaults) and
    returns them as a :class:`StaticFigures` list.
    """
    parsed = {name: _parse_control(name, spec) for name, spec in controls.items()}
    defaults = {name: c.default for name, c in parsed.items()}
    if static is None:
        static = not widgets_available()

    if static:
        settings = list(static_values) if static_values else [{}]
        figures, used = [], []
        for override in settings:
            unknown = sorted(set(override) - set(parsed))
            if unknown:
                raise ValueError(f"static_values has unknown names {unknown}; the controls are {list(parsed)}")
            values = {**defaults, **override}
            figures.append(_to_figure(render_fn(**values), caption=_caption(values, parsed)))
            used.append(values)
        return StaticFigures(figures, used)

    import ipywidgets as w
    from IPython.display import display

    fixed = {name: c.default for name, c in parsed.items() if c.kind == "fixed"}
    live = {name: _make_widget(name, c) for name, c in parsed.items() if c.kind != "fixed"}

    def show(**values: Any) -> None:
        import matplotlib.pyplot as plt

        result = render_fn(**values)
        fig = _to_figure(result, caption=_caption(values, parsed))
        display(fig)
        plt.close(fig)  # a pyplot-made figure would otherwise be shown a second time by the inline backend

    output = w.interactive_output(partial(show, **fixed), live)
    return w.VBox([w.HBox(list(live.values()), layout=w.Layout(flex_flow="row wrap")), output])
