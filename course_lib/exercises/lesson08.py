"""Exercises of lesson 08: repair masks coming from a Hugging Face tokenizer, write a polarity
and transposition check, and name the doctor's finding for a set of broken setups.

The mask checkers run the answer on several random batches (B == S and B == T included, where
a transposed mask has the right shape) and let ``course_lib.doctor`` say what is wrong.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from course_lib import doctor
from course_lib.data import Vocab
from course_lib.exercises.core import exercise
from course_lib.masks import causal_mask

__all__ = ["DIAGNOSE_CASES", "diagnose_call"]

PAD = Vocab.PAD
STANDARD = ("src_key_padding_mask", "tgt_key_padding_mask", "memory_key_padding_mask",
            "tgt_mask")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:100]


def _attention_mask(generator: torch.Generator, batch: int, length: int) -> torch.Tensor:
    """A Hugging Face attention_mask [B, L]: 1 = keep, 0 = pad; right padding, row 0 full."""
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0], lengths[-1] = length, max(1, length - 2)
    return (torch.arange(length)[None, :] < lengths[:, None]).long()


def _ids(generator: torch.Generator, attention_mask: torch.Tensor) -> torch.Tensor:
    words = torch.randint(Vocab.UNK + 1, 14, attention_mask.shape, generator=generator)
    return words * attention_mask  # PAD (0) wherever the mask says pad


# --- 08.fix_masks ------------------------------------------------------------------------------

def _solve_fix_masks(src_attention_mask: torch.Tensor, tgt_attention_mask: torch.Tensor) -> dict:
    src_key_padding_mask = src_attention_mask == 0
    return {"src_key_padding_mask": src_key_padding_mask,
            "memory_key_padding_mask": src_key_padding_mask,
            "tgt_key_padding_mask": tgt_attention_mask == 0,
            "tgt_mask": causal_mask(tgt_attention_mask.shape[1])}


def _fix_variant(**changes):
    def answer(src_attention_mask, tgt_attention_mask):
        masks = _solve_fix_masks(src_attention_mask, tgt_attention_mask)
        masks.update({k: v(src_attention_mask, tgt_attention_mask) for k, v in changes.items()})
        return {k: v for k, v in masks.items() if v is not None}
    return answer


@exercise(
    "08.fix_masks",
    task="Turn a source and a target Hugging Face `attention_mask` (1 = keep) into the four "
         "`nn.Transformer` masks of a seq2seq call.",
    hint="a Hugging Face attention_mask is 1 = keep, 0 = pad; nn.Transformer wants bool True = "
         "PAD (course_lib.masks.from_hf, or mask == 0), memory_key_padding_mask is the source's "
         "again, and tgt_mask is a bool causal [T, T] mask",
    solution=_solve_fix_masks,
    explanation="`attention_mask == 0` gives the bool True-at-PAD convention, the same source "
                "mask serves as `memory_key_padding_mask`, and `causal_mask(T)` is a bool causal "
                "`tgt_mask`. The checker runs `course_lib.doctor` on the answer and quotes its "
                "first finding: an inverted or integer padding mask, a missing memory mask, a "
                "float causal mask beside bool ones, an inverted causal mask, and a `triu()` that "
                "blocks the diagonal (fully masked rows).",
    wrong_answers=[
        (_fix_variant(src_key_padding_mask=lambda s, t: s.bool(),
                      memory_key_padding_mask=lambda s, t: s.bool()), "padding-mask-inverted"),
        (_fix_variant(src_key_padding_mask=lambda s, t: s,
                      memory_key_padding_mask=lambda s, t: s), "integer-mask"),
        (_fix_variant(memory_key_padding_mask=lambda s, t: None),
         "memory-key-padding-mask-missing"),
        (_fix_variant(tgt_mask=lambda s, t: nn.Transformer.generate_square_subsequent_mask(
            t.shape[1])), "mixed-mask-types"),
        (_fix_variant(tgt_mask=lambda s, t: torch.ones(t.shape[1], t.shape[1],
                                                       dtype=torch.bool).tril()),
         "causal-mask-inverted"),
        (_fix_variant(tgt_mask=lambda s, t: torch.ones(t.shape[1], t.shape[1],
                                                       dtype=torch.bool).triu()),
         "fully-masked-rows"),
    ],
)
def _check_fix_masks(answer) -> str | None:
    generator = torch.Generator().manual_seed(80)
    for batch, src_len, tgt_len in ((3, 6, 5), (4, 4, 7), (5, 3, 5), (2, 7, 7)):
        src_attention, tgt_attention = (_attention_mask(generator, batch, src_len),
                                        _attention_mask(generator, batch, tgt_len))
        src, tgt_in = _ids(generator, src_attention), _ids(generator, tgt_attention)
        tgt_in[:, 0] = Vocab.BOS
        where = f"(for B={batch}, S={src_len}, T={tgt_len})"
        masks = answer(src_attention.clone(), tgt_attention.clone())
        if not isinstance(masks, dict):
            return f"expected a dict of nn.Transformer mask arguments, got {_describe(masks)}"
        unknown = set(masks) - set(doctor.MASK_NAMES)
        if unknown:
            return f"nn.Transformer has no argument {sorted(unknown)}; its masks are " \
                   f"{list(doctor.MASK_NAMES)}"
        report = doctor.check(src=src, tgt_in=tgt_in, pad_id=PAD, **masks)
        if not report.ok:
            first, others = report[0], sorted(set(report.codes[1:]) - {report[0].code})
            also = f" The doctor also reports {others}." if others else ""
            return (f"the doctor finds [{first.code}] {first.problem.rstrip('.')} {where}. "
                    f"Fix: {first.fix}."
                    f"{also}")
        expected = _solve_fix_masks(src_attention, tgt_attention)
        for name in ("src_mask", "memory_mask"):
            if masks.get(name) is not None:
                return f"a standard seq2seq model needs no {name}; leave it out"
        for name, mask in expected.items():
            if not torch.equal(masks[name], mask):
                return (f"{name}: expected {mask.int().tolist()}, got "
                        f"{masks[name].int().tolist()} {where}")
    return None


# --- 08.padding_mask_problem -------------------------------------------------------------------

DIAGNOSES = ("ok", "inverted", "transposed", "other")


def _diagnose(mask: torch.Tensor, pad: torch.Tensor) -> str:
    if mask.shape == pad.shape and torch.equal(mask, pad):
        return "ok"  # first: a symmetric batch's mask also equals its transpose
    if mask.shape == pad.shape and torch.equal(mask, ~pad):
        return "inverted"
    if mask.shape == pad.T.shape and torch.equal(mask.T, pad):
        return "transposed"
    return "other"


def _solve_padding_mask_problem(mask: torch.Tensor, ids: torch.Tensor, pad_id: int) -> str:
    return _diagnose(mask, ids == pad_id)


def _keep_polarity(mask, ids, pad_id):
    """Believes a padding mask is True at the real tokens."""
    return _diagnose(mask, ids != pad_id)


def _shape_only(mask, ids, pad_id):
    """Tells a transposed mask by its shape alone."""
    if mask.shape != ids.shape:
        return "transposed" if mask.shape == ids.T.shape else "other"
    pad = ids == pad_id
    return "ok" if torch.equal(mask, pad) else "inverted" if torch.equal(mask, ~pad) else "other"


def _transposed_first(mask, ids, pad_id):
    if mask.shape == ids.T.shape and torch.equal(mask.T, ids == pad_id):
        return "transposed"
    return _diagnose(mask, ids == pad_id)


def _padding_cases() -> list[tuple[torch.Tensor, int, torch.Tensor, str, str]]:
    """(ids, pad_id, mask, expected diagnosis, description) on several batches."""
    generator = torch.Generator().manual_seed(81)
    batches = [(torch.tensor([[4, 5, 6, 7], [8, 9, 0, 0], [5, 6, 7, 0], [9, 0, 0, 0]]), 0),
               (torch.tensor([[4, 5, 6, 7], [8, 9, 6, 1], [5, 6, 1, 1], [9, 1, 1, 1]]), 1)]
    for batch, length, pad_id in ((3, 5, 0), (5, 3, 7)):
        attention = _attention_mask(generator, batch, length)
        words = _ids(generator, attention).masked_fill(_ids(generator, attention) == pad_id, 4)
        batches.append((torch.where(attention.bool(), words, pad_id), pad_id))
    cases = []
    for ids, pad_id in batches:
        pad = ids == pad_id
        shape = "x".join(map(str, ids.shape))
        cases.append((ids, pad_id, pad, "ok", f"the right mask of a {shape} batch"))
        if not torch.equal(pad, pad.T):
            cases += [(ids, pad_id, ~pad, "inverted", f"an inverted mask ({shape})"),
                      (ids, pad_id, pad.T.contiguous(), "transposed",
                       f"a transposed mask ({shape})")]
        other = pad.clone()
        other[0, 0] = True  # blocks a real token
        cases.append((ids, pad_id, other, "other", f"a mask blocking a real token ({shape})"))
    return cases


@exercise(
    "08.padding_mask_problem",
    task="Write the doctor's first padding-mask check: return 'ok', 'inverted', 'transposed' or "
         "'other' for a `mask` and the token `ids`.",
    hint="compute pad = ids == pad_id; compare the mask with pad (ok), ~pad (inverted) and, "
         "when the shapes allow it, mask.T with pad (transposed) - in that order",
    solution=_solve_padding_mask_problem,
    explanation="Comparing the mask with `pad = ids == pad_id`, then with `~pad`, then `mask.T` "
                "with `pad` when the shapes allow it, in that order, is right for every batch: a "
                "symmetric PAD pattern equals its transpose, so 'ok' comes first, and when B == L "
                "a transposed mask has the right shape, so only its values tell. The checker "
                "names telling transposition by shape alone, testing 'transposed' first, the keep "
                "convention, and an answer outside the four words.",
    wrong_answers=[(_shape_only, "B == L"), (_transposed_first, "symmetric"),
                   (_keep_polarity, "True at PAD"), (lambda m, i, p: "fine", "one of")],
)
def _check_padding_mask_problem(answer) -> str | None:
    for ids, pad_id, mask, expected, description in _padding_cases():
        got = answer(mask.clone(), ids.clone(), pad_id)
        if got not in DIAGNOSES:
            return f"return one of {DIAGNOSES}, got {_describe(got)} for {description}"
        if got == expected:
            continue
        square = ids.shape[0] == ids.shape[1]
        if expected == "transposed" and square:
            return (f"for {description} you said {got!r}: when B == L a transposed mask has the "
                    "same shape as a correct one, so compare mask.T with ids == pad_id too")
        if expected == "ok" and got == "transposed":
            return (f"for {description} you said 'transposed': this padding pattern is "
                    "symmetric (pad == pad.T), so the right mask also equals its transpose; "
                    "test 'ok' first")
        if {expected, got} == {"ok", "inverted"}:
            return (f"for {description} you said {got!r}: a padding mask is True at PAD "
                    "(ids == pad_id); one True at the real tokens is inverted")
        return f"for {description} (pad_id={pad_id}): expected {expected!r}, got {got!r}"
    return None


# --- 08.diagnose -------------------------------------------------------------------------------

DIAGNOSE_CASES = {
    "A": "tgt_mask = torch.tril(torch.ones(T, T, dtype=torch.bool))",
    "B": "src_key_padding_mask = src == PAD, tgt_mask and tgt_key_padding_mask given, "
         "memory_key_padding_mask left out",
    "C": "criterion = nn.CrossEntropyLoss()",
    "D": "src_key_padding_mask = tokenizer_output['attention_mask'] (int64, 1 = keep)",
    "E": "tgt_mask = torch.triu(torch.ones(T, T), diagonal=1)",
    "F": "src_key_padding_mask = (src == PAD).T, in a batch with B == S",
    "G": "src_mask = nn.Transformer.generate_square_subsequent_mask(S, dtype=torch.bool)",
}


def diagnose_call(key: str) -> dict:
    """``doctor.check`` arguments reproducing case ``key`` of :data:`DIAGNOSE_CASES`."""
    src = torch.tensor([[4, 5, 6, 7], [8, 9, PAD, PAD], [5, 6, 7, PAD], [9, PAD, PAD, PAD]])
    tgt_in = torch.tensor([[1, 7, 6], [1, 9, 8], [1, 7, PAD]])[[0, 1, 2, 2]]
    pad = src == PAD
    call = {"src": src, "tgt_in": tgt_in, "pad_id": PAD, "src_key_padding_mask": pad,
            "memory_key_padding_mask": pad, "tgt_key_padding_mask": tgt_in == PAD,
            "tgt_mask": causal_mask(3)}
    changes = {"A": {"tgt_mask": torch.ones(3, 3, dtype=torch.bool).tril()},
               "B": {"memory_key_padding_mask": None},
               "C": {"loss_fn": nn.CrossEntropyLoss()},
               "D": {"src_key_padding_mask": (~pad).long(), "memory_key_padding_mask": pad},
               "E": {"tgt_mask": torch.ones(3, 3).triu(diagonal=1)},
               "F": {"src_key_padding_mask": pad.T.contiguous()},
               "G": {"src_mask": nn.Transformer.generate_square_subsequent_mask(
                   4, dtype=torch.bool)}}[key]
    return {k: v for k, v in {**call, **changes}.items() if v is not None}


@functools.cache
def _doctor_codes(key: str) -> frozenset[str]:
    return frozenset(doctor.check(**diagnose_call(key)).codes)


_CONFUSIONS = {
    ("A", "causal-mask-blocks-past"): "torch.tril keeps the diagonal and everything below it: "
    "in nn.Transformer True means BLOCKED, so this is SDPA's keep-mask with inverted polarity",
    ("B", "src-key-padding-mask-missing"): "src_key_padding_mask IS given; the cross-attention "
    "does not get it, because nn.Transformer does not copy it into memory_key_padding_mask",
    ("E", "causal-mask-inverted"): "the ones are in the right place (above the diagonal), but "
    "torch.ones(T, T) is float: a float mask is ADDED to the scores",
}


@exercise(
    "08.diagnose",
    task="For each broken setup A to G, name the finding code of `doctor.CODES` that fits it.",
    hint="for each case name the code of doctor.CODES that fits; where a setup has two "
         "problems, either code counts. Check a guess with doctor.check(**course_lib.exercises"
         ".lesson08.diagnose_call(key))",
    solution={"A": "causal-mask-inverted", "B": "memory-key-padding-mask-missing",
              "C": "loss-ignore-index", "D": "integer-mask", "E": "float-01-mask",
              "F": "mask-transposed", "G": "causal-src-mask"},
    explanation="Each answer is a code that `doctor.check(**diagnose_call(key))` reports for that "
                "case (where it reports two, either counts): `tril` is an inverted causal mask, "
                "then a missing memory mask, a loss without `ignore_index`, an int64 Hugging Face "
                "mask, a float 0/1 causal mask, a padding mask transposed in a B == S batch, and "
                "a causal `src_mask`. The checker names three frequent confusions (the "
                "past-blocking code for A, the source mask for B, an inverted causal mask for E), "
                "missing cases and unknown codes.",
    wrong_answers=[
        ({**dict.fromkeys(DIAGNOSE_CASES, "mask-shape"), "A": "causal-mask-blocks-past"},
         "inverted polarity"),
        ({"A": "causal-mask-inverted", "B": "src-key-padding-mask-missing"}, "does not copy"),
        ({"A": "causal-mask-inverted", "B": "memory-key-padding-mask-missing",
          "C": "loss-ignore-index", "D": "integer-mask", "E": "causal-mask-inverted"},
         "ADDED"),
        ({"A": "causal-mask-inverted"}, "missing"),
        ({key: "inverted" for key in DIAGNOSE_CASES}, "unknown code"),
    ],
)
def _check_diagnose(answer) -> str | None:
    if not isinstance(answer, dict):
        return f"expected a dict {{case: finding code}}, got {_describe(answer)}"
    for key in DIAGNOSE_CASES:
        if key not in answer:
            return f"case {key} is missing; give a code for each of {list(DIAGNOSE_CASES)}"
        code = answer[key]
        if code not in doctor.CODES:
            return (f"{key}: {code!r} is an unknown code; a finding code is one of the "
                    f"{len(doctor.CODES)} keys of doctor.CODES (print(list(doctor.CODES)) "
                    "lists them)")
        if code not in _doctor_codes(key):
            why = _CONFUSIONS.get((key, code), f"the doctor finds {sorted(_doctor_codes(key))} "
                                               f"there: {DIAGNOSE_CASES[key]}")
            return f"{key}: not {code!r}. {why}"
    return None
