"""Is a figure readable: does any text overlap another, or fall outside the figure?

Every state of every explorer, both styles (about 10 minutes)::

    .venv/bin/python -m tests.layout
"""

from __future__ import annotations

import itertools

from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

SLACK = 2.0  # pixels: boxes that only touch (or share a descender's pixel) do not overlap


def _visible(text: Text) -> bool:
    return text.get_visible() and bool(text.get_text().strip())


def _boxes(fig: Figure) -> list[tuple[str, Bbox, object]]:
    """(description, window extent, group) of every text and legend in ``fig``.

    Texts of one group (the tick labels of one axis, rotated together) may have overlapping
    boxes without touching glyphs, so they are only compared with other groups.
    """
    renderer = fig.canvas.get_renderer()
    boxes = {}

    def add(name, artist, group=None):
        box = artist.get_window_extent(renderer)
        boxes.setdefault((name, tuple(box.bounds)), (name, box, group or id(artist)))

    for text in fig.texts:
        if _visible(text):
            add(f"figure text {text.get_text()!r}", text)
    for ax in fig.axes:
        for title in (ax.title, ax._left_title, ax._right_title):
            if _visible(title):
                add(f"title {title.get_text()!r}", title)
        for axis in (ax.xaxis, ax.yaxis):
            if not (ax.axison and axis.get_visible()):
                continue
            if _visible(axis.label):
                add(f"axis label {axis.label.get_text()!r}", axis.label)
            drawn = axis._update_ticks()  # the ticks inside the view limits, as drawn
            labels = [label for tick in drawn for label in (tick.label1, tick.label2)]
            for label in labels:
                if _visible(label) and label.get_rotation() % 90:
                    add(f"tick label {label.get_text()!r}", label, group=id(axis))
                elif _visible(label):
                    add(f"tick label {label.get_text()!r}", label)
        for text in ax.texts:
            if _visible(text):
                add(f"text {text.get_text()!r}", text)
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            add(f"legend {[t.get_text() for t in legend.get_texts()]}", legend)
    return list(boxes.values())


def layout_problems(fig: Figure) -> list[str]:
    """Overlapping texts and texts cut off by the figure's edge, in words."""
    fig.canvas.draw()
    frame = fig.bbox
    boxes = _boxes(fig)
    problems = []
    for name, box, _ in boxes:
        if (box.x0 < frame.x0 - SLACK or box.y0 < frame.y0 - SLACK
                or box.x1 > frame.x1 + SLACK or box.y1 > frame.y1 + SLACK):
            problems.append(f"{name} is cut off by the figure's edge")
    for (name_a, a, group_a), (name_b, b, group_b) in itertools.combinations(boxes, 2):
        if group_a == group_b:
            continue
        width = min(a.x1, b.x1) - max(a.x0, b.x0)
        height = min(a.y1, b.y1) - max(a.y0, b.y0)
        if width > SLACK and height > SLACK:
            problems.append(f"{name_a} overlaps {name_b} ({width:.0f} x {height:.0f} px)")
    return problems


def main() -> None:
    import importlib
    import inspect
    import pkgutil

    import matplotlib.pyplot as plt

    import course_lib.widgets
    from course_lib import viz
    from course_lib.widgets import Explorer

    failed = 0
    for classroom in (False, True):
        viz.use_course_style(classroom=classroom)
        for info in pkgutil.iter_modules(course_lib.widgets.__path__):
            module = importlib.import_module(f"course_lib.widgets.{info.name}")
            for name in getattr(module, "__all__", []):
                factory = getattr(module, name)
                if not (inspect.isfunction(factory) and inspect.signature(factory)
                        .return_annotation in (Explorer, "Explorer")):
                    continue
                explorer, states = factory(), 0
                for state in explorer.states():
                    figure = explorer.draw(**state)
                    for problem in layout_problems(figure):
                        failed += 1
                        print(f"{name} {state}: {problem}")
                    plt.close(figure)
                    states += 1
                print(f"{'classroom' if classroom else 'standard'} {name}: {states} states",
                      flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
