"""Heatmaps of masks, scores and attention weights, in one visual language.

* A **blocked** cell (True in a bool mask, ``-inf`` in scores, a PAD position) is always
  drawn the same way: light grey with dark diagonal hatching. The hatch, not a colour,
  carries the meaning, so it reads in greyscale and for colour-blind viewers.
* Values use ``viridis`` (perceptually uniform, colour-blind safe). Attention weights
  always span 0..1 so colours compare across figures.
* ``NaN`` cells are black with a white "NaN" label: a bug is never hidden.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Patch, Rectangle

__all__ = [
    "BLOCKED_STYLE",
    "use_course_style",
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


def use_course_style() -> None:
    """Course-wide matplotlib defaults; in a notebook, PNGs without the 'Software' chunk.

    Dropping the chunk (which names the matplotlib version) keeps stored notebook
    outputs byte-identical across re-executions.
    """
    plt.rcParams.update(
        {
            "figure.dpi": 80,
            "figure.figsize": (5, 4),
            "font.size": 10,
            "axes.titlesize": 11,
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


def _blocked_legend(ax: Axes, label: str = "blocked") -> None:
    ax.legend(
        handles=[Patch(**BLOCKED_STYLE, label=label)],
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        frameon=False,
        fontsize=8,
        handlelength=1.5,
        borderaxespad=0.1,
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
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, **BLOCKED_STYLE))
    for r, c in zip(*np.nonzero(nan), strict=True):
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=NAN_COLOR, linewidth=0))
        ax.text(c, r, "NaN", ha="center", va="center", color="white", fontsize=8)
    if annotate:
        norm = image.norm
        for r in range(rows):
            for c in range(cols):
                if hidden[r, c] or nan[r, c]:
                    continue
                value = array[r, c]
                dark = np.isfinite(value) and norm(value) < 0.6
                ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    ax.set_xticks(range(cols), col_labels if col_labels else range(cols))
    ax.set_yticks(range(rows), row_labels if row_labels else range(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, pad=16 if hidden.any() else 6)
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
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, **BLOCKED_STYLE))
            if cells[r][c]:
                ax.text(c, r, cells[r][c], ha="center", va="center", fontsize=8,
                        weight="bold" if blocked[r, c] else "normal",
                        bbox=_LABEL_ON_HATCH if blocked[r, c] else None)
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="#b0b0b0", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xticks(range(cols), col_labels if col_labels else range(cols))
    ax.set_yticks(range(rows), row_labels if row_labels else range(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, pad=16)
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
