"""The notebook rules of COURSE_DESIGN.md, checked on the stored notebooks."""

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
IGNORE = "nbval-ignore-output"
TIMING = re.compile(r"perf_counter|%%?time|timeit|time\.time\(")


def load(path):
    return json.loads(path.read_text())


def source(cell):
    return "".join(cell["source"])


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


params = pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)


def test_the_first_lessons_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"00_start_here", "01_padding_motivation", "02_masked_fill"} <= names


@params
def test_opens_with_title_goals_and_prerequisites(path):
    first = source(load(path)["cells"][0])
    assert first.startswith("# "), "the first cell must be the title"
    assert re.search(r"learning goals", first, re.I) and re.search(r"prerequisites", first, re.I)


@params
def test_ends_with_summary_and_exercises(path):
    headings = [line for c in load(path)["cells"] if c["cell_type"] == "markdown"
                for line in source(c).splitlines() if line.startswith("#")]
    assert any(re.search(r"summary", h, re.I) for h in headings)
    assert any(re.search(r"exercises", h, re.I) for h in headings)


@params
def test_stored_as_a_clean_restart_and_run_all(path):
    nb = load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    cells = code_cells(nb)
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1))
    for cell in cells:
        assert "execution" not in cell["metadata"], "timing metadata must be off"
        for output in cell["outputs"]:
            assert output["output_type"] != "error", source(cell)[:80]


@params
def test_figures_are_stored_without_the_software_chunk(path):
    pngs = [base64.b64decode(o["data"]["image/png"]) for c in code_cells(load(path))
            for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert pngs, "a lesson shows at least one figure"
    assert not any(b"Software" in png for png in pngs)


@params
def test_widgets_are_ignored_by_nbval_and_have_a_static_figure(path):
    cells = code_cells(load(path))
    widget_cells = [c for c in cells if ".widget()" in source(c)]
    assert widget_cells, "each lesson has at least one widget"
    for cell in widget_cells:
        assert IGNORE in tags(cell), source(cell)
        assert not source(cell).rstrip().endswith(";"), "a trailing ; does not hide output"
    static = [c for c in cells if "default_state" in source(c) and IGNORE not in tags(c)]
    assert len(static) >= len(widget_cells), "every widget needs a static figure beside it"


@params
def test_timings_are_ignored_by_nbval(path):
    for cell in code_cells(load(path)):
        if TIMING.search(source(cell)):
            assert IGNORE in tags(cell), source(cell)[:120]


@params
def test_claims_are_asserted(path):
    asserts = sum(source(c).count("assert ") for c in code_cells(load(path)))
    assert asserts >= 5, f"only {asserts} asserts"


@params
def test_stored_by_make_execute(path):
    """`make execute` normalizes: stable widget ids, one output per print stream."""
    nb = load(path)
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    expected = {hashlib.sha256(f"{path.stem}:{i}".encode()).hexdigest()[:32]
                for i in range(len(state))}
    assert set(state) == expected, "refresh the stored outputs with `make execute`"
    for cell in code_cells(nb):
        streams = [(o["output_type"], o.get("name")) for o in cell["outputs"]]
        pairs = zip(streams, streams[1:], strict=False)
        assert all(a != b or a[0] != "stream" for a, b in pairs), \
            "split print output: refresh the stored outputs with `make execute`"
