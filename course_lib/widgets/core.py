"""Explorers: a plain drawing function plus the controls that drive it.

The drawing function takes one keyword argument per control and returns a matplotlib
Figure, so tests can call it for every state (``Explorer.states()``) without a browser,
and a notebook shows the default state as a static figure beside the live widget.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from course_lib import viz

__all__ = ["BEFORE_RUN", "Control", "Explorer", "StaticFigure", "one_thread"]

# What a stored notebook shows for an explorer until its cell runs in the learner's kernel
# (the text/plain beside the widget view): ipywidgets cuts it after 110 characters.
BEFORE_RUN = ("Explorer: run this cell (or Run All) to use it; "
              "a static figure of its default state follows.")


_FIRST = object()  # Control's default default: its first option


@dataclass(frozen=True)
class Control:
    """One control: a label, every value it can take, in the order shown, and its default
    (the first option unless ``default`` says otherwise).

    bool options become a checkbox, strings toggle buttons, numbers a slider.
    """

    label: str
    options: Sequence[Any]
    default: Any = _FIRST

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise ValueError(f"options: a control needs at least 2 values, got {self.options!r}")
        if self.default is _FIRST:
            object.__setattr__(self, "default", self.options[0])
        elif self.default not in self.options:
            raise ValueError(f"default: expected one of the options {list(self.options)}, "
                             f"got {self.default!r}")

    def build(self):
        import ipywidgets as widgets

        style = {"description_width": "initial"}
        if all(isinstance(option, bool) for option in self.options):
            return widgets.Checkbox(value=self.default, description=self.label, style=style)
        if all(isinstance(option, str) for option in self.options):
            return widgets.ToggleButtons(
                options=list(self.options), value=self.default, description=self.label,
                style={**style, "button_width": "auto"},  # never truncate a label
            )
        return widgets.SelectionSlider(
            options=list(self.options), value=self.default, description=self.label,
            style=style, continuous_update=False,
        )


@dataclass(frozen=True)
class Explorer:
    """``draw(**state) -> Figure`` and the controls whose values make up ``state``.

    ``draw`` is wrapped so that every figure it returns has its titles fitted to the current
    style (:func:`course_lib.viz.fit_titles`).
    """

    draw: Callable[..., Figure]
    controls: Mapping[str, Control]

    def __post_init__(self) -> None:
        draw = self.draw

        @functools.wraps(draw)
        def fitted(**state: Any) -> Figure:
            return viz.fit_titles(draw(**state))

        object.__setattr__(self, "draw", fitted)

    @property
    def default_state(self) -> dict[str, Any]:
        return {name: control.default for name, control in self.controls.items()}

    def states(self) -> Iterator[dict[str, Any]]:
        """Every combination of control values."""
        names = list(self.controls)
        for values in itertools.product(*(self.controls[n].options for n in names)):
            yield dict(zip(names, values, strict=True))

    def png(self, **state: Any) -> bytes:
        """The figure of ``state`` as PNG bytes, drawn once (no second, 'tight' pass: the
        figures lay themselves out) and closed."""
        figure = self.draw(**state)
        buffer = io.BytesIO()
        try:
            figure.savefig(buffer, format="png", metadata={"Software": None})
        finally:
            plt.close(figure)
        return buffer.getvalue()

    def widget(self):
        """The live widget: controls above, the figure below, redrawn on every change.

        A redraw always draws the controls' values at that moment and is skipped when they
        are the state already shown, so a fast series of changes ends on its last state.
        """
        import ipywidgets as widgets

        inputs = {name: control.build() for name, control in self.controls.items()}
        image = widgets.Image(value=self.png(**self.default_state), format="png",
                              layout=widgets.Layout(max_width="100%", height="auto"))
        shown = [self.default_state]

        def redraw(_change=None) -> None:
            state = {name: control.value for name, control in inputs.items()}
            if state != shown[0]:
                shown[0] = state
                image.value = self.png(**state)

        for control in inputs.values():
            control.observe(redraw, names="value")
        return _explorer_box()([widgets.HBox(list(inputs.values()),
                                             layout=widgets.Layout(flex_flow="row wrap")),
                                image])

    def static_figure(self, **state: Any) -> StaticFigure:
        """The figure of ``state`` for readers without a kernel (GitHub, the HTML export, a
        notebook not yet run), hidden where the live explorer runs: display() it."""
        return StaticFigure(self.png(**state))


@dataclass(frozen=True)
class StaticFigure:
    """A PNG shown only where widgets cannot render.

    Its display data offers a widget view of no widget (``model_id`` ""), which JupyterLab
    renders as nothing once the notebook's outputs come from a running kernel, and the PNG,
    which is what a stored notebook, nbconvert and GitHub show instead.
    """

    png: bytes

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        return {
            WIDGET_VIEW: {"model_id": "", "version_major": 2, "version_minor": 0},
            "image/png": base64.b64encode(self.png).decode("ascii"),
            "text/plain": STATIC_FIGURE,
        }


@functools.cache
def _explorer_box() -> type:
    """A VBox whose text form is :data:`BEFORE_RUN`, not ``VBox(children=(HBox(...``:
    JupyterLab shows that text where the widget cannot be drawn yet."""
    import ipywidgets as widgets

    class ExplorerBox(widgets.VBox):
        def __repr__(self) -> str:
            return BEFORE_RUN

    return ExplorerBox


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STATIC_FIGURE = "Static figure of the explorer above, for readers without a running kernel."


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block: the explorers' tensors are small, and one
    thread is fastest for them, and steadily so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
