"""Regenerate the diagrams in images/ (run by `make images`).

Byte-stable output: the Agg canvas, fixed figure sizes and dpi, matplotlib's default
style, and no 'Software' PNG chunk (it names the matplotlib version). Anything blocked
or PAD is drawn with course_lib.viz.BLOCKED_STYLE, as in every figure of the course.

    .venv/bin/python images/make_images.py            # writes into images/
    .venv/bin/python images/make_images.py OUT_DIR     # writes elsewhere (tests do this)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch, Rectangle

from course_lib.viz import BLOCKED_STYLE
from course_lib.widgets.lesson00 import CONVENTIONS, plot_convention

DPI = 100
STYLE = {"font.size": 10, "hatch.linewidth": 0.8, "font.family": "DejaVu Sans"}
IMAGES = Path(__file__).resolve().parent
GRID_COLOR = "#808080"
ACCENT = "#1f4e79"


def _canvas(width: float, height: float, xlim: float, ylim: float, ymin: float = 0.0):
    """A figure with one invisible axes in data units (x right, y up)."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, xlim)
    ax.set_ylim(ymin, ylim)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return fig, ax


def _grid(ax, x0: float, y_top: float, texts: Sequence[Sequence[str]],
          blocked: Sequence[Sequence[bool]], *, cell: float = 0.5, fontsize: int = 9) -> None:
    """Cells from (x0, y_top) rightwards and downwards; blocked cells hatched."""
    for r, (row_texts, row_blocked) in enumerate(zip(texts, blocked, strict=True)):
        for c, (text, is_blocked) in enumerate(zip(row_texts, row_blocked, strict=True)):
            x, y = x0 + c * cell, y_top - (r + 1) * cell
            style = BLOCKED_STYLE if is_blocked else {"facecolor": "white", "linewidth": 0}
            ax.add_patch(Rectangle((x, y), cell, cell, **style))
            ax.add_patch(Rectangle((x, y), cell, cell, fill=False, edgecolor=GRID_COLOR,
                                   linewidth=0.6))
            if text:
                ax.text(x + cell / 2, y + cell / 2, text, ha="center", va="center",
                        fontsize=fontsize, weight="bold" if is_blocked else "normal")


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], label: str = "") -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=16,
                                 color=ACCENT, linewidth=1.5))
    if label:
        ax.text((start[0] + end[0]) / 2, start[1] + 0.18, label, ha="center", va="bottom",
                fontsize=9, color=ACCENT, family="DejaVu Sans Mono")


def _box(ax, x: float, y: float, width: float, height: float) -> None:
    ax.add_patch(FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0.08",
                                facecolor="#f4f7fb", edgecolor=ACCENT, linewidth=1.0))


def _legend(fig, label: str, loc: str = "lower right") -> None:
    fig.legend(handles=[Patch(**BLOCKED_STYLE, label=label)], loc=loc,
               frameon=False, fontsize=10, handlelength=2.0)


def draw_pad_three_places() -> Figure:
    """The three places PAD must be handled: embedding, attention keys, loss."""
    fig, ax = _canvas(13.0, 3.9, 26.0, 8.4, ymin=0.6)
    tokens = [["the", "cat", "sat", "on", "it"], ["a", "dog", "ran", "PAD", "PAD"]]
    is_pad = [[t == "PAD" for t in row] for row in tokens]
    ax.text(2.4, 5.3, "a padded batch\nids [B, L] = [2, 5]", ha="center", va="bottom",
            fontsize=11, weight="bold")
    _grid(ax, 0.65, 5.0, tokens, is_pad, cell=0.7, fontsize=8)
    for b in range(2):
        ax.text(0.55, 5.0 - (b + 0.5) * 0.7, f"b={b}", ha="right", va="center", fontsize=8)
    _arrow(ax, (4.25, 4.3), (4.85, 4.3))

    panels = [
        (5.0, "1  EMBEDDING", "nn.Embedding(V, E, padding_idx=PAD)",
         "the PAD row is all zeros\nand gets zero gradient"),
        (12.0, "2  ATTENTION KEYS",
         "src_key_padding_mask\ntgt_key_padding_mask\nmemory_key_padding_mask",
         "BoolTensor[B, S], True at PAD:\nno query attends to a PAD key"),
        (19.0, "3  LOSS", "CrossEntropyLoss(ignore_index=PAD)\nor a masked mean",
         "PAD targets add nothing to\nthe loss or to its denominator"),
    ]
    for x, title, api, effect in panels:
        _box(ax, x, 0.8, 6.4, 7.2)
        ax.text(x + 3.2, 7.55, title, ha="center", va="center", fontsize=12, weight="bold",
                color=ACCENT)
        ax.text(x + 3.2, 7.05, api, ha="center", va="top", fontsize=9,
                family="DejaVu Sans Mono")
        ax.text(x + 3.2, 1.05, effect, ha="center", va="bottom", fontsize=10)
    _arrow(ax, (11.5, 4.3), (11.9, 4.3))
    _arrow(ax, (18.5, 4.3), (18.9, 4.3))

    # 1: an embedding table whose PAD row is zero.
    rows = [("PAD", ["0", "0", "0", "0"]), ("the", ["0.3", "-1.2", "0.8", "0.1"]),
            ("cat", ["-0.5", "0.9", "0.2", "-0.7"]), ("dog", ["1.1", "0.4", "-0.3", "0.6"])]
    ax.text(8.5, 5.6, "weight [V, E]", ha="center", va="bottom", fontsize=9)
    _grid(ax, 7.3, 5.5, [r[1] for r in rows], [[name == "PAD"] * 4 for name, _ in rows],
          cell=0.6, fontsize=8)
    for i, (name, _) in enumerate(rows):
        ax.text(7.2, 5.5 - (i + 0.5) * 0.6, name, ha="right", va="center", fontsize=9)

    # 2: attention of sequence b=1 over its keys; the PAD key columns are blocked.
    x0, top, cell = 14.3, 5.0, 0.5
    _grid(ax, x0, top, [[""] * 5 for _ in range(5)], [is_pad[1]] * 5, cell=cell)
    for i, token in enumerate(tokens[1]):
        ax.text(x0 + (i + 0.5) * cell, top + 0.08, token, ha="center", va="bottom", fontsize=7)
        ax.text(x0 - 0.1, top - (i + 0.5) * cell, token, ha="right", va="center", fontsize=7)
    ax.text(x0 + 2.5 * cell, top + 0.45, "keys (b=1)", ha="center", va="bottom", fontsize=9)
    ax.text(x0 - 0.85, top - 2.5 * cell, "queries", ha="center", va="center", fontsize=9,
            rotation=90)

    # 3: per-token losses of sequence b=1; PAD targets are ignored (loss 0, not counted).
    x0, top, cell = 20.7, 4.6, 0.6
    ax.text(x0 + 2.5 * cell, top + 0.1, "per-token loss, b=1", ha="center", va="bottom",
            fontsize=9)
    _grid(ax, x0, top, [["0.4", "1.3", "0.7", "0", "0"]], [is_pad[1]], cell=cell)
    for i, token in enumerate(["dog", "ran", "EOS", "PAD", "PAD"]):
        ax.text(x0 + (i + 0.5) * cell, top - cell - 0.1, token, ha="center", va="top",
                fontsize=8)
    ax.text(x0 - 0.1, top - cell - 0.22, "target", ha="right", va="center", fontsize=8)
    ax.text(x0 + 2.5 * cell, 2.9, "mean = (0.4 + 1.3 + 0.7) / 3", ha="center", va="top",
            fontsize=9)
    _legend(fig, "PAD / blocked", loc="lower left")
    return fig


def draw_broadcast_pad_mask() -> Figure:
    """[B, S] -> [B, 1, 1, S] -> broadcast over heads and query rows to [B, H, L, S]."""
    fig, ax = _canvas(13.0, 3.7, 26.0, 9.2, ymin=1.8)
    pads = [[False, False, False, True], [False, False, True, True]]  # B=2, S=4
    heads, queries, cell = 2, 3, 0.5
    block_tops = (7.4, 5.1)  # top edge of the b=0 and b=1 rows of the last two stages

    ax.text(2.2, 8.5, "key_padding_mask\n[B, S] = [2, 4]", ha="center", va="center",
            fontsize=11, weight="bold")
    _grid(ax, 1.2, 6.0, [["F", "F", "F", "T"], ["F", "F", "T", "T"]], pads, cell=cell)
    for b in range(2):
        ax.text(1.1, 6.0 - (b + 0.5) * cell, f"b={b}", ha="right", va="center", fontsize=9)
    ax.text(2.2, 4.8, "T = True = PAD", ha="center", va="top", fontsize=9)
    _arrow(ax, (3.6, 5.5), (7.4, 5.5), "[:, None, None, :]")

    ax.text(9.2, 8.5, "[B, 1, 1, S] = [2, 1, 1, 4]", ha="center", va="center",
            fontsize=11, weight="bold")
    for b, top in enumerate(block_tops):
        middle = top - queries * cell / 2
        ax.text(9.2, middle + cell / 2 + 0.1, f"b={b}: [1, 1, 4]", ha="center", va="bottom",
                fontsize=9)
        _grid(ax, 8.2, middle + cell / 2, [[""] * 4], [pads[b]], cell=cell)
    ax.text(9.2, 3.0, "one row per sequence;\nthe head and query dims have size 1",
            ha="center", va="top", fontsize=9)
    _arrow(ax, (10.9, 5.5), (14.2, 5.5), "broadcast")

    ax.text(18.7, 8.5, f"[B, H, L, S] = [2, {heads}, {queries}, 4]", ha="center", va="center",
            fontsize=11, weight="bold")
    for h in range(heads):
        x0 = 16.0 + h * 3.0
        ax.text(x0 + 2 * cell, block_tops[0] + 0.1, f"head {h}", ha="center", va="bottom",
                fontsize=9)
        for b, top in enumerate(block_tops):
            _grid(ax, x0, top, [[""] * 4] * queries, [pads[b]] * queries, cell=cell)
            if h == 0:
                ax.text(x0 - 0.2, top - queries * cell / 2, f"b={b}", ha="right",
                        va="center", fontsize=9)
    ax.text(18.7, 3.0, f"each grid: {queries} query rows × 4 keys. Every head and every\n"
            "query row of sequence b blocks the same PAD keys", ha="center", va="top",
            fontsize=9)
    _legend(fig, "blocked (True)")
    return fig


def draw_mask_conventions() -> Figure:
    """The same padding mask in each convention, side by side."""
    fig = Figure(figsize=(15.0, 3.3), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(CONVENTIONS))
    for ax, convention in zip(axes, CONVENTIONS, strict=True):
        plot_convention("padding", convention, ax=ax)
    fig.suptitle("One padding mask (sequence b=1 has 2 PAD tokens) written in each convention",
                 fontsize=12, weight="bold")
    fig.subplots_adjust(left=0.04, right=0.99, top=0.74, bottom=0.2, wspace=0.3)
    _legend(fig, "blocked (masked out)")
    return fig


DIAGRAMS: dict[str, Callable[[], Figure]] = {
    "pad_three_places.png": draw_pad_three_places,
    "broadcast_pad_mask.png": draw_broadcast_pad_mask,
    "mask_conventions.png": draw_mask_conventions,
}


def main(out_dir: Path = IMAGES) -> list[Path]:
    """Write every diagram into ``out_dir``; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):
        for name, draw in DIAGRAMS.items():
            path = out_dir / name
            draw().savefig(path, dpi=DPI, metadata={"Software": None})
            written.append(path)
    return written


if __name__ == "__main__":
    for written_path in main(Path(sys.argv[1]) if len(sys.argv) > 1 else IMAGES):
        print(written_path)
