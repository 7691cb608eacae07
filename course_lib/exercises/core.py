"""The exercise checker: instant, specific feedback in the notebook.

Each exercise is a checker function registered under a key such as ``"01.padding_mask"``.
``check(key, answer)`` answers in one of three ways:

* not attempted yet (the answer is ``...``/``None`` or raises ``NotImplementedError``) -> a hint;
* wrong -> what is wrong with this answer, specifically;
* right -> a confirmation.

The reference solution and known wrong answers are registered with the checker, and the
unit tests run every one of them, so a checker can never silently accept everything.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from course_lib import _style

__all__ = ["Exercise", "Feedback", "exercise", "check", "solution", "registered", "tensor_problem"]

Status = Literal["not_attempted", "wrong", "correct"]
_ICON = {"not_attempted": "…", "wrong": "✗", "correct": "✓"}
# In a notebook: an icon AND a word for each verdict (never colour alone), dark text on a
# light tint, so it reads the same for colour-blind learners, in print and on a projector.
_LABEL = {"not_attempted": "not attempted yet", "wrong": "wrong", "correct": "correct"}
_COLOURS = {  # (text and border, background)
    "not_attempted": ("#57606a", "#f6f8fa"),
    "wrong": ("#a40e26", "#ffebe9"),
    "correct": ("#116329", "#dafbe1"),
}


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer; prints as one readable line, and shows in a notebook as a
    coloured box with the same icon, the verdict in words, and the message."""

    key: str
    status: Status
    message: str

    def __repr__(self) -> str:
        return f"{_ICON[self.status]} [{self.key}] {self.message}"

    def _repr_html_(self) -> str:
        label = _LABEL[self.status]
        # "correct!" and "not attempted yet — hint: ..." would repeat the label.
        detail = self.message
        if detail.startswith(label):
            detail = detail[len(label):].lstrip(" !—-:")
        ink, tint = _COLOURS[self.status]
        detail_html = f" {html.escape(detail)}" if detail else ""
        return (f'<div class="course-feedback course-feedback-{self.status}" style="'
                f"border-left: 5px solid {ink}; background-color: {tint}; color: {ink}; "
                "padding: 6px 12px; margin: 2px 0; font-family: sans-serif; "
                f"font-size: {_style.html_font_size()}; "
                f'line-height: 1.45; white-space: pre-wrap; overflow-wrap: anywhere">'
                f"<strong>{_ICON[self.status]} {label}</strong> "
                f'<span style="color: #24292f">[{html.escape(self.key)}]</span>'
                f"{detail_html}</div>")

    @property
    def correct(self) -> bool:
        return self.status == "correct"


@dataclass(frozen=True)
class Exercise:
    """A registered exercise.

    ``checker(answer)`` returns None when the answer is right, else a message saying what
    is wrong. ``wrong_answers`` pairs each known mistake with a phrase its message must
    contain (the tests enforce it). ``task`` (one line) and ``explanation`` (why the
    solution is right, 1-3 sentences) are Markdown for the teacher's solutions view,
    ``solutions/SOLUTIONS.md``.
    """

    key: str
    hint: str
    checker: Callable[[Any], str | None]
    solution: Any
    wrong_answers: tuple[tuple[Any, str], ...] = field(default=())
    task: str = ""
    explanation: str = ""


_REGISTRY: dict[str, Exercise] = {}


def exercise(key: str, *, task: str, hint: str, solution: Any, explanation: str,
             wrong_answers=()) -> Callable:
    """Decorator that registers a checker function under ``key``.

    ``task``: what the learner is asked to do, in one line; ``explanation``: why
    ``solution`` is right, in 1-3 sentences (both Markdown, for the solutions view).
    """
    for name, text in (("task", task), ("explanation", explanation)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{name}: exercise {key!r} needs a non-empty {name}, got {text!r}")
    if "\n" in task:
        raise ValueError(f"task: exercise {key!r} must describe its task in one line")

    def register(checker: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
        if key in _REGISTRY:
            raise ValueError(f"key: exercise {key!r} is registered twice")
        _REGISTRY[key] = Exercise(key, hint, checker, solution, tuple(wrong_answers),
                                  task, explanation)
        return checker

    return register


def _get(key: str) -> Exercise:
    if key not in _REGISTRY:
        raise KeyError(f"key: no exercise called {key!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[key]


def check(key: str, answer: Any) -> Feedback:
    """Check a learner's ``answer`` to exercise ``key`` and say what is right or wrong."""
    item = _get(key)
    if answer is None or answer is Ellipsis:
        return Feedback(key, "not_attempted", f"not attempted yet — hint: {item.hint}")
    try:
        problem = item.checker(answer)
    except NotImplementedError:
        return Feedback(key, "not_attempted", f"not attempted yet — hint: {item.hint}")
    except Exception as error:  # noqa: BLE001 - any crash in the learner's code is feedback
        return Feedback(key, "wrong", f"your answer raised {type(error).__name__}: {error}")
    if problem is None:
        return Feedback(key, "correct", "correct!")
    return Feedback(key, "wrong", problem)


def solution(key: str) -> Any:
    """The reference solution of exercise ``key`` (try first, then peek)."""
    return _get(key).solution


def registered() -> dict[str, Exercise]:
    """All registered exercises, by key."""
    return dict(_REGISTRY)


def tensor_problem(got: Any, shape, dtype_check: Callable[[torch.dtype], bool], what: str,
                   shape_hint: str = "") -> str | None:
    """What is wrong with a tensor answer before its values are compared: not a tensor, the
    wrong dtype (``dtype_check`` fails; ``what`` names what was expected), or not ``shape``
    (``shape_hint`` is added to that message). None when it is fine."""
    if not isinstance(got, torch.Tensor):
        return f"expected a tensor ({what}), got {type(got).__name__}"
    if not dtype_check(got.dtype):
        return f"expected {what}, got a {got.dtype} tensor"
    if tuple(got.shape) != tuple(shape):
        return f"expected shape {list(shape)}, got {list(got.shape)}{shape_hint}"
    return None
