"""Heatmaps of masks, scores and attention weights, in one visual language.

* A **blocked** cell (True in a bool mask, ``-inf`` in scores, a PAD position) is always
  drawn the same way: light grey with dark diagonal hatching. The hatch, not a colour,
  carries the meaning, so it reads in greyscale and for colour-blind viewers.
* Values use ``viridis`` (perceptually uniform, colour-blind safe). Attention weights
  always span 0..1 so colours compare across figures.
* ``NaN`` cells are black with a white "NaN" label: a bug is never hidden.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch, Rectangle

from course_lib import _style

__all__ = [
    "BLOCKED_STYLE",
    "use_course_style",
    "classroom",
    "points",
    "fit_titles",
    "heatmap",
    "plot_mask",
    "plot_attention",
    "plot_padded_batch",
    "plot_grid",
]

CMAP = "viridis"
BLOCKED_STYLE = {"facecolor": "#d9d9d9", "edgecolor": "#404040", "hatch": "///", "linewidth": 0}
NAN_COLOR = "black"
ALLOWED_COLOR = "#ffffff"


CLASSROOM_ENV = "COURSE_CLASSROOM"
# Text sizes in points; every text the course draws is relative to "font.size" ("small",
# "large", ...), so one number scales a whole figure.
FONT_SIZE = {False: 10.0, True: 14.0}


def use_course_style(classroom: bool | None = None) -> None:
    """Course-wide matplotlib defaults; in a notebook, PNGs without the 'Software' chunk.

    Dropping the chunk (which names the matplotlib version) keeps stored notebook
    outputs byte-identical across re-executions.

    Args:
        classroom: larger text in every figure, exercise verdict and doctor report, for a
            projector. ``None`` (the default) reads the environment variable
            ``COURSE_CLASSROOM`` ("1" on, "0" or unset off), so ``COURSE_CLASSROOM=1 make lab``
            switches every lesson at once.
    """
    if classroom is None:
        setting = os.environ.get(CLASSROOM_ENV, "0").strip()
        if setting not in ("", "0", "1"):
            raise ValueError(f"{CLASSROOM_ENV}: expected 1 (classroom style) or 0, got {setting!r}")
        classroom = setting == "1"
    if not isinstance(classroom, bool):
        raise ValueError(f"classroom: expected True, False or None, got {classroom!r}")
    _style.classroom = classroom
    plt.rcParams.update(
        {
            "figure.dpi": 80,
            "figure.figsize": (5, 4),
            "font.size": FONT_SIZE[classroom],
            "axes.titlesize": "large",
            "legend.fontsize": "small",
            "figure.titlesize": "large",
            "hatch.linewidth": 0.8,
            "image.cmap": CMAP,
        }
    )
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the course environment
        return
    shell = get_ipython()
    if shell is not None:
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png", bbox_inches="tight", metadata={"Software": None})


def classroom() -> bool:
    """Whether :func:`use_course_style` last switched the classroom style on."""
    return _style.classroom


def points(size: str) -> float:
    """A relative text size ("small", "large", ...) in points under the current style."""
    return FontProperties(size=size).get_size_in_points()


TITLE_ROOM = 0.85  # of its column of the figure, the width an axes title may take


def fit_titles(fig: Figure) -> Figure:
    """Wrap every axes title to its column of the figure, and the figure's title to the figure.

    Titles are written on one line per idea; whether a line fits depends on the text size
    (the classroom style is larger), so the lines are wrapped here, for the current style.
    """
    renderer = fig.canvas.get_renderer()
    width = fig.bbox.width
    texts = [(fig._suptitle, TITLE_ROOM * width)] if fig._suptitle is not None else []
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is None:
            continue
        grid = spec.get_gridspec()
        ratios = grid.get_width_ratios() or [1] * grid.ncols
        start, stop = spec.colspan.start, spec.colspan.stop
        share = sum(ratios[start:stop]) / sum(ratios)
        centre = (sum(ratios[:start]) + sum(ratios[start:stop]) / 2) / sum(ratios)
        # The column also holds the neighbours' tick labels and axis labels, and a centred
        # title must not pass the figure's edges.
        room = min(TITLE_ROOM * share, 2 * centre * 0.95, 2 * (1 - centre) * 0.95) * width
        texts += [(ax.title, room), (ax._left_title, TITLE_ROOM * share * width),
                  (ax._right_title, TITLE_ROOM * share * width)]
    added = {"suptitle": 0.0, "axes": 0.0}  # inches of extra title lines
    for text, room in texts:
        if not text.get_text():
            continue
        before = text.get_text()
        text.set_text(_wrap_lines(before, text.get_window_extent(renderer).width, room))
        extra = (text.get_text().count("\n") - before.count("\n")) * 1.2 * text.get_size() / 72
        kind = "suptitle" if text is fig._suptitle else "axes"
        added[kind] = max(added[kind], extra)
    if any(added.values()):  # taller by the added lines: the axes keep their height
        fig_width, fig_height = fig.get_size_inches()
        fig.set_size_inches(fig_width, fig_height + sum(added.values()))
    return fig


def _wrap_lines(text: str, drawn_width: float, room: float) -> str:
    """``text`` with each line too wide for ``room`` wrapped into balanced lines."""
    lines = text.split("\n")
    per_char = drawn_width / max(len(line) for line in lines)
    wrapped = []
    for line in lines:
        parts = math.ceil(len(line) * per_char / room)
        if parts <= 1:
            wrapped.append(line)
            continue
        chars = max(12, math.ceil(len(line) / parts) + 2)
        wrapped += textwrap.wrap(line, chars) or [""]
    return "\n".join(wrapped)


def _as_2d(name: str, values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu")
        values = values.float() if values.dtype != torch.bool else values
        values = values.numpy()
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D matrix (pick one batch element and head, e.g. "
            f"weights[0, 0]), got shape {list(array.shape)}"
        )
    return array


def _check_labels(name: str, labels: Sequence[str] | None, size: int) -> list[str] | None:
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if len(labels) != size:
        raise ValueError(f"{name}: expected {size} labels, got {len(labels)}: {labels}")
    return labels


_LABEL_ON_HATCH = {"boxstyle": "round,pad=0.12", "facecolor": "white", "edgecolor": "none",
                   "alpha": 0.9}


# Space between an axes and its title that the "blocked" legend fills, in legend font sizes.
LEGEND_PAD = 2.3


def _add_cell(ax: Axes, patch: Rectangle) -> None:
    """Add a cell's patch without ``add_patch``'s data-limit update (the image already sets
    the limits): that update was some 40% of building a heatmap with many blocked cells."""
    ax.add_artist(patch)


def _blocked_legend(ax: Axes, label: str = "blocked") -> None:
    ax.legend(
        handles=[Patch(**BLOCKED_STYLE, label=label)],
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        frameon=False,
        fontsize="small",
        handlelength=1.5,
        borderpad=0.2,
        borderaxespad=0.15,
    )


def heatmap(
    values,
    *,
    blocked=None,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str = "",
    ax: Axes | None = None,
    annotate: bool = True,
    fmt: str = "{:.2f}",
    vmin: float | None = None,
    vmax: float | None = None,
    xlabel: str = "key",
    ylabel: str = "query",
    colorbar: bool = True,
) -> Axes:
    """Draw a matrix with course conventions.

    Args:
        values: 2-D tensor or array [rows, cols]. ``-inf`` cells are drawn as blocked.
        blocked: optional bool [rows, cols], True = blocked (drawn hatched, no value shown).
        row_labels, col_labels: token labels for the rows (queries) and columns (keys).
        title: say what is masked, e.g. "decoder self-attention, tgt_mask on".

    Returns:
        The matplotlib Axes.
    """
    array = _as_2d("values", values).astype(float)
    rows, cols = array.shape
    hidden = np.isneginf(array)
    if blocked is not None:
        blocked_array = _as_2d("blocked", blocked)
        if blocked_array.shape != array.shape or blocked_array.dtype != bool:
            raise ValueError(
                f"blocked: expected a bool matrix of shape {list(array.shape)}, got "
                f"{blocked_array.dtype} {list(blocked_array.shape)}"
            )
        hidden = hidden | blocked_array
    nan = np.isnan(array)
    row_labels = _check_labels("row_labels", row_labels, rows)
    col_labels = _check_labels("col_labels", col_labels, cols)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * cols + 2.2, 0.45 * rows + 1.6))

    shown = np.ma.masked_array(array, mask=hidden | nan | ~np.isfinite(array))
    image = ax.imshow(shown, cmap=CMAP, vmin=vmin, vmax=vmax, aspect="auto")
    for r, c in zip(*np.nonzero(hidden), strict=True):
        _add_cell(ax, Rectangle((c - 0.5, r - 0.5), 1, 1, **BLOCKED_STYLE))
    for r, c in zip(*np.nonzero(nan), strict=True):
        _add_cell(ax, Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=NAN_COLOR, linewidth=0))
        ax.text(c, r, "NaN", ha="center", va="center", color="white", fontsize="small")
    if annotate:
        norm = image.norm
        for r in range(rows):
            for c in range(cols):
                if hidden[r, c] or nan[r, c]:
                    continue
                value = array[r, c]
                dark = np.isfinite(value) and norm(value) < 0.6
                ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize="small",
                        color="white" if dark else "black")
    ax.set_xticks(range(cols), col_labels if col_labels else range(cols))
    ax.set_yticks(range(rows), row_labels if row_labels else range(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, pad=LEGEND_PAD * points("small") if hidden.any() else 6)
    if hidden.any():
        _blocked_legend(ax)
    if colorbar and not shown.mask.all():
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_mask(
    mask,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str = "",
    ax: Axes | None = None,
    xlabel: str = "key",
    ylabel: str = "query",
) -> Axes:
    """Draw a mask: allowed cells white (labelled 0, what is added to the score), blocked hatched.

    Args:
        mask: BoolTensor[rows, cols] (True = blocked) or an additive float mask (0 / -inf).
    """
    array = _as_2d("mask", mask)
    blocked = array if array.dtype == bool else np.isneginf(array)
    cells = [["" if cell else "0" for cell in row] for row in blocked]
    return plot_grid(cells, blocked, row_labels=row_labels, col_labels=col_labels, title=title,
                     ax=ax, xlabel=xlabel, ylabel=ylabel)


def plot_grid(
    cells: Sequence[Sequence[str]],
    blocked,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str = "",
    ax: Axes | None = None,
    xlabel: str = "key",
    ylabel: str = "query",
    legend_label: str = "blocked",
) -> Axes:
    """A grid of text cells on white, blocked cells hatched: masks, padded batches, tokens.

    Args:
        cells: [rows][cols] strings to write in the cells ("" for none).
        blocked: bool [rows, cols], True = drawn in the blocked style (text kept, in bold).
    """
    blocked = _as_2d("blocked", blocked).astype(bool)
    rows, cols = blocked.shape
    if len(cells) != rows or any(len(row) != cols for row in cells):
        raise ValueError(f"cells: expected {rows} rows of {cols} strings like blocked")
    row_labels = _check_labels("row_labels", row_labels, rows)
    col_labels = _check_labels("col_labels", col_labels, cols)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * cols + 1.6, 0.45 * rows + 1.4))
    ax.imshow(np.ones((rows, cols)), cmap="gray", vmin=0, vmax=1, aspect="auto")
    for r in range(rows):
        for c in range(cols):
            if blocked[r, c]:
                _add_cell(ax, Rectangle((c - 0.5, r - 0.5), 1, 1, **BLOCKED_STYLE))
            if cells[r][c]:
                ax.text(c, r, cells[r][c], ha="center", va="center", fontsize="small",
                        weight="bold" if blocked[r, c] else "normal",
                        bbox=_LABEL_ON_HATCH if blocked[r, c] else None)
    # Cell borders as two line collections: far cheaper to draw than minor ticks' grid lines.
    ax.vlines(np.arange(-0.5, cols), -0.5, rows - 0.5, colors="#b0b0b0", linewidth=0.5,
              zorder=1.5)
    ax.hlines(np.arange(-0.5, rows), -0.5, cols - 0.5, colors="#b0b0b0", linewidth=0.5,
              zorder=1.5)
    ax.set_xticks(range(cols), col_labels if col_labels else range(cols))
    ax.set_yticks(range(rows), row_labels if row_labels else range(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, pad=LEGEND_PAD * points("small"))
    _blocked_legend(ax, legend_label)
    return ax


def plot_attention(
    weights,
    *,
    blocked=None,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str = "",
    ax: Axes | None = None,
    annotate: bool = True,
) -> Axes:
    """Attention weights [Lq, Lk] on a fixed 0..1 colour scale; ``blocked`` cells hatched."""
    return heatmap(weights, blocked=blocked, row_labels=row_labels, col_labels=col_labels,
                   title=title, ax=ax, annotate=annotate, vmin=0.0, vmax=1.0)


def plot_padded_batch(
    ids: torch.Tensor,
    pad_id: int,
    *,
    itos: Sequence[str] | None = None,
    title: str = "",
    ax: Axes | None = None,
) -> Axes:
    """A padded batch [B, L] as a grid of tokens; PAD cells drawn in the blocked style.

    Args:
        ids: LongTensor[B, L] of token ids.
        pad_id: the padding id.
        itos: optional id -> token string table used to label the cells.
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise ValueError(f"ids: expected a 2-D LongTensor [B, L], got {ids!r:.80}")
    cells = [[itos[int(t)] if itos is not None else str(int(t)) for t in row] for row in ids]
    return plot_grid(cells, (ids == pad_id).cpu(), title=title, ax=ax, xlabel="position",
                     ylabel="sequence in batch", legend_label="PAD (masked out)")
