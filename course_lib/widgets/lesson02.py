"""Lesson 02 explorer: how a ``[B, S]`` padding mask reaches the scores ``[B, H, L, S]``.

The example is a self-attention batch with B == H == L == S == 4 on purpose: with those
sizes every wrongly aligned mask still broadcasts, so the mistakes run WITHOUT an error and
the only way to see them is to look at which cells got blocked.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_lib import viz
from course_lib._checks import check_bool_mask, check_tensor
from course_lib.attention import masked_softmax
from course_lib.widgets.core import Control, Explorer

__all__ = [
    "LAYOUTS",
    "MASKINGS",
    "example_batch",
    "apply_pad_mask",
    "plot_batch_weights",
    "draw_masked_fill",
    "masked_fill_explorer",
]

PAD_TOKEN = "PAD"
SENTENCES = (("we", "like", "green", "tea"), ("cats", "purr", "loudly"), ("hi", "all"), ("ok",))
HEADS = 4
SHOWN_HEAD = 0

# layout name -> (how the [B, S] mask is reshaped, the code, what it does to the scores)
LAYOUTS = {
    "[B,1,1,S] correct": (
        lambda mask: mask[:, None, None, :],
        "key_padding_mask[:, None, None, :]",
        "correct: every query row of sequence b is blocked at b's own PAD keys, in every head",
    ),
    "[B,S] as [L,S]": (
        lambda mask: mask,
        "key_padding_mask",
        "WRONG: [B, S] lines up with [L, S]: query row i of EVERY sequence gets sequence i's pads",
    ),
    "[B,1,S] as [H,1,S]": (
        lambda mask: mask[:, None, :],
        "key_padding_mask[:, None, :]",
        f"WRONG: [B, 1, S] lines up with [H, L, S]: head h gets sequence h's pads "
        f"(head {SHOWN_HEAD} shown gets sequence {SHOWN_HEAD}'s)",
    ),
    "[S,B] transposed": (
        lambda mask: mask.T,
        "key_padding_mask.T",
        "WRONG: a transposed [S, B] mask (seq-first code) lines up with [L, S]: "
        "row i blocks key j when sequence j has a PAD at position i",
    ),
}

# masking name -> (fill value for masked_fill, its code); None: course_lib's masked_softmax
MASKINGS = {
    "masked_fill(-inf)": (float("-inf"), 'float("-inf")'),
    "masked_fill(-1e9)": (-1e9, "-1e9"),
    "masked_fill(finfo.min)": (torch.finfo(torch.float32).min, "torch.finfo(scores.dtype).min"),
    "masked_softmax": (None, ""),
}


def example_batch(fully_padded: bool = False) -> tuple[list[list[str]], torch.Tensor]:
    """The explorer's batch: 4 sentences right-padded to length 4.

    Args:
        fully_padded: replace the last sentence by PAD only (a sequence with no real token).

    Returns:
        ``(tokens, key_padding_mask)``: tokens[b][s] strings, ``BoolTensor[4, 4]`` True at PAD.
    """
    sentences = list(SENTENCES)
    if fully_padded:
        sentences[-1] = ()
    length = max(len(s) for s in SENTENCES)
    tokens = [list(s) + [PAD_TOKEN] * (length - len(s)) for s in sentences]
    key_padding_mask = torch.tensor([[t == PAD_TOKEN for t in row] for row in tokens])
    return tokens, key_padding_mask


def apply_pad_mask(
    scores: torch.Tensor, key_padding_mask: torch.Tensor, *, layout: str, masking: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask ``scores`` with ``key_padding_mask`` reshaped as ``layout``, then softmax.

    Args:
        scores: FloatTensor[B, H, L, S] attention scores.
        key_padding_mask: BoolTensor[B, S], True at PAD.
        layout: a key of :data:`LAYOUTS` (how the mask is reshaped before broadcasting).
        masking: a key of :data:`MASKINGS` (the fill value, or ``"masked_softmax"``).

    Returns:
        ``(weights [B, H, L, S], blocked [B, H, L, S])``; ``blocked`` is the reshaped mask
        broadcast to the scores, i.e. the cells this layout actually blocks.
    """
    check_tensor("scores", scores, ndim=4)
    check_bool_mask("key_padding_mask", key_padding_mask, ndim=2)
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {list(LAYOUTS)}, got {layout!r}")
    if masking not in MASKINGS:
        raise ValueError(f"masking: expected one of {list(MASKINGS)}, got {masking!r}")
    mask = LAYOUTS[layout][0](key_padding_mask)
    blocked = mask.expand(scores.shape)  # raises when the layout does not broadcast
    fill = MASKINGS[masking][0]
    if fill is None:
        weights = masked_softmax(scores, mask)
    else:
        weights = scores.masked_fill(mask, fill).softmax(dim=-1)
    return weights, blocked


def _pad_weight_label(weights: torch.Tensor, is_pad: torch.Tensor) -> str:
    real_rows = weights[~is_pad]  # rows of real query tokens
    if real_rows.numel() == 0:
        return "no real token"
    if not bool(is_pad.any()):
        return "no PAD key"
    on_pad = real_rows[:, is_pad].sum(dim=-1)
    if bool(on_pad.isnan().any()):
        return "weight on PAD: NaN"
    return f"max weight on PAD: {float(on_pad.max()):.2f}"


def plot_batch_weights(
    weights: torch.Tensor,
    blocked: torch.Tensor,
    key_padding_mask: torch.Tensor,
    tokens: Sequence[Sequence[str]],
    *,
    axes: Sequence[Axes],
    label: str = "",
) -> None:
    """One self-attention heatmap per sequence of a batch, blocked cells hatched.

    A row whose keys are ALL blocked shows its values (NaN black, uniform, or zeros) inside
    a dashed red outline, because hatching it would hide exactly what goes wrong there.

    Args:
        weights: FloatTensor[B, L, S] attention weights of one head (L == S: self-attention).
        blocked: BoolTensor[B, L, S], True where the mask blocked the score.
        key_padding_mask: BoolTensor[B, S], True at PAD (the truth, for the titles).
        tokens: B lists of S token strings, used on both axes.
        axes: B matplotlib Axes, one per sequence.
        label: prefix for each title, e.g. "correct".
    """
    check_tensor("weights", weights, ndim=3)
    check_bool_mask("blocked", blocked, ndim=3)
    check_bool_mask("key_padding_mask", key_padding_mask, ndim=2)
    batch, rows, cols = weights.shape
    if blocked.shape != weights.shape or key_padding_mask.shape != (batch, cols):
        raise ValueError(
            f"blocked, key_padding_mask: expected shapes {list(weights.shape)} and "
            f"[{batch}, {cols}] like weights, got {list(blocked.shape)} and "
            f"{list(key_padding_mask.shape)}"
        )
    if rows != cols or len(tokens) != batch or len(axes) != batch:
        raise ValueError(
            f"tokens, axes: expected square weights and {batch} token lists and axes, got "
            f"weights {list(weights.shape)}, {len(tokens)} token lists, {len(axes)} axes"
        )
    for b, ax in enumerate(axes):
        all_blocked = blocked[b].all(dim=-1)
        viz.heatmap(
            weights[b], blocked=blocked[b] & ~all_blocked[:, None], row_labels=tokens[b],
            col_labels=tokens[b], ax=ax, vmin=0.0, vmax=1.0, colorbar=False,
            title=f"{label}sequence {b}\n{_pad_weight_label(weights[b], key_padding_mask[b])}",
        )
        for row in np.flatnonzero(all_blocked.numpy()):
            ax.add_patch(Rectangle((-0.5, row - 0.5), cols, 1, fill=False, edgecolor="#d62728",
                                   linestyle="--", linewidth=2))
        if b:
            ax.set_ylabel("")


def draw_masked_fill(
    layout: str = "[B,1,1,S] correct",
    masking: str = "masked_fill(-inf)",
    fully_padded: bool = False,
) -> Figure:
    """The explorer's figure: head 0's weights for each of the 4 sequences of the batch."""
    tokens, key_padding_mask = example_batch(fully_padded)
    batch, length = key_padding_mask.shape
    generator = torch.Generator().manual_seed(0)
    scores = 1.5 * torch.randn(batch, HEADS, length, length, generator=generator)
    weights, blocked = apply_pad_mask(scores, key_padding_mask, layout=layout, masking=masking)

    fig, axes = plt.subplots(1, batch, figsize=(3.0 * batch + 1.0, 4.4), layout="constrained")
    plot_batch_weights(weights[:, SHOWN_HEAD], blocked[:, SHOWN_HEAD], key_padding_mask,
                       tokens, axes=axes)
    _, code, meaning = LAYOUTS[layout]
    fill, fill_code = MASKINGS[masking]
    if fill is None:
        call = f"masked_softmax(scores, {code})"
    else:
        call = f"scores.masked_fill({code}, {fill_code}).softmax(-1)"
    fig.suptitle(f"{call}    [B, H, L, S] = [{batch}, {HEADS}, {length}, {length}], "
                 f"head {SHOWN_HEAD} shown\n{meaning}", fontsize="medium")
    fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap=viz.CMAP), ax=list(axes),
                 fraction=0.015, pad=0.01, label="attention weight")
    fig.supxlabel("hatched: blocked by the mask    dashed red outline: a row with EVERY key "
                  "blocked (values shown)    black: NaN", fontsize="small")
    return fig


def masked_fill_explorer() -> Explorer:
    """Mask layout x fill value x a fully padded sequence: which cells get blocked, and how."""
    return Explorer(
        draw_masked_fill,
        {
            "layout": Control("mask layout", tuple(LAYOUTS)),
            "masking": Control("masking", tuple(MASKINGS)),
            "fully_padded": Control("last sequence fully padded", (False, True)),
        },
    )
