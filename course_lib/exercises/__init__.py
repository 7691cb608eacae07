"""Exercises with checkers. ``check("01.padding_mask", my_answer)`` in a notebook."""

from course_lib.exercises.core import Exercise, Feedback, check, exercise, registered, solution

# Importing a lesson's module registers its exercises.
from course_lib.exercises import (  # noqa: E402, F401  isort: skip
    lesson00, lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07, lesson08,
    lesson09, lesson10,
)

__all__ = ["Exercise", "Feedback", "check", "exercise", "registered", "solution"]
