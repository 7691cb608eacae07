"""Lesson 01 explorer: how much of a padded batch is PAD, in random order vs bucketed.

Each row is one sentence, grouped into its batch; a batch is padded to its longest
sentence, so the hatched cells (drawn in the course's blocked style) are PAD. The
title gives the fraction of all padded cells that are PAD.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from course_lib import viz
from course_lib.data import bucket_batches, pad_fraction, random_batches, sample_lengths
from course_lib.viz import BLOCKED_STYLE
from course_lib.widgets.core import Control, Explorer

__all__ = ["ORDERS", "draw_padded_batches", "padding_explorer"]

ORDERS = {"random": random_batches, "bucketed": bucket_batches}
MAX_LEN = 30
TOKEN_COLOR = "#3b528b"  # a dark viridis blue: a real token


def draw_padded_batches(
    order: str = "random", batch_size: int = 4, num_sentences: int = 24, seed: int = 0
) -> Figure:
    """Draw ``num_sentences`` sentences (lengths from ``sample_lengths``) batched by ``order``.

    Args:
        order: "random" (shuffled loader) or "bucketed" (``bucket_batches``).
        batch_size: sentences per batch.
        num_sentences: how many sentences, with lengths in 1..30.
        seed: the seed of both the lengths and the shuffling.

    Returns:
        A Figure: rows are sentences grouped by batch, columns are positions; blue = real
        token, hatched = PAD, white = outside the batch's tensor.
    """
    if order not in ORDERS:
        raise ValueError(f"order: expected one of {list(ORDERS)}, got {order!r}")
    lengths = sample_lengths(num_sentences, max_len=MAX_LEN, seed=seed)
    batches = ORDERS[order](lengths, batch_size, seed=seed)
    batch_lengths = [[lengths[i] for i in batch] for batch in batches]
    waste = pad_fraction(batch_lengths)
    width = max(lengths)

    cells = np.zeros((num_sentences, width))
    fig, ax = plt.subplots(figsize=(0.2 * width + 4.4, 0.14 * num_sentences + 1.7),
                           layout="constrained")
    row = 0
    for batch_index, batch in enumerate(batch_lengths):
        longest = max(batch)
        batch_pads = len(batch) * longest - sum(batch)
        for length in batch:
            cells[row, :length] = 1
            if length < longest:
                ax.add_patch(Rectangle((length - 0.5, row - 0.5), longest - length, 1,
                                       **BLOCKED_STYLE))
            row += 1
        ax.axhline(row - 0.5, color="black", linewidth=1.2)
        ax.text(width - 0.2, row - 0.5 - len(batch) / 2,
                f"batch {batch_index}: {batch_pads / (len(batch) * longest):.0%} PAD",
                ha="left", va="center", fontsize="small")
    ax.imshow(cells, cmap=ListedColormap(["white", TOKEN_COLOR]), vmin=0, vmax=1,
              aspect="auto", interpolation="nearest")
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(num_sentences - 0.5, -0.5)
    ax.set_xticks(range(0, width, 5))
    ax.set_yticks(range(0, num_sentences, batch_size))
    ax.set_yticks(np.arange(-0.5, num_sentences), minor=True)
    ax.grid(which="minor", axis="y", color="white", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("position in the padded batch")
    ax.set_ylabel("sentence (grouped by batch)")
    spans = [max(batch) - min(batch) + 1 for batch in batch_lengths]
    ax.set_title(f"{order} order, batch size {batch_size}: {waste:.1%} of the cells are PAD\n"
                 f"{num_sentences} sentences of lengths 1..{MAX_LEN}; a batch's lengths span "
                 f"{sum(spans) / len(spans):.0f} values on average",
                 pad=viz.LEGEND_PAD * viz.points("small"))
    ax.legend(handles=[Patch(facecolor=TOKEN_COLOR, label="real token"),
                       Patch(**BLOCKED_STYLE, label="PAD (masked out)"),
                       Patch(facecolor="white", edgecolor="#b0b0b0",
                             label="beyond this batch's longest sentence")],
              loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, frameon=False, fontsize="small",
              borderpad=0.2, borderaxespad=0.15)
    return fig


def padding_explorer() -> Explorer:
    """Padding explorer: batch the same sentences in random or bucketed order; see the waste."""
    return Explorer(
        draw_padded_batches,
        {
            "order": Control("order", tuple(ORDERS)),
            "batch_size": Control("batch size", (4, 8, 16)),
            "num_sentences": Control("sentences", (24, 48)),
            "seed": Control("seed", (0, 1, 2)),
        },
    )
