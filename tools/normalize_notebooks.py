"""Make executed notebooks byte-stable, so `make execute` changes only what really changed.

* Widget model ids: ipywidgets names every model with a random UUID. They are renamed, in a
  structural order (depth-first from each displayed widget, in cell order, through the
  `IPY_MODEL_` references of each model's state), to a hash of the notebook name and position.
* Streams: a print that outlasts the kernel's flush interval is stored as several chunks,
  differently on each run. Consecutive outputs of the same stream are merged.
* Slides: a markdown cell is split before each ``#`` / ``##`` heading after its first line,
  and each cell's ``metadata.slideshow.slide_type`` is set from the notebook's structure
  and outputs (tools/slides.py), so the slide boundaries follow every change.

Usage: python -m tools.normalize_notebooks notebooks/*.ipynb
"""

import hashlib
import json
import re
import sys
from pathlib import Path

import nbformat

from tools import slides

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MODEL_ID = re.compile(r"[0-9a-f]{32}")


def ordered_ids(notebook: dict) -> list[str]:
    state = notebook["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    roots = [output["data"][WIDGET_VIEW]["model_id"]
             for cell in notebook["cells"] for output in cell.get("outputs", [])
             if WIDGET_VIEW in output.get("data", {})]
    order: list[str] = []

    def visit(model_id: str) -> None:
        if model_id in order or model_id not in state:
            return
        order.append(model_id)
        for child in MODEL_ID.findall(json.dumps(state[model_id], sort_keys=True)):
            visit(child)

    for root in roots:
        visit(root)
    rest = sorted((m for m in state if m not in order),
                  key=lambda m: MODEL_ID.sub("", json.dumps(state[m], sort_keys=True)))
    return order + rest


def coalesce_streams(notebook: dict) -> None:
    for cell in notebook["cells"]:
        merged: list[dict] = []
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (output["output_type"] == "stream" and previous is not None
                    and previous["output_type"] == "stream" and previous["name"] == output["name"]):
                text = "".join(previous["text"]) + "".join(output["text"])
                previous["text"] = text.splitlines(keepends=True)
            else:
                merged.append(output)
        if "outputs" in cell:
            cell["outputs"] = merged


def normalize(path: Path) -> None:
    text = path.read_text()
    renamed = {model_id: hashlib.sha256(f"{path.stem}:{index}".encode()).hexdigest()[:32]
               for index, model_id in enumerate(ordered_ids(json.loads(text)))}
    notebook = json.loads(MODEL_ID.sub(lambda m: renamed.get(m.group(0), m.group(0)), text))
    coalesce_streams(notebook)
    slides.split_at_headings(notebook)
    types = slides.slide_types(nbformat.reads(json.dumps(notebook), as_version=4))
    for cell, kind in zip(notebook["cells"], types, strict=True):
        slides.store(cell["metadata"], kind)
    # Written the way nbformat writes, keys sorted, so the model order is stable too.
    path.write_text(json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    for name in sys.argv[1:]:
        normalize(Path(name))
