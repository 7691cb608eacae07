"""Exercises of lesson 01: padding masks, padding waste, bucketing and the PAD-aware loss.

Every checker runs the learner's function on several seeded random inputs and compares
it with the reference, then names the typical mistake when it recognises one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.data import Vocab, bucket_batches, pad_fraction, sample_lengths
from course_lib.exercises.core import exercise

__all__ = []


def _random_lengths(generator: torch.Generator, batch: int, max_len: int) -> torch.Tensor:
    return torch.randint(1, max_len + 1, (batch,), generator=generator)


def _random_padded_ids(
    generator: torch.Generator, batch: int, max_len: int, *, bos: bool = True
) -> torch.Tensor:
    """LongTensor[B, L]: [BOS,] ordinary tokens, EOS, then PAD; the first row has no PAD."""
    start = int(bos)
    lengths = _random_lengths(generator, batch, max_len - 1 - start)
    lengths[0] = max_len - 1 - start
    ids = torch.full((batch, max_len), Vocab.PAD)
    if bos:
        ids[:, 0] = Vocab.BOS
    for row, length in enumerate(lengths.tolist()):
        ids[row, start:start + length] = torch.randint(4, 20, (length,), generator=generator)
        ids[row, start + length] = Vocab.EOS
    return ids


# --- 01.mask_from_lengths ----------------------------------------------------------------


def mask_from_lengths(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """BoolTensor[B, max_len], True at PAD: position t of row b is PAD when t >= lengths[b]."""
    positions = torch.arange(max_len)
    return positions[None, :] >= lengths[:, None]


def _mask_inverted(lengths, max_len):
    return torch.arange(max_len)[None, :] < lengths[:, None]


def _mask_off_by_one(lengths, max_len):
    return torch.arange(max_len)[None, :] > lengths[:, None]


def _mask_as_float(lengths, max_len):
    return (torch.arange(max_len)[None, :] >= lengths[:, None]).float()


def _mask_to_longest(lengths, max_len):
    return torch.arange(int(lengths.max()))[None, :] >= lengths[:, None]


@exercise(
    "01.mask_from_lengths",
    task="From `lengths` `LongTensor[B]` and `max_len`, build the padding mask `BoolTensor[B, "
         "max_len]`, True at PAD.",
    hint="compare torch.arange(max_len)[None, :] with lengths[:, None]; True marks PAD",
    solution=mask_from_lengths,
    explanation="Row b holds tokens at positions 0..lengths[b]-1, so position t is PAD exactly "
                "when `t >= lengths[b]`; broadcasting `arange(max_len)[None, :]` against "
                "`lengths[:, None]` compares every position with every length. The checker names "
                "inverted polarity (`<`), the off-by-one `>`, a float mask, and a mask padded to "
                "`lengths.max()` instead of `max_len`.",
    wrong_answers=[
        (_mask_inverted, "inverted"),
        (_mask_off_by_one, "off by one"),
        (_mask_as_float, "bool"),
        (_mask_to_longest, "max_len"),
    ],
)
def _check_mask_from_lengths(answer) -> str | None:
    generator = torch.Generator().manual_seed(1)
    for batch, max_len in ((4, 7), (3, 10), (6, 12)):
        lengths = _random_lengths(generator, batch, max_len - 1)  # every row ends in PAD
        expected = mask_from_lengths(lengths, max_len)
        got = answer(lengths.clone(), max_len)
        where = f"for lengths={lengths.tolist()}, max_len={max_len}"
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {type(got).__name__} {where}"
        if tuple(got.shape) != (batch, max_len):
            if tuple(got.shape) == (batch, int(lengths.max())):
                return (f"{where}: the mask has shape {list(got.shape)}, padded to lengths.max(); "
                        f"the batch is padded to max_len, so use torch.arange(max_len)")
            return (f"{where}: expected shape [B, max_len] = [{batch}, {max_len}], "
                    f"got {list(got.shape)}")
        if got.dtype != torch.bool:
            return (f"got a {got.dtype} mask; return a bool mask (True = PAD), e.g. compare with "
                    ">= instead of converting: float masks are ADDED to attention scores")
        if torch.equal(got, ~expected):
            return (f"inverted polarity {where}: True must mark the PAD (blocked) positions, "
                    "as src_key_padding_mask expects; you marked the real tokens")
        if torch.equal(got, expected & ~(torch.arange(max_len)[None, :] == lengths[:, None])):
            return (f"off by one {where}: a sequence of length n fills positions 0..n-1, so "
                    "position n is already PAD; use >= rather than >")
        if not torch.equal(got, expected):
            return f"wrong mask {where}: expected\n{expected.int()}\ngot\n{got.int()}"
    return None


# --- 01.pad_fraction ---------------------------------------------------------------------


def batch_pad_fraction(ids: torch.Tensor, pad_id: int) -> float:
    """The fraction of positions of ``ids`` (LongTensor[B, L]) that hold ``pad_id``."""
    return (ids == pad_id).float().mean().item()


def _fraction_count(ids, pad_id):
    return int((ids == pad_id).sum())


def _fraction_with_specials(ids, pad_id):
    return (ids <= Vocab.EOS).float().mean().item()


def _fraction_real(ids, pad_id):
    return (ids != pad_id).float().mean().item()


@exercise(
    "01.pad_fraction",
    task="Return the fraction of the positions of a padded batch `ids` `[B, L]` that hold "
         "`pad_id`, as a float.",
    hint="(ids == pad_id) is True at PAD; the mean of a bool tensor needs .float() first",
    solution=batch_pad_fraction,
    explanation="`ids == pad_id` is True at PAD, and its mean over all B·L positions (after "
                "`.float()`) is the fraction. The checker names returning the count instead of "
                "the fraction, counting BOS/EOS as padding, and returning the fraction of real "
                "tokens.",
    wrong_answers=[
        (_fraction_count, "fraction"),
        (_fraction_with_specials, "EOS"),
        (_fraction_real, "real tokens"),
    ],
)
def _check_pad_fraction(answer) -> str | None:
    generator = torch.Generator().manual_seed(2)
    for batch, max_len in ((3, 8), (5, 12), (8, 20)):
        ids = _random_padded_ids(generator, batch, max_len)
        expected = batch_pad_fraction(ids, Vocab.PAD)
        got = answer(ids.clone(), Vocab.PAD)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, int | float):
            return f"expected a number (a float in [0, 1]), got {type(got).__name__} {got!r:.60}"
        if math.isclose(got, expected, abs_tol=1e-6):
            continue
        pads = int((ids == Vocab.PAD).sum())
        specials = (ids == Vocab.PAD) | (ids == Vocab.EOS) | (ids == Vocab.BOS)
        where = f"for a [{batch}, {max_len}] batch with {pads} PAD tokens"
        if got == pads:
            return (f"{where} you returned the number of PAD tokens ({got}), not the fraction: "
                    "divide by the number of positions, ids.numel()")
        if any(math.isclose(got, mask.float().mean().item(), abs_tol=1e-6)
               for mask in (specials, (ids == Vocab.PAD) | (ids == Vocab.EOS))):
            return (f"{where} you counted BOS/EOS as padding: EOS is a real token (the model "
                    "must predict where a sentence ends); only pad_id is padding")
        if math.isclose(got, 1 - expected, abs_tol=1e-6):
            return f"{where} you returned the fraction of real tokens (non-PAD), not of PAD"
        return f"{where} expected {expected:.4f}, got {got:.4f}"
    return None


# --- 01.bucket_batches -------------------------------------------------------------------


def bucket(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices sorted by length, cut into batches of ``batch_size``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _bucket_unsorted(lengths, batch_size):
    order = list(range(len(lengths)))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _bucket_lengths_not_indices(lengths, batch_size):
    order = sorted(lengths)
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


@exercise(
    "01.bucket_batches",
    task="Length bucketing without the shuffle: return batches of indices into `lengths`, every "
         "index once, all batches full but one, little padding.",
    hint="sort the INDICES by their length: sorted(range(len(lengths)), key=...), then cut "
         "that list into chunks of batch_size",
    solution=bucket,
    explanation="Sorting the indices (not the lengths) by length puts sequences of similar length "
                "side by side, so each batch pads to a length close to its own; cutting the "
                "sorted list in order gives ceil(N / batch_size) batches, all full but the last. "
                "The checker compares the PAD fraction with the library's `bucket_batches` "
                "(within 3 points) and names unsorted batches and batches of lengths instead of "
                "indices.",
    wrong_answers=[
        (_bucket_unsorted, "sort"),
        (_bucket_lengths_not_indices, "indices"),
    ],
)
def _check_bucket_batches(answer) -> str | None:
    for seed, count, batch_size in ((3, 50, 4), (4, 97, 8), (5, 160, 16)):
        lengths = sample_lengths(count, seed=seed)
        got = answer(list(lengths), batch_size)
        where = f"for {count} lengths and batch_size={batch_size}"
        if not isinstance(got, list | tuple) or not all(isinstance(b, list | tuple) for b in got):
            return f"expected a list of batches, each a list of indices, got {type(got).__name__}"
        flat = [i for batch in got for i in batch]
        if sorted(flat) == sorted(lengths) and sorted(flat) != list(range(count)):
            return (f"{where} your batches hold the lengths, not the indices of the sequences: "
                    "sort range(len(lengths)) by length, not the lengths themselves")
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < count for i in flat):
            return f"{where} every entry must be an index in 0..{count - 1}"
        if len(flat) != len(set(flat)):
            return f"{where} some index is in the batches more than once; each must appear once"
        if len(flat) != count:
            return f"{where} {count - len(flat)} indices are missing; each must appear once"
        if max(len(batch) for batch in got) > batch_size or min(len(b) for b in got) == 0:
            return f"{where} a batch is empty or holds more than batch_size sequences"
        if len(got) != math.ceil(count / batch_size):
            return (f"{where} expected ceil({count}/{batch_size}) = "
                    f"{math.ceil(count / batch_size)} batches (all full but one), got {len(got)}")
        waste = pad_fraction([[lengths[i] for i in batch] for batch in got])
        best = pad_fraction([[lengths[i] for i in batch]
                             for batch in bucket_batches(lengths, batch_size)])
        if waste > best + 0.03:
            return (f"{where} {waste:.0%} of the padded cells are PAD, sorted batches need only "
                    f"{best:.0%}: sort the indices by length before cutting them into batches")
    return None


# --- 01.masked_loss ----------------------------------------------------------------------


def masked_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the non-PAD targets; logits [B, T, V], targets [B, T]."""
    return F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=Vocab.PAD)


def _loss_counts_pad(logits, targets):
    return F.cross_entropy(logits.transpose(1, 2), targets)


def _loss_ignores_eos(logits, targets):
    return F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=Vocab.EOS)


def _loss_divides_by_all(logits, targets):
    per_token = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return (per_token * (targets != Vocab.PAD)).sum() / targets.numel()


@exercise(
    "01.masked_loss",
    task="Return the mean cross-entropy over the non-PAD targets, for `logits` `[B, T, V]` and "
         "`targets` `[B, T]`.",
    hint="F.cross_entropy wants the classes in dim 1 (logits.transpose(1, 2)) and takes "
         "ignore_index=",
    solution=masked_loss,
    explanation="`F.cross_entropy` wants the classes in dim 1, hence `transpose(1, 2)`, and "
                "`ignore_index=Vocab.PAD` drops the PAD targets from both the sum and the count, "
                "so the mean is over the real targets only. The checker names counting PAD, "
                "ignoring EOS (a real target) instead of PAD, and masking PAD but dividing by all "
                "B·T positions.",
    wrong_answers=[
        (_loss_counts_pad, "ignore_index"),
        (_loss_ignores_eos, "EOS"),
        (_loss_divides_by_all, "divide"),
    ],
)
def _check_masked_loss(answer) -> str | None:
    generator = torch.Generator().manual_seed(4)
    for batch, steps, classes in ((2, 5, 7), (4, 9, 11), (3, 6, 13)):
        logits = torch.randn(batch, steps, classes, generator=generator)
        targets = _random_padded_ids(generator, batch, steps, bos=False).clamp(max=classes - 1)
        expected = masked_loss(logits, targets)
        try:
            got = answer(logits.clone(), targets.clone())
        except RuntimeError as error:
            if "Expected target size" in str(error):
                return ("cross_entropy raised a shape error: it wants logits [N, V] or "
                        "[B, V, T]; use logits.transpose(1, 2) or logits.reshape(-1, V)")
            raise
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return f"expected a scalar tensor (the mean loss), got {got!r:.80}"
        got = got.detach().reshape(()).to(expected.dtype)
        if torch.allclose(got, expected, atol=1e-5):
            continue
        where = f"\n(targets: {targets.tolist()})"
        if torch.allclose(got, _loss_counts_pad(logits, targets), atol=1e-5):
            return ("your loss counts the PAD targets: pass ignore_index=Vocab.PAD (or average "
                    "over targets != Vocab.PAD only)" + where)
        if torch.allclose(got, _loss_ignores_eos(logits, targets), atol=1e-5):
            return "you ignored EOS, a real target the model must learn; ignore PAD" + where
        if torch.allclose(got, _loss_divides_by_all(logits, targets), atol=1e-5):
            return ("PAD is masked but you divide by all B*T positions; divide by the number "
                    "of non-PAD targets, (targets != Vocab.PAD).sum()" + where)
        return f"expected loss {expected.item():.4g}, got {got.item():.4g}" + where
    return None
