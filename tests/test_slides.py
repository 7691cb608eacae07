"""tools/slides.py: slide boundaries come from each notebook's structure, and the stored ones
are up to date (make execute refreshes them through tools/normalize_notebooks.py)."""

import json
from pathlib import Path

import nbformat
import pytest

from tools.slides import (
    SLIDE_HEIGHT,
    apply,
    cell_height,
    for_slides,
    slide_types,
    split_at_headings,
    stored_types,
)

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_slide_boundaries_are_those_the_tool_computes(path):
    notebook = nbformat.read(path, as_version=4)
    assert stored_types(notebook) == slide_types(notebook), (
        f"{path.name}: run `make execute NOTEBOOKS={path}` (or python -m "
        "tools.normalize_notebooks) to refresh its slide boundaries")
    written = [index for index, cell in enumerate(notebook.cells)
               if "slideshow" in cell.metadata
               and cell.metadata["slideshow"].get("slide_type") in ("-", "", None)]
    assert not written, f"{path.name}: cells {written} store 'same slide' as a slide type"


def test_same_slide_is_stored_as_no_slide_type():
    """jupyterlab-slideshow never shows a cell whose slide type is the string "-"; JupyterLab
    writes "same slide" as no type, and nbconvert reads no type as "-"."""
    notebook = notebook_of(nbformat.v4.new_markdown_cell("# Title"),
                           nbformat.v4.new_code_cell("x = 1"))
    notebook.cells[1].metadata["slideshow"] = {"slide_type": "-"}
    assert apply(notebook)
    assert notebook.cells[0].metadata["slideshow"] == {"slide_type": "slide"}
    assert "slideshow" not in notebook.cells[1].metadata
    assert stored_types(notebook) == ["slide", "-"]
    assert not apply(notebook)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_section_heading_starts_a_cell(path):
    notebook = json.loads(path.read_text())
    assert not split_at_headings(notebook), (
        f"{path.name}: a # or ## heading inside a markdown cell cannot start a slide; run "
        "python -m tools.normalize_notebooks to split the cell there")


def test_a_markdown_cell_is_split_before_its_headings_but_not_in_code_fences():
    source = ("Intro.\n\n```python\n# a comment, not a heading\n```\n\n## 2. Next\n\nText."
              "\n\n### 2.1 A subsection stays\n\n# Part two")
    notebook = {"cells": [{"cell_type": "markdown", "id": "abc", "source": source,
                           "metadata": {"slideshow": {"slide_type": "slide"}}},
                          {"cell_type": "code", "id": "def", "source": "## not markdown",
                           "metadata": {}, "outputs": [], "execution_count": None}]}
    assert split_at_headings(notebook)
    cells = notebook["cells"]
    assert ["".join(c["source"]) for c in cells] == [
        "Intro.\n\n```python\n# a comment, not a heading\n```",
        "## 2. Next\n\nText.\n\n### 2.1 A subsection stays", "# Part two", "## not markdown"]
    assert [c["id"] for c in cells] == ["abc", "abc-1", "abc-2", "def"]
    assert cells[0]["metadata"] == {"slideshow": {"slide_type": "slide"}}
    assert cells[1]["metadata"] == {} and cells[2]["metadata"] == {}
    assert not split_at_headings(notebook)
    cells[0]["source"] = "One.\n\n## Two"
    assert split_at_headings(notebook)  # abc-1 and abc-2 exist: the new part is abc-3
    assert [c["id"] for c in notebook["cells"]] == ["abc", "abc-3", "abc-1", "abc-2", "def"]


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
