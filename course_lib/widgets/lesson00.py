"""Lesson 00 explorer: one mask written in each of the conventions found in the wild.

The same padding mask (or causal mask) is shown with its raw values as each API expects
them; the cells that end up blocked are hatched in the course's blocked style, whatever
value marks them in that convention.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from course_lib.masks import causal_mask, padding_mask, to_additive, to_sdpa
from course_lib.viz import BLOCKED_STYLE, plot_grid
from course_lib.widgets.core import Control, Explorer

__all__ = [
    "MASK_KINDS",
    "CONVENTIONS",
    "EXAMPLE_IDS",
    "EXAMPLE_PAD_ID",
    "mask_in_convention",
    "plot_convention",
    "draw_convention",
    "conventions_explorer",
]

MASK_KINDS = ("padding", "causal")
CONVENTIONS = {
    # name: (where a padding mask goes, where a causal mask goes, what the values mean)
    "nn.MultiheadAttention (bool)": (
        "nn.MultiheadAttention key_padding_mask", "nn.MultiheadAttention attn_mask",
        "True = BLOCKED"),
    "SDPA (bool)": ("F.scaled_dot_product_attention attn_mask",
                    "F.scaled_dot_product_attention attn_mask", "True = ALLOWED"),
    "additive float": ("float mask, ADDED to the scores", "float mask, ADDED to the scores",
                       "0 = allowed, -inf = blocked"),
    "Hugging Face": ("Hugging Face attention_mask", "Hugging Face attention_mask",
                     "1 = keep, 0 = pad"),
}
# Two sequences of lengths 5 and 3, right-padded with EXAMPLE_PAD_ID.
EXAMPLE_PAD_ID = 0
EXAMPLE_IDS = torch.tensor([[5, 7, 4, 9, 6], [8, 3, 6, 0, 0]])
CAUSAL_SIZE = 5


def _check_choice(name: str, value: str, options) -> None:
    if value not in options:
        raise ValueError(f"{name}: expected one of {list(options)}, got {value!r}")


def mask_in_convention(mask_kind: str, convention: str) -> torch.Tensor | None:
    """The example mask of ``mask_kind`` written in ``convention``.

    Args:
        mask_kind: "padding" (for EXAMPLE_IDS, B=2, S=5) or "causal" (L=5).
        convention: a key of CONVENTIONS.

    Returns:
        padding: BoolTensor[B, S] True at PAD (nn.MultiheadAttention key_padding_mask);
        BoolTensor[B, 1, 1, S] True = allowed (SDPA attn_mask); FloatTensor[B, S] 0 / -inf;
        LongTensor[B, S] 1 = keep (Hugging Face).
        causal: [L, L] in the same conventions; None for Hugging Face, whose
        attention_mask is padding only.
    """
    _check_choice("mask_kind", mask_kind, MASK_KINDS)
    _check_choice("convention", convention, CONVENTIONS)
    if mask_kind == "padding":
        blocked = padding_mask(EXAMPLE_IDS, EXAMPLE_PAD_ID)
    else:
        blocked = causal_mask(CAUSAL_SIZE)
    if convention == "nn.MultiheadAttention (bool)":
        return blocked
    if convention == "SDPA (bool)":
        return to_sdpa(blocked[:, None, None, :] if mask_kind == "padding" else blocked)
    if convention == "additive float":
        return to_additive(blocked)
    return (~blocked).long() if mask_kind == "padding" else None


def _cell_text(value) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if np.isneginf(value):
        return "-inf"
    return f"{value:g}"


def plot_convention(mask_kind: str, convention: str, *, ax: Axes) -> Axes:
    """Draw the example mask's raw values in ``convention`` on ``ax``; blocked cells hatched."""
    mask = mask_in_convention(mask_kind, convention)
    padding_where, causal_where, meaning = CONVENTIONS[convention]
    where = padding_where if mask_kind == "padding" else causal_where
    if mask is None:
        ax.set_axis_off()
        ax.set_title(f"{where}\n{meaning}", fontsize="medium")
        ax.text(0.5, 0.5, "no causal attention_mask:\nHugging Face's attention_mask\n"
                "is a [B, S] padding mask;\ndecoder models add the\ncausal mask internally",
                ha="center", va="center", fontsize="small", transform=ax.transAxes)
        return ax
    blocked = mask_in_convention(mask_kind, "nn.MultiheadAttention (bool)").numpy()
    shape = list(mask.shape)
    values = mask.reshape(blocked.shape).numpy()
    cells = [[_cell_text(value) for value in row] for row in values]
    ylabel = "sequence in batch" if mask_kind == "padding" else "query position"
    plot_grid(cells, blocked, ax=ax, xlabel="key position", ylabel=ylabel)
    ax.get_legend().remove()  # draw_convention puts one legend under the figure
    ax.set_aspect("equal")
    drawn = "" if shape == list(blocked.shape) else f" (drawn {list(blocked.shape)})"
    dtype = str(mask.dtype).removeprefix("torch.")
    ax.set_title(f"{where}\n{meaning}\ndtype {dtype}, shape {shape}{drawn}", fontsize="medium")
    return ax


def draw_convention(mask_kind: str = "padding",
                    convention: str = "nn.MultiheadAttention (bool)") -> Figure:
    """Figure of one mask in one convention, with a legend for the hatched cells."""
    fig, ax = plt.subplots(figsize=(5.2, 4.2) if mask_kind == "causal" else (5.2, 3.2))
    plot_convention(mask_kind, convention, ax=ax)
    if ax.axison:
        fig.legend(handles=[Patch(**BLOCKED_STYLE, label="blocked (masked out)")],
                   loc="lower center", frameon=False, fontsize="small")
    fig.subplots_adjust(top=0.78, bottom=0.24 if mask_kind == "padding" else 0.18)
    return fig


def conventions_explorer() -> Explorer:
    """Pick a mask (padding / causal) and a convention; see its raw values and what they block."""
    return Explorer(
        draw_convention,
        {
            "mask_kind": Control("mask", MASK_KINDS),
            "convention": Control("convention", tuple(CONVENTIONS)),
        },
    )
