"""Every registered exercise: the solution passes, known mistakes get their specific
message, and an unattempted answer gets a hint."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from course_lib.exercises import check, registered, solution
from course_lib.exercises.core import exercise

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
EXERCISES = registered()
CHECK_CALL = re.compile(r"""check\(\s*["'](\d\d\.[\w.]+)["']""")


def notebook_keys(path: Path) -> set[str]:
    cells = json.loads(path.read_text())["cells"]
    return {key for c in cells if c["cell_type"] == "code"
            for key in CHECK_CALL.findall("".join(c["source"]))}


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_reference_solution_is_correct(key):
    feedback = check(key, solution(key))
    assert feedback.status == "correct", feedback


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_known_mistakes_get_specific_messages(key):
    wrong_answers = EXERCISES[key].wrong_answers
    assert wrong_answers, f"{key} registers no wrong answer, so its checker is untested"
    for answer, phrase in wrong_answers:
        feedback = check(key, answer)
        assert feedback.status == "wrong", (key, feedback)
        assert phrase in feedback.message, (key, phrase, feedback.message)


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_unattempted_answer_gets_a_hint(key):
    for answer in (..., None):
        feedback = check(key, answer)
        assert feedback.status == "not_attempted"
        assert "hint:" in repr(feedback) and EXERCISES[key].hint in feedback.message


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_lesson_has_three_checked_exercises(path):
    keys = notebook_keys(path)
    assert len(keys) >= 3, f"{path.name} checks only {sorted(keys)}"
    lesson = path.stem[:2]
    assert all(key.startswith(lesson + ".") for key in keys), keys
    assert keys <= set(EXERCISES), f"unknown keys: {keys - set(EXERCISES)}"


def test_every_registered_exercise_is_used_by_a_notebook():
    used = set().union(*(notebook_keys(p) for p in NOTEBOOKS))
    assert set(EXERCISES) <= used, f"never used: {set(EXERCISES) - used}"
    assert Counter(k[:2] for k in EXERCISES) == Counter(k[:2] for k in used)


def test_a_crashing_answer_is_reported_not_raised():
    key = next(iter(EXERCISES))

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    feedback = check(key, broken)
    assert feedback.status in {"wrong", "not_attempted"}
    if feedback.status == "wrong":
        assert "ZeroDivisionError" in feedback.message or "boom" in feedback.message


def test_unknown_key_and_duplicate_registration_are_errors():
    with pytest.raises(KeyError, match="no exercise called 'nope'"):
        check("nope", 1)
    key = next(iter(EXERCISES))
    with pytest.raises(ValueError, match="registered twice"):
        exercise(key, task="t", hint="", solution=None, explanation="e")(lambda answer: None)


def test_feedback_shows_in_a_notebook_as_icon_word_and_colour_with_the_text_escaped():
    from course_lib.exercises.core import Feedback

    key = next(iter(EXERCISES))
    right = check(key, solution(key))._repr_html_()
    assert "course-feedback-correct" in right and "#116329" in right  # green
    assert "✓ correct</strong>" in right and "correct!" not in right  # said once
    unattempted = check(key, None)
    shown = unattempted._repr_html_()
    assert "course-feedback-not_attempted" in shown and "#57606a" in shown  # grey
    assert "… not attempted yet</strong>" in shown and "hint:" in shown
    assert shown.count("not attempted yet") == 1
    wrong = Feedback("00.x<y>", "wrong", "expected <B, S> & got 'a\"b'")._repr_html_()
    assert "course-feedback-wrong" in wrong and "#a40e26" in wrong  # red
    assert "✗ wrong</strong>" in wrong
    assert "[00.x&lt;y&gt;]" in wrong
    assert "expected &lt;B, S&gt; &amp; got &#x27;a&quot;b&#x27;" in wrong
    assert "<B, S>" not in wrong
    for html in (right, shown, wrong):
        font_size = int(re.search(r"font-size: (\d+)px", html).group(1))
        assert font_size >= 14
    # ... and the plain text stays what terminals and tests read.
    assert repr(unattempted) == f"… [{key}] {unattempted.message}"
