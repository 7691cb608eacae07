"""Lesson 03 explorer: mask PAD key columns, PAD query rows, or both, and watch every row.

One self-attention matrix of a sentence right-padded to ``LENGTH`` tokens. Softmax works row
by row, so masking a PAD *query row* cannot change a real row; it only turns the PAD row
into a row with no allowed key, whose weights then depend on the fill value (NaN with
``-inf``, uniform with a finite fill, zeros with a safe softmax).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_lib import viz
from course_lib._checks import check_bool_mask, check_tensor
from course_lib.attention import masked_softmax
from course_lib.widgets.core import Control, Explorer

__all__ = [
    "FILLS",
    "LENGTH",
    "REAL_LENGTHS",
    "example_scores",
    "self_attention_mask",
    "masked_weights",
    "draw_row_masking",
    "row_masking_explorer",
]

WORDS = ("cats", "purr", "very", "loudly", "at", "night")
LENGTH = len(WORDS)
REAL_LENGTHS = (3, 4, 5, 6)
PAD_TOKEN = "PAD"
FULL_ROW_STYLE = {"fill": False, "edgecolor": "#d62728", "linestyle": "--", "linewidth": 2}

# fill name -> (value given to masked_fill, its code); None: course_lib's masked_softmax
FILLS = {
    "-inf": (-math.inf, 'float("-inf")'),
    "-1e9": (-1e9, "-1e9"),
    "finfo.min": (torch.finfo(torch.float32).min, "torch.finfo(scores.dtype).min"),
    "masked_softmax": (None, ""),
}


def example_scores() -> torch.Tensor:
    """The explorer's attention scores: FloatTensor[LENGTH, LENGTH] (query x key), seeded."""
    return 1.5 * torch.randn(LENGTH, LENGTH, generator=torch.Generator().manual_seed(3))


def self_attention_mask(
    key_padding_mask: torch.Tensor, *, mask_keys: bool, mask_queries: bool
) -> torch.Tensor:
    """Self-attention mask from a padding mask: PAD key columns, PAD query rows, or both.

    Args:
        key_padding_mask: BoolTensor[..., L], True at PAD (e.g. [L] or [B, L]).
        mask_keys: block the PAD columns (every query ignores the PAD keys).
        mask_queries: block the PAD rows (a PAD query may attend to nothing).

    Returns:
        BoolTensor[..., L, L], True = blocked; all False when neither is asked for.
    """
    check_bool_mask("key_padding_mask", key_padding_mask)
    if key_padding_mask.dim() == 0:
        raise ValueError("key_padding_mask: expected at least 1 dimension [L], got a scalar")
    columns = key_padding_mask[..., None, :]  # [..., 1, L]: the keys
    rows = key_padding_mask[..., :, None]  # [..., L, 1]: the queries
    blocked = torch.zeros_like(rows & columns)  # [..., L, L]
    if mask_keys:
        blocked = blocked | columns
    if mask_queries:
        blocked = blocked | rows
    return blocked


def masked_weights(scores: torch.Tensor, blocked: torch.Tensor, fill: str) -> torch.Tensor:
    """Softmax over the keys after blocking ``blocked`` with the fill value named ``fill``.

    Args:
        scores: FloatTensor[..., Lq, Lk] attention scores.
        blocked: BoolTensor broadcastable to ``scores``, True = blocked.
        fill: a key of :data:`FILLS`; ``"masked_softmax"`` uses course_lib's safe softmax.

    Returns:
        FloatTensor shaped like ``scores``; rows sum to 1, except rows with every key blocked
        (NaN with ``-inf``, uniform with a finite fill, zeros with ``masked_softmax``).
    """
    check_tensor("scores", scores)
    check_bool_mask("blocked", blocked)
    if fill not in FILLS:
        raise ValueError(f"fill: expected one of {list(FILLS)}, got {fill!r}")
    value = FILLS[fill][0]
    if value is None:
        return masked_softmax(scores, blocked)
    return scores.masked_fill(blocked, value).softmax(dim=-1)


def _row_sum_axis(ax: Axes, weights: torch.Tensor) -> None:
    """Label each row of ``ax`` on the right with the sum of its weights."""
    sums = weights.sum(dim=-1)
    labels = ["NaN" if math.isnan(s) else f"{s:.2f}" for s in sums.tolist()]
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(range(len(labels)), labels)
    right.set_ylabel("row sum")


def _verdict(weights: torch.Tensor, reference: torch.Tensor, is_pad: torch.Tensor,
             mask_keys: bool, mask_queries: bool, fill: str) -> str:
    if not bool(is_pad.any()):
        return "no PAD token: nothing to mask, every row is a real query over real keys"
    real = ~is_pad
    if mask_keys and torch.equal(weights[real], reference[real]):
        real_text = "real rows: 0 weight on PAD keys, identical to masking keys only"
    else:
        on_pad = weights[real][:, is_pad].sum(dim=-1).max()
        real_text = f"real rows: up to {float(on_pad):.2f} of their weight on PAD keys"
    pad_rows = weights[is_pad]
    if mask_queries:
        if bool(pad_rows.isnan().all()):
            kind = "NaN"
        elif bool((pad_rows == 0).all()):
            kind = "zeros"
        else:
            kind = f"uniform 1/{LENGTH}, the average of every key"
        pad_text = f"PAD rows have no allowed key ({fill}): {kind}"
    else:
        seen = "the real keys" if mask_keys else "every key"
        pad_text = f"PAD rows: finite garbage, they attend to {seen}"
    return f"{real_text}\n{pad_text}"


def draw_row_masking(
    real_length: int = 3, mask_keys: bool = True, mask_queries: bool = False, fill: str = "-inf"
) -> Figure:
    """Scores, mask and weights of one padded sentence, side by side, with the row sums.

    Args:
        real_length: how many of the ``LENGTH`` tokens are real (the rest is PAD), 1..LENGTH.
        mask_keys: block the PAD key columns.
        mask_queries: block the PAD query rows.
        fill: a key of :data:`FILLS`.
    """
    if isinstance(real_length, bool) or not isinstance(real_length, int) or not (
            1 <= real_length <= LENGTH):
        raise ValueError(f"real_length: expected an int in 1..{LENGTH}, got {real_length!r}")
    is_pad = torch.arange(LENGTH) >= real_length  # key_padding_mask [L]
    tokens = [*WORDS[:real_length], *[PAD_TOKEN] * (LENGTH - real_length)]
    scores = example_scores()
    blocked = self_attention_mask(is_pad, mask_keys=mask_keys, mask_queries=mask_queries)
    weights = masked_weights(scores, blocked, fill)
    reference = masked_softmax(scores, is_pad[None, :])  # keys only, the convention
    full_rows = blocked.all(dim=-1)

    fig, axes = plt.subplots(1, 3, figsize=(14.5, 4.6), layout="constrained")
    shown = " + ".join(name for name, on in (("PAD keys", mask_keys), ("PAD queries",
                                                                     mask_queries)) if on)
    viz.heatmap(scores, blocked=blocked, row_labels=tokens, col_labels=tokens, ax=axes[0],
                title=f"scores, blocked cells hatched\n(masked: {shown or 'nothing'})")
    viz.plot_mask(blocked, row_labels=tokens, col_labels=tokens, ax=axes[1],
                  title=f"bool mask [L, L], True = blocked\nkeys {'on' if mask_keys else 'off'}, "
                        f"queries {'on' if mask_queries else 'off'}")
    # A row with EVERY key blocked shows its values: hatching would hide what goes wrong there.
    viz.heatmap(weights, blocked=blocked & ~full_rows[:, None], row_labels=tokens,
                col_labels=tokens, ax=axes[2], vmin=0.0, vmax=1.0, colorbar=False,
                title="attention weights, row by row\n(dashed red: no allowed key)")
    for row in np.flatnonzero(full_rows.numpy()):
        axes[2].add_patch(Rectangle((-0.5, row - 0.5), LENGTH, 1, **FULL_ROW_STYLE))
    _row_sum_axis(axes[2], weights)

    value, code = FILLS[fill]
    call = ("masked_softmax(scores, mask)" if value is None
            else f"scores.masked_fill(mask, {code}).softmax(dim=-1)")
    verdict = _verdict(weights, reference, is_pad, mask_keys, mask_queries, fill)
    fig.suptitle(f"{real_length} real tokens + {LENGTH - real_length} PAD:   {call}\n{verdict}",
                 fontsize="medium")
    return fig


def row_masking_explorer() -> Explorer:
    """Real length x key-column masking x query-row masking x fill value."""
    return Explorer(
        draw_row_masking,
        {
            "real_length": Control("real tokens", REAL_LENGTHS),
            "mask_keys": Control("mask PAD keys (columns)", (True, False)),
            "mask_queries": Control("mask PAD queries (rows)", (False, True)),
            "fill": Control("fill value", tuple(FILLS)),
        },
    )
