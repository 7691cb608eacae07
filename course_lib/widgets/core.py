"""Explorers: a plain drawing function plus the controls that drive it.

The drawing function takes one keyword argument per control and returns a matplotlib
Figure, so tests can call it for every state (``Explorer.states()``) without a browser,
and a notebook shows the default state as a static figure beside the live widget.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

__all__ = ["BEFORE_RUN", "Control", "Explorer", "one_thread"]

# What a stored notebook shows for an explorer until its cell runs in the learner's kernel
# (the text/plain beside the widget view): ipywidgets cuts it after 110 characters.
BEFORE_RUN = ("Explorer: run this cell (or Run All) to use it; "
              "the static figure below shows its default state.")


@dataclass(frozen=True)
class Control:
    """One control: a label and every value it can take (the first is the default).

    bool options become a checkbox, strings toggle buttons, numbers a slider.
    """

    label: str
    options: Sequence[Any]

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise ValueError(f"options: a control needs at least 2 values, got {self.options!r}")

    def build(self):
        import ipywidgets as widgets

        style = {"description_width": "initial"}
        if all(isinstance(option, bool) for option in self.options):
            return widgets.Checkbox(value=self.options[0], description=self.label, style=style)
        if all(isinstance(option, str) for option in self.options):
            return widgets.ToggleButtons(
                options=list(self.options), value=self.options[0], description=self.label,
                style={**style, "button_width": "auto"},  # never truncate a label
            )
        return widgets.SelectionSlider(
            options=list(self.options), value=self.options[0], description=self.label,
            style=style, continuous_update=False,
        )


@dataclass(frozen=True)
class Explorer:
    """``draw(**state) -> Figure`` and the controls whose values make up ``state``."""

    draw: Callable[..., Figure]
    controls: Mapping[str, Control]

    @property
    def default_state(self) -> dict[str, Any]:
        return {name: control.options[0] for name, control in self.controls.items()}

    def states(self) -> Iterator[dict[str, Any]]:
        """Every combination of control values."""
        names = list(self.controls)
        for values in itertools.product(*(self.controls[n].options for n in names)):
            yield dict(zip(names, values, strict=True))

    def widget(self):
        """The live widget: controls above, the figure below, redrawn on every change."""
        import ipywidgets as widgets

        inputs = {name: control.build() for name, control in self.controls.items()}

        def render(**state: Any) -> None:
            self.draw(**state)
            plt.show()

        output = widgets.interactive_output(render, inputs)
        return _explorer_box()([widgets.HBox(list(inputs.values()),
                                             layout=widgets.Layout(flex_flow="row wrap")),
                                output])


@functools.cache
def _explorer_box() -> type:
    """A VBox whose text form is :data:`BEFORE_RUN`, not ``VBox(children=(HBox(...``:
    JupyterLab shows that text where the widget cannot be drawn yet."""
    import ipywidgets as widgets

    class ExplorerBox(widgets.VBox):
        def __repr__(self) -> str:
            return BEFORE_RUN

    return ExplorerBox


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
