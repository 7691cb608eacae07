"""Exercises of lesson 03: softmax over the allowed keys only, a masked softmax that stays
NaN-free in the forward AND the backward pass, and which query rows a causal mask with
padding leaves without any allowed key.

Every checker runs the answer on several random inputs and names the first thing it finds
wrong: NaN, uniform rows, weight on blocked keys, rows that do not sum to 1.
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises.core import exercise
from course_lib.masks import causal_mask, merge, to_additive


def _subset_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = torch.zeros_like(scores)
    weights[~mask] = torch.softmax(scores[~mask], dim=0)  # the right-hand side of the proof
    return weights


def _safe_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    empty_row = mask.all(dim=-1, keepdim=True)  # rows with no allowed key
    # REPLACE the blocked scores (no -inf reaches a row with no allowed key), never add.
    weights = scores.masked_fill(mask, -math.inf).masked_fill(empty_row, 0.0).softmax(dim=-1)
    return weights.masked_fill(mask, 0.0)


def _fully_masked_rows(key_padding_mask: torch.Tensor) -> torch.Tensor:
    length = key_padding_mask.shape[-1]
    blocked = merge(causal_mask(length), key_padding_mask)  # [B, 1, L, L]
    return blocked.all(dim=-1)[:, 0]  # [B, L]


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"{type(value).__name__} {value!r:.60}"


# --- 03.subset_softmax -----------------------------------------------------------------------


def _subset_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(30)
    cases = []
    for size in (6, 1, 5, 8, 3, 7, 4):
        mask = torch.rand(size, generator=generator) < 0.5
        mask[int(torch.randint(size, (1,), generator=generator))] = False  # one key allowed
        if size == 6:
            mask = torch.tensor([False, True, False, True, True, False])  # both kinds
        cases.append((3.0 * torch.randn(size, generator=generator), mask))
    cases.append((torch.randn(4, generator=generator), torch.zeros(4, dtype=torch.bool)))
    cases.append((torch.tensor([0.5, 40.0, -3.0, 41.0]), torch.tensor([False, True, True, True])))
    return cases


@exercise(
    "03.subset_softmax",
    task="For 1-D `scores` `[S]` and a `mask` (True = blocked), return the softmax of the allowed "
         "scores alone, with exactly 0.0 on the masked keys.",
    hint="keep only the allowed scores, scores[~mask], take their softmax (dim=0), and write "
         "it back at those positions of a zeros_like(scores) tensor; no -inf needed",
    solution=_subset_softmax,
    explanation="This is the right-hand side of the lesson's proof: the softmax of "
                "`scores[~mask]` only, written back into `zeros_like(scores)`, so masked keys are "
                "exactly 0 and absent from the denominator. The checker names a softmax over all "
                "keys zeroed afterwards (the weights no longer sum to 1), scores multiplied by 0 "
                "(e^0 = 1 still counts), only the allowed entries returned, and inverted "
                "polarity.",
    wrong_answers=[
        (lambda scores, mask: torch.softmax(scores, dim=0).masked_fill(mask, 0.0), "sum to"),
        (lambda scores, mask: torch.softmax(scores * ~mask, dim=0),
         "non-zero weight on masked keys"),
        (lambda scores, mask: torch.softmax(scores[~mask], dim=0), "shape"),
        (lambda scores, mask: _subset_softmax(scores, ~mask), "BLOCKED"),
    ],
)
def _check_subset_softmax(answer) -> str | None:
    for scores, mask in _subset_cases():
        original = scores.clone()
        weights = answer(scores, mask.clone())
        where = f"for scores {[round(s, 2) for s in scores.tolist()]} and mask {mask.tolist()}"
        if not torch.equal(scores, original):
            return "your function changed `scores` in place; work on a copy"
        if not isinstance(weights, torch.Tensor) or weights.shape != scores.shape:
            return (f"expected weights of the scores' shape {list(scores.shape)}, got "
                    f"{_describe(weights)} {where}: put the softmax of the allowed scores back "
                    "at their positions and 0.0 at the masked ones")
        if bool(weights.isnan().any()):
            return f"your weights contain NaN {where}"
        allowed = ~mask
        if bool(mask.any()) and bool((weights[allowed] == 0).all()) and bool(
                (weights[mask] != 0).any()):
            return (f"`mask` is True where a key is BLOCKED (the course convention): your "
                    f"weights sit on the masked keys and the allowed ones get 0 {where}")
        if bool((weights[mask] != 0).any()):
            return (f"non-zero weight on masked keys {where}: they must get exactly 0.0 "
                    "(== 0, not just small). Multiplying a score by 0 gives the score 0, and "
                    "e^0 = 1: a zero score is not a blocked score")
        total = float(weights.sum())
        if abs(total - 1.0) > 1e-5:
            return (f"the weights sum to {total:.4f}, not 1 {where}: the masked keys must "
                    "vanish from the denominator too, not only from the numerator")
        expected = torch.softmax(scores[allowed], dim=0)
        if not torch.allclose(weights[allowed], expected, atol=1e-6):
            return (f"the weights of the allowed keys differ from softmax(scores[~mask]) "
                    f"{where}: got {[round(w, 4) for w in weights[allowed].tolist()]}, "
                    f"expected {[round(w, 4) for w in expected.tolist()]}")
    return None


# --- 03.safe_softmax -------------------------------------------------------------------------


def _left_padded(lengths: list[int], size: int) -> torch.Tensor:
    """BoolTensor[B, size], True at PAD, with the PAD tokens at the START of each row."""
    return torch.arange(size)[None, :] < (size - torch.tensor(lengths))[:, None]


def _safe_cases() -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    generator = torch.Generator().manual_seed(31)
    # causal self-attention with left padding: the first rows of a padded sequence see only PAD
    causal_left = merge(causal_mask(5), _left_padded([5, 3, 1], 5))  # [3, 1, 5, 5]
    pad_only = torch.tensor([[False, False, True, True], [True, True, True, True]])
    rows = torch.rand(6, 7, generator=generator) < 0.5
    rows[2], rows[4] = True, False  # one row fully blocked, one not blocked at all
    return [
        (2.0 * torch.randn(3, 2, 5, 5, generator=generator), causal_left,
         "causal self-attention, left padding, scores [3, 2, 5, 5], mask [3, 1, 5, 5]"),
        (2.0 * torch.randn(2, 3, 4, 4, generator=generator), pad_only[:, None, None, :],
         "a sequence of PAD only, scores [2, 3, 4, 4], mask [2, 1, 1, 4]"),
        (30.0 * torch.randn(6, 7, generator=generator), rows,
         "large scores [6, 7] with a random mask [6, 7]"),
    ]


def _gradient(function, scores: torch.Tensor, mask: torch.Tensor, upstream: torch.Tensor):
    leaf = scores.clone().requires_grad_(True)
    weights = function(leaf, mask.clone())
    if not isinstance(weights, torch.Tensor) or not weights.requires_grad:
        return None
    (weights * upstream).sum().backward()
    return leaf.grad


@exercise(
    "03.safe_softmax",
    task="Write a masked softmax over `[..., S]` that gives all-zero rows, never NaN, for rows "
         "with no allowed key, in the forward AND the backward pass.",
    hint="replace, do not add: masked_fill the blocked scores with -inf, masked_fill the rows "
         "with no allowed key (mask.all(dim=-1, keepdim=True)) with 0.0 BEFORE the softmax, "
         "and masked_fill the blocked weights with 0.0 after it",
    solution=_safe_softmax,
    explanation="Blocked scores are replaced by -inf and rows with no allowed key by 0.0 BEFORE "
                "the softmax, so no row is all -inf and neither the forward pass nor autograd "
                "meets 0/0; the final `masked_fill(mask, 0.0)` zeroes every blocked weight, the "
                "uniform empty rows included. The checker back-propagates and names NaN rows, "
                "uniform rows from -1e9, `nan_to_num` after an additive -inf mask (NaN "
                "gradients), and a softmax masked only after normalising.",
    wrong_answers=[
        (lambda scores, mask: scores.masked_fill(mask, -math.inf).softmax(dim=-1), "NaN"),
        (lambda scores, mask: scores.masked_fill(mask, -1e9).softmax(dim=-1), "uniform"),
        (lambda scores, mask: torch.nan_to_num((scores + to_additive(mask)).softmax(dim=-1)),
         "backward"),
        (lambda scores, mask: scores.softmax(dim=-1).masked_fill(mask, 0.0), "sum to 1"),
    ],
)
def _check_safe_softmax(answer) -> str | None:
    generator = torch.Generator().manual_seed(32)
    for scores, mask, where in _safe_cases():
        original = scores.clone()
        weights = answer(scores, mask.clone())
        where = f"for {where}"
        if not torch.equal(scores, original):
            return "your function changed `scores` in place; use masked_fill, not masked_fill_"
        if not isinstance(weights, torch.Tensor) or weights.shape != scores.shape:
            return f"expected weights shaped like the scores {list(scores.shape)}, got " \
                   f"{_describe(weights)} {where}"
        blocked = mask.expand(scores.shape)
        empty = blocked.all(dim=-1)  # rows with no allowed key
        full_rows, rows = weights[empty], weights[~empty]
        if bool(rows.isnan().any()):
            return f"NaN in rows that have an allowed key {where}"
        if bool(full_rows.isnan().any()):
            return (f"NaN in the rows whose keys are ALL blocked {where}: softmax of a row of "
                    "-inf is 0/0. Give those rows finite scores before the softmax and zero "
                    "weights after it")
        width = scores.shape[-1]
        if full_rows.numel() and torch.allclose(full_rows, torch.full_like(full_rows, 1 / width)):
            return (f"the rows whose keys are ALL blocked get uniform weights 1/{width} {where}: "
                    "a finite fill value like -1e9 makes every score of the row equal, so "
                    "softmax silently averages the blocked keys. Those rows must be zeros")
        if bool((rows.masked_select(blocked[~empty]) != 0).any()):
            return f"non-zero weight on blocked keys {where}: they must get exactly 0.0"
        if bool((full_rows != 0).any()):
            return f"the rows whose keys are ALL blocked must be all zeros {where}"
        if bool((rows.sum(dim=-1) == 0).any()):
            return (f"some rows with an allowed key came out all zeros {where}: every exp "
                    "underflowed to 0. Softmax may subtract any constant from a row, but "
                    "subtract the max of the ALLOWED scores, so the largest allowed exp is 1")
        sums = rows.sum(dim=-1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
            return (f"rows with an allowed key must sum to 1, yours go from {float(sums.min()):.4f}"
                    f" to {float(sums.max()):.4f} {where}: the blocked keys must vanish from the "
                    "denominator too (mask BEFORE normalising), and the allowed exps must not "
                    "underflow (subtract the max of the ALLOWED scores)")
        expected = _safe_softmax(scores, mask)
        if not torch.allclose(weights, expected, atol=1e-6):
            return f"the weights differ from softmax over the allowed keys only {where}"
        upstream = torch.randn(scores.shape, generator=generator)
        gradient = _gradient(answer, scores, mask, upstream)
        if gradient is None:
            return (f"no gradient reaches `scores` {where}: do not detach or use no_grad; "
                    "attention is trained through this softmax")
        if bool(gradient.isnan().any()):
            return (f"the forward pass is right, but the backward pass gives NaN gradients "
                    f"{where}. nan_to_num (or torch.where) after the softmax hides the NaN of a "
                    "row with no allowed key, but autograd still differentiates through it; "
                    "scores + an additive -inf mask passes that NaN back to the scores. Make "
                    "the row finite BEFORE the softmax (masked_fill replaces, + adds)")
        leak = float(gradient.masked_select(blocked).abs().max()) if bool(blocked.any()) else 0.0
        if leak > 1e-6:
            return (f"blocked scores get a gradient (up to {leak:.3g}) {where}; their weight is "
                    "0 whatever their value, so their gradient must be 0")
        if not torch.allclose(gradient, _gradient(_safe_softmax, scores, mask, upstream),
                              atol=1e-5):
            return f"the gradient w.r.t. the scores differs from the reference {where}"
    return None


# --- 03.fully_masked_rows --------------------------------------------------------------------


def _padding_cases() -> list[tuple[torch.Tensor, str, list[int]]]:
    """(key_padding_mask [B, L], which side is padded, the lengths) for a few batches."""
    generator = torch.Generator().manual_seed(33)
    random_lengths = torch.randint(1, 8, (5,), generator=generator).tolist()
    right = [6, 4, 2, 1]
    return [
        (_left_padded([5, 3, 0, 1], 5), "left", [5, 3, 0, 1]),
        (torch.arange(6)[None, :] >= torch.tensor(right)[:, None], "right", right),
        (_left_padded(random_lengths, 7), "left", random_lengths),
    ]


@exercise(
    "03.fully_masked_rows",
    task="For causal self-attention over a padded batch (`key_padding_mask` `[B, L]`), return "
         "`BoolTensor[B, L]`, True where query i has no allowed key.",
    hint="combine the causal mask and the padding mask (course_lib.masks.merge(causal_mask(L), "
         "key_padding_mask) is [B, 1, L, L]); a query row is fully masked when .all(dim=-1)",
    solution=_fully_masked_rows,
    explanation="`merge(causal_mask(L), key_padding_mask)` is the blocked matrix `[B, 1, L, L]`, "
                "and a query row is fully masked when all its keys are blocked, `.all(dim=-1)`. "
                "With left padding the first query rows of a padded sequence see only PAD, with "
                "right padding only an all-PAD sequence has such rows; the checker names missing "
                "either, using `.any`, and marking right padding's PAD queries.",
    wrong_answers=[
        (lambda key_padding_mask: torch.zeros_like(key_padding_mask), "is all PAD"),
        (lambda key_padding_mask: key_padding_mask.all(dim=-1, keepdim=True)
         .expand_as(key_padding_mask), "LEFT padding"),
        (lambda key_padding_mask: key_padding_mask.clone(), "RIGHT padding"),
        (lambda key_padding_mask: merge(causal_mask(key_padding_mask.shape[-1]),
                                        key_padding_mask).any(dim=-1)[:, 0], "any"),
    ],
)
def _check_fully_masked_rows(answer) -> str | None:
    for key_padding_mask, side, lengths in _padding_cases():
        rows = answer(key_padding_mask.clone())
        where = f"({side} padding, lengths {lengths})"
        if not isinstance(rows, torch.Tensor) or rows.dtype != torch.bool \
                or rows.shape != key_padding_mask.shape:
            return (f"expected a BoolTensor{list(key_padding_mask.shape)} (sequences x query "
                    f"positions), got {_describe(rows)}")
        expected = _fully_masked_rows(key_padding_mask)
        if torch.equal(rows, expected):
            continue
        missed, extra = expected & ~rows, rows & ~expected
        empty = key_padding_mask.all(dim=-1).nonzero().flatten().tolist()
        if bool(missed[empty].any()):
            return (f"sequence {empty[0]} is all PAD {where}: none of its query rows has an "
                    f"allowed key, so expected all True, got {rows[empty[0]].int().tolist()}")
        if bool(missed.any()):
            return (f"rows {missed.nonzero().tolist()} ([sequence, query]) have no allowed key "
                    f"but you marked them False {where}: with LEFT padding query i sees keys "
                    "0..i, all PAD at the start of a padded sequence")
        if side == "right" and not bool((extra & ~key_padding_mask).any()):
            return (f"rows {extra.nonzero().tolist()} ([sequence, query]) are not fully masked "
                    f"{where}: with RIGHT padding a PAD query still sees the real tokens "
                    "before it")
        return (f"rows {extra.nonzero().tolist()} ([sequence, query]) still have an allowed key "
                f"{where}: a row is fully masked when ALL its keys are blocked (.all), not "
                "any")
    return None
