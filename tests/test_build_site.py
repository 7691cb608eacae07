"""tools/build_site.py without a browser: the lessons' links to each other point to pages."""

import re
from pathlib import Path

import pytest

from tools.build_site import exporter, notebook_links_to_pages, render_page

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


@pytest.mark.parametrize("before, after", [
    ('<a href="02_masked_fill.ipynb">next</a>', '<a href="02_masked_fill.html">next</a>'),
    ('<a href="00_start_here.ipynb#5.-The-course-map">map</a>',
     '<a href="00_start_here.html#5.-The-course-map">map</a>'),
    ('<a href="#5.-The-course-map">map</a>', '<a href="#5.-The-course-map">map</a>'),
    ('<a href="https://example.org/a.ipynb">x</a>', '<a href="https://example.org/a.ipynb">x</a>'),
    ('<a href="../images/a.ipynb.png">x</a>', '<a href="../images/a.ipynb.png">x</a>'),
    ("<code>01_padding_motivation.ipynb</code>", "<code>01_padding_motivation.ipynb</code>"),
])
def test_relative_notebook_links_become_page_links(before, after):
    assert notebook_links_to_pages(before) == after


def test_the_rewrite_refuses_what_is_not_html_text():
    with pytest.raises(TypeError, match="page: expected the HTML of a page as a str"):
        notebook_links_to_pages(b'href="a.ipynb"')


def test_a_rendered_lesson_links_to_the_course_map_and_the_next_page_which_exist():
    html = exporter()
    lesson = render_page(NOTEBOOKS / "01_padding_motivation.ipynb", html)
    assert 'href="00_start_here.html#5.-The-course-map"' in lesson
    assert 'href="02_masked_fill.html"' in lesson
    assert not re.search(r'href="[\w.-]+\.ipynb', lesson)
    start = render_page(NOTEBOOKS / "00_start_here.ipynb", html)
    assert 'id="5.-The-course-map"' in start  # the anchor the links jump to
    assert 'href="01_padding_motivation.html"' in start


def test_a_page_shows_each_explorer_once_as_its_static_version(tmp_path):
    import json

    path = NOTEBOOKS / "00_start_here.ipynb"
    cells = json.loads(path.read_text())["cells"]
    static = [output["data"]["image/png"] for cell in cells if cell["cell_type"] == "code"
              for output in cell["outputs"]
              if "static_figure(" in "".join(cell["source"]) and "data" in output]
    assert len(static) == 1
    page = render_page(path, exporter(), tmp_path)
    # The static explorer replaces the widget (and the widget state), and the stored static
    # figure is left out: the explorer's own figure of the default state is shown instead.
    assert page.count('class="static-explorer"') == 1
    assert '"_model_name": "ImageModel"' not in page and "widget-state+json" not in page
    assert f'src="data:image/png;base64,{static[0][:100]}' not in page
    assert 'src="static/explorers.js"' in page
    with_static = exporter().from_filename(str(path))[0]  # nbconvert alone keeps it
    assert f'src="data:image/png;base64,{static[0][:100]}' in with_static
    assert len(list((tmp_path / "explorers" / "00").glob("*.png"))) == 8


def test_static_explorer_figures_are_the_explorers_own_in_states_order(tmp_path):
    from course_lib.widgets.lesson00 import conventions_explorer
    from tools.static_explorers import controls_html, render

    explorer = conventions_explorer()
    states = list(explorer.states())
    assert render(explorer, tmp_path) == len(states)
    for index in (0, len(states) - 1):
        assert (tmp_path / f"{index}.png").read_bytes() == explorer.png(**states[index])
    page = controls_html(explorer, "explorers/00")
    for control in explorer.controls.values():
        assert control.label in page  # the same labels as the widget
    default = states.index(explorer.default_state)
    assert f'src="explorers/00/{default}.png"' in page


def test_every_lesson_with_a_widget_has_a_static_explorer():
    import nbformat

    from tools.static_explorers import find_explorer

    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        has_widget = any(".widget()" in c.source for c in notebook.cells if c.cell_type == "code")
        found = find_explorer(notebook, path.stem)
        assert (found is not None) == has_widget, path.name
        if found:
            assert 2 <= len(list(found[1].states())) <= 300, path.name
