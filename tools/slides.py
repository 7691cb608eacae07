"""Slide boundaries for every lesson, from the notebook's own structure.

Each ``#`` or ``##`` heading starts a slide (a markdown cell is split where one begins, so
that each heading starts a cell); a section taller than one slide is split into
sub-slides (reveal.js: down) at cell boundaries, by an estimate of each cell's height on a
1280 x 720 slide (markdown and code lines, text output lines, figures at their displayed
height). The result is stored as each cell's ``metadata.slideshow.slide_type``, which both
the site's slides (nbconvert's reveal.js export) and jupyterlab-slideshow in JupyterLab read.

``python -m tools.slides notebooks/*.ipynb`` writes them (``make execute`` runs it through
tools/normalize_notebooks.py); tests/test_slides.py checks the stored ones are up to date.
"""

from __future__ import annotations

import base64
import re
import struct
import sys
import textwrap
from pathlib import Path

import nbformat

SLIDE_HEIGHT = 600  # px of content per slide (720, less the title bar, margins, controls)
LINE = {"markdown": 29, "code": 25, "output": 23}  # px per line (measured in the slides)
WRAP = {"markdown": 110, "code": 100, "output": 110}  # characters per line before wrapping
FIGURE_WIDTH = 1150  # px a figure is drawn at (scaled down if wider)
FIGURE_MAX = 560  # the slides' CSS caps a figure's height at this
WIDGET = 560  # an explorer: its controls and a figure


def _lines(text: str, kind: str) -> int:
    return sum(max(1, len(textwrap.wrap(line, WRAP[kind])) if line.strip() else 1)
               for line in text.splitlines())


def _png_height(data: str) -> int:
    header = base64.b64decode(data[:44])
    width, height = struct.unpack(">II", header[16:24])
    scale = min(1.0, FIGURE_WIDTH / width)
    return min(FIGURE_MAX, int(height * scale))


def cell_height(cell) -> int:
    """The estimated height of a cell on a slide, in px."""
    if cell.cell_type == "markdown":
        return _lines(cell.source, "markdown") * LINE["markdown"] + 16
    if cell.cell_type != "code":
        return 0
    height = _lines(cell.source, "code") * LINE["code"] + 20
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if "application/vnd.jupyter.widget-view+json" in data and "image/png" not in data:
            height += WIDGET
        elif "image/png" in data:
            height += _png_height(data["image/png"]) + 10
        elif output.get("output_type") == "stream":
            height += _lines(output.get("text", ""), "output") * LINE["output"] + 8
        elif "text/html" in data:
            height += 200
        elif "text/plain" in data:
            height += _lines(data["text/plain"], "output") * LINE["output"] + 8
    return height


def _is_static_figure(cell) -> bool:
    return cell.cell_type == "code" and "static_figure(" in cell.source


def slide_types(notebook) -> list[str]:
    """One reveal.js slide type per cell: "slide" at each # / ## heading, "subslide" where a
    section is split, "-" (same slide) otherwise; the explorer's static figure is "skip" (on
    a slide the explorer itself is shown)."""
    types, used = [], None
    for cell in notebook.cells:
        if _is_static_figure(cell):
            types.append("skip")
            continue
        height = cell_height(cell)
        heading = cell.cell_type == "markdown" and cell.source.lstrip().startswith(("# ", "## "))
        if used is None or heading:
            types.append("slide")
            used = height
        elif used + height > SLIDE_HEIGHT:
            before = notebook.cells[len(types) - 1]
            if (types[-1] == "-" and before.cell_type == "markdown" and cell.cell_type == "code"
                    and cell_height(before) + height <= SLIDE_HEIGHT):
                types[-1] = "subslide"  # the text that introduces a cell moves with it
                types.append("-")
                used = cell_height(before) + height
            else:
                types.append("subslide")
                used = height
        else:
            types.append("-")
            used += height
    return types


HEADING = re.compile(r"#{1,2} ")


def _heading_parts(source: str) -> list[str]:
    """``source`` split before each ``#`` / ``##`` heading after its first line (outside code
    fences), each part without the blank lines that separated it from the next."""
    parts, current, fenced = [], [], False
    for line in source.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        if not fenced and HEADING.match(line) and any(text.strip() for text in current):
            parts.append("\n".join(current).rstrip())
            current = []
        current.append(line)
    parts.append("\n".join(current).rstrip())
    return parts


def split_at_headings(notebook: dict) -> bool:
    """Split each markdown cell (a dict, as in the .ipynb JSON) before every ``#`` / ``##``
    heading that is not its first line, so that every section starts a cell and a slide. The
    new cells' ids are the original's with ``-1``, ``-2``, ... appended (the first not already
    used). True if any was split."""
    cells, ids = [], {cell.get("id") for cell in notebook["cells"]}
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        parts = _heading_parts(source) if cell["cell_type"] == "markdown" else [source]
        if len(parts) == 1 or cell.get("attachments"):
            cells.append(cell)
            continue
        for number, part in enumerate(parts):
            new = dict(cell, source=part.splitlines(keepends=True))
            if number:
                suffix = number
                while f"{cell['id']}-{suffix}" in ids:
                    suffix += 1
                ids.add(f"{cell['id']}-{suffix}")
                new.update(id=f"{cell['id']}-{suffix}", metadata={})
            cells.append(new)
    changed = len(cells) != len(notebook["cells"])
    notebook["cells"] = cells
    return changed


def _paragraphs(source: str) -> list[str]:
    """Markdown split at blank lines outside code fences: paragraphs, lists, tables."""
    parts, current, fenced = [], [], False
    for line in source.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        if not line.strip() and not fenced and current:
            parts.append("\n".join(current))
            current = []
        elif line.strip() or current:
            current.append(line)
    if current:
        parts.append("\n".join(current))
    return parts


def for_slides(notebook):
    """A copy of ``notebook`` for the site's slides: a markdown cell taller than a slide is
    split at its paragraphs into cells that fit, each on a sub-slide of its own (JupyterLab's
    smaller text fits every cell on a slide as it is: tests/test_browser.py presents them)."""
    copy = nbformat.reads(nbformat.writes(notebook), as_version=4)
    cells = []
    for cell in copy.cells:
        if cell.cell_type != "markdown" or cell_height(cell) <= SLIDE_HEIGHT:
            cells.append(cell)
            continue
        chunks: list[list[str]] = [[]]
        for paragraph in _paragraphs(cell.source):
            longer = "\n\n".join(chunks[-1] + [paragraph])
            if chunks[-1] and cell_height(nbformat.v4.new_markdown_cell(longer)) > SLIDE_HEIGHT:
                chunks.append([])
            chunks[-1].append(paragraph)
        for number, chunk in enumerate(chunks):
            part = nbformat.v4.new_markdown_cell("\n\n".join(chunk))
            store(part.metadata, stored_type(cell.metadata) if number == 0 else "subslide")
            cells.append(part)
    copy.cells = cells
    return copy


def stored_type(metadata: dict) -> str:
    return metadata.get("slideshow", {}).get("slide_type", "-")


def store(metadata: dict, kind: str) -> None:
    """Store one cell's slide type. "-" (same slide) is stored as no slide type, the way
    JupyterLab's property inspector writes it: jupyterlab-slideshow never shows a cell whose
    type is the string "-", and nbconvert reads a missing type as "-"."""
    if kind == "-":
        metadata.pop("slideshow", None)
    else:
        metadata["slideshow"] = {"slide_type": kind}


def stored_types(notebook) -> list[str]:
    return [stored_type(cell.metadata) for cell in notebook.cells]


def apply(notebook) -> bool:
    """Store :func:`slide_types` in the cells' metadata; True if anything changed."""
    changed = False
    for cell, kind in zip(notebook.cells, slide_types(notebook), strict=True):
        before = cell.metadata.get("slideshow")
        store(cell.metadata, kind)
        changed |= cell.metadata.get("slideshow") != before
    return changed


def main(paths: list[str]) -> None:
    for name in paths:
        path = Path(name)
        notebook = nbformat.read(path, as_version=4)
        split = split_at_headings(notebook)
        notebook = nbformat.from_dict(notebook)
        if apply(notebook) or split:
            nbformat.write(notebook, path)
            print(f"{path}: slide boundaries updated")


if __name__ == "__main__":
    main(sys.argv[1:])
