"""Exercises of lesson 02: broadcasting a padding mask, a NaN-free masked softmax, a fill
value that fits the dtype, and a mask in the ``F.scaled_dot_product_attention`` convention.

Every checker runs the answer on several shapes. Some have B == H == L == S: there a wrongly
aligned mask broadcasts without an error, so only the cells it blocks can tell it apart.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.attention import scaled_dot_product_attention
from course_lib.exercises.core import exercise
from course_lib.masks import padding_mask

# (B, H, L, S) of attention scores [B, H, L, S]; the first has every size equal.
SHAPES = ((4, 4, 4, 4), (2, 3, 5, 5), (3, 2, 3, 3), (5, 1, 2, 5), (3, 3, 3, 3))


def _random_pad_mask(batch: int, length: int, generator: torch.Generator, *,
                     min_real: int) -> torch.Tensor:
    """BoolTensor[batch, length], True at PAD, right-padded; lengths differ between rows."""
    lengths = torch.randint(min_real, length + 1, (batch,), generator=generator)
    lengths[0], lengths[-1] = length, min_real  # always one unpadded and one short sequence
    return torch.arange(length)[None, :] >= lengths[:, None]


def _where(batch: int, heads: int, lq: int, lk: int) -> str:
    return f"for key_padding_mask [B, S] = [{batch}, {lk}] and scores [B, H, L, S] = " \
           f"[{batch}, {heads}, {lq}, {lk}]"


def _reference_weights(scores: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
    blocked = key_padding_mask[:, None, None, :]
    weights = scores.masked_fill(blocked, float("-inf")).softmax(dim=-1)
    # A sequence with no real key: every score is -inf and softmax is 0/0 = NaN; give it zeros.
    return weights.masked_fill(blocked.all(dim=-1, keepdim=True), 0.0)


def _sdpa_pad_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    return (ids != pad_id)[:, None, None, :]  # SDPA: True = ALLOWED; [B, 1, 1, S]


# --- 02.broadcast_pad_mask -------------------------------------------------------------------


@exercise(
    "02.broadcast_pad_mask",
    task="Reshape a padding mask `[B, S]` so that it broadcasts to attention scores `[B, H, L, "
         "S]`.",
    hint="insert the head and query dimensions with None: [B, S] -> [B, 1, 1, S]",
    solution=lambda key_padding_mask: key_padding_mask[:, None, None, :],
    explanation="`[:, None, None, :]` gives `[B, 1, 1, S]`: broadcasting aligns from the right, "
                "so S meets the keys and B the batch, and every head and query row of sequence b "
                "gets b's PAD keys. The shapes include B == H == L == S, where a `[B, S]` mask "
                "(read as `[L, S]`) or a `[B, 1, S]` mask (the batch on the heads) runs without "
                "an error; the checker names both, an inverted mask and a float one.",
    wrong_answers=[
        (lambda key_padding_mask: key_padding_mask, "[L, S]"),
        (lambda key_padding_mask: key_padding_mask[:, None, :], "HEAD dimension"),
        (lambda key_padding_mask: ~key_padding_mask[:, None, None, :], "blocks the real tokens"),
        (lambda key_padding_mask: key_padding_mask.float()[:, None, None, :], "BoolTensor"),
    ],
)
def _check_broadcast_pad_mask(answer) -> str | None:
    generator = torch.Generator().manual_seed(2)
    for batch, heads, lq, lk in SHAPES:
        key_padding_mask = _random_pad_mask(batch, lk, generator, min_real=1)
        mask = answer(key_padding_mask.clone())
        where = _where(batch, heads, lq, lk)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
            return f"expected a BoolTensor (True = blocked), got {got}"
        try:
            blocked = mask.expand(batch, heads, lq, lk)
        except RuntimeError:
            return (f"your mask of shape {list(mask.shape)} does not broadcast to the scores "
                    f"{where}; a [B, 1, 1, S] mask does")
        expected = key_padding_mask[:, None, None, :].expand(batch, heads, lq, lk)
        if torch.equal(blocked, expected):
            continue
        if torch.equal(blocked, ~expected):
            return ("True must mean BLOCKED (masked_fill fills where True): your mask blocks the "
                    "real tokens and keeps the PAD keys")
        if mask.dim() == 2:
            return (f"a 2-D [B, S] mask lines up with the last two dims of the scores, [L, S]: "
                    f"query row i of every sequence gets sequence i's pads {where}. It ran "
                    "without an error only because B == L")
        if mask.dim() == 3:
            return (f"a 3-D [B, 1, S] mask lines up with [H, L, S]: the batch lands on the HEAD "
                    f"dimension, so head h gets sequence h's pads {where}")
        return (f"your mask blocks the wrong cells {where}: score [b, h, l, s] must be blocked "
                "exactly when key_padding_mask[b, s] is True")
    return None


# --- 02.masked_softmax -----------------------------------------------------------------------


@exercise(
    "02.masked_softmax",
    task="Masked softmax of scores `[B, H, L, S]` with a padding mask `[B, S]`: no weight on PAD "
         "keys, and all-zero rows (not NaN, not uniform) for a sequence with no real key.",
    hint="masked_fill the broadcast mask with float('-inf'), softmax over the keys, then give "
         "rows whose keys are ALL blocked zero weights with a second masked_fill",
    solution=_reference_weights,
    explanation="Filling the broadcast mask with -inf before the softmax gives PAD keys a weight "
                "of exactly 0 and leaves rows summing to 1; a row of only -inf is 0/0 = NaN, so a "
                "second `masked_fill` with `blocked.all(dim=-1, keepdim=True)` sets those rows to "
                "0. The checker names NaN rows, uniform rows from a finite fill such as -1e9, a "
                "`[B, S]` mask that lines up with `[L, S]`, and changing `scores` in place.",
    wrong_answers=[
        (lambda scores, kpm: scores.masked_fill(kpm[:, None, None, :], float("-inf"))
         .softmax(-1), "NaN"),
        (lambda scores, kpm: scores.masked_fill(kpm[:, None, None, :], -1e9).softmax(-1),
         "uniform"),
        (lambda scores, kpm: torch.nan_to_num(scores.masked_fill(kpm, float("-inf"))
                                              .softmax(-1)), "[B, 1, 1, S]"),
        (lambda scores, kpm: _reference_weights(scores.masked_fill_(kpm[:, None, None, :], -1e9),
                                                kpm), "in place"),
    ],
)
def _check_masked_softmax(answer) -> str | None:
    generator = torch.Generator().manual_seed(3)
    for batch, heads, lq, lk in SHAPES:
        key_padding_mask = _random_pad_mask(batch, lk, generator, min_real=1)
        key_padding_mask[-1] = True  # the last sequence has no real token at all
        scores = 2.0 * torch.randn(batch, heads, lq, lk, generator=generator)
        original = scores.clone()
        weights = answer(scores, key_padding_mask.clone())
        where = _where(batch, heads, lq, lk)
        if not torch.equal(scores, original):
            return ("your function changed `scores` in place (masked_fill_ with an underscore "
                    "writes into the caller's tensor); use masked_fill, which returns a copy")
        if not isinstance(weights, torch.Tensor) or weights.shape != scores.shape:
            got = list(weights.shape) if isinstance(weights, torch.Tensor) else weights
            return f"expected weights shaped like the scores {list(scores.shape)}, got {got}"
        expected = _reference_weights(scores, key_padding_mask)
        has_key = ~key_padding_mask.all(dim=-1)  # sequences with at least one real key
        if not torch.allclose(weights[has_key], expected[has_key], atol=1e-6):
            on_pad = weights[has_key].masked_fill(~key_padding_mask[has_key, None, None, :], 0.0)
            if bool(on_pad.isnan().any()) or float(on_pad.abs().sum()) > 1e-6:
                return (f"PAD keys get weight (or NaN) in rows that have real keys {where}: "
                        "broadcast the mask as [B, 1, 1, S] (a [B, S] mask lines up with [L, S] "
                        "and runs silently when B == L) and fill where it is True")
            return (f"the weights over the real keys differ from softmax(scores) restricted to "
                    f"them {where}: mask, then softmax over dim=-1, without rescaling the scores")
        empty = weights[~has_key]
        if bool(empty.isnan().any()):
            return ("NaN in the rows of the sequence whose keys are ALL PAD: softmax over a row "
                    "of -inf is 0/0. Set such rows to zero (e.g. a second masked_fill with "
                    "mask.all(dim=-1, keepdim=True))")
        if torch.allclose(empty, torch.full_like(empty, 1.0 / lk)):
            return (f"the sequence whose keys are ALL PAD gets uniform weights 1/{lk}: a finite "
                    "fill value like -1e9 makes every score of the row equal, so softmax "
                    "silently averages the PAD keys. Its weights must be zero")
        if float(empty.abs().max()) > 0.0:
            return "a sequence whose keys are ALL PAD must get zero weights, not " \
                   f"{float(empty.abs().max()):.3f}"
    return None


# --- 02.fill_value ---------------------------------------------------------------------------

FILL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@exercise(
    "02.fill_value",
    task="Return a fill value that is safe for `scores.masked_fill(mask, value)` with float16, "
         "bfloat16, float32 and float64 scores.",
    hint="the most negative FINITE number of the dtype: torch.finfo(dtype).min",
    solution=lambda dtype: torch.finfo(dtype).min,
    explanation="`torch.finfo(dtype).min` is the most negative finite number of the dtype: it "
                "fits (no overflow error in float16), `exp(min - max score)` underflows to 0 so "
                "blocked keys get no weight, and a row with every key blocked stays finite "
                "instead of NaN. The checker names -1e9 (outside float16's range), -inf (NaN on "
                "the all-PAD row), `finfo(dtype).tiny` (positive) and -1.0 (blocked keys still "
                "get weight).",
    wrong_answers=[
        (lambda dtype: -1e9, "outside the range"),
        (lambda dtype: float("-inf"), "NaN"),
        (lambda dtype: torch.finfo(dtype).tiny, "POSITIVE"),
        (lambda dtype: -1.0, "still get weight"),
    ],
)
def _check_fill_value(answer) -> str | None:
    generator = torch.Generator().manual_seed(4)
    key_padding_mask = _random_pad_mask(4, 6, generator, min_real=0)  # the last row: all PAD
    blocked = key_padding_mask[:, None, :]  # scores [B, L, S]
    for dtype in FILL_DTYPES:
        value = answer(dtype)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number for {dtype}, got {type(value).__name__} {value!r:.60}"
        if math.isnan(value):
            return f"NaN as a fill value makes every row NaN ({dtype})"
        if value == float("-inf"):
            return (f"-inf works for rows with a real key, but the all-PAD row becomes NaN "
                    f"(softmax of all -inf is 0/0) for {dtype}; pick the most negative FINITE "
                    "value of the dtype")
        if value > 0:
            return (f"{value:.4g} is positive, so blocked keys get MORE weight; finfo(dtype).tiny "
                    "and .eps are the smallest POSITIVE numbers, not the most negative one")
        scores = (3.0 * torch.randn(4, 6, 6, generator=generator)).to(dtype)
        try:
            weights = scores.masked_fill(blocked, value).softmax(dim=-1)
        except RuntimeError as error:
            return (f"scores.masked_fill(mask, {value:.4g}) on {dtype} scores raises "
                    f"RuntimeError: {error}. {value:.4g} is outside the range of {dtype}, whose "
                    f"most negative finite value is {torch.finfo(dtype).min:.4g}")
        if bool(weights.isnan().any()):
            return f"the fill value {value:.4g} gives NaN weights for {dtype}"
        leaked = weights[:-1].float().masked_fill(~blocked[:-1], 0.0).sum(dim=-1).max()
        if float(leaked) > 1e-6:
            return (f"with the fill value {value:.4g}, blocked keys still get weight "
                    f"{float(leaked):.3f} ({dtype}): exp(fill - max score) must be 0")
    return None


# --- 02.sdpa_pad_mask ------------------------------------------------------------------------


@exercise(
    "02.sdpa_pad_mask",
    task="From token `ids` `[B, S]` and `pad_id`, build the `attn_mask` for "
         "`F.scaled_dot_product_attention` so that no query attends to a PAD key.",
    hint="F.scaled_dot_product_attention's bool attn_mask is True where attention is ALLOWED: "
         "(ids != pad_id), broadcast as [B, 1, 1, S]",
    solution=_sdpa_pad_mask,
    explanation="SDPA's bool mask is True where attention is ALLOWED, so the mask is `ids != "
                "pad_id`, reshaped to `[B, 1, 1, S]` to broadcast over heads and queries. The "
                "checker runs SDPA with it and compares with attention over the real keys only; "
                "it names the unflipped course mask (every query then attends only to PAD), a "
                "`[B, S]` mask read as `[L, S]`, a float 0/1 mask and a hard-coded pad id.",
    wrong_answers=[
        (lambda ids, pad_id: padding_mask(ids, pad_id)[:, None, None, :], "ALLOWED"),
        (lambda ids, pad_id: ids != pad_id, "[L, S]"),
        (lambda ids, pad_id: (ids != pad_id).float()[:, None, None, :], "ADDED"),
        (lambda ids, pad_id: (ids != 0)[:, None, None, :], "pad_id"),
    ],
)
def _check_sdpa_pad_mask(answer) -> str | None:
    generator = torch.Generator().manual_seed(5)
    for (batch, heads, lq, lk), pad_id in zip(SHAPES, (3, 0, 7, 1, 0), strict=True):
        if lq != lk:
            continue  # self-attention: the queries are the same tokens as the keys
        key_padding_mask = _random_pad_mask(batch, lk, generator, min_real=1)
        ids = torch.randint(0, 9, (batch, lk), generator=generator)
        ids[ids == pad_id] = pad_id + 1
        ids[key_padding_mask] = pad_id
        q, k, v = (torch.randn(batch, heads, lk, 8, generator=generator) for _ in range(3))
        where = f"for ids [B, S] = [{batch}, {lk}] with pad_id={pad_id} and q, k, v " \
                f"[B, H, L, D] = [{batch}, {heads}, {lk}, 8]"
        mask = answer(ids.clone(), pad_id)
        if not isinstance(mask, torch.Tensor):
            return f"expected a tensor, got {type(mask).__name__}"
        if mask.dtype.is_floating_point and bool(((mask == 0) | (mask == 1)).all()):
            return ("a float 0/1 mask is ADDED to the scores by SDPA, so 1.0 blocks nothing: "
                    "use a bool mask (True = allowed) or an additive 0 / -inf mask")
        try:
            output = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        except (RuntimeError, IndexError) as error:
            return f"SDPA rejected your mask of shape {list(mask.shape)} {where}: {error}"
        expected, _ = scaled_dot_product_attention(
            q, k, v, key_padding_mask=padding_mask(ids, pad_id))
        if torch.allclose(output, expected, atol=1e-5):
            continue
        if mask.dtype == torch.bool:
            flipped = F.scaled_dot_product_attention(q, k, v, attn_mask=~mask)
            if torch.allclose(flipped, expected, atol=1e-5):
                return ("SDPA's bool attn_mask is True where attention is ALLOWED: your mask is "
                        "True at PAD, so every query attends ONLY to the PAD keys. Flip it "
                        "with ~ or course_lib.masks.to_sdpa")
        unused_id = int(ids.max()) + 1  # no token has this id: nothing should be masked
        if torch.equal(mask, answer(ids.clone(), unused_id)):
            return (f"your mask is the same whatever pad_id is {where}: build it from the "
                    "pad_id argument, not a hard-coded id")
        if mask.dim() == 2:
            return (f"a 2-D [B, S] mask is read by SDPA as [L, S]: query row i of every sequence "
                    f"gets sequence i's pads {where}. Broadcast it as [B, 1, 1, S]")
        return f"the attention output differs from attention over the real keys only {where}"
    return None
