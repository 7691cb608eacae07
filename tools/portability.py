"""The portability check: every stored output holds under other numerics (`make portable`).

Strict nbval compares printed text, so each printed number promises to be the same on every
learner's computer. One machine cannot be every computer, but it can change what makes two
computers disagree: the vector unit the kernels use (PyTorch's ATen kernels, MKL's matrix
products, oneDNN), which decides the order in which a reduction adds its terms, and the
number of threads, which decides how a reduction is split. Each perturbation below
re-executes every notebook under strict nbval, from an empty model cache (as a fresh clone,
so a model trained in another order must not change any stored output).

Threads: `OMP_NUM_THREADS` alone would not reach the kernels, because lessons and explorers
call `torch.set_num_threads` themselves. Each kernel therefore runs an IPython startup file
that fixes the thread count and makes later `torch.set_num_threads` calls keep it. Before the
notebooks run, a kernel started the same way must report the perturbed vector unit and thread
count, or the check fails.

Usage: python tools/portability.py [notebooks/03_softmax_row_proof.ipynb ...]
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parents[1]

# Pins the thread count for the whole kernel, whatever the notebook asks for later.
STARTUP = """\
import os as _os

import torch as _torch

_threads = int(_os.environ["COURSE_PORTABILITY_THREADS"])
_torch.set_num_threads(_threads)
_torch.set_num_threads = lambda _requested: None
"""

# name, environment, threads. Vector units: ATen, MKL and oneDNN all leave AVX-512.
PERTURBATIONS = [
    ("no SIMD (scalar kernels), 2 threads",
     {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
      "ONEDNN_MAX_CPU_ISA": "SSE41"}, 2),
    ("AVX2 (as on AMD EPYC), 1 thread",
     {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
      "ONEDNN_MAX_CPU_ISA": "AVX2"}, 1),
    ("native vector unit, 4 threads", {}, 4),
]

PROBE = ("import json, torch; torch.set_num_threads(1); print(json.dumps("
         "[torch.backends.cpu.get_cpu_capability(), torch.get_num_threads()]))")


def kernel_reports(env: dict[str, str]) -> tuple[str, int]:
    """The vector unit and thread count that a notebook kernel started with `env` uses."""
    saved = dict(os.environ)
    os.environ.update(env)
    # Local sockets (ipc), as in benchmarks/notebook_times.py: over TCP the kernel warns.
    manager = KernelManager(kernel_name="python3", transport="ipc",
                            ip=str(Path(env["IPYTHONDIR"]) / "kernel"))
    try:
        manager.start_kernel()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    try:
        lines = []
        client.execute_interactive(
            PROBE, output_hook=lambda msg: lines.append(msg["content"].get("text", "")))
        capability, threads = json.loads("".join(lines))
        return capability, threads
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def failures(junit: Path) -> list[str]:
    tree = ElementTree.parse(junit)
    return [f"{case.get('classname', '')}::{case.get('name')}"
            for case in tree.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None]


def run(name: str, extra: dict[str, str], threads: int, notebooks: list[str],
        work: Path) -> list[str]:
    ipython_dir = work / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-threads.py").write_text(STARTUP)
    cache = work / "cache"
    cache.mkdir()
    env = {**extra, "IPYTHONDIR": str(ipython_dir), "COURSE_CACHE_DIR": str(cache),
           "COURSE_PORTABILITY_THREADS": str(threads)}

    capability, got_threads = kernel_reports(env)
    wanted = extra.get("ATEN_CPU_CAPABILITY", capability).upper()
    if (capability, got_threads) != (wanted, threads):
        return [f"the perturbation did not reach the kernel: it reports {capability} kernels "
                f"on {got_threads} threads, expected {wanted} on {threads}"]
    print(f"\n== {name}: the kernel uses {capability} kernels on {got_threads} threads",
          flush=True)

    junit = work / "junit.xml"
    start = time.perf_counter()
    result = subprocess.run(
        # Scalar kernels train several times slower: the cell timeout guards against a hang
        # here, not against slowness (benchmarks/ measures that).
        [sys.executable, "-m", "pytest", "-q", "--no-header", "-rN", f"--junitxml={junit}",
         "--nbval-cell-timeout=900", *notebooks], cwd=ROOT, env={**os.environ, **env}, check=False)
    print(f"   {name}: {time.perf_counter() - start:.0f} s", flush=True)
    if result.returncode not in (0, 1) or not junit.exists():
        return [f"pytest stopped with exit code {result.returncode}"]
    return failures(junit)


def main(notebooks: list[str]) -> int:
    notebooks = notebooks or sorted(str(p.relative_to(ROOT))
                                    for p in (ROOT / "notebooks").glob("*.ipynb"))
    report = []
    for name, extra, threads in PERTURBATIONS:
        with tempfile.TemporaryDirectory() as work:
            report.append((name, run(name, extra, threads, notebooks, Path(work))))
    print("\n== portability check: the stored outputs under other numerics")
    for name, failed in report:
        print(f"{'PASS' if not failed else 'FAIL'}  {name}")
        for test in failed:
            print(f"      {test}")
    return 1 if any(failed for _, failed in report) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
