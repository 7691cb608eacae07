"""Exercises of lesson 00: moving a mask between conventions.

Each answer is a function; the checker calls it on several random inputs and compares
with the expected mask, naming the usual mistakes (inverted polarity, a float 0/1 mask,
a shape that broadcasts wrongly).
"""

from __future__ import annotations

import torch

from course_lib.exercises.core import exercise

SHAPES = ((2, 5), (3, 7), (4, 4), (1, 6), (5, 3))


def _random_hf_masks() -> list[torch.Tensor]:
    """Hugging Face attention masks LongTensor[B, S] (1 = keep, 0 = pad), right-padded.

    Every batch holds at least one PAD and one real token, so polarity mistakes show.
    """
    generator = torch.Generator().manual_seed(0)
    batches = []
    for batch, length in SHAPES:
        lengths = torch.randint(1, length + 1, (batch,), generator=generator)
        lengths[0] = length - 1  # at least one PAD; randint(1, ...) keeps a real token per row
        positions = torch.arange(length)
        batches.append((positions[None, :] < lengths[:, None]).long())
    return batches


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:100]


def _is_float_01(value: torch.Tensor) -> bool:
    return value.dtype.is_floating_point and bool(((value == 0) | (value == 1)).all())


FLOAT_01 = ("wrong dtype: a float 0/1 mask is ADDED to the scores, so it blocks nothing "
            "(1.0 only nudges a score up).")


# --- 00.from_hf ---------------------------------------------------------------------------

def _solve_from_hf(attention_mask: torch.Tensor) -> torch.Tensor:
    """Hugging Face attention_mask LongTensor[B, S] (1 = keep) -> BoolTensor[B, S], True at PAD."""
    return attention_mask == 0


@exercise(
    "00.from_hf",
    task="Convert a Hugging Face `attention_mask` (1 = keep, 0 = pad) into the course padding "
         "mask, a `BoolTensor[B, S]` True at PAD.",
    hint="a Hugging Face attention_mask is 1 at tokens to KEEP and 0 at PAD; the course mask "
         "is a bool tensor, True at PAD. Compare with 0.",
    solution=_solve_from_hf,
    explanation="`attention_mask == 0` is True exactly at the PAD positions, and it is already "
                "bool and `[B, S]`: the course's polarity, dtype and shape. The checker tries "
                "five right-padded batches, each with a PAD and a real token, so it tells an "
                "inverted mask (`.bool()`), a float 0/1 mask and a reshaped mask apart.",
    wrong_answers=[
        (lambda attention_mask: attention_mask.bool(), "inverted polarity"),
        (lambda attention_mask: (attention_mask == 0).float(), "wrong dtype"),
        (lambda attention_mask: (attention_mask == 0)[:, None, None, :], "wrong shape"),
    ],
)
def _check_from_hf(answer) -> str | None:
    for attention_mask in _random_hf_masks():
        expected = attention_mask == 0
        got = answer(attention_mask.clone())
        if not isinstance(got, torch.Tensor):
            return f"expected a tensor, got {_describe(got)}"
        if got.shape != expected.shape:
            return (f"wrong shape: expected [B, S] = {list(expected.shape)} like the input, "
                    f"got {list(got.shape)}")
        if got.dtype != torch.bool:
            prefix = FLOAT_01 if _is_float_01(got) else f"wrong dtype: got {got.dtype}."
            return f"{prefix} Return a bool tensor, True at PAD."
        if torch.equal(got, ~expected):
            return ("inverted polarity: your mask is True at the tokens to KEEP; the course "
                    "convention is True at PAD (= blocked)")
        if not torch.equal(got, expected):
            return f"wrong values for attention_mask={attention_mask.tolist()}: got {got.tolist()}"
    return None


# --- 00.causal_mask -----------------------------------------------------------------------

def _solve_causal_mask(size: int) -> torch.Tensor:
    """BoolTensor[size, size], True above the diagonal (query i may not see keys j > i)."""
    return torch.ones(size, size, dtype=torch.bool).triu(diagonal=1)


@exercise(
    "00.causal_mask",
    task="Build the causal mask `BoolTensor[size, size]`, True where query i may not see key j > "
         "i.",
    hint="row i is query i, column j is key j; block (True) every j > i. "
         "torch.ones(size, size, dtype=torch.bool).triu(diagonal=...) does it in one line.",
    solution=_solve_causal_mask,
    explanation="`triu(diagonal=1)` keeps the ones strictly above the diagonal, the columns j > i "
                "of row i (the future keys), while the diagonal stays False: a token may attend "
                "to itself. Sizes 1 to 7 are tried; the checker names an inverted mask "
                "(`tril()`), a blocked diagonal (`triu()`), a transposed mask and a float mask.",
    wrong_answers=[
        (lambda size: torch.ones(size, size, dtype=torch.bool).tril(), "inverted polarity"),
        (lambda size: torch.ones(size, size).triu(diagonal=1), "wrong dtype"),
        (lambda size: torch.ones(size, size, dtype=torch.bool).triu(), "diagonal"),
        (lambda size: torch.ones(size, size, dtype=torch.bool).tril(diagonal=-1), "transposed"),
    ],
)
def _check_causal_mask(answer) -> str | None:
    for size in (4, 2, 7, 5, 1):
        expected = torch.ones(size, size, dtype=torch.bool).triu(diagonal=1)
        got = answer(size)
        if not isinstance(got, torch.Tensor):
            return f"expected a tensor, got {_describe(got)}"
        if got.shape != expected.shape:
            return f"wrong shape: expected [{size}, {size}] for size={size}, got {list(got.shape)}"
        if got.dtype != torch.bool:
            prefix = FLOAT_01 if _is_float_01(got) else f"wrong dtype: got {got.dtype}."
            return f"{prefix} Return a bool tensor, True = blocked."
        if torch.equal(got, expected):
            continue
        if torch.equal(got, ~expected):
            return ("inverted polarity: True must mark the BLOCKED (future) keys, above the "
                    "diagonal; yours marks the allowed ones")
        if torch.equal(got, expected | torch.eye(size, dtype=torch.bool)):
            return "the diagonal is blocked: query i must be allowed to attend to key i (itself)"
        if torch.equal(got, expected.T):
            return ("transposed: rows are queries and columns are keys, so the blocked "
                    "(future) keys of query i are the columns j > i, above the diagonal")
        return f"wrong values for size={size}: got {got.int().tolist()}"
    return None


# --- 00.sdpa_padding_mask -----------------------------------------------------------------

def _solve_sdpa_padding_mask(key_padding_mask: torch.Tensor) -> torch.Tensor:
    """BoolTensor[B, S] True at PAD -> SDPA attn_mask BoolTensor[B, 1, 1, S], True = allowed."""
    return ~key_padding_mask[:, None, None, :]


@exercise(
    "00.sdpa_padding_mask",
    task="Turn the course padding mask `[B, S]` into an `attn_mask` for "
         "`F.scaled_dot_product_attention`: bool, True = allowed, shape `[B, 1, 1, S]`.",
    hint="two changes: SDPA reads True as ALLOWED (flip with ~), and its attn_mask must "
         "broadcast to [B, H, L, S] (add the head and query dimensions with [:, None, None, :]).",
    solution=_solve_sdpa_padding_mask,
    explanation="`~` flips the convention (SDPA allows where True) and `[:, None, None, :]` adds "
                "the head and query dimensions so the mask broadcasts over `[B, H, L, S]`. The "
                "checker names a `[B, S]` mask (SDPA reads it as `[L, S]`, one row per query), "
                "the unflipped mask and a float 0/1 mask, which SDPA adds to the scores and so "
                "blocks nothing.",
    wrong_answers=[
        (lambda key_padding_mask: ~key_padding_mask, "as [L, S]"),
        (lambda key_padding_mask: key_padding_mask[:, None, None, :], "inverted polarity"),
        (lambda key_padding_mask: (~key_padding_mask)[:, None, None, :].float(), "blocks nothing"),
    ],
)
def _check_sdpa_padding_mask(answer) -> str | None:
    for attention_mask in _random_hf_masks():
        key_padding_mask = attention_mask == 0
        expected = ~key_padding_mask[:, None, None, :]
        got = answer(key_padding_mask.clone())
        if not isinstance(got, torch.Tensor):
            return f"expected a tensor, got {_describe(got)}"
        if got.shape == key_padding_mask.shape:
            return (f"wrong shape {list(got.shape)}: SDPA broadcasts a 2-D mask as [L, S] — "
                    "one row per QUERY, the same for every sequence — not as [B, S]. Use shape "
                    f"[B, 1, 1, S] = {list(expected.shape)}.")
        if got.shape != expected.shape:
            return (f"wrong shape: expected [B, 1, 1, S] = {list(expected.shape)}, "
                    f"got {list(got.shape)}")
        if got.dtype != torch.bool:
            if _is_float_01(got):
                return f"{FLOAT_01} Return a bool tensor, True = allowed."
            return (f"wrong dtype: got {got.dtype}. An additive float mask works in SDPA too, "
                    "but this exercise asks for SDPA's bool convention (True = allowed).")
        if torch.equal(got, ~expected):
            return ("inverted polarity: SDPA reads True as ALLOWED, the course mask has True at "
                    "PAD; flip it with ~")
        if not torch.equal(got, expected):
            return (f"wrong values for key_padding_mask={key_padding_mask.int().tolist()}: "
                    f"got {got[:, 0, 0].int().tolist()}")
    return None


# --- 00.additive_from_hf ------------------------------------------------------------------

def _solve_additive_from_hf(attention_mask: torch.Tensor) -> torch.Tensor:
    """Hugging Face attention_mask [B, S] -> FloatTensor[B, 1, 1, S]: 0 keep, -inf at PAD."""
    additive = torch.zeros(attention_mask.shape).masked_fill(attention_mask == 0, float("-inf"))
    return additive[:, None, None, :]


@exercise(
    "00.additive_from_hf",
    task="Build the additive float mask `[B, 1, 1, S]` from a Hugging Face `attention_mask`: 0.0 "
         "at tokens to keep, `-inf` at PAD.",
    hint="start from torch.zeros(attention_mask.shape), put float('-inf') where "
         "attention_mask == 0 (masked_fill), then reshape to [B, 1, 1, S].",
    solution=_solve_additive_from_hf,
    explanation="`masked_fill(attention_mask == 0, -inf)` on zeros puts -inf exactly at PAD and "
                "`[:, None, None, :]` broadcasts it over heads and queries; added to the scores, "
                "-inf gives those keys a weight of exactly 0. The checker names a float 0/1 mask "
                "(added, it blocks nothing), inverted polarity, a large finite value such as -1e9 "
                "instead of -inf, and the `[B, S]` shape.",
    wrong_answers=[
        (lambda attention_mask: attention_mask.float()[:, None, None, :], "blocks nothing"),
        (lambda attention_mask: torch.zeros(attention_mask.shape).masked_fill(
            attention_mask == 1, float("-inf"))[:, None, None, :], "inverted polarity"),
        (lambda attention_mask: (attention_mask[:, None, None, :] - 1.0) * 1e9, "-inf"),
        (lambda attention_mask: torch.zeros(attention_mask.shape).masked_fill(
            attention_mask == 0, float("-inf")), "as [L, S]"),
    ],
)
def _check_additive_from_hf(answer) -> str | None:
    for attention_mask in _random_hf_masks():
        keep = attention_mask[:, None, None, :] == 1
        expected_shape = [attention_mask.shape[0], 1, 1, attention_mask.shape[1]]
        got = answer(attention_mask.clone())
        if not isinstance(got, torch.Tensor):
            return f"expected a tensor, got {_describe(got)}"
        if got.shape == attention_mask.shape:
            return (f"wrong shape {list(got.shape)}: a 2-D mask broadcasts as [L, S] — one row "
                    f"per QUERY — not as [B, S]. Use shape [B, 1, 1, S] = {expected_shape}.")
        if list(got.shape) != expected_shape:
            return f"wrong shape: expected [B, 1, 1, S] = {expected_shape}, got {list(got.shape)}"
        if not got.dtype.is_floating_point:
            return f"wrong dtype: got {got.dtype}; an additive mask is a float tensor (0 / -inf)"
        if _is_float_01(got):
            return FLOAT_01 + " Use 0 at tokens to keep and float('-inf') at PAD."
        if bool((got[keep] != 0).any()) and bool((got[~keep] == 0).all()):
            return ("inverted polarity: -inf must go where attention_mask == 0 (PAD), "
                    "0 where it is 1")
        if bool((got[keep] == 0).all()) and bool(torch.isfinite(got[~keep]).any()):
            return (f"PAD entries must be -inf, got {got[~keep].min().item():g}: a large finite "
                    "value spreads a fully padded row uniformly over the PADs and overflows "
                    "float16 (lesson 02)")
        if not (bool((got[keep] == 0).all()) and bool(torch.isneginf(got[~keep]).all())):
            return (f"wrong values for attention_mask={attention_mask.tolist()}: "
                    f"got {got[:, 0, 0].tolist()}")
    return None
