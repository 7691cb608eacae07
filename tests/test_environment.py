"""The pins: environment.yml, requirements.txt, the package metadata and the installed
packages all describe the same environment."""

import importlib.metadata
import re
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).parents[1]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!-]+)$")


def requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def pins() -> dict[str, str]:
    return {m["name"]: m["version"] for m in map(PIN.match, requirement_lines())}


def test_environment_yml_installs_python_311_pip_and_the_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    dependencies = env["dependencies"]
    conda_packages = [d for d in dependencies if isinstance(d, str)]
    assert any(re.fullmatch(r"python=3\.11(\.\*)?", d) for d in conda_packages), conda_packages
    assert "pip" in conda_packages
    pip_sections = [d["pip"] for d in dependencies if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, dependencies
    assert sorted(pip_sections[0]) == ["-e .", "-r requirements.txt"]


def test_every_requirement_is_an_exact_pin():
    lines = requirement_lines()
    assert len(lines) > 10
    not_pinned = [line for line in lines if not PIN.match(line)]
    assert not not_pinned, f"not of the form name==version: {not_pinned}"
    names = [PIN.match(line)["name"].lower().replace("_", "-") for line in lines]
    assert len(names) == len(set(names)), "a package is pinned twice"


def test_package_metadata_requires_exactly_the_pins():
    assert importlib.metadata.requires("course_lib") == requirement_lines()


@pytest.mark.parametrize(("name", "version"), sorted(pins().items()))
def test_installed_version_is_the_pinned_one(name, version):
    installed = importlib.metadata.version(name)
    allowed = {version, f"{version}+cpu"} if name == "torch" else {version}
    assert installed in allowed, f"{name}: pinned {version}, installed {installed}"


def test_torch_is_2_13_0():
    assert torch.__version__.startswith("2.13.0")
    assert pins()["torch"] == "2.13.0"
