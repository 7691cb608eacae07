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


COURSE_MAP = "00_start_here.ipynb#5.-The-course-map"
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def links(cell):
    return [target for _, target in LINK.findall(source(cell))] \
        if cell["cell_type"] == "markdown" else []


def heading_ids(nb):
    """The ids JupyterLab and nbconvert give the headings: the text, spaces as '-'."""
    return {re.sub(r"[`*]", "", line.lstrip("#").strip()).replace(" ", "-")
            for c in nb["cells"] if c["cell_type"] == "markdown"
            for line in source(c).splitlines() if line.startswith("#")}


@params
def test_starts_with_a_link_to_the_course_map_and_ends_with_one_to_the_next_lesson(path):
    nb = load(path)
    here = "#5.-The-course-map" if path.stem == "00_start_here" else COURSE_MAP
    assert here in links(nb["cells"][0]), "the title cell links to the course map"
    last = nb["cells"][-1]
    assert last["cell_type"] == "markdown", "the lesson ends with a link to the next"
    following = NOTEBOOKS[NOTEBOOKS.index(path) + 1:]
    if following:
        assert following[0].name in links(last), f"the last cell links to {following[0].name}"
    else:
        assert here in links(last), "the last lesson leads back to the course map"


@params
def test_links_between_notebooks_reach_a_notebook_and_its_heading(path):
    for cell in load(path)["cells"]:
        for target in links(cell):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or not re.search(r"\.ipynb|^#", target):
                continue  # a web address, an image
            name, _, anchor = target.partition("#")
            notebook = NOTEBOOKS[0].parent / name if name else path
            assert notebook in NOTEBOOKS, f"{target}: no notebook {name}"
            if anchor:
                assert anchor in heading_ids(load(notebook)), f"{target}: no such heading"


def test_the_course_map_links_every_lesson_as_a_link_not_as_code():
    nb = load(NOTEBOOKS[0])
    (course_map,) = [c for c in nb["cells"] if source(c).startswith("## 5. The course map")]
    assert "5.-The-course-map" in heading_ids(nb)
    assert [target for target in links(course_map)] == [p.name for p in NOTEBOOKS[1:]]
    assert not re.search(r"\[`[^\]]*`\]\(", source(course_map)), "a link styled as code"


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
def test_no_stored_output_reads_as_a_widget_repr(path):
    """Before a cell runs, JupyterLab shows its stored text/plain where the widget would be:
    it must say what to do (course_lib.widgets.core.BEFORE_RUN), not `VBox(children=(...`."""
    for cell in code_cells(load(path)):
        for output in cell["outputs"]:
            text = "".join(output.get("data", {}).get("text/plain", ""))
            assert not text.startswith(("VBox(", "HBox(")) and "children=(" not in text, \
                f"{source(cell)[:80]!r} stores the widget repr {text[:60]!r}"


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


# Printed floats that are exact by definition, not the result of float arithmetic.
EXACT_FLOATS = {"-65504.0"}  # torch.finfo(torch.float16).min
FLOAT = re.compile(r"(?<![\w.])-?(\d+\.\d+)(?:e[-+]?\d+)?(?![\w.])")


@params
def test_compared_outputs_print_no_float_at_full_precision(path):
    """The printing rule: a float printed in a compared cell has at most 4 significant digits
    (another CPU or thread count changes the last digits of reduced floats; see
    `make portable`). Exact constants are listed in EXACT_FLOATS."""
    for index, cell in enumerate(load(path)["cells"]):
        if cell["cell_type"] != "code" or IGNORE in tags(cell):
            continue
        text = "".join("".join(o.get("text") or o.get("data", {}).get("text/plain") or "")
                       for o in cell["outputs"])
        long = [m.group(0) for m in FLOAT.finditer(text)
                if len(m.group(1).replace(".", "").lstrip("0")) >= 5
                and m.group(0) not in EXACT_FLOATS]
        assert not long, f"cell {index} prints {long[:3]}: round it (at most 4 significant digits)"
