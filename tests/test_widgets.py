"""Every explorer draws every state, and every control changes what is drawn."""

import importlib
import inspect
import io
import pkgutil

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

import course_lib.widgets
from course_lib import viz
from course_lib.widgets import Control, Explorer
from tests.layout import layout_problems


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
            for option in control.options
            if option != control.default
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


def one_change_from_default(explorer: Explorer):
    """The default state, then every state that differs from it in one control."""
    yield explorer.default_state
    for name, control in explorer.controls.items():
        for option in control.options:
            if option != control.default:
                yield {**explorer.default_state, name: option}


STYLES = [pytest.param(False, id="standard"), pytest.param(True, id="classroom")]


@pytest.fixture
def style(request):
    """Switch the course style for one test, and back to the standard style after it."""
    with matplotlib.rc_context():
        viz.use_course_style(classroom=request.param)
        yield request.param
        viz.use_course_style(classroom=False)


@pytest.mark.parametrize("style", STYLES, indirect=True)
@pytest.mark.parametrize("factory", FACTORIES)
def test_every_control_value_is_readable_no_text_overlaps_or_is_cut_off(factory, style):
    """The default state and each control's every value from it. (Every combination takes
    ~10 min for both styles: tests/layout.py can run it by hand, and did for this course.)"""
    explorer = factory()
    problems = {}
    for state in one_change_from_default(explorer):
        figure = explorer.draw(**state)
        for problem in layout_problems(figure):
            problems.setdefault(problem, state)
        plt.close(figure)
    assert not problems, "\n".join(f"{p}  (state {s})" for p, s in list(problems.items())[:5])


@pytest.mark.parametrize("style", STYLES, indirect=True)
@pytest.mark.parametrize("factory", FACTORIES)
def test_every_default_figure_fits_a_1280x720_screen_below_its_controls(factory, style):
    figure = factory().draw(**factory().default_state)
    width, height = figure.get_size_inches() * figure.dpi
    plt.close(figure)
    # JupyterLab at 1280x720 with the side bar closed: ~1180 px of cell width, and ~470 px
    # of height below the menu, the toolbar and the explorer's controls.
    assert width <= 1200 and height <= 470, (width, height)


def test_a_control_takes_a_default_among_its_options():
    assert Control("t", (0.5, 1.0, 2.0), default=1.0).default == 1.0
    assert Control("t", (0.5, 1.0)).default == 0.5
    with pytest.raises(ValueError, match=r"default: expected one of the options \[0.5, 1.0\]"):
        Control("t", (0.5, 1.0), default=3)


def _image(box):
    return box.children[1]


@pytest.mark.parametrize("factory", FACTORIES[:2])
def test_the_widget_shows_the_figure_of_its_controls_latest_state(factory):
    explorer = factory()
    box = explorer.widget()
    controls = dict(zip(explorer.controls, box.children[0].children, strict=True))
    assert _image(box).value == explorer.png(**explorer.default_state)
    name, control = next(iter(explorer.controls.items()))
    other = next(option for option in control.options if option != control.default)
    controls[name].value = other
    assert _image(box).value == explorer.png(**{**explorer.default_state, name: other})
    controls[name].value = control.default
    assert _image(box).value == explorer.png(**explorer.default_state)
    plt.close("all")


def test_a_redraw_draws_the_latest_state_and_skips_a_state_already_shown():
    calls = []

    def draw(a=0, b=0):
        calls.append((a, b))
        figure, _ = plt.subplots(figsize=(1, 1))
        figure.suptitle(f"{a} {b}")
        return figure

    explorer = Explorer(draw, {"a": Control("a", (0, 1)), "b": Control("b", (0, 1))})
    box = explorer.widget()
    a, b = box.children[0].children
    calls.clear()
    # Two changes in one go, as when a second message is handled before the first redraw
    # reads the controls: both redraws see the final state, the second is skipped.
    with a.hold_trait_notifications(), b.hold_trait_notifications():
        a.value, b.value = 1, 1
    assert calls == [(1, 1)]
    assert _image(box).value == explorer.png(a=1, b=1)


@pytest.mark.parametrize("factory", FACTORIES[:1])
def test_the_static_figure_shows_only_where_no_widget_renders(factory):
    import base64

    from course_lib.widgets.core import STATIC_FIGURE, WIDGET_VIEW

    explorer = factory()
    bundle = explorer.static_figure(**explorer.default_state)._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == ""  # JupyterLab with a kernel: hidden
    assert base64.b64decode(bundle["image/png"]) == explorer.png(**explorer.default_state)
    assert bundle["text/plain"] == STATIC_FIGURE
    plt.close("all")
