"""Write the teacher's solutions view, ``solutions/SOLUTIONS.md``, from the exercise registry.

For every exercise, grouped by lesson: its key, the task in one line, the hint, the reference
solution as code, why it is right, and each registered wrong answer with the feedback the
checker gives it. Run it after changing an exercise; a test fails while the file is stale::

    .venv/bin/python tools/make_solutions.py
"""

from __future__ import annotations

import ast
import inspect
import pprint
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: find course_lib without installing it
    sys.path.insert(0, str(ROOT))

from course_lib.exercises import Exercise, check, registered  # noqa: E402

__all__ = ["OUTPUT", "render", "main"]

OUTPUT = ROOT / "solutions" / "SOLUTIONS.md"
NOTEBOOKS = ROOT / "notebooks"
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _escape(text: str) -> str:
    """Plain text (a hint, a checker's message) shown literally in Markdown, on one line."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _one_line(code: str) -> str:
    """Source written over several lines, as one line."""
    code = " ".join(code.split())
    return re.sub(r" ([)\]}])", r"\1", re.sub(r"([(\[{]) ", r"\1", code))


def _call_of(module: ModuleType, key: str) -> ast.Call:
    """The ``exercise("<key>", ...)`` decorator call in ``module``'s source."""
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "exercise" \
                and node.args and getattr(node.args[0], "value", None) == key:
            return node
    raise LookupError(f"key: no exercise({key!r}, ...) call in {module.__name__}")


def _keyword(call: ast.Call, name: str) -> ast.expr:
    return next(keyword.value for keyword in call.keywords if keyword.arg == name)


def _code(node: ast.expr, value: object, module: ModuleType) -> str:
    """Readable Python for ``value``, written as ``node`` in ``module``: a function's source,
    a lambda as written, anything else as a pretty-printed literal."""
    if isinstance(node, ast.Lambda):
        return _one_line(ast.get_source_segment(inspect.getsource(module), node))
    if inspect.isfunction(value) and value.__name__ != "<lambda>" and isinstance(node, ast.Name):
        return inspect.getsource(value).rstrip()
    if callable(value):  # built by a helper, e.g. _fix_variant(...): show the call
        return _one_line(ast.get_source_segment(inspect.getsource(module), node))
    return pprint.pformat(value, width=88, sort_dicts=False)


def _notebook(lesson: str) -> str:
    matches = sorted(NOTEBOOKS.glob(f"{lesson}_*.ipynb"))
    if len(matches) != 1:
        raise LookupError(f"lesson: expected one notebook {lesson}_*.ipynb, found {matches}")
    return matches[0].name


def _fenced(code: str, indent: str = "") -> list[str]:
    return [f"{indent}```python", *(f"{indent}{line}".rstrip() for line in code.splitlines()),
            f"{indent}```"]


def _section(item: Exercise) -> list[str]:
    module = sys.modules[item.checker.__module__]
    call = _call_of(module, item.key)
    solution = _code(_keyword(call, "solution"), item.solution, module)
    lines = [f"### `{item.key}`", "", f"**Task.** {item.task}", "",
             f"**Hint** (shown while unattempted). {_escape(item.hint)}", "",
             "**Reference solution.**", "", *_fenced(solution), "",
             f"**Why it is right.** {item.explanation}", "",
             "**Mistakes the checker recognises**, each with the feedback it gives:", ""]
    shown: list[tuple[ast.expr, object]] = []  # one answer may be registered per phrase
    for node, (answer, _phrase) in zip(_keyword(call, "wrong_answers").elts,
                                       item.wrong_answers, strict=True):
        if all(answer is not seen for _, seen in shown):
            shown.append((node.elts[0], answer))
    for number, (node, answer) in enumerate(shown, start=1):
        if callable(answer):
            code = _code(node, answer, module)
        else:  # a literal as written, e.g. {**WHICH_BLOCK, "src_mask": ...}, shows the slip
            code = _one_line(ast.get_source_segment(inspect.getsource(module), node))
        feedback = check(item.key, answer)
        if "\n" in code:
            lines += [f"{number}. A mistake written as:", "", *_fenced(code, "   "), ""]
        else:
            lines += [f"{number}. `{code}`", ""]
        lines += [f"   ✗ {_escape(feedback.message)}", ""]
    return lines


def render() -> str:
    """The whole solutions view as Markdown."""
    exercises = registered()
    lessons = sorted({key[:2] for key in exercises})
    lines = ["# Solutions to the exercises", "",
             "For teachers: every exercise of the course with its reference solution, why it is "
             "right, and the mistakes its checker recognises. Generated from the registered "
             "exercises (`course_lib/exercises/`) by `tools/make_solutions.py`; do not edit by "
             "hand. The tests check that every solution here passes its checker.", "",
             "Learners: try each exercise first, then `solution(key)` in the notebook.", ""]
    lines += [f"- Lesson {lesson} ([{_notebook(lesson)}](../notebooks/{_notebook(lesson)})): "
              + ", ".join(f"`{key}`" for key in sorted(exercises) if key[:2] == lesson)
              for lesson in lessons]
    for lesson in lessons:
        notebook = _notebook(lesson)
        lines += ["", f"## Lesson {lesson}", "",
                  f"Notebook: [{notebook}](../notebooks/{notebook})", ""]
        for key in sorted(key for key in exercises if key[:2] == lesson):
            lines += _section(exercises[key])
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(registered())} exercises)")


if __name__ == "__main__":
    main()
