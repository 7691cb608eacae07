"""What the doctor returns: a :class:`Report`, a list of :class:`Finding` that prints well."""

from __future__ import annotations

import html
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from course_lib import _style
from course_lib.doctor.catalogue import CODES, SEVERITIES

__all__ = ["Finding", "Report", "finding"]

_ICON = {"error": "✗", "warning": "!"}
_WIDTH = 96
# In a notebook: icon, word and colour together (never colour alone), dark text on a light
# tint, a proportional font that wraps, large enough for a projector at 1280x720.
_COLOURS = {"error": ("#a40e26", "#ffebe9"), "warning": ("#7d4e00", "#fff8c5"),
            "ok": ("#116329", "#dafbe1")}  # (text and border, background)
_BOX = ("border-left: 5px solid {ink}; background-color: {tint}; padding: 6px 12px; "
        "margin: 6px 0")
_REPORT = ("font-family: sans-serif; font-size: {size}; line-height: 1.45; max-width: 60em; "
           "overflow-wrap: anywhere; color: #24292f")


@dataclass(frozen=True)
class Finding:
    """One problem.

    Attributes:
        code: stable identifier of the kind of problem, a key of ``doctor.CODES``.
        severity: ``"error"`` (wrong numbers, NaN or a crash) or ``"warning"`` (fragile,
            deprecated, or wrong only in some setups).
        argument: what it is about, e.g. ``"src_key_padding_mask"``, ``"model"``, ``"loss_fn"``.
        problem: what is wrong, specifically (counts, shapes).
        why: why it matters.
        fix: what to write instead.
    """

    code: str
    severity: str
    argument: str
    problem: str
    why: str
    fix: str

    def __str__(self) -> str:
        head = f"{_ICON[self.severity]} {self.severity} [{self.code}] {self.argument}"
        lines = [head]
        for label, text in (("problem", self.problem), ("why", self.why), ("fix", self.fix)):
            lines += textwrap.wrap(text, _WIDTH, initial_indent=f"    {label + ':':9}",
                                   subsequent_indent=" " * 13)
        return "\n".join(lines)

    def _html(self) -> str:
        ink, tint = _COLOURS[self.severity]
        text = {k: html.escape(getattr(self, k)) for k in ("code", "argument", "problem",
                                                          "why", "fix")}
        return (f'<div class="doctor-finding doctor-{self.severity}" '
                f'style="{_BOX.format(ink=ink, tint=tint)}">'
                f'<strong style="color: {ink}">{_ICON[self.severity]} {self.severity}</strong> '
                f"<code>{text['code']}</code> on <code>{text['argument']}</code><br>"
                f"<strong>Problem:</strong> {text['problem']}<br>"
                f"<strong>Why:</strong> {text['why']}<br>"
                f"<strong>Fix:</strong> {text['fix']}</div>")


def finding(code: str, argument: str, problem: str, *, severity: str | None = None,
            ids: str = "ids") -> Finding:
    """A :class:`Finding` of kind ``code``, with the catalogue's why and fix for ``argument``
    (``ids``: the name of the token ids the argument is about, e.g. ``"src"``)."""
    entry = CODES[code]
    severity = severity or entry.severity
    if severity not in SEVERITIES:
        raise ValueError(f"severity: expected one of {SEVERITIES}, got {severity!r}")
    return Finding(code, severity, argument, problem, entry.why.format(arg=argument, ids=ids),
                   entry.fix.format(arg=argument, ids=ids))


class Report(Sequence):
    """The doctor's findings, errors first; list-like, printable, and shown as HTML in a
    notebook.

    ``report.ok`` is True when nothing was found; ``report.codes`` lists the codes in order.
    """

    def __init__(self, findings: Sequence[Finding], checked: Sequence[str]) -> None:
        order = {severity: i for i, severity in enumerate(SEVERITIES)}
        self._findings = tuple(sorted(findings, key=lambda f: order[f.severity]))
        self.checked = tuple(checked)

    def __getitem__(self, index):
        return self._findings[index]

    def __len__(self) -> int:
        return len(self._findings)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self._findings)

    @property
    def ok(self) -> bool:
        return not self._findings

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self._findings]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self._findings if f.severity == "error"]

    def _headline(self) -> str:
        checked = ", ".join(self.checked)
        if self.ok:
            return f"mask doctor: no problems found (checked {checked})"
        counts = [f"{n} {s}{'s' if n > 1 else ''}" for s in SEVERITIES
                  if (n := sum(f.severity == s for f in self._findings))]
        return f"mask doctor: {' and '.join(counts)} (checked {checked})"

    def __str__(self) -> str:
        return "\n".join([self._headline(), *map(str, self._findings)])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        if self.ok:
            status, icon = "ok", "✓"
        else:
            status, icon = self._findings[0].severity, _ICON[self._findings[0].severity]
        ink, _ = _COLOURS[status]
        headline = (f'<div class="doctor-headline doctor-{status}" style="color: {ink}">'
                    f"<strong>{icon} {html.escape(self._headline())}</strong></div>")
        findings = "".join(f._html() for f in self._findings)
        style = _REPORT.format(size=_style.html_font_size())
        return f'<div class="doctor-report" style="{style}">{headline}{findings}</div>'

