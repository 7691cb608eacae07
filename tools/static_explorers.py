"""Explorers that respond without a kernel: every state pre-drawn, swapped by plain HTML.

A lesson's explorer is the cell ``explorer = some_explorer()`` + ``display(explorer.widget())``.
For the static site, :func:`render` draws every state of that explorer with its own ``draw``
function (``Explorer.png``: exactly what JupyterLab shows for that state) into
``explorers/<lesson>/<index>.png``, and :func:`controls_html` writes the same controls, with
the same labels, options and defaults, as HTML that swaps between the pictures
(``static/explorers.js``). ``<index>`` is the state's place in ``Explorer.states()``: the
controls' option indices in mixed radix, the last control fastest.

Renders are kept in ``.cache/site-explorers/`` under a hash of the course's code and the state,
so a build after a change to one lesson redraws that lesson's explorer only.
"""

from __future__ import annotations

import hashlib
import html
import importlib
import json
import re
import shutil
from pathlib import Path

from course_lib.widgets.core import Explorer

REPO = Path(__file__).parents[1]
CACHE = REPO / ".cache" / "site-explorers"
# The explorer cell: `name = factory()` then `display(name.widget())`.
EXPLORER_CELL = re.compile(r"^(\w+) = (\w+)\(\)\s*\ndisplay\(\1\.widget\(\)\)\s*$")
SCRIPT = "explorers.js"


def find_explorer(notebook, lesson: str) -> tuple[int, Explorer] | None:
    """(index of the explorer's cell, the Explorer) of a lesson's notebook, or None."""
    for index, cell in enumerate(notebook.cells):
        match = cell.cell_type == "code" and EXPLORER_CELL.match(cell.source.strip())
        if match:
            module = importlib.import_module(f"course_lib.widgets.lesson{lesson[:2]}")
            return index, getattr(module, match.group(2))()
    return None


def _code_hash() -> str:
    """The course's code, all of it: a render depends on any helper it calls."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "course_lib").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def render(explorer: Explorer, folder: Path, *, code: str | None = None) -> int:
    """Draw every state of ``explorer`` into ``folder/<index>.png``; return the count."""
    code = code or _code_hash()
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for index, state in enumerate(explorer.states()):
        key = hashlib.sha256(json.dumps([code, explorer.draw.__module__, explorer.draw.__name__,
                                         state], sort_keys=True, default=str).encode())
        cached = CACHE / f"{key.hexdigest()[:24]}.png"
        if not cached.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(explorer.png(**state))
        shutil.copyfile(cached, folder / f"{index}.png")
        count += 1
    return count


def controls_html(explorer: Explorer, folder: str) -> str:
    """The explorer as HTML: its controls (toggle buttons, checkboxes, sliders, in order) and
    the figure of the default state; ``static/explorers.js`` swaps the figure."""
    controls = list(explorer.controls.values())
    sizes = [len(control.options) for control in controls]
    default = [list(control.options).index(control.default) for control in controls]
    parts = []
    for number, control in enumerate(controls):
        label = html.escape(control.label)
        options = list(control.options)
        attributes = f'data-control="{number}"'
        if all(isinstance(option, bool) for option in options):
            checked = " checked" if control.default else ""
            parts.append(f'<label class="static-explorer-control static-checkbox"><input '
                         f'type="checkbox" {attributes} data-true="{options.index(True)}" '
                         f'data-false="{options.index(False)}"{checked}> {label}</label>')
        elif all(isinstance(option, str) for option in options):
            buttons = "".join(
                f'<button type="button" class="static-toggle{" active" * chosen}" '
                f'data-value="{i}" aria-pressed="{str(chosen).lower()}">'
                f"{html.escape(option)}</button>"
                for i, (option, chosen) in enumerate((o, o == control.default) for o in options))
            parts.append(f'<div class="static-explorer-control static-toggles" {attributes}>'
                         f'<span class="static-label">{label}</span>{buttons}</div>')
        else:
            texts = html.escape(json.dumps([str(option) for option in options]))
            parts.append(f'<label class="static-explorer-control static-slider">'
                         f'<span class="static-label">{label}</span><input type="range" '
                         f'{attributes} min="0" max="{len(options) - 1}" step="1" '
                         f'value="{default[number]}" data-texts="{texts}"><output>'
                         f"{html.escape(str(control.default))}</output></label>")
    index = _index(default, sizes)
    return (f'<div class="static-explorer" data-sizes="{json.dumps(sizes)}" '
            f'data-folder="{folder}"><div class="static-explorer-controls">{"".join(parts)}'
            f'</div><img class="static-explorer-figure" src="{folder}/{index}.png" '
            f'alt="the explorer\'s figure for the chosen controls"></div>')


def _index(choices: list[int], sizes: list[int]) -> int:
    index = 0
    for choice, size in zip(choices, sizes, strict=True):
        index = index * size + choice
    return index


SCRIPT_SOURCE = """// The static explorers: each control's choice picks one pre-drawn figure.
document.querySelectorAll(".static-explorer").forEach(function (root) {
  var sizes = JSON.parse(root.dataset.sizes), image = root.querySelector("img");
  var choices = sizes.map(function () { return 0; });
  function read() {
    root.querySelectorAll("[data-control]").forEach(function (control) {
      var n = Number(control.dataset.control);
      if (control.type === "checkbox") {
        choices[n] = Number(control.checked ? control.dataset.true : control.dataset.false);
      } else if (control.type === "range") {
        choices[n] = Number(control.value);
        control.nextElementSibling.textContent = JSON.parse(control.dataset.texts)[choices[n]];
      } else {
        choices[n] = Number(control.querySelector(".active").dataset.value);
      }
    });
    var index = 0;
    for (var i = 0; i < sizes.length; i++) { index = index * sizes[i] + choices[i]; }
    image.src = root.dataset.folder + "/" + index + ".png";
  }
  root.querySelectorAll(".static-toggles").forEach(function (group) {
    group.querySelectorAll("button").forEach(function (button) {
      button.addEventListener("click", function () {
        group.querySelectorAll("button").forEach(function (other) {
          other.classList.toggle("active", other === button);
          other.setAttribute("aria-pressed", String(other === button));
        });
        read();
      });
    });
  });
  root.querySelectorAll("input").forEach(function (input) {
    input.addEventListener("input", read);
  });
});
"""

STYLE = """<style>
.static-explorer-controls { display: flex; flex-wrap: wrap; gap: .4rem 1.2rem;
  align-items: center; margin: .3rem 0 .5rem; font-size: 14px }
.static-label { margin-right: .4rem }
.static-toggle { border: 1px solid #bbb; background: #eee; padding: .25rem .7rem;
  cursor: pointer; font: inherit }
.static-toggle.active { background: #bbb; box-shadow: inset 0 1px 3px #888 }
.static-slider output { margin-left: .4rem; min-width: 2rem; display: inline-block }
.static-explorer-figure { max-width: 100%; height: auto }
</style>"""


def page_snippet(explorer: Explorer, folder: str) -> str:
    """The explorer's HTML with its style and script (the script file sits in static/)."""
    return (STYLE + controls_html(explorer, folder)
            + f'<script src="static/{SCRIPT}"></script>')


def write_script(static: Path) -> None:
    (static / SCRIPT).write_text(SCRIPT_SOURCE)
