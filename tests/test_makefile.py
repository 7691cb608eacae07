"""`make` picks a supported Python: 3.11 when it runs, else the newest of 3.13 and 3.12."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
MAKE = shutil.which("make")
# Stand-ins for the interpreters on a learner's PATH.
FAKES = {
    "broken": "#!/bin/sh\necho 'pyenv: command not found' >&2\nexit 127\n",  # a pyenv shim
    "too old": f"#!/bin/sh\nexec {sys.executable} -c 'import sys; sys.exit(1)'\n",
}


def chosen_python(tmp_path: Path, pythons: dict[str, str]) -> str:
    """The PYTHON the Makefile picks on a PATH holding only `pythons`: name -> "runs" (the
    course's own interpreter, which reports a supported version), "broken" or "too old"."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, kind in pythons.items():
        if kind == "runs":
            (bin_dir / name).symlink_to(sys.executable)
        else:
            (bin_dir / name).write_text(FAKES[kind])
            (bin_dir / name).chmod(0o755)
    probe = tmp_path / "probe.mk"
    probe.write_text(f"include {ROOT / 'Makefile'}\nprobe:\n\t@/bin/echo $(PYTHON)\n")
    # Under `make test PYTHON=...`, the outer make passes PYTHON on through MAKEFLAGS.
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env["PATH"] = str(bin_dir)
    result = subprocess.run([MAKE, "--no-print-directory", "-f", str(probe), "probe"],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return Path(result.stdout.strip()).name


@pytest.mark.skipif(MAKE is None, reason="needs make")
@pytest.mark.parametrize(("pythons", "expected"), [
    ({"python3.11": "runs", "python3.12": "runs", "python3.13": "runs"}, "python3.11"),
    ({"python3.12": "runs", "python3.13": "runs"}, "python3.13"),
    ({"python3.12": "runs"}, "python3.12"),
    ({"python3.11": "broken", "python3.12": "runs"}, "python3.12"),
    ({"python3.13": "too old", "python3.12": "runs"}, "python3.12"),
    ({"python3": "runs"}, "python3"),
])
def test_the_makefile_picks_a_supported_python_that_runs(tmp_path, pythons, expected):
    assert chosen_python(tmp_path, pythons) == expected
