"""tools/slides.py: slide boundaries come from each notebook's structure, and the stored ones
are up to date (make execute refreshes them through tools/normalize_notebooks.py)."""

from pathlib import Path

import nbformat
import pytest

from tools.slides import SLIDE_HEIGHT, cell_height, for_slides, slide_types, stored_types

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_slide_boundaries_are_those_the_tool_computes(path):
    notebook = nbformat.read(path, as_version=4)
    assert stored_types(notebook) == slide_types(notebook), (
        f"{path.name}: run `make execute NOTEBOOKS={path}` (or python -m "
        "tools.normalize_notebooks) to refresh its slide boundaries")


def notebook_of(*cells):
    return nbformat.v4.new_notebook(cells=list(cells))


def test_headings_start_slides_and_a_tall_section_is_split():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    def long_code():
        return code("\n".join(f"x{i} = {i}" for i in range(18)))

    notebook = notebook_of(md("# Title\n\nIntro."), code("import torch"), md("## 1. First"),
                           long_code(), long_code(), md("Then:"), long_code(),
                           code("display(explorer.static_figure(**explorer.default_state))"))
    types = slide_types(notebook)
    assert types[:3] == ["slide", "-", "slide"]
    assert types[3] == "-" and "subslide" in types[4:7]
    assert types[5:7] == ["subslide", "-"]  # the text that introduces a cell stays with it
    assert types[-1] == "skip"  # the explorer's static figure: the explorer is on the slide
    for kind, cell in zip(types, notebook.cells, strict=True):
        assert kind == "skip" or cell_height(cell) > 0


def test_a_markdown_cell_taller_than_a_slide_is_split_at_its_paragraphs_for_the_site():
    paragraphs = [f"Paragraph {i}: " + "word " * 60 for i in range(12)]
    cell = nbformat.v4.new_markdown_cell("\n\n".join(paragraphs))
    assert cell_height(cell) > SLIDE_HEIGHT
    notebook = notebook_of(cell)
    notebook.cells[0].metadata["slideshow"] = {"slide_type": "slide"}
    parts = for_slides(notebook).cells
    assert len(parts) > 1 and all(cell_height(part) <= SLIDE_HEIGHT for part in parts)
    assert [p.metadata["slideshow"]["slide_type"] for p in parts] == \
        ["slide"] + ["subslide"] * (len(parts) - 1)
    assert "\n\n".join(p.source for p in parts) == cell.source
    assert len(notebook.cells) == 1  # the notebook itself is untouched
