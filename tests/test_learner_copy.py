"""The learner's copies (tools/learner_copy.py): a learner's work never reaches notebooks/."""

import json
import tomllib
from pathlib import Path

import pytest

from tools import learner_copy

ROOT = Path(__file__).parents[1]


@pytest.fixture
def course(tmp_path):
    originals = tmp_path / "notebooks"
    originals.mkdir()
    for name in ("00_start_here", "05_training"):
        (originals / f"{name}.ipynb").write_text(json.dumps({"lesson": name}))
    return originals, tmp_path / "my-notebooks"


def test_sync_copies_every_lesson_once_and_never_overwrites_the_learners_work(course):
    originals, learner = course
    assert learner_copy.sync(originals, learner) == []
    assert sorted(p.name for p in learner.glob("*.ipynb")) == ["00_start_here.ipynb",
                                                               "05_training.ipynb"]
    (learner / "05_training.ipynb").write_text("the learner's answers")
    (originals / "06_decoding.ipynb").write_text("a new lesson")
    assert learner_copy.sync(originals, learner) == []
    assert (learner / "05_training.ipynb").read_text() == "the learner's answers"
    assert (learner / "06_decoding.ipynb").read_text() == "a new lesson"


def test_sync_says_when_an_original_changed_since_the_copy(course):
    originals, learner = course
    learner_copy.sync(originals, learner)
    (originals / "05_training.ipynb").write_text("a newer version of the lesson")
    notices = learner_copy.sync(originals, learner)
    assert len(notices) == 1 and "make reset LESSON=05" in notices[0]
    assert (learner / "05_training.ipynb").read_text() == json.dumps({"lesson": "05_training"})


def test_reset_restores_one_lesson_and_keeps_the_replaced_copy(course):
    originals, learner = course
    learner_copy.sync(originals, learner)
    for name in ("00_start_here", "05_training"):
        (learner / f"{name}.ipynb").write_text(f"work on {name}")
    assert [p.name for p in learner_copy.reset("05", originals, learner)] == ["05_training.ipynb"]
    assert (learner / "05_training.ipynb").read_bytes() == \
        (originals / "05_training.ipynb").read_bytes()
    assert (learner / "00_start_here.ipynb").read_text() == "work on 00_start_here"
    (backup,) = (learner / ".backup").iterdir()
    assert (backup / "05_training.ipynb").read_text() == "work on 05_training"
    assert learner_copy.sync(originals, learner) == []  # the reset copy is up to date


def test_reset_all_and_by_name(course):
    originals, learner = course
    learner_copy.sync(originals, learner)
    assert len(learner_copy.reset("all", originals, learner)) == 2
    assert [p.stem for p in learner_copy.reset("00_start_here", originals, learner)] == \
        ["00_start_here"]


def test_reset_of_an_unknown_lesson_names_the_argument(course):
    originals, learner = course
    with pytest.raises(ValueError, match=r"LESSON: expected a lesson number \(00, 05\) or "
                                         r"'all', got '5'"):
        learner_copy.reset("5", originals, learner)


def test_the_learners_copies_are_ignored_by_git_ruff_and_pytest():
    assert "/my-notebooks/" in (ROOT / ".gitignore").read_text().splitlines()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "my-notebooks" in config["tool"]["ruff"]["extend-exclude"]
    assert "my-notebooks" not in config["tool"]["pytest"]["ini_options"]["testpaths"]
    assert learner_copy.LEARNER == ROOT / "my-notebooks"
    assert "my-notebooks/00_start_here.ipynb" in (ROOT / "Makefile").read_text()
