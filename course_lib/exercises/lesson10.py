"""Exercises of lesson 10: packing several documents into one row. The document mask from the
document ids, position ids that restart at each document, labels that never cross a document
boundary, and the same mask as a FlexAttention ``mask_mod``.

Each checker runs the answer on random packed batches (rows of one and of several documents,
with and without PAD) and names the usual mistakes: SDPA's polarity, PAD keys left visible,
a causal mask where none is asked, ``arange`` positions or positions counted from 1, labels
that keep PAD or each document's first token or are shifted, and a ``mask_mod`` that returns
True where attention is blocked, lets a query see later keys, or allows PAD keys.
"""

from __future__ import annotations

import torch

from course_lib.causal_lm import IGNORE_INDEX
from course_lib.exercises.core import exercise, tensor_problem
from course_lib.packing import Packed, document_mask, document_mask_mod, pack, packed_labels


def _sequences(lengths, generator):
    return [torch.randint(4, 20, (n,), generator=generator) for n in lengths]


def _packed_cases(seed: int = 0) -> list[Packed]:
    """Packed batches: a fixed one first (rows of one, two and three documents, with and
    without PAD), then random ones."""
    generator = torch.Generator().manual_seed(seed)
    # rows: [8], [7] + 1 PAD, [6, 2], [5, 3], [3, 2, 2] + 1 PAD
    cases = [pack(_sequences([3, 7, 2, 8, 5, 2, 6, 3, 2], generator), 8)]
    for count, row_len in ((9, 8), (7, 6), (12, 10)):
        lengths = torch.randint(1, row_len + 1, (count,), generator=generator).tolist()
        cases.append(pack(_sequences(lengths, generator), row_len))
    return cases


def _is_integer(dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def _row_text(values, real) -> str:
    """One row of integers, with the PAD positions (not compared) shown as '.'."""
    return " ".join(str(v) if r else "." for v, r in zip(values.tolist(), real.tolist(),
                                                        strict=True))


# --- 10.document_mask ----------------------------------------------------------------------

@exercise(
    "10.document_mask",
    task="Build the document mask of packed rows: `BoolTensor[R, L, L]`, True = blocked, where "
         "a query sees only the keys of its own document and never a PAD key (id -1).",
    hint="compare each query's document id with each key's: document_ids[:, :, None] != "
         "document_ids[:, None, :], then also block the PAD keys: | (document_ids < 0)[:, None, :]",
    solution=document_mask,
    explanation="`ids[:, :, None] != ids[:, None, :]` blocks every key of another document, but "
                "the PAD positions all share the id -1 and would see each other, so "
                "`| (ids < 0)[:, None, :]` blocks the PAD keys as well; a PAD query is then "
                "fully blocked, which nothing reads. Blocking the PAD queries (rows) instead "
                "gives the same mask here, because a real query never shares a PAD key's id.",
    wrong_answers=[
        (lambda ids: ~document_mask(ids), "True = allowed"),
        (lambda ids: ids[:, :, None] == ids[:, None, :], "True = allowed"),
        (lambda ids: ids[:, :, None] != ids[:, None, :], "PAD keys"),
        (lambda ids: document_mask(ids, causal=True), "causal"),
        (lambda ids: ids[:, None] != ids[None, :], "expected shape"),
        (lambda ids: document_mask(ids)[0], "expected shape"),
    ],
)
def _check_document_mask(answer) -> str | None:
    for packed in _packed_cases(0):
        ids = packed.document_ids
        rows, length = ids.shape
        got = answer(ids.clone())
        problem = tensor_problem(
            got, (rows, length, length), lambda d: d == torch.bool, "a bool mask, True = blocked",
            ": one [L, L] mask per row, queries along dim 1 and keys along dim 2 "
            "(document_ids[:, :, None] against document_ids[:, None, :])")
        if problem:
            return problem
        expected = document_mask(ids)
        if torch.equal(got, expected):
            continue
        real = ids >= 0
        diagonal = got.diagonal(dim1=1, dim2=2)
        if torch.equal(got, ~expected) or (diagonal[real].all() and (~got & expected).any()):
            return ("your mask is inverted: True = allowed is SDPA's convention; here True = "
                    "blocked (nn.MultiheadAttention's), and a token always sees itself")
        if diagonal[real].any():
            return "your mask blocks a token from itself: a real query must see its own key"
        if torch.equal(got, document_mask(ids, causal=True)):
            return ("your mask is causal: this one is not (causal=False), a query sees every key "
                    "of its document, earlier and later; the causal part is added separately")
        other = (ids[:, :, None] != ids[:, None, :]) & (ids >= 0)[:, None, :]
        if (~got & other).any():
            return ("your mask lets a query see keys of another document of its row: block "
                    "where the document ids differ, document_ids[:, :, None] != "
                    "document_ids[:, None, :]")
        pad_keys = packed.key_padding_mask[:, None, :].expand(-1, length, -1)
        if (~got & pad_keys).any():
            return ("your mask lets queries see PAD keys: every PAD position has document id -1, "
                    "so `!=` alone lets the PAD positions see each other; block the PAD keys "
                    "(columns) too: | (document_ids < 0)[:, None, :]")
        row = int((got != expected).flatten(1).any(1).nonzero()[0])
        return (f"in the row with document ids {ids[row].tolist()} (-1 = PAD), expected "
                f"(1 = blocked)\n{expected[row].int()}\ngot\n{got[row].int()}")
    return None


# --- 10.position_ids -----------------------------------------------------------------------

def _solve_position_ids(document_ids):
    positions = torch.arange(document_ids.shape[1]).expand_as(document_ids)
    starts = torch.ones_like(document_ids, dtype=torch.bool)
    starts[:, 1:] = document_ids[:, 1:] != document_ids[:, :-1]  # a document begins here
    start_of_document = torch.where(starts, positions, 0).cummax(dim=1).values
    return positions - start_of_document


def _arange(document_ids):
    return torch.arange(document_ids.shape[1]).expand_as(document_ids).clone()


@exercise(
    "10.position_ids",
    task="Return the position ids of packed rows: `LongTensor[R, L]`, 0, 1, 2, ... within each "
         "document, restarting at 0 at each document's first token (`document_ids` is -1 at PAD).",
    hint="a document starts where its id differs from the previous position's; carry each "
         "start's position forward with torch.where(starts, arange(L), 0).cummax(dim=1) and "
         "subtract it from arange(L)",
    solution=_solve_position_ids,
    explanation="A position's id is its distance from the first token of its document: "
                "`arange(L)` minus the position of the latest document start, which `cummax` "
                "carries forward along the row without a Python loop. So every document is "
                "numbered as it would be alone, and only the real positions are compared (PAD "
                "may get any id).",
    wrong_answers=[
        (_arange, "restart"),
        (lambda ids: _solve_position_ids(ids) + 1, "minus one"),
    ],
)
def _check_position_ids(answer) -> str | None:
    for packed in _packed_cases(1):
        ids = packed.document_ids
        got = answer(ids.clone())
        problem = tensor_problem(got, ids.shape, _is_integer, "integer position ids")
        if problem:
            return problem
        expected = packed.position_ids
        real = ids >= 0
        got = got.long()
        if torch.equal(got[real], expected[real]):
            continue
        if torch.equal(got[real], (expected + 1)[real]):
            return ("each document's first token gets 1: positions start at 0, so subtract one "
                    "(minus one)")
        if torch.equal(got[real], _arange(ids)[real]):
            return ("your positions run 0..L-1 along the whole row: they must restart at 0 at "
                    "each document's first token, so that every document is numbered as if it "
                    "were alone")
        row = int(((got != expected) & real).any(1).nonzero()[0])
        return (f"in the row with document ids {ids[row].tolist()} (-1 = PAD), expected "
                f"{_row_text(expected[row], real[row])}, got {_row_text(got[row], real[row])} "
                "(PAD positions, '.', are not compared)")
    return None


# --- 10.labels -----------------------------------------------------------------------------

def _shift_left(labels):
    return torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE_INDEX)], dim=1)


def _copy(packed: Packed) -> Packed:
    return Packed(packed.ids.clone(), packed.document_ids.clone(), packed.position_ids.clone(),
                  packed.key_padding_mask.clone(), packed.placements)


@exercise(
    "10.labels",
    task="Return the labels of a `Packed` batch for causal-LM training, aligned with its ids: "
         "the ids, with -100 at PAD and at each document's first token.",
    hint="packed.ids.masked_fill(PAD | a document's first token, -100), with "
         "packed.key_padding_mask for PAD and packed.position_ids == 0 for the first tokens",
    solution=packed_labels,
    explanation="The loss shifts the labels, so the label at a document's first token is what "
                "the previous position, the end of the PREVIOUS document, would be trained to "
                "predict; -100 there (and at PAD, which is not data) keeps every document's "
                "training exactly what it would be alone. The checker accepts either value at "
                "column 0, which the shifted loss never reads, and names labels that keep PAD, "
                "keep the document starts, or are shifted by one.",
    wrong_answers=[
        (lambda packed: packed.ids.clone(), "PAD"),
        (lambda packed: packed.ids.masked_fill(packed.key_padding_mask, IGNORE_INDEX),
         "boundary"),
        (lambda packed: _shift_left(packed_labels(packed)), "shift"),
    ],
)
def _check_labels(answer) -> str | None:
    for packed in _packed_cases(2):
        ids = packed.ids
        got = answer(_copy(packed))
        problem = tensor_problem(got, ids.shape, _is_integer, "integer labels")
        if problem:
            return problem
        got = got.long()
        expected = packed_labels(packed)
        # column 0 is never a target of the shifted loss: its id or -100 are both fine
        first = torch.where(got[:, :1] == ids[:, :1], IGNORE_INDEX, got[:, :1])
        if torch.equal(torch.cat([first, got[:, 1:]], dim=1), expected):
            continue
        if torch.equal(got, _shift_left(expected)):
            return ("your labels are shifted by one position: keep them aligned with the ids "
                    "(labels[t] is the token AT t), the loss does the shift")
        trained = got != IGNORE_INDEX
        if (trained & packed.key_padding_mask).any():
            return "your labels train on PAD: set them to -100 where key_padding_mask is True"
        starts = packed.position_ids == 0
        starts[:, 0] = False
        if (trained & starts).any():
            return ("your labels keep each document's first token: the loss shifts them, so the "
                    "previous document's last token is trained to predict it, across the "
                    "document boundary; set -100 where position_ids == 0 too")
        row = int((torch.cat([first, got[:, 1:]], dim=1) != expected).any(1).nonzero()[0])
        return (f"in the row with ids {ids[row].tolist()} and document ids "
                f"{packed.document_ids[row].tolist()} (-1 = PAD), expected "
                f"{expected[row].tolist()}, got {got[row].tolist()}")
    return None


# --- 10.mask_mod ---------------------------------------------------------------------------

def _dense(mask_mod, rows, length):
    """Evaluate ``mask_mod`` at every (row, query, key) at once, without FlexAttention."""
    b = torch.arange(rows)[:, None, None]
    h = torch.zeros((), dtype=torch.long)
    q_idx = torch.arange(length)[None, :, None]
    kv_idx = torch.arange(length)[None, None, :]
    return mask_mod(b, h, q_idx, kv_idx)


def _solve_mask_mod(document_ids):
    return document_mask_mod(document_ids, causal=True)


def _blocked_mod(document_ids):
    allowed = document_mask_mod(document_ids, causal=True)

    def mask_mod(b, h, q_idx, kv_idx):
        return ~allowed(b, h, q_idx, kv_idx)

    return mask_mod


def _pad_allowed_mod(document_ids):
    def mask_mod(b, h, q_idx, kv_idx):
        return (document_ids[b, q_idx] == document_ids[b, kv_idx]) & (q_idx >= kv_idx)

    return mask_mod


@exercise(
    "10.mask_mod",
    task="Return a FlexAttention `mask_mod(b, h, q_idx, kv_idx)` for packed rows that is True "
         "where attention is ALLOWED: same document, the key not PAD, and not a later key.",
    hint="inside mask_mod index the ids with the indices: document_ids[b, q_idx] == "
         "document_ids[b, kv_idx], & document_ids[b, kv_idx] >= 0, & q_idx >= kv_idx; "
         "combine with & and ~, never and/or/if",
    solution=_solve_mask_mod,
    explanation="FlexAttention asks `mask_mod` about one (row, head, query, key) at a time, as "
                "tensors, and keeps the pairs where it returns True, the opposite of the course's "
                "True = blocked; so the mask_mod is `~document_mask(document_ids, causal=True)` "
                "written per pair. The checker evaluates it at all pairs at once with broadcast "
                "index tensors and compares it with that dense mask.",
    wrong_answers=[
        (_blocked_mod, "ALLOWED"),
        (lambda document_ids: document_mask_mod(document_ids, causal=False), "later"),
        (_pad_allowed_mod, "PAD"),
    ],
)
def _check_mask_mod(answer) -> str | None:
    for packed in _packed_cases(3):
        ids = packed.document_ids
        rows, length = ids.shape
        mask_mod = answer(ids.clone())
        if not callable(mask_mod):
            return (f"expected a function mask_mod(b, h, q_idx, kv_idx), got "
                    f"{type(mask_mod).__name__}: return the function itself, not its result")
        try:
            got = _dense(mask_mod, rows, length)
        except RuntimeError as error:
            if "ambiguous" not in str(error):
                raise
            return ("your mask_mod uses a tensor as a Python bool (and, or, if): FlexAttention "
                    "calls it with tensors, so combine the conditions with &, | and ~")
        if not isinstance(got, torch.Tensor):
            return f"your mask_mod returned {type(got).__name__}, expected a bool tensor"
        if got.dtype != torch.bool:
            return f"your mask_mod returned a {got.dtype} tensor, expected a bool one"
        try:
            got = torch.broadcast_to(got, (rows, length, length))
        except RuntimeError:
            return (f"called with b of shape [{rows}, 1, 1], q_idx [1, {length}, 1] and kv_idx "
                    f"[1, 1, {length}], your mask_mod returned shape {list(got.shape)}, which "
                    f"does not broadcast to [{rows}, {length}, {length}]")
        expected = ~document_mask(ids, causal=True)
        if torch.equal(got, expected):
            continue
        real = ids >= 0
        diagonal = got.diagonal(dim1=1, dim2=2)
        if torch.equal(got, ~expected) or (not diagonal[real].any() and (got & ~expected).any()):
            return ("your mask_mod returns True where attention is blocked (the course's "
                    "convention for bool masks): a mask_mod returns True where it is ALLOWED")
        if not diagonal[real].all():
            return ("your mask_mod stops a token from seeing itself: allow q_idx == kv_idx, "
                    "q_idx >= kv_idx rather than >")
        later = torch.ones(length, length, dtype=torch.bool).triu(1)
        other = (ids[:, :, None] != ids[:, None, :]) & (ids >= 0)[:, None, :]
        if (got & later & ~other & real[:, None, :]).any():
            return ("your mask_mod lets a query see later keys of its document: add "
                    "q_idx >= kv_idx (causal)")
        if (got & other).any():
            return ("your mask_mod lets a query see keys of another document of its row: "
                    "require document_ids[b, q_idx] == document_ids[b, kv_idx]")
        if (got & packed.key_padding_mask[:, None, :]).any():
            return ("your mask_mod allows PAD keys: the PAD positions all have document id -1, "
                    "so the same-document test alone lets them see each other; add "
                    "document_ids[b, kv_idx] >= 0")
        row = int((got != expected).flatten(1).any(1).nonzero()[0])
        return (f"in the row with document ids {ids[row].tolist()} (-1 = PAD), expected "
                f"(1 = allowed)\n{expected[row].int()}\ngot\n{got[row].int()}")
    return None
