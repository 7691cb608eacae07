"""Every explorer draws every state, and every control changes what is drawn."""

import importlib
import inspect
import io
import pkgutil

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

import course_lib.widgets
from course_lib.widgets import Explorer


def explorer_factories():
    for info in pkgutil.iter_modules(course_lib.widgets.__path__):
        if info.name == "core":
            continue
        module = importlib.import_module(f"course_lib.widgets.{info.name}")
        for name in module.__all__:
            factory = getattr(module, name)
            if inspect.isfunction(factory) and inspect.signature(factory).return_annotation in (
                Explorer, "Explorer"
            ):
                yield pytest.param(factory, id=f"{info.name}.{name}")


FACTORIES = list(explorer_factories())


def render(explorer: Explorer, state: dict) -> bytes:
    figure = explorer.draw(**state)
    assert isinstance(figure, Figure), f"draw returned {type(figure).__name__}, not a Figure"
    assert figure.axes, "the figure has no axes"
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=40)
    plt.close(figure)
    return buffer.getvalue()


def test_there_are_explorers():
    assert len(FACTORIES) >= 3


@pytest.mark.parametrize("factory", FACTORIES)
def test_every_state_draws_a_figure(factory):
    explorer = factory()
    states = list(explorer.states())
    assert 2 <= len(states) <= 300
    for state in states:
        figure = explorer.draw(**state)
        assert isinstance(figure, Figure) and figure.axes, state
        plt.close(figure)


@pytest.mark.parametrize("factory", FACTORIES)
def test_every_control_changes_the_figure(factory):
    explorer = factory()
    default = render(explorer, explorer.default_state)
    for name, control in explorer.controls.items():
        changed = [
            render(explorer, {**explorer.default_state, name: option}) != default
            for option in control.options[1:]
        ]
        assert any(changed), f"control {name!r} does not change the figure"


@pytest.mark.parametrize("factory", FACTORIES)
def test_widget_has_one_input_per_control(factory):
    explorer = factory()
    box = explorer.widget()
    inputs = box.children[0].children
    assert [i.description for i in inputs] == [c.label for c in explorer.controls.values()]
    assert [i.value for i in inputs] == list(explorer.default_state.values())
    plt.close("all")


@pytest.mark.parametrize("factory", FACTORIES[:1])
def test_a_widget_not_yet_drawn_reads_as_run_this_cell_not_as_its_repr(factory):
    import ipywidgets

    from course_lib.widgets.core import BEFORE_RUN

    box = factory().widget()
    assert isinstance(box, ipywidgets.VBox)
    bundle = box._repr_mimebundle_()
    assert bundle["text/plain"] == repr(box) == BEFORE_RUN  # what a notebook stores
    assert "application/vnd.jupyter.widget-view+json" in bundle  # still a live widget
    assert len(BEFORE_RUN) <= 110, "ipywidgets cuts text/plain after 110 characters"
    assert "run this cell" in BEFORE_RUN and "children=" not in BEFORE_RUN
    plt.close("all")


def test_one_thread_runs_the_block_on_one_thread_and_restores_the_count_even_on_error():
    import torch

    from course_lib.widgets.core import one_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="inside"), one_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
