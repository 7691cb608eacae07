"""The teacher's solutions view, solutions/SOLUTIONS.md: up to date, complete, explained.

That each reference solution passes its checker is tested in test_exercises.py
(test_reference_solution_is_correct); the view shows exactly those registered solutions.
"""

import re

import pytest

from course_lib.exercises import exercise, registered
from tools import make_solutions

EXERCISES = registered()


@pytest.fixture(scope="module")
def generated() -> str:
    return make_solutions.render()


def test_the_committed_solutions_view_is_up_to_date(generated):
    committed = make_solutions.OUTPUT.read_text(encoding="utf-8")
    assert committed == generated, (
        "solutions/SOLUTIONS.md is stale: an exercise changed since it was generated. "
        "Run `.venv/bin/python tools/make_solutions.py` and commit the result.")


def _section(text: str, key: str) -> str:
    start = text.index(f"### `{key}`\n")
    end = text.find("\n### ", start + 1)
    return text[start:] if end < 0 else text[start:end]


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_every_exercise_appears_with_task_hint_solution_and_explanation(generated, key):
    item = EXERCISES[key]
    section = _section(generated, key)
    assert f"**Task.** {item.task}" in section
    assert "**Hint**" in section and "**Reference solution.**\n\n```python\n" in section
    assert f"**Why it is right.** {item.explanation}" in section
    solution = item.solution
    if callable(solution) and getattr(solution, "__name__", "<lambda>") != "<lambda>":
        assert f"def {solution.__name__}(" in section
    elif isinstance(solution, dict):
        assert all(repr(value) in section for value in solution.values())
    else:
        assert "lambda" in section.split("**Reference solution.**")[1].split("```\n")[1]
    distinct = {id(answer) for answer, _ in item.wrong_answers}
    assert section.count("   ✗ ") == len(distinct), "each known mistake with its feedback"


def test_lessons_link_their_notebooks(generated):
    lessons = sorted({key[:2] for key in EXERCISES})
    for lesson in lessons:
        heading = generated.index(f"\n## Lesson {lesson}\n")
        link = re.compile(rf"\[({lesson}_\w+\.ipynb)\]\(\.\./notebooks/\1\)")
        match = link.search(generated, heading)
        assert match and (make_solutions.NOTEBOOKS / match.group(1)).exists()
    assert generated.count("\n## Lesson ") == len(lessons)


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_every_exercise_has_a_one_line_task_and_an_explanation(key):
    item = EXERCISES[key]
    assert item.task.strip() and "\n" not in item.task, key
    assert len(item.explanation.split()) >= 10, f"{key}: explain why the solution is right"
    assert item.explanation.count(". ") + 1 <= 3, f"{key}: 1-3 sentences"


@pytest.mark.parametrize("missing", ["task", "explanation"])
def test_a_new_exercise_must_say_its_task_and_explain_its_solution(missing):
    arguments = {"task": "do it", "hint": "h", "solution": None, "explanation": "because"}
    del arguments[missing]
    with pytest.raises(TypeError, match=missing):
        exercise("99.nothing", **arguments)
    with pytest.raises(ValueError, match=f"{missing}: exercise '99.nothing' needs"):
        exercise("99.nothing", **{**arguments, missing: "  "})
    assert "99.nothing" not in registered()


def test_plain_text_is_escaped_for_markdown():
    assert make_solutions._escape("a * b_c <bos> [B, S]\n x") == r"a \* b\_c \<bos\> \[B, S\] x"
