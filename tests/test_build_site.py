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


def test_a_page_shows_each_explorer_once_drawn_from_its_widget_state_not_twice():
    import json

    path = NOTEBOOKS / "02_masked_fill.ipynb"
    cells = json.loads(path.read_text())["cells"]
    static = [output["data"]["image/png"] for cell in cells if cell["cell_type"] == "code"
              for output in cell["outputs"]
              if "static_figure(" in "".join(cell["source"]) and "data" in output]
    assert len(static) == 1
    page = render_page(path, exporter())
    # The explorer is drawn from the widget state the page holds; the static copy is left out.
    assert '"_model_name": "ImageModel"' in page
    assert f'src="data:image/png;base64,{static[0][:100]}' not in page
    with_static = exporter().from_filename(str(path))[0]  # nbconvert alone keeps it
    assert f'src="data:image/png;base64,{static[0][:100]}' in with_static
