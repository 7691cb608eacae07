"""Time each lesson's restart-and-run-all against the course budget (5 minutes in all).

Run by `make bench`. Executes copies of the notebooks (the stored ones are not touched)
with the same warning settings as `make test`, in course order, and prints one row per
lesson. The trained-model cache starts empty, as on a fresh machine: lesson 05 trains and
saves the course model, later lessons load it.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

BUDGET_SECONDS = 300
NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def execute_seconds(path: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    # Local sockets (ipc) in a temporary folder: over TCP the kernel warns on stderr.
    with tempfile.TemporaryDirectory() as sockets:
        kernel = KernelManager(kernel_name="python3", transport="ipc",
                               ip=str(Path(sockets) / "kernel"))
        client = NotebookClient(notebook, km=kernel, timeout=600,
                                resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start


def main() -> int:
    print(f"{'notebook':<28} {'seconds':>8}")
    total = 0.0
    with tempfile.TemporaryDirectory() as cache:
        os.environ["COURSE_CACHE_DIR"] = cache  # inherited by every kernel
        for path in NOTEBOOKS:
            seconds = execute_seconds(path)
            total += seconds
            print(f"{path.stem:<28} {seconds:>8.1f}", flush=True)
    verdict = "within" if total <= BUDGET_SECONDS else "OVER"
    print(f"{'total':<28} {total:>8.1f}   ({verdict} the {BUDGET_SECONDS} s budget)")
    return 0 if total <= BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
