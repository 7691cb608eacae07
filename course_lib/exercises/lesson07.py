"""Exercises of lesson 07: a schedule, per-token coin flips, and the two-pass input mix.

Each checker runs the answer on many inputs (steps and k values; large random coin-flip
grids; random padded batches with random flips) and names the usual mistakes: the schedule
of the model's own tokens (1 - epsilon), a missing k, one coin per sequence or per batch,
inverted coins, BOS or PAD replaced, and the off-by-one shift of the two-pass mix.
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises.core import exercise
from course_lib.scheduled_sampling import mix_inputs
from course_lib.schedules import teacher_forcing_prob

# --- 07.inverse_sigmoid --------------------------------------------------------------------

CASES = [(k, step) for k in (1.0, 5.0, 37.5, 200.0)
         for step in (0, 1, 10, k * math.log(k), 3 * k * math.log(k) + 5, 50 * k)]


def _solve_inverse_sigmoid(step, k):
    return k / (k + math.exp(step / k))


def _close(value: float, expected: float) -> bool:
    return math.isclose(value, expected, rel_tol=1e-6, abs_tol=1e-12)


@exercise(
    "07.inverse_sigmoid",
    task="Return epsilon_i of the inverse-sigmoid schedule: the probability of feeding the gold "
         "token at training step i.",
    hint="epsilon_i = k / (k + exp(i / k)); math.exp does the exponential",
    solution=_solve_inverse_sigmoid,
    explanation="Bengio et al.'s epsilon_i = k / (k + exp(i / k)) is k / (k + 1), close to 1, at "
                "step 0 and decays towards 0; k sets how long it stays high. The checker compares "
                "with `course_lib.schedules.teacher_forcing_prob` for several steps and k, and "
                "names 1 - epsilon (the probability of the model's own token), a missing k (1 / "
                "(1 + exp(i / k))) and exp(i) without the division by k.",
    wrong_answers=[
        (lambda step, k: 1 - k / (k + math.exp(step / k)), "OWN token"),
        (lambda step, k: 1 / (1 + math.exp(step / k)), "k / (k + 1)"),
        (lambda step, k: k / (k + math.exp(step)), "divide the step by k"),
    ],
)
def _check_inverse_sigmoid(answer) -> str | None:
    for k, step in CASES:
        expected = teacher_forcing_prob(step, "inverse_sigmoid", k=k)
        got = answer(step, k)
        if isinstance(got, torch.Tensor):
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, int | float):
            return f"expected a float probability, got {type(got).__name__} {got!r}"
        if _close(got, expected):
            continue
        if _close(got, 1 - expected):
            return ("your value grows with the step: that is 1 - epsilon, the probability of "
                    "feeding the model's OWN token. epsilon_i is the probability of the GOLD "
                    "token, which starts near 1 and decays")
        if step == 0 and _close(got, 0.5):
            return (f"at step 0 the schedule must be k / (k + 1) = {expected:.4f} for k={k}, "
                    "got 0.5: the k in the numerator and denominator is missing")
        if k != 1 and step and step < 700 and _close(got, k / (k + math.exp(step))):
            return ("your schedule drops far too early: divide the step by k inside the "
                    "exponential, exp(i / k)")
        return f"for step={step:.4g}, k={k}: expected {expected:.4g}, got {got:.4g}"
    return None


# --- 07.coin_flips -------------------------------------------------------------------------

def _solve_coin_flips(batch_size, length, gold_prob, generator):
    use_gold = torch.rand(batch_size, length, generator=generator) < gold_prob
    use_gold[:, 0] = True  # BOS is always the gold token
    return use_gold


def _per_sequence(batch_size, length, gold_prob, generator):
    row = torch.rand(batch_size, 1, generator=generator) < gold_prob
    use_gold = row.expand(batch_size, length).clone()
    use_gold[:, 0] = True
    return use_gold


def _per_batch(batch_size, length, gold_prob, generator):
    use_gold = torch.full((batch_size, length), bool(torch.rand(1, generator=generator)
                                                     < gold_prob))
    use_gold[:, 0] = True
    return use_gold


def _inverted(batch_size, length, gold_prob, generator):
    use_gold = torch.rand(batch_size, length, generator=generator) > gold_prob
    use_gold[:, 0] = True
    return use_gold


@exercise(
    "07.coin_flips",
    task="Flip one coin per token: a `BoolTensor[batch_size, length]`, True (gold) with "
         "probability `gold_prob`, column 0 (BOS) always True.",
    hint="one uniform random number per token (torch.rand with generator=generator), compared "
         "with gold_prob; and column 0 is BOS",
    solution=_solve_coin_flips,
    explanation="`torch.rand(batch_size, length, generator=generator) < gold_prob` is True with "
                "probability gold_prob, independently for every token, and column 0 is set True "
                "because BOS is always given. On 3000 x 10 flips the checker measures the gold "
                "fraction and the share of constant rows, and names one coin per sequence, one "
                "for the whole batch, inverted coins and a random BOS column.",
    wrong_answers=[
        (_per_sequence, "per sequence"),
        (_per_batch, "whole batch"),
        (_inverted, "True must mean GOLD"),
        (lambda b, t, p, g: torch.rand(b, t, generator=g) < p, "column 0"),
    ],
)
def _check_coin_flips(answer) -> str | None:
    batch_size, length = 3000, 10
    for seed, gold_prob in enumerate((0.5, 0.2, 0.85, 0.0, 1.0)):
        generator = torch.Generator().manual_seed(seed)
        flips = answer(batch_size, length, gold_prob, generator)
        where = f"(gold_prob={gold_prob}, batch_size={batch_size}, length={length})"
        if not isinstance(flips, torch.Tensor) or flips.dtype != torch.bool:
            return f"expected a BoolTensor, True = gold token, got {type(flips).__name__} " \
                   f"{getattr(flips, 'dtype', '')} {where}"
        if flips.shape != (batch_size, length):
            return f"expected shape [{batch_size}, {length}], got {list(flips.shape)} {where}"
        if not flips[:, 0].all():
            return f"column 0 is BOS: it is always the gold token, so it must be True {where}"
        after_bos = flips[:, 1:]
        fraction = after_bos.float().mean().item()
        if abs(fraction - gold_prob) > 0.02:
            if abs(fraction - (1 - gold_prob)) <= 0.02:
                return (f"a fraction {fraction:.3f} of your tokens are gold, about 1 - "
                        f"gold_prob: True must mean GOLD token, i.e. rand < gold_prob {where}")
            if after_bos.all() or (~after_bos).all():
                return f"every token got the same coin: one coin for the whole batch {where}"
            return f"expected about {gold_prob} of the tokens gold, got {fraction:.3f} {where}"
        if 0 < gold_prob < 1:
            constant = (after_bos.all(dim=1) | (~after_bos).all(dim=1)).float().mean().item()
            if after_bos.all() or (~after_bos).all() or constant > 0.5:
                if (after_bos == after_bos[:1]).all():
                    return f"every token got the same coin: one coin for the whole batch {where}"
                return (f"{constant:.0%} of your rows are all gold or all own tokens: you flip "
                        "one coin per sequence. Bengio et al. flip one per token, so a "
                        f"sequence mixes both {where}")
    return None


# --- 07.two_pass_inputs --------------------------------------------------------------------

def _random_case(generator, pad_id):
    batch, length = 6, 9
    lengths = torch.randint(2, length + 1, (batch,), generator=generator)
    lengths[0] = length
    tgt_in = torch.randint(4, 30, (batch, length), generator=generator)
    tgt_in[:, 0] = 1  # BOS
    tgt_in[torch.arange(length)[None, :] >= lengths[:, None]] = pad_id
    predicted = torch.randint(30, 60, (batch, length), generator=generator)  # never gold ids
    use_gold = torch.rand(batch, length, generator=generator) < 0.4
    return tgt_in, predicted, use_gold


def _unshifted(tgt_in, predicted, use_gold, pad_id):
    keep = use_gold | (tgt_in == pad_id)
    keep[:, 0] = True
    return torch.where(keep, tgt_in, predicted)


def _unshifted_over_bos(tgt_in, predicted, use_gold, pad_id):
    return torch.where(use_gold | (tgt_in == pad_id), tgt_in, predicted)


def _replaces_bos(tgt_in, predicted, use_gold, pad_id):
    shifted = torch.cat([predicted[:, -1:], predicted[:, :-1]], dim=1)
    return torch.where(use_gold | (tgt_in == pad_id), tgt_in, shifted)


def _replaces_pad(tgt_in, predicted, use_gold, pad_id):
    shifted = torch.cat([tgt_in[:, :1], predicted[:, :-1]], dim=1)
    keep = use_gold.clone()
    keep[:, 0] = True
    return torch.where(keep, tgt_in, shifted)


@exercise(
    "07.two_pass_inputs",
    task="Build the second-pass decoder input: the gold token where `use_gold`, else the first "
         "pass's guess for that position; BOS and PAD stay gold.",
    hint="predicted[:, i] is the guess for tgt_in[:, i+1]: shift it right by one position "
         "(torch.cat), then choose with torch.where; BOS and PAD positions always keep tgt_in",
    solution=mix_inputs,
    explanation="`predicted[:, i]` is the guess for `tgt_in[:, i+1]`, so the guesses are shifted "
                "right by one before `torch.where(use_gold, tgt_in, shifted)`, and BOS and PAD "
                "positions keep `tgt_in` (nothing predicts BOS, PAD is not part of the target). "
                "The checker names the unshifted mix (alone and together with a replaced BOS), a "
                "replaced BOS, replaced PAD and an inverted `use_gold`.",
    wrong_answers=[
        (_unshifted, "off by one"),
        (_unshifted_over_bos, "off by one"),
        (_unshifted_over_bos, "position 0 (BOS)"),
        (_replaces_bos, "position 0 (BOS)"),
        (_replaces_pad, "PAD positions"),
        (lambda t, p, u, pad: mix_inputs(t, p, ~u, pad), "True means keep the GOLD"),
    ],
)
def _check_two_pass_inputs(answer) -> str | None:
    generator = torch.Generator().manual_seed(7)
    for pad_id in (0, 0, 3, 0):
        tgt_in, predicted, use_gold = _random_case(generator, pad_id)
        originals = tgt_in.clone(), predicted.clone(), use_gold.clone()
        got = answer(tgt_in, predicted, use_gold, pad_id)
        if not all(torch.equal(a, b) for a, b in zip((tgt_in, predicted, use_gold), originals,
                                                      strict=True)):
            return "your function changed its inputs in place; build a new tensor instead"
        expected = mix_inputs(tgt_in, predicted, use_gold, pad_id)
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return f"expected a LongTensor of shape {list(expected.shape)}, got " \
                   f"{getattr(got, 'shape', type(got).__name__)}"
        if torch.equal(got, expected):
            continue
        # Report every problem at once: fixing BOS alone would only reveal the shift next.
        is_pad = tgt_in == pad_id
        body = ~is_pad
        body[:, 0] = False  # the positions a guess may fill
        problems = []
        if not torch.equal(got[:, 0], tgt_in[:, 0]):
            problems.append(f"position 0 (BOS) must keep tgt_in[:, 0] = "
                            f"{tgt_in[:, 0].tolist()} (nothing predicts it), got "
                            f"{got[:, 0].tolist()}")
        if not torch.equal(got[is_pad], tgt_in[is_pad]):
            problems.append(f"PAD positions must stay PAD ({pad_id}): they are not part of "
                            f"the target, got {got[is_pad & (got != pad_id)].unique().tolist()} "
                            "there")
        if torch.equal(got[body], _unshifted(tgt_in, predicted, use_gold, pad_id)[body]):
            problems.append("off by one: you put predicted[:, i] at position i, but the first "
                            "pass's logits at position i predict tgt_out[:, i] == "
                            "tgt_in[:, i+1], so that guess belongs at position i+1")
        elif torch.equal(got[body], mix_inputs(tgt_in, predicted, ~use_gold, pad_id)[body]):
            problems.append("use_gold is inverted: True means keep the GOLD token")
        elif not torch.equal(got[body], expected[body]):
            problems.append(f"wrong tokens: for tgt_in={tgt_in.tolist()}, expected "
                            f"{expected.tolist()}, got {got.tolist()}")
        if len(problems) == 1:
            return problems[0]
        return f"{len(problems)} problems: " + "; ".join(
            f"({number}) {problem}" for number, problem in enumerate(problems, start=1))
    return None
