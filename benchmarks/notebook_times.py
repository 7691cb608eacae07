"""Time each lesson's restart-and-run-all, and where the time goes, against the course budgets.

Run by `make bench`. Executes copies of the notebooks (the stored ones are not touched)
with the same warning settings as `make test`, in course order, and prints one row per
lesson: its wall time, split into kernel start and its cells by what they do. The
trained-model cache starts empty, as on a fresh machine: lesson 05 trains and saves the
course model, later lessons load it. Then the slowest cells of the whole course.

Budgets (issue 15, set on a 2-core AMD EPYC): no lesson over 30 s; lessons 00-08 under
160 s in all, and lessons 09 and 10 at most 20 s each, so that the course stays under
200 s. The exit status is non-zero when any budget is missed.
"""

import datetime
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

LESSON_BUDGET = 30.0
FIRST_NINE_BUDGET = 160.0  # lessons 00-08
NEW_LESSON_BUDGET = 20.0  # lessons 09 and 10
COURSE_BUDGET = 200.0
NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
# What a cell does, decided from its source and outputs, first match wins.
KINDS = {
    "imports": lambda index, cell: index == 0,
    "training": lambda index, cell: re.search(r"\btrain\w*\(|trained_reverse_model\(",
                                              cell.source) is not None,
    "widgets": lambda index, cell: ".widget()" in cell.source or "static_figure" in cell.source,
    "figures": lambda index, cell: any("image/png" in output.get("data", {})
                                       for output in cell.get("outputs", [])),
    "other": lambda index, cell: True,
}


def _timestamp(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def execute(path: Path) -> dict:
    """Run one notebook; its total seconds, kernel start, and (kind, seconds, cell) per cell."""
    notebook = nbformat.read(path, as_version=4)
    # Local sockets (ipc) in a temporary folder: over TCP the kernel warns on stderr.
    with tempfile.TemporaryDirectory() as sockets:
        kernel = KernelManager(kernel_name="python3", transport="ipc",
                               ip=str(Path(sockets) / "kernel"))
        client = NotebookClient(notebook, km=kernel, timeout=600, record_timing=True,
                                resources={"metadata": {"path": str(path.parent)}})
        started = datetime.datetime.now(datetime.UTC)
        start = time.perf_counter()
        try:
            client.execute()
        finally:
            kernel.shutdown_kernel(now=True)
        total = time.perf_counter() - start
    cells, first_input = [], None
    for cell in (c for c in notebook.cells if c.cell_type == "code"):
        timing = cell.metadata.get("execution", {})
        begin, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if begin is None or end is None:
            continue
        first_input = first_input or _timestamp(begin)
        seconds = (_timestamp(end) - _timestamp(begin)).total_seconds()
        kind = next(k for k, test in KINDS.items() if test(len(cells), cell))
        cells.append((kind, seconds, cell))
    kernel_start = (first_input - started).total_seconds() if first_input else total
    return {"total": total, "kernel start": kernel_start, "cells": cells}


def main(paths: list[Path]) -> int:
    columns = ["kernel start", *KINDS]
    print(f"{'lesson':<26} {'seconds':>7}  " + " ".join(f"{c:>12}" for c in columns))
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["COURSE_CACHE_DIR"] = cache  # inherited by every kernel
        for path in paths:
            result = results[path.stem] = execute(path)
            split = {"kernel start": result["kernel start"]}
            for kind, seconds, _ in result["cells"]:
                split[kind] = split.get(kind, 0.0) + seconds
            mark = "" if result["total"] <= LESSON_BUDGET else f"  OVER {LESSON_BUDGET:.0f} s"
            print(f"{path.stem:<26} {result['total']:>7.1f}  "
                  + " ".join(f"{split.get(c, 0.0):>12.1f}" for c in columns) + mark, flush=True)
    first_nine = sum(r["total"] for name, r in results.items() if name[:2] <= "08")
    course = sum(r["total"] for r in results.values())
    slowest = max(r["total"] for r in results.values())
    newest = max((r["total"] for name, r in results.items() if name[:2] >= "09"), default=0.0)
    checks = [(f"every lesson <= {LESSON_BUDGET:.0f} s (slowest {slowest:.1f} s)",
               slowest <= LESSON_BUDGET),
              (f"lessons 00-08 <= {FIRST_NINE_BUDGET:.0f} s in all ({first_nine:.1f} s)",
               first_nine <= FIRST_NINE_BUDGET),
              (f"lessons 09 and 10 <= {NEW_LESSON_BUDGET:.0f} s each (slowest {newest:.1f} s)",
               newest <= NEW_LESSON_BUDGET),
              (f"the course <= {COURSE_BUDGET:.0f} s in all ({course:.1f} s)",
               course <= COURSE_BUDGET)]
    print("\nslowest cells:")
    ranked = sorted(((seconds, name, kind, cell) for name, r in results.items()
                     for kind, seconds, cell in r["cells"]), key=lambda row: -row[0])
    for seconds, name, kind, cell in ranked[:10]:
        line = next((s for s in cell.source.splitlines() if s.strip()), "")[:60]
        print(f"  {seconds:>6.1f} s  {name[:2]}  {kind:<9} {line}")
    print()
    for text, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {text}")
    return 0 if all(passed for _, passed in checks) else 1


if __name__ == "__main__":
    # Arguments: only these notebooks (to look at one lesson; the budgets assume all of them).
    sys.exit(main([Path(arg) for arg in sys.argv[1:]] or NOTEBOOKS))
