"""Exercises of lesson 09: position ids from a padding mask, the decoder-only mask, labels on
the answer only, and the last real token of each row.

Each checker runs the answer on random padded batches (both padding sides, rows of every
length) and names the usual mistakes: ``arange`` positions, a cumsum off by one, SDPA's
polarity, a mask without its causal or its padding part, padding applied to the queries,
labels that keep PAD or the prompt or are shifted, and ``logits[:, -1]`` under right padding.
"""

from __future__ import annotations

import torch

from course_lib.causal_lm import (
    IGNORE_INDEX,
    decoder_mask,
    last_real_index,
    position_ids_from_padding,
)
from course_lib.exercises.core import exercise, tensor_problem
from course_lib.masks import causal_mask


def _padding_cases(seed: int = 0):
    """Random [B, L] padding masks (True at PAD), left- and right-padded, and a no-PAD one."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for side in ("left", "right"):
        lengths = torch.randint(1, 9, (6,), generator=generator)
        lengths[0] = 8
        positions = torch.arange(8)[None, :]
        real = positions >= 8 - lengths[:, None] if side == "left" else positions < lengths[:, None]
        cases.append(~real)
    cases.append(torch.zeros(3, 5, dtype=torch.bool))
    return cases


# --- 09.position_ids -----------------------------------------------------------------------

def _arange(key_padding_mask):
    return torch.arange(key_padding_mask.shape[1]).expand_as(key_padding_mask).clone()


@exercise(
    "09.position_ids",
    task="Return the position ids of a padded batch: each row's real tokens numbered 0, 1, 2, "
         "... from its first real token (`key_padding_mask` is True at PAD).",
    hint="count the real tokens so far: (~key_padding_mask).long().cumsum(dim=1), minus one; "
         "PAD positions may get any id (0 is usual)",
    solution=position_ids_from_padding,
    explanation="`(~key_padding_mask).long().cumsum(1) - 1` counts the real tokens up to each "
                "position, so the first real token of every row gets 0 whatever padding comes "
                "before it; this is Hugging Face's `attention_mask.cumsum(-1) - 1`. The checker "
                "compares the real positions only, on left- and right-padded batches, and names "
                "`arange` positions (right only without left padding) and the cumsum without "
                "the `- 1`.",
    wrong_answers=[
        (_arange, "shifted by the left padding"),
        (lambda mask: (~mask).long().cumsum(dim=1), "minus one"),
    ],
)
def _check_position_ids(answer) -> str | None:
    for padding in _padding_cases():
        got = answer(padding.clone())
        problem = tensor_problem(got, padding.shape, lambda d: not d.is_floating_point
                                  and d != torch.bool, "integer position ids")
        if problem:
            return problem
        expected = position_ids_from_padding(padding)
        real = ~padding
        if torch.equal(got[real], expected[real]):
            continue
        if torch.equal(got[real], (expected + 1)[real]):
            return "each row's first real token gets 1: subtract one after the cumsum (minus one)"
        if torch.equal(got, _arange(padding)):
            return ("your positions are 0..L-1 in every row: a left-padded row's real tokens are "
                    "then shifted by the left padding, e.g. its first real token gets the "
                    "position of the PAD count, not 0")
        return (f"for the padding mask\n{padding.int()}\nexpected at the real tokens "
                f"{expected[real].tolist()}, got {got[real].tolist()}")
    return None


# --- 09.decoder_mask -----------------------------------------------------------------------

def _solve_decoder_mask(key_padding_mask):
    length = key_padding_mask.shape[1]
    return causal_mask(length)[None] | key_padding_mask[:, None, :]


@exercise(
    "09.decoder_mask",
    task="Build the one mask of a decoder-only model: `BoolTensor[B, L, L]`, True = blocked, "
         "where a query may not see a later key nor a PAD key.",
    hint="the causal mask causal_mask(L) broadcast over the batch, OR the padding mask as KEYS: "
         "key_padding_mask[:, None, :]",
    solution=_solve_decoder_mask,
    explanation="`causal_mask(L)[None] | key_padding_mask[:, None, :]` blocks the future "
                "(above the diagonal) and every PAD key, for each query of each row; this is "
                "`course_lib.causal_lm.decoder_mask` without its head dimension. The checker "
                "names SDPA's polarity (True = allowed), a missing causal or padding part, and "
                "padding applied to the queries (rows) instead of the keys (columns).",
    wrong_answers=[
        (lambda m: ~_solve_decoder_mask(m), "True = allowed"),
        (lambda m: m[:, None, :].expand(-1, m.shape[1], -1).clone(), "causal"),
        (lambda m: causal_mask(m.shape[1])[None].expand(m.shape[0], -1, -1).clone(), "PAD keys"),
        (lambda m: causal_mask(m.shape[1])[None] | m[:, :, None], "columns"),
    ],
)
def _check_decoder_mask(answer) -> str | None:
    for padding in _padding_cases(1):
        batch, length = padding.shape
        got = answer(padding.clone())
        problem = tensor_problem(got, (batch, length, length), lambda d: d == torch.bool,
                                  "a bool mask, True = blocked")
        if problem:
            return problem
        expected = decoder_mask(padding)[:, 0]
        if torch.equal(got, expected):
            continue
        if torch.equal(got, ~expected):
            return ("your mask is inverted: True = allowed is SDPA's convention; here True = "
                    "blocked (nn.MultiheadAttention's)")
        causal = causal_mask(length)
        if torch.equal(got, padding[:, None, :].expand(-1, length, -1)):
            return "no causal part: each query must not see the keys after it (causal_mask(L))"
        if torch.equal(got, causal[None].expand(batch, -1, -1)) and padding.any():
            return "no padding part: the PAD keys must be blocked for every query"
        if torch.equal(got, causal[None] | padding[:, :, None]):
            return ("the padding blocks the PAD queries (rows): it must block the PAD keys "
                    "(columns), key_padding_mask[:, None, :]")
        return f"for the padding mask\n{padding.int()}\nexpected\n{expected.int()}"
    return None


# --- 09.answer_labels ----------------------------------------------------------------------

def _solve_answer_labels(ids, key_padding_mask, prompt_lengths):
    positions = torch.arange(ids.shape[1])[None, :]
    answer = (positions >= prompt_lengths[:, None]) & ~key_padding_mask
    return ids.masked_fill(~answer, IGNORE_INDEX)


def _shift_left(labels):
    return torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE_INDEX)], dim=1)


def _label_case(seed):
    generator = torch.Generator().manual_seed(seed)
    prompt_lengths = torch.randint(2, 6, (5,), generator=generator)
    answer_lengths = torch.randint(1, 5, (5,), generator=generator)
    total = prompt_lengths + answer_lengths
    width = int(total.max())
    ids = torch.randint(4, 20, (5, width), generator=generator)
    padding = torch.arange(width)[None, :] >= total[:, None]
    return ids.masked_fill(padding, 0), padding, prompt_lengths


@exercise(
    "09.answer_labels",
    task="Return the labels of a right-padded prompt + answer batch: the ids on the answer's "
         "tokens, -100 on the prompt and on PAD.",
    hint="a position is trained when it is at or after the row's prompt length and is not PAD; "
         "ids.masked_fill(~trained, -100)",
    solution=_solve_answer_labels,
    explanation="The labels are aligned with the ids (Hugging Face's convention; the loss shifts "
                "them), so the answer's tokens keep their ids and everything else gets -100, "
                "`F.cross_entropy`'s ignore_index: the prompt (not the task) and PAD (not "
                "data). The checker names labels that keep PAD, keep the prompt, or are shifted "
                "by one.",
    wrong_answers=[
        (lambda ids, m, n: ids.masked_fill(torch.arange(ids.shape[1])[None] < n[:, None],
                                           IGNORE_INDEX), "PAD"),
        (lambda ids, m, n: ids.masked_fill(m, IGNORE_INDEX), "prompt"),
        (lambda ids, m, n: _shift_left(_solve_answer_labels(ids, m, n)), "shifted"),
    ],
)
def _check_answer_labels(answer) -> str | None:
    for seed in range(3):
        ids, padding, prompt_lengths = _label_case(seed)
        got = answer(ids.clone(), padding.clone(), prompt_lengths.clone())
        problem = tensor_problem(got, ids.shape, lambda d: not d.is_floating_point
                                  and d != torch.bool, "integer labels")
        if problem:
            return problem
        expected = _solve_answer_labels(ids, padding, prompt_lengths)
        if torch.equal(got, expected):
            continue
        if torch.equal(got, _shift_left(expected)):
            return ("your labels are shifted by one position: keep them aligned with the ids "
                    "(labels[t] is the token AT t), the loss does the shift")
        trained = got != IGNORE_INDEX
        if (trained & padding).any():
            return "your labels train on PAD: set them to -100 where key_padding_mask is True"
        prompt = torch.arange(ids.shape[1])[None, :] < prompt_lengths[:, None]
        if (trained & prompt).any():
            return "your labels train on the prompt: only the answer's tokens are targets"
        return f"expected\n{expected}\ngot\n{got}"
    return None


# --- 09.last_token -------------------------------------------------------------------------

@exercise(
    "09.last_token",
    task="Return `LongTensor[B]`: the position of each row's last real token, for either "
         "padding side.",
    hint="the largest position whose mask entry is False: fill the PAD positions of "
         "torch.arange(L) with -1 and take the max of each row",
    solution=last_real_index,
    explanation="With left padding the last real token is always at `L - 1`; with right padding "
                "it is at `length - 1`, so `logits[:, -1]` reads a PAD position for every "
                "shorter row. `arange(L).masked_fill(mask, -1).amax(1)` works for both. The "
                "checker names `L - 1` everywhere and the count of real tokens (one too far).",
    wrong_answers=[
        (lambda m: torch.full((m.shape[0],), m.shape[1] - 1), "a PAD position"),
        (lambda m: (~m).sum(dim=1), "one past"),
    ],
)
def _check_last_token(answer) -> str | None:
    for padding in _padding_cases(2):
        got = answer(padding.clone())
        problem = tensor_problem(got, padding.shape[:1], lambda d: not d.is_floating_point
                                  and d != torch.bool, "integer positions")
        if problem:
            return problem
        expected = last_real_index(padding)
        if torch.equal(got, expected):
            continue
        if torch.all(got == padding.shape[1] - 1):
            return ("L - 1 is the last real token only with left padding: with right padding "
                    "it is a PAD position for every shorter row")
        if torch.equal(got, (~padding).sum(dim=1)):
            return ("the number of real tokens is not a position: with right padding it is one "
                    "past the last real token (positions start at 0), and with left padding the "
                    "real tokens end at L - 1 whatever their number")
        return f"for the padding mask\n{padding.int()}\nexpected {expected.tolist()}, got " \
               f"{got.tolist()}"
    return None
