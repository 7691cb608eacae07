"""Lesson 09: the generation explorer. Three prompts of different lengths are generated from in
one batch; the controls choose the padding side, the position ids, the KV cache and the step.

Each panel is one row of the batch: the mask of that step (queries x every key, the cache's
included), blocked cells hatched, each key labelled with its token and position id (PAD keys
with a dot); the title says what the row has generated so far and whether it is what the
prompt gives alone.
"""

from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from course_lib import viz
from course_lib.causal_lm import decoder_mask, generate, position_ids_from_padding
from course_lib.lessons.lesson09 import (
    POSITIONS,
    alone,
    lm_vocab,
    naive_generate,
    prompt_batch,
    trained_causal_lm,
)
from course_lib.widgets.core import Control, Explorer, one_thread

__all__ = ["PROMPTS", "NEW_TOKENS", "batch_at_step", "draw_generation", "generation_explorer"]

PROMPTS = [(tuple("cfa"), tuple("afc")), (tuple("hbjdegi"), tuple("igedjbh")),
           (tuple("ecgd"), tuple("dgce"))]
NEW_TOKENS = 4
_SHORT = {"<pad>": "PAD", "<bos>": "BOS", "<eos>": "EOS"}


@functools.cache
def _generated(padding_side: str, positions: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens the batch generates [3, NEW_TOKENS], tokens each prompt gives alone)."""
    vocab, model = lm_vocab(), trained_causal_lm(progress=False)
    with one_thread():
        ids, padding = prompt_batch(PROMPTS, vocab, padding_side=padding_side)
        if padding_side == "left" and positions == "from the mask":
            batched = generate(model, ids, padding, max_new_tokens=NEW_TOKENS)
        else:
            batched = naive_generate(model, ids, padding, max_new_tokens=NEW_TOKENS,
                                     positions=positions)
        return batched, alone(model, PROMPTS, vocab, max_new_tokens=NEW_TOKENS)


def batch_at_step(padding_side: str, positions: str, use_cache: bool, step: int) -> dict:
    """What the model computes at generation ``step`` (0 = the prompt, before any new token).

    Returns ``{"ids", "key_padding_mask", "position_ids"}`` for every key ([3, Lk]),
    ``"blocked"`` (BoolTensor[3, Lq, Lk], True = blocked, for the queries computed now: all
    positions without the cache, at step 0 the prompt, then only the newest token with it),
    and ``"batched"`` / ``"alone"`` (the generated tokens, [3, NEW_TOKENS]).
    """
    if not 0 <= step < NEW_TOKENS:
        raise ValueError(f"step: expected 0..{NEW_TOKENS - 1}, got {step!r}")
    vocab = lm_vocab()
    ids, padding = prompt_batch(PROMPTS, vocab, padding_side=padding_side)
    batched, reference = _generated(padding_side, positions)
    ids = torch.cat([ids, batched[:, :step]], dim=1)
    padding = torch.cat([padding, torch.zeros(len(PROMPTS), step, dtype=torch.bool)], dim=1)
    if positions == "from the mask":
        position_ids = position_ids_from_padding(padding)
    else:
        position_ids = torch.arange(ids.shape[1]).expand(len(PROMPTS), -1)
    queries = 1 if use_cache and step > 0 else ids.shape[1]
    blocked = decoder_mask(padding, num_queries=queries)[:, 0]
    return {"ids": ids, "key_padding_mask": padding, "position_ids": position_ids,
            "blocked": blocked, "batched": batched, "alone": reference}


def _words(vocab, ids) -> str:
    return " ".join(_SHORT.get(t, t) for t in vocab.decode(ids))


def draw_generation(padding_side: str = "left", positions: str = "from the mask",
                    use_cache: bool = True, step: int = 0) -> Figure:
    """The mask each row of the batch uses at ``step``, and whether the row still matches its
    prompt alone. See :func:`batch_at_step`."""
    if positions not in POSITIONS:
        raise ValueError(f"positions: expected one of {POSITIONS}, got {positions!r}")
    vocab = lm_vocab()
    state = batch_at_step(padding_side, positions, use_cache, step)
    keys = state["ids"].shape[1]
    fig, axes = plt.subplots(1, len(PROMPTS), figsize=(14.5, 5.8) if viz.classroom() else (13, 5.2),
                             layout="constrained")
    for row, ax in enumerate(axes):
        tokens = [_SHORT.get(t, t) for t in vocab.decode(state["ids"][row])]
        col_labels = [f"{t}\n{int(p)}" if not pad else "·" for t, p, pad in
                      zip(tokens, state["position_ids"][row], state["key_padding_mask"][row],
                          strict=True)]
        blocked = state["blocked"][row]
        queries = blocked.shape[0]
        row_labels = tokens[keys - queries:]
        viz.plot_mask(blocked, row_labels=row_labels, col_labels=col_labels, ax=ax,
                      xlabel="key: token, position id (· = PAD)", ylabel="query")
        if queries == 1:
            ax.set_aspect("equal")  # one cached query: a row of square cells, not a wall
        so_far = state["batched"][row, :step + 1]
        same = torch.equal(so_far, state["alone"][row, :step + 1])
        verdict = "✓ same as alone" if same else \
            f"✗ alone: {_words(vocab, state['alone'][row, :step + 1])}"
        ax.set_title(f"row {row}: {' '.join(PROMPTS[row][0])} → {_words(vocab, so_far)}\n"
                     f"{verdict}", fontsize="medium", pad=viz.LEGEND_PAD * viz.points("small"))
    cache = (f"KV cache: {'the prompt' if step == 0 else 'only the newest token'} is the query"
             if use_cache else "no cache: every position is recomputed")
    fig.suptitle(f"Step {step}: {padding_side} padding, position ids {positions}; {cache}")
    return fig


def generation_explorer() -> Explorer:
    """Padding side, position ids, KV cache and generation step; starts on the right setup."""
    return Explorer(draw_generation, {
        "padding_side": Control("padding side", ("left", "right")),
        "positions": Control("position ids", POSITIONS),
        "use_cache": Control("KV cache", (True, False)),
        "step": Control("generation step", tuple(range(NEW_TOKENS))),
    })
