"""Exercises of lesson 05: the teacher-forcing shift, the masked token-mean loss, the masks
of ``Seq2SeqTransformer.decode``, and the label-smoothed target distribution.

Every checker runs the answer on several random, ragged batches (with different PAD ids and
sizes) and compares it with the reference, naming the usual mistake when it recognises one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.exercises.core import exercise
from course_lib.masks import causal_mask


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:100]


def _ragged_ids(generator: torch.Generator, batch: int, length: int, pad_id: int,
                *, low: int = 4, high: int = 14, min_len: int = 1) -> torch.Tensor:
    """LongTensor[B, L] right-padded with pad_id; row 0 is full, the last row is short."""
    lengths = torch.randint(min_len, length + 1, (batch,), generator=generator)
    lengths[0], lengths[-1] = length, max(min_len, length // 2)
    ids = torch.randint(low, high, (batch, length), generator=generator)
    return ids.masked_fill(torch.arange(length)[None, :] >= lengths[:, None], pad_id)


# --- 05.shift ------------------------------------------------------------------------------

def _solve_shift(tgt: torch.Tensor, pad_id: int, bos_id: int, eos_id: int):
    rows = torch.arange(tgt.shape[0])
    lengths = (tgt != pad_id).sum(dim=1)
    tgt_in = torch.cat([torch.full_like(tgt[:, :1], bos_id), tgt], dim=1)
    tgt_out = torch.cat([tgt, torch.full_like(tgt[:, :1], pad_id)], dim=1)
    tgt_out[rows, lengths] = eos_id  # EOS right after the last real token
    return tgt_in, tgt_out


def _shift_wrong_way(tgt, pad_id, bos_id, eos_id):
    tgt_in, tgt_out = _solve_shift(tgt, pad_id, bos_id, eos_id)
    return tgt_out, tgt_in


def _eos_after_padding(tgt, pad_id, bos_id, eos_id):
    tgt_in = torch.cat([torch.full_like(tgt[:, :1], bos_id), tgt], dim=1)
    return tgt_in, torch.cat([tgt, torch.full_like(tgt[:, :1], eos_id)], dim=1)


@exercise(
    "05.shift",
    task="Teacher forcing: from `tgt` `[B, L]`, return `tgt_in` = [BOS] + tgt and `tgt_out` = tgt "
         "+ [EOS], each `[B, L + 1]`.",
    hint="tgt_in = [BOS] + tgt (torch.cat a column of bos_id in front); tgt_out = tgt + [EOS]: "
         "append a PAD column, then write eos_id at column `length` of each row, where "
         "length = (tgt != pad_id).sum(1)",
    solution=_solve_shift,
    explanation="`tgt_in` gets a BOS column in front; `tgt_out` gets a PAD column at the end and "
                "EOS at column `length` of each row, right after its last real token, so "
                "`tgt_out[:, t]` is the token that follows `tgt_in[:, t]`. The checker names the "
                "swapped pair, EOS after the PAD of the short rows, unshifted tensors (one column "
                "short) and `tgt_out` equal to `tgt_in`.",
    wrong_answers=[
        (_shift_wrong_way, "wrong direction"),
        (_eos_after_padding, "after the PAD"),
        (lambda tgt, p, b, e: (tgt, tgt), "shape"),
        (lambda tgt, p, b, e: (_solve_shift(tgt, p, b, e)[0],) * 2, "copy"),
    ],
)
def _check_shift(answer) -> str | None:
    generator = torch.Generator().manual_seed(50)
    for batch, length, pad_id, bos_id, eos_id in ((3, 5, 0, 1, 2), (4, 7, 0, 1, 2),
                                                  (2, 3, 3, 0, 1), (5, 6, 15, 2, 3)):
        tgt = _ragged_ids(generator, batch, length, pad_id)
        where = (f"for tgt {tgt.tolist()} (pad_id={pad_id}, bos_id={bos_id}, "
                 f"eos_id={eos_id})")
        got = answer(tgt.clone(), pad_id, bos_id, eos_id)
        if not isinstance(got, tuple | list) or len(got) != 2:
            return f"expected a pair (tgt_in, tgt_out), got {_describe(got)}"
        expected = _solve_shift(tgt, pad_id, bos_id, eos_id)
        for name, tensor, reference in zip(("tgt_in", "tgt_out"), got, expected, strict=True):
            if not isinstance(tensor, torch.Tensor) or tensor.shape != reference.shape:
                return (f"{name}: expected shape {list(reference.shape)} (one more column than "
                        f"tgt, for BOS / EOS), got {_describe(tensor)} {where}")
        tgt_in, tgt_out = got
        if torch.equal(tgt_in, expected[1]) and torch.equal(tgt_out, expected[0]):
            return ("the shift goes the wrong direction: tgt_in (what the decoder READS) "
                    "starts with BOS, tgt_out (what it must PREDICT) ends with EOS, so that "
                    f"tgt_out[:, t] is the token after tgt_in[:, t] {where}")
        if torch.equal(tgt_in, tgt_out):
            return ("tgt_in and tgt_out are the same tensor: the decoder would learn to copy "
                    "its input. tgt_out is tgt_in shifted one position to the left")
        if not torch.equal(tgt_in, expected[0]):
            return f"tgt_in: expected {expected[0].tolist()}, got {tgt_in.tolist()} {where}"
        if not torch.equal(tgt_out, expected[1]):
            last = tgt_out[:, -1]
            if bool((last == eos_id).all()) and bool((tgt == pad_id).any()):
                return ("tgt_out: EOS is in the last column of every row, after the PAD of "
                        "the short rows; it belongs right after each row's last real token "
                        f"(expected {expected[1].tolist()}) {where}")
            return f"tgt_out: expected {expected[1].tolist()}, got {tgt_out.tolist()} {where}"
    return None


# --- 05.masked_loss ------------------------------------------------------------------------

def _solve_masked_loss(logits: torch.Tensor, targets: torch.Tensor, pad_id: int):
    per_token = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=pad_id,
                                reduction="none")
    return per_token.sum() / (targets != pad_id).sum().clamp(min=1)


def _sequence_mean(logits, targets, pad_id):
    per_token = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=pad_id,
                                reduction="none")
    return (per_token.sum(1) / (targets != pad_id).sum(1).clamp(min=1)).mean()


def _divide_by_count(logits, targets, pad_id):
    real = targets != pad_id
    per_token = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return (per_token * real).sum() / real.sum()


@exercise(
    "05.masked_loss",
    task="Write the masked token-mean loss: `CrossEntropyLoss(ignore_index=pad_id)` on ordinary "
         "batches, and 0 with finite gradients on an all-PAD batch.",
    hint="per-token F.cross_entropy(logits.transpose(1, 2), targets, reduction='none', "
         "ignore_index=pad_id), summed, divided by the number of non-PAD targets clamped to "
         ">= 1 (an all-PAD batch has 0 of them)",
    solution=_solve_masked_loss,
    explanation="Summing the per-token losses (PAD targets contribute 0 through `ignore_index`) "
                "and dividing by the number of real targets gives every real token the same "
                "weight; clamping that number to >= 1 turns an all-PAD batch's 0 / 0 into 0 / 1 = "
                "0. The checker names the sequence mean, the unclamped mean (NaN on an all-PAD "
                "batch) and a loss that counts the PAD targets.",
    wrong_answers=[
        (_sequence_mean, "sequence mean"),
        (_divide_by_count, "all-PAD"),
        (lambda logits, targets, pad_id: F.cross_entropy(logits.transpose(1, 2), targets,
                                                         ignore_index=pad_id), "all-PAD"),
        (lambda logits, targets, pad_id: F.cross_entropy(logits.transpose(1, 2), targets),
         "PAD targets are counted"),
    ],
)
def _check_masked_loss(answer) -> str | None:
    generator = torch.Generator().manual_seed(51)
    for batch, length, vocab_size, pad_id in ((4, 6, 9, 0), (3, 8, 14, 0), (5, 4, 7, 2)):
        targets = _ragged_ids(generator, batch, length, pad_id, low=pad_id + 1, high=vocab_size)
        logits = torch.randn(batch, length, vocab_size, generator=generator)
        where = f"for a ragged batch of {batch} targets of lengths " \
                f"{(targets != pad_id).sum(1).tolist()} (pad_id={pad_id})"
        got = answer(logits.clone(), targets.clone(), pad_id)
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            return f"expected a scalar tensor, got {_describe(got)}"
        got = got.detach()
        expected = _solve_masked_loss(logits, targets, pad_id)
        if torch.allclose(got, expected, atol=1e-5):
            continue
        if torch.allclose(got, _sequence_mean(logits, targets, pad_id), atol=1e-5):
            return ("that is the sequence mean (the mean of each sequence's mean): every "
                    "sequence weighs the same, so a short sequence's tokens weigh more. The "
                    f"token mean gives every real token the same weight {where}")
        if torch.allclose(got, F.cross_entropy(logits.transpose(1, 2), targets), atol=1e-5):
            return f"PAD targets are counted: that is the mean over all B·T positions {where}"
        return f"expected loss {float(expected):.4g}, got {float(got):.4g} {where}"
    targets = torch.zeros(3, 5, dtype=torch.long)
    logits = torch.randn(3, 5, 6, generator=generator, requires_grad=True)
    got = answer(logits, targets, 0)
    value = float(got.detach())
    if value != 0.0:  # NaN != 0.0 too
        return (f"on an all-PAD batch (no real target) the loss must be 0, got {value}: "
                "0 real tokens makes the mean 0 / 0 = NaN, and one NaN loss ruins every "
                "weight. Clamp the count to >= 1")
    if got.requires_grad:
        got.backward()
        if logits.grad is not None and not torch.isfinite(logits.grad).all():
            return "on an all-PAD batch the loss is 0 but its gradient is NaN: clamp the count"
    return None


# --- 05.decoder_masks ----------------------------------------------------------------------

MASK_NAMES = ("tgt_mask", "tgt_key_padding_mask", "memory_key_padding_mask")


def _solve_decoder_masks(src: torch.Tensor, tgt_in: torch.Tensor, pad_id: int) -> dict:
    return {"tgt_mask": causal_mask(tgt_in.shape[1]), "tgt_key_padding_mask": tgt_in == pad_id,
            "memory_key_padding_mask": src == pad_id}


def _replaced(name: str, make):
    return lambda src, tgt_in, pad_id: {**_solve_decoder_masks(src, tgt_in, pad_id),
                                        name: make(src, tgt_in, pad_id)}


@exercise(
    "05.decoder_masks",
    task="Build the three masks `Seq2SeqTransformer.decode` takes, `tgt_mask`, "
         "`tgt_key_padding_mask` and `memory_key_padding_mask` (bool, True = blocked).",
    hint="three bool masks, True = blocked: tgt_mask = causal_mask(T) [T, T], "
         "tgt_key_padding_mask = (tgt_in == pad_id) [B, T], memory_key_padding_mask = "
         "(src == pad_id) [B, S]: the memory has one position per SOURCE token",
    solution=_solve_decoder_masks,
    explanation="`causal_mask(T)` hides each step's future, `tgt_in == pad_id` the target PAD "
                "keys and `src == pad_id` the memory's PAD keys: the memory has one position per "
                "source token. The checker names a target-side memory mask, a float `tgt_mask`, a "
                "transposed causal mask, inverted polarity and a missing mask.",
    wrong_answers=[
        (_replaced("memory_key_padding_mask", lambda s, t, p: t == p), "SOURCE"),
        (_replaced("tgt_mask", lambda s, t, p: causal_mask(t.shape[1]).float()), "bool"),
        (_replaced("tgt_mask", lambda s, t, p: causal_mask(t.shape[1]).T), "future"),
        (_replaced("tgt_key_padding_mask", lambda s, t, p: t != p), "polarity"),
        (lambda s, t, p: {k: v for k, v in _solve_decoder_masks(s, t, p).items()
                          if k != "tgt_mask"}, "missing"),
    ],
)
def _check_decoder_masks(answer) -> str | None:
    generator = torch.Generator().manual_seed(52)
    for batch, src_len, tgt_len, pad_id in ((2, 6, 4, 0), (3, 4, 7, 0), (4, 5, 5, 3)):
        src = _ragged_ids(generator, batch, src_len, pad_id)
        tgt_in = _ragged_ids(generator, batch, tgt_len, pad_id)
        where = f"for src [B, S] = [{batch}, {src_len}], tgt_in [B, T] = [{batch}, {tgt_len}]"
        masks = answer(src.clone(), tgt_in.clone(), pad_id)
        if not isinstance(masks, dict):
            return f"expected a dict of the three masks decode() takes, got {_describe(masks)}"
        missing = [name for name in MASK_NAMES if masks.get(name) is None]
        if missing:
            return f"{missing} missing: decode() needs all of {list(MASK_NAMES)}"
        for name, expected in _solve_decoder_masks(src, tgt_in, pad_id).items():
            got = masks[name]
            if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
                return (f"{name}: expected a bool mask (True = blocked), got {_describe(got)}: "
                        "mixing a float mask with bool padding masks makes PyTorch warn")
            if got.shape != expected.shape:
                side = " - the memory has one position per SOURCE token" \
                    if name == "memory_key_padding_mask" else ""
                return (f"{name}: expected shape {list(expected.shape)}, got "
                        f"{list(got.shape)}{side} {where}")
            if torch.equal(got, expected):
                continue
            if torch.equal(got, ~expected):
                return (f"{name}: inverted polarity: True must mean BLOCKED, as in "
                        f"nn.Transformer {where}")
            if name == "tgt_mask":
                return ("tgt_mask: step t must not see the future tokens tgt_in[t + 1:], so "
                        "block the cells ABOVE the diagonal (j > i), e.g. causal_mask(T)")
            return f"{name}: wrong cells, expected {expected.int().tolist()} {where}"
    return None


# --- 05.smoothed_targets -------------------------------------------------------------------

def _solve_smoothed_targets(targets: torch.Tensor, num_classes: int, epsilon: float):
    one_hot = F.one_hot(targets, num_classes).float()
    return (1.0 - epsilon) * one_hot + epsilon / num_classes


@exercise(
    "05.smoothed_targets",
    task="Build the label-smoothed target distributions `[N, num_classes]` whose cross-entropy "
         "equals `F.cross_entropy(logits, targets, label_smoothing=epsilon)`.",
    hint="(1 - epsilon) * F.one_hot(targets, num_classes).float() + epsilon / num_classes: "
         "PyTorch spreads epsilon over ALL classes, the right one included",
    solution=_solve_smoothed_targets,
    explanation="PyTorch mixes the one-hot target with the uniform distribution, `(1 - epsilon) * "
                "one_hot + epsilon / V`: every class gets epsilon / V and the right one 1 - "
                "epsilon + epsilon / V, so each row sums to 1. The checker names epsilon spread "
                "over the V - 1 wrong classes only, rows that do not sum to 1, and the unsmoothed "
                "one-hot target.",
    wrong_answers=[
        (lambda t, v, e: F.one_hot(t, v).float() * (1 - e) + e / (v - 1)
         * (1 - F.one_hot(t, v).float()), "epsilon / V"),
        (lambda t, v, e: F.one_hot(t, v).float() + e / v, "sum to 1"),
        (lambda t, v, e: F.one_hot(t, v).float(), "smooth"),
    ],
)
def _check_smoothed_targets(answer) -> str | None:
    generator = torch.Generator().manual_seed(53)
    for count, classes, epsilon in ((6, 14, 0.1), (4, 5, 0.3), (3, 9, 0.05)):
        targets = torch.randint(0, classes, (count,), generator=generator)
        where = f"for targets {targets.tolist()}, num_classes={classes}, epsilon={epsilon}"
        got = answer(targets.clone(), classes, epsilon)
        expected = _solve_smoothed_targets(targets, classes, epsilon)
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return f"expected a FloatTensor{list(expected.shape)}, got {_describe(got)} {where}"
        got = got.float()
        if torch.allclose(got, expected, atol=1e-6):
            continue
        if torch.allclose(got, F.one_hot(targets, classes).float()):
            return f"that is the one-hot target: nothing is smoothed {where}"
        if not torch.allclose(got.sum(-1), torch.ones(count), atol=1e-5):
            return (f"each row must sum to 1 (a distribution), yours sum to "
                    f"{[round(x, 3) for x in got.sum(-1).tolist()]} {where}")
        logits = torch.randn(count, classes, generator=generator)
        ours = -(got * logits.log_softmax(-1)).sum(-1)
        theirs = F.cross_entropy(logits, targets, reduction="none", label_smoothing=epsilon)
        return (f"cross-entropy against your targets differs from "
                f"F.cross_entropy(label_smoothing={epsilon}) by "
                f"{abs(ours.mean() - theirs.mean()):.2g} (yours {ours.mean():.4g}): PyTorch "
                f"puts epsilon / V on EVERY class and 1 - epsilon + epsilon / V on the right "
                f"one {where}")
    return None
