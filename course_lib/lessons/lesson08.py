"""Lesson 08: reproduce masking bugs and measure what they cost.

* :func:`transformer_logits` runs a trained :class:`~course_lib.models.Seq2SeqTransformer`
  with exactly the masks you pass (any of the six ``nn.Transformer`` masks, none built for
  you), so a bug can be reproduced on a real model; :func:`token_accuracy` scores it.
* :data:`SCENARIOS` and :func:`lab_attention` drive the doctor lab: one small batch, one
  ``nn.MultiheadAttention``, and for each bug the masks as passed and as fixed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from course_lib._checks import check_tensor
from course_lib.data import LETTERS, Vocab
from course_lib.doctor import MASK_NAMES
from course_lib.masks import causal_mask, padding_mask, to_additive
from course_lib.models import Seq2SeqTransformer

__all__ = ["transformer_logits", "token_accuracy", "LAB_VOCAB", "LAB_TOKENS", "lab_ids", "Scenario",
           "SCENARIOS", "scenario_call", "should_block", "lab_attention", "SHOWN_SEQUENCE"]


def transformer_logits(model: Seq2SeqTransformer, src: torch.Tensor, tgt_in: torch.Tensor,
                       **masks: torch.Tensor | None) -> torch.Tensor:
    """Logits FloatTensor[B, T, V] of ``model`` run through ``nn.Transformer`` with ``masks``.

    Unlike ``model(src, tgt_in)``, nothing is built or checked for you: the masks go to
    ``model.transformer`` as given (a mask left out is not applied), the way a bug would.

    Args:
        model: a :class:`Seq2SeqTransformer`.
        src: LongTensor[B, S]; tgt_in: LongTensor[B, T].
        masks: any of ``src_mask``, ``tgt_mask``, ``memory_mask``, ``src_key_padding_mask``,
            ``tgt_key_padding_mask``, ``memory_key_padding_mask``.
    """
    if not isinstance(model, Seq2SeqTransformer):
        raise TypeError(f"model: expected a Seq2SeqTransformer, got {type(model).__name__}")
    unknown = sorted(set(masks) - set(MASK_NAMES))
    if unknown:
        raise TypeError(f"masks: nn.Transformer has no argument {unknown}; its masks are "
                        f"{list(MASK_NAMES)}")
    for name, ids in (("src", src), ("tgt_in", tgt_in)):
        check_tensor(name, ids, ndim=2)
    x = model.src_embedding(src) + model.positions[: src.shape[1]]
    y = model.tgt_embedding(tgt_in) + model.positions[: tgt_in.shape[1]]
    return model.generator(model.transformer(x, y, **masks))


def token_accuracy(logits: torch.Tensor, tgt_out: torch.Tensor, pad_id: int) -> float:
    """Fraction of non-PAD targets ``tgt_out`` [B, T] whose argmax in ``logits`` [B, T, V] is
    right (a NaN row counts as wrong)."""
    check_tensor("logits", logits, ndim=3)
    check_tensor("tgt_out", tgt_out, ndim=2)
    if logits.shape[:2] != tgt_out.shape:
        raise ValueError(f"logits: expected [B, T, V] with [B, T] = {list(tgt_out.shape)}, got "
                         f"{list(logits.shape)}")
    real = tgt_out != pad_id
    hit = (logits.argmax(dim=-1) == tgt_out) & real & ~logits.isnan().any(dim=-1)
    return int(hit.sum()) / max(1, int(real.sum()))


# --- the doctor lab -------------------------------------------------------------------------

LAB_TOKENS = (("a", "b", "c", "d"), ("e", "f"), ("g", "h", "i"), ("j",))
SHOWN_SEQUENCE = 1  # the one the lab draws: two real tokens, two PAD
LAB_VOCAB = Vocab(LETTERS)  # the reverse task's vocabulary


def lab_ids(*, left: bool = False) -> torch.Tensor:
    """LongTensor[4, 4]: four sequences of lengths 4, 2, 3, 1, padded right (or ``left``).

    B == L on purpose: a transposed padding mask then has the right shape.
    """
    rows = []
    for tokens in LAB_TOKENS:
        ids, pads = LAB_VOCAB.encode(tokens), [Vocab.PAD] * (4 - len(tokens))
        rows.append(pads + ids if left else ids + pads)
    return torch.tensor(rows)


@dataclass(frozen=True)
class Scenario:
    """One bug of the lab: which attention block, and how the masks are built."""

    block: str  # "encoder self-attention" (src_* masks) or "decoder self-attention" (tgt_*)
    description: str
    shown: str  # what the lab draws as "passed": a mask name, or "ids" for the batch itself


SCENARIOS = {
    "inverted padding": Scenario("encoder self-attention",
                                 "src_key_padding_mask = src != PAD (True = keep)",
                                 "src_key_padding_mask"),
    "no padding mask": Scenario("encoder self-attention", "src_key_padding_mask left out", "ids"),
    "transposed (B == S)": Scenario("encoder self-attention",
                                    "src_key_padding_mask = (src == PAD).T",
                                    "src_key_padding_mask"),
    "padding as src_mask": Scenario("encoder self-attention",
                                    "src_mask = src == PAD (a [B, S] mask as [S, S])",
                                    "src_mask"),
    "SDPA causal": Scenario("decoder self-attention",
                            "tgt_mask = tril(ones) (True = allowed, SDPA's convention)",
                            "tgt_mask"),
    "float 0/1 causal": Scenario("decoder self-attention", "tgt_mask = causal_mask(T).float()",
                                 "tgt_mask"),
    "left padding": Scenario("decoder self-attention",
                             "left-padded tgt_in with a causal tgt_mask", "ids"),
}


def scenario_call(name: str, *, fixed: bool) -> dict[str, torch.Tensor]:
    """The ids and masks of scenario ``name`` as ``doctor.check`` keyword arguments."""
    if name not in SCENARIOS:
        raise ValueError(f"name: expected one of {list(SCENARIOS)}, got {name!r}")
    decoder = SCENARIOS[name].block == "decoder self-attention"
    ids = lab_ids(left=name == "left padding" and not fixed)
    pad = padding_mask(ids, Vocab.PAD)
    if decoder:
        masks = {"tgt_mask": causal_mask(4), "tgt_key_padding_mask": pad}
        if not fixed and name == "SDPA causal":
            masks["tgt_mask"] = ~causal_mask(4)
        if not fixed and name == "float 0/1 causal":  # padding additive too: no mixed types
            masks = {"tgt_mask": causal_mask(4).float(), "tgt_key_padding_mask": to_additive(pad)}
        return {"tgt_in": ids, "pad_id": Vocab.PAD, **masks}
    broken = {"inverted padding": {"src_key_padding_mask": ~pad},
              "no padding mask": {},
              "transposed (B == S)": {"src_key_padding_mask": pad.T},
              "padding as src_mask": {"src_mask": pad}}
    masks = {"src_key_padding_mask": pad} if fixed else broken[name]
    return {"src": ids, "pad_id": Vocab.PAD, **masks}


def should_block(call: dict[str, torch.Tensor]) -> torch.Tensor:
    """BoolTensor[B, L, L]: the cells a correct setup blocks for ``call``'s ids (PAD keys, and
    future keys in the decoder)."""
    decoder = "tgt_in" in call
    ids = call["tgt_in"] if decoder else call["src"]
    blocked = padding_mask(ids, Vocab.PAD)[:, None, :].expand(-1, ids.shape[1], -1)
    return blocked | causal_mask(ids.shape[1]) if decoder else blocked


@functools.cache
def _lab_attention_module() -> tuple[nn.Embedding, nn.MultiheadAttention]:
    torch.manual_seed(8)
    return nn.Embedding(len(LAB_VOCAB), 16), nn.MultiheadAttention(16, 2, batch_first=True)


@torch.no_grad()
def lab_attention(call: dict[str, torch.Tensor]) -> torch.Tensor:
    """Head-averaged weights [B, L, L] of a small ``nn.MultiheadAttention`` (random weights,
    ``need_weights=True``: rows with no allowed key come out NaN) given ``call``'s masks."""
    ids = call["src"] if "src" in call else call["tgt_in"]
    prefix = "src" if "src" in call else "tgt"
    embedding, attention = _lab_attention_module()
    x = embedding(ids)
    _, weights = attention(x, x, x, attn_mask=call.get(f"{prefix}_mask"),
                           key_padding_mask=call.get(f"{prefix}_key_padding_mask"))
    return weights
