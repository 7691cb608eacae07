"""Lesson 10: the packing explorer. Twelve sentences (seeded lengths) batched three ways —
padded in random order, bucketed, or packed — with toggles for the two things that keep
packed documents apart: the document mask and the restarted position ids.

Left: the rows, coloured by document (PAD hatched). Right: the mask of the row with the most
documents, each key labelled with its position id; a cell that lets a query see ANOTHER
document's key is marked as a leak. The title gives the measured waste (PAD share) and leak
(how many sentences' outputs of lesson 10's causal LM differ from the sentence alone).
"""

from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from course_lib import viz
from course_lib.data import Vocab, bucket_batches, random_batches, sample_lengths
from course_lib.lessons.lesson10 import (
    VOCAB_SIZE,
    alone,
    differs,
    new_causal_lm,
    plot_documents,
)
from course_lib.masks import causal_mask
from course_lib.packing import document_mask, pack
from course_lib.widgets.core import Control, Explorer, one_thread

__all__ = ["STRATEGIES", "ROW_LENGTHS", "packing_state", "draw_packing", "packing_explorer"]

STRATEGIES = ("pack", "bucket", "pad")
ROW_LENGTHS = (16, 24, 32)
SENTENCES, LONGEST, BATCH = 12, 16, 4
LEAK_COLOR = "#D55E00"  # Okabe-Ito vermillion: a cell that sees another document


@functools.cache
def _sentences() -> tuple[torch.Tensor, ...]:
    lengths = sample_lengths(SENTENCES, min_len=2, max_len=LONGEST, seed=0)
    generator = torch.Generator().manual_seed(0)
    return tuple(torch.randint(4, VOCAB_SIZE, (n,), generator=generator) for n in lengths)


@functools.cache
def _model():
    return new_causal_lm(0).eval()


def packing_state(strategy: str = "pack", row_len: int = 24, document_masking: bool = True,
                  reset_positions: bool = True) -> dict:
    """The batch of :data:`SENTENCES` sentences under ``strategy``, and what the model does.

    Returns ``document_ids``, ``position_ids`` and ``ids`` [R, L] (for "pad" and "bucket",
    one row per sentence, batches of ``BATCH`` rows padded to their longest; the figure's
    rows run to the longest of all, ``document_ids`` -2 beyond a batch's own width),
    ``blocked`` BoolTensor[R, L, L] (True = blocked) as the model receives it,
    ``pad_share`` (PAD positions / all positions the model computes), and ``differs``
    (BoolTensor[SENTENCES]: whose outputs differ from the sentence alone).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")
    if row_len not in ROW_LENGTHS:
        raise ValueError(f"row_len: expected one of {ROW_LENGTHS}, got {row_len!r}")
    sentences = _sentences()
    if strategy == "pack":
        packed = pack(sentences, row_len, pad_id=Vocab.PAD)
        ids, document_ids, restarted = packed.ids, packed.document_ids, packed.position_ids
        computed = ids.numel()
    else:
        lengths = [len(s) for s in sentences]
        batching = random_batches if strategy == "pad" else bucket_batches
        batches = batching(lengths, BATCH, seed=0)
        order = [i for batch in batches for i in batch]
        widths = [max(lengths[i] for i in batch) for batch in batches for _ in batch]
        computed = sum(widths)
        ids = torch.full((SENTENCES, LONGEST), Vocab.PAD)
        document_ids = torch.full((SENTENCES, LONGEST), -1)
        for row, index in enumerate(order):
            ids[row, :lengths[index]] = sentences[index]
            document_ids[row, :lengths[index]] = index
        restarted = torch.arange(LONGEST).expand_as(ids).masked_fill(document_ids < 0, 0)
    length = ids.shape[1]
    padding = document_ids < 0
    positions = restarted if reset_positions else torch.arange(length).expand_as(ids)
    if document_masking:
        blocked = document_mask(document_ids, causal=True)
    else:
        blocked = causal_mask(length)[None] | padding[:, None, :]
    with one_thread(), torch.no_grad():
        outputs = _model()(ids, key_padding_mask=padding, position_ids=positions,
                           attn_mask=blocked)
        references = alone(_model(), sentences)
    placed = [outputs[document_ids == index] for index in range(SENTENCES)]
    real = int((~padding).sum())
    if strategy != "pack":  # beyond a batch's longest: not in that batch's tensor at all
        outside = torch.arange(LONGEST)[None, :] >= torch.tensor(widths)[:, None]
        document_ids = document_ids.masked_fill(outside, -2)
    return {"ids": ids, "document_ids": document_ids, "position_ids": positions,
            "blocked": blocked, "pad_share": 1 - real / computed,
            "differs": differs(placed, references, atol=1e-4)}


def draw_packing(strategy: str = "pack", row_len: int = 24, document_masking: bool = True,
                 reset_positions: bool = True) -> Figure:
    """The rows coloured by document, and the mask of the busiest row with its leaks marked.
    See :func:`packing_state`."""
    state = packing_state(strategy, row_len, document_masking, reset_positions)
    document_ids = state["document_ids"]
    rows, length = document_ids.shape
    starts = (document_ids >= 0) & torch.cat(
        [torch.ones(rows, 1, dtype=torch.bool), document_ids[:, 1:] != document_ids[:, :-1]], 1)
    busiest = int(starts.sum(dim=1).argmax())
    width = (15, 5.8) if viz.classroom() else (14, 5.8)
    fig, (left, right) = plt.subplots(1, 2, figsize=width, layout="constrained",
                                      width_ratios=(1.1, 1))
    plot_documents(document_ids, ax=left, labels=length <= 24,
                   title=f"{rows} rows × {length} positions, coloured by sentence")
    left.add_artist(Rectangle((-0.5, busiest - 0.5), length, 1, fill=False,
                              edgecolor="black", linewidth=1.5))
    blocked = state["blocked"][busiest]
    row_documents = document_ids[busiest]
    leak = (~blocked & (row_documents[:, None] != row_documents[None, :])
            & (row_documents[:, None] >= 0)).numpy()
    keys = [str(int(p)) if d >= 0 else "·" for p, d in
            zip(state["position_ids"][busiest], row_documents, strict=True)]
    queries = [str(int(d)) if d >= 0 else "·" for d in row_documents]
    viz.plot_grid([[""] * length] * length, blocked, col_labels=keys, row_labels=queries, ax=right,
                  xlabel="key: position id (· = PAD)", ylabel="query: sentence")
    for r, c in zip(*np.nonzero(leak), strict=True):
        right.add_artist(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=LEAK_COLOR,
                                   linewidth=0))
    right.tick_params(labelsize="x-small")
    right.set_title(f"row {busiest} (framed): {int(leak.sum())} cells see another sentence",
                    pad=viz.LEGEND_PAD * viz.points("small"))
    right.legend(handles=[Patch(**viz.BLOCKED_STYLE, label="blocked"),  # replaces plot_mask's
                          Patch(facecolor=LEAK_COLOR, label="leak: another sentence")],
                 loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, frameon=False,
                 fontsize="small", handlelength=1.5, borderpad=0.2, borderaxespad=0.15)
    wrong = int(state["differs"].sum())
    where = f"rows of {row_len}" if strategy == "pack" else "row length unused"
    fig.suptitle(f"{strategy} ({where}): PAD {state['pad_share']:.0%} of positions; "
                 f"{wrong} of {SENTENCES} sentences differ from alone")
    return fig


def packing_explorer() -> Explorer:
    """Row length, document mask, position reset and strategy; starts packed and right."""
    # The strategy last: the row length matters only while packing, and a learner (or the
    # browser test, which changes one control after another) meets it before leaving "pack".
    return Explorer(draw_packing, {
        "row_len": Control("row length", ROW_LENGTHS, default=24),
        "document_masking": Control("document mask", (True, False)),
        "reset_positions": Control("restart positions", (True, False)),
        "strategy": Control("strategy", STRATEGIES),
    })
