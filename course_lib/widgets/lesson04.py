"""Lesson 04: the six ``nn.Transformer`` masks, drawn, and the mask lab.

The lab runs a small real ``nn.Transformer`` (``course_lib.lessons.lesson04.example_model``,
built once) on a fixed padded batch with any subset of the six masks, captures the attention
weights of its three attention blocks with ``course_lib.attention.capture_attention`` and
draws them, blocked cells hatched as everywhere in the course.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from course_lib import viz
from course_lib.attention import capture_attention
from course_lib.data import Vocab
from course_lib.lessons.lesson04 import (
    BLOCKS,
    MASK_NAMES,
    WAIT_K,
    WINDOW_RADIUS,
    ExampleBatch,
    blocked_cells,
    example_batch,
    example_masks,
    example_model,
)
from course_lib.masks import causal_mask
from course_lib.widgets.core import Control, Explorer, one_thread

__all__ = ["SHOWN_ELEMENT", "MASK_ROLES", "plot_six_masks", "lab_weights", "draw_mask_lab",
           "mask_lab"]

SHOWN_ELEMENT = 1  # the batch element with PAD in both src and tgt
MASK_ROLES = {
    "src_mask": f"local window ±{WINDOW_RADIUS}",
    "tgt_mask": "causal",
    "memory_mask": f"wait-{WAIT_K} (j < t + {WAIT_K})",
    "src_key_padding_mask": "True at source PAD",
    "tgt_key_padding_mask": "True at target PAD",
    "memory_key_padding_mask": "source PAD again",
}
# Default state: the four masks a standard seq2seq model needs.
DEFAULT_ON = ("tgt_mask", "src_key_padding_mask", "tgt_key_padding_mask", "memory_key_padding_mask")


def _axis_tokens(batch: ExampleBatch, block: str, b: int) -> tuple[list[str], list[str]]:
    """(query labels, key labels) of a block for batch element b."""
    src, tgt = batch.src_tokens(b), batch.tgt_tokens(b)
    return {"encoder self-attention": (src, src), "decoder self-attention": (tgt, tgt),
            "cross-attention": (tgt, src)}[block]


def plot_six_masks(batch: ExampleBatch, masks: dict[str, torch.Tensor], *,
                   b: int = SHOWN_ELEMENT) -> Figure:
    """The six masks on a 2 x 3 grid: one column per attention block.

    Top row: the [Lq, Lk] masks shared by the whole batch, labelled with element ``b``'s tokens.
    Bottom row: the [B, Lk] padding masks, one row per sequence.
    """
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.6), layout="constrained",
                             gridspec_kw={"height_ratios": (2.2, 1)})
    for column, (block, (_, attn_name, padding_name)) in enumerate(BLOCKS.items()):
        rows, cols = _axis_tokens(batch, block, b)
        mask = masks[attn_name]
        viz.plot_mask(mask, row_labels=rows, col_labels=cols, ax=axes[0, column],
                      title=f"{block}\n{attn_name} {list(mask.shape)}: "
                            f"{MASK_ROLES[attn_name]}")
        padding = masks[padding_name]
        pads = padding.sum(dim=1).tolist()
        viz.plot_mask(padding, row_labels=[f"seq {i}: {n} PAD" for i, n in enumerate(pads)],
                      col_labels=range(padding.shape[1]), ax=axes[1, column], xlabel="key position",
                      ylabel="sequence", title=f"{padding_name} {list(padding.shape)}")
        plt.setp(axes[0, column].get_xticklabels(), rotation=40, ha="right",
                 rotation_mode="anchor")
    fig.suptitle(f"The six masks of nn.Transformer (bool, True = blocked); top row labelled with "
                 f"sequence {b}'s tokens, but shared by the whole batch", fontsize="large")
    return fig


def lab_weights(**switches: bool) -> dict[str, torch.Tensor]:
    """Run the lab's model with the masks switched on; layer-0 weights per block [B, H, Lq, Lk]."""
    unknown = set(switches) - set(MASK_NAMES)
    if unknown:
        raise ValueError(f"switches: unknown mask names {sorted(unknown)}; known: {MASK_NAMES}")
    batch = example_batch()
    masks = example_masks(batch)
    given = {name: masks[name] for name in MASK_NAMES if switches.get(name, False)}
    model = example_model()
    with one_thread(), torch.no_grad(), capture_attention(model.transformer) as captured:
        model(batch.src, batch.tgt, **given)
    return {block: captured[module.format(0)] for block, (module, _, _) in BLOCKS.items()}


def _leak_summary(block: str, weights: torch.Tensor, batch: ExampleBatch, b: int) -> str:
    """How much weight real queries of element b put on keys that should be hidden."""
    src_pad, tgt_pad = (batch.src[b] == Vocab.PAD), (batch.tgt[b] == Vocab.PAD)
    query_pad, key_pad = {"encoder self-attention": (src_pad, src_pad),
                          "decoder self-attention": (tgt_pad, tgt_pad),
                          "cross-attention": (tgt_pad, src_pad)}[block]
    real_rows = weights[~query_pad]
    parts = [f"on PAD keys: {float(real_rows[:, key_pad].sum(-1).max()):.2f}"]
    if block == "decoder self-attention":
        future = causal_mask(weights.shape[-1])[~query_pad]
        parts.append(f"on future keys: {float((real_rows * future).sum(-1).max()):.2f}")
    return "max weight a real query puts " + ", ".join(parts)


def draw_mask_lab(
    src_mask: bool = False,
    tgt_mask: bool = True,
    memory_mask: bool = False,
    src_key_padding_mask: bool = True,
    tgt_key_padding_mask: bool = True,
    memory_key_padding_mask: bool = True,
) -> Figure:
    """Layer-0 attention weights (mean over heads) of the three blocks for sequence 1.

    Each argument switches one mask of ``nn.Transformer.forward`` on (True) or off.
    """
    switches = dict(zip(MASK_NAMES, (src_mask, tgt_mask, memory_mask, src_key_padding_mask,
                                     tgt_key_padding_mask, memory_key_padding_mask), strict=True))
    with one_thread():
        return _draw_lab(switches)


def _draw_lab(switches: dict[str, bool]) -> Figure:
    batch = example_batch()
    masks = example_masks(batch)
    given = {name: masks[name] for name, on in switches.items() if on}
    weights = lab_weights(**switches)
    b = SHOWN_ELEMENT
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), layout="constrained",
                             gridspec_kw={"width_ratios": (6, 5, 6)})
    for ax, (block, (_, attn_name, padding_name)) in zip(axes, BLOCKS.items(), strict=True):
        rows, cols = _axis_tokens(batch, block, b)
        blocked = blocked_cells(given, block, batch)[b]
        in_effect = [name for name in (attn_name, padding_name) if name in given]
        viz.heatmap(
            weights[block][b].mean(dim=0), blocked=blocked, vmin=0.0, vmax=1.0, colorbar=False,
            row_labels=rows, col_labels=cols, ax=ax,
            title=f"{block}\nmasks: {' + '.join(in_effect) if in_effect else 'NONE'}\n"
                  f"{_leak_summary(block, weights[block][b].mean(dim=0), batch, b)}")
        ax.title.set_fontsize("medium")
        plt.setp(ax.get_xticklabels(), rotation=40, ha="right", rotation_mode="anchor")
    fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap=viz.CMAP), ax=list(axes),
                 fraction=0.02, pad=0.01, label="attention weight")
    fig.suptitle(f"Mask lab: layer 0, sequence {b} (it has PAD), mean over the 2 heads; "
                 f"{sum(switches.values())} of the 6 masks on", fontsize="large")
    return fig


def mask_lab() -> Explorer:
    """Six checkboxes, one per mask of nn.Transformer: watch the three attention blocks change."""
    return Explorer(
        draw_mask_lab,
        {name: Control(name, (True, False) if name in DEFAULT_ON else (False, True))
         for name in MASK_NAMES},
    )
