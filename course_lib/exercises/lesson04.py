"""Exercises of lesson 04: the six masks of ``nn.Transformer``.

The mask builders are run on several random batches and sizes (S != T, so a mask built
from the wrong side has the wrong shape) and compared with the reference, naming the
usual mistakes: a [B, S] padding mask where [S, S] is expected (or the reverse), inverted
polarity, a float mask, a forgotten ``memory_key_padding_mask``.
"""

from __future__ import annotations

import torch

from course_lib.exercises.core import exercise
from course_lib.lessons.lesson04 import MASK_NAMES, wait_k_mask, window_mask
from course_lib.masks import causal_mask

BLOCK_NAMES = ("encoder self-attention", "decoder self-attention", "cross-attention")
WHICH_BLOCK = {
    "src_mask": "encoder self-attention",
    "src_key_padding_mask": "encoder self-attention",
    "tgt_mask": "decoder self-attention",
    "tgt_key_padding_mask": "decoder self-attention",
    "memory_mask": "cross-attention",
    "memory_key_padding_mask": "cross-attention",
}
WHY = {
    "src_mask": "it is the attn_mask of the encoder's self-attention (source attends to source)",
    "src_key_padding_mask": "it hides source PAD keys from the encoder's self-attention; it "
                            "does not reach the decoder (nn.Transformer does not copy it)",
    "tgt_mask": "it is the attn_mask of the decoder's self-attention (target attends to the "
                "target prefix)",
    "tgt_key_padding_mask": "it hides target PAD keys in the decoder's self-attention",
    "memory_mask": "it is the attn_mask [T, S] of the cross-attention: target queries, "
                   "source (memory) keys",
    "memory_key_padding_mask": "the memory (the encoder output) supplies the KEYS of the "
                               "cross-attention, so its PAD positions are hidden there",
}
FLOAT_MASK = ("is a float mask: float masks are ADDED to the scores, so a 0/1 float mask "
              "blocks nothing. Return a bool mask, True = blocked")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:100]


def _compare_mask(name: str, got: object, expected: torch.Tensor, where: str) -> str | None:
    """A specific message if ``got`` is not the bool mask ``expected``, else None."""
    if not isinstance(got, torch.Tensor):
        return f"{name}: expected a BoolTensor, got {_describe(got)} {where}"
    if got.dtype != torch.bool:
        return f"{name} {FLOAT_MASK} (got {got.dtype}) {where}"
    if got.shape != expected.shape:
        if got.shape == expected.shape[::-1]:
            return (f"{name}: expected shape {list(expected.shape)}, got {list(got.shape)}: "
                    f"it looks transposed {where}")
        if name.endswith("key_padding_mask"):
            return (f"{name}: expected [B, L] = {list(expected.shape)}, one row per sequence, "
                    f"got {list(got.shape)}; nn.Transformer broadcasts it over the queries and "
                    f"heads itself {where}")
        return f"{name}: expected shape {list(expected.shape)}, got {list(got.shape)} {where}"
    if torch.equal(got, expected):
        return None
    if torch.equal(got, ~expected):
        return (f"{name}: inverted polarity: your mask is True where attention is ALLOWED. In "
                f"nn.Transformer a bool mask is True where attention is BLOCKED {where}")
    return f"{name}: wrong cells, expected {expected.int().tolist()}, got " \
           f"{got.int().tolist()} {where}"


# --- 04.seq2seq_masks --------------------------------------------------------------------------

def _random_batch(generator: torch.Generator, batch: int, length: int, pad_id: int):
    """LongTensor[B, L] right-padded with pad_id; row 0 has no PAD, the last row has some."""
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0], lengths[-1] = length, max(1, length - 2)
    ids = torch.randint(0, 20, (batch, length), generator=generator)
    ids[ids == pad_id] = pad_id + 1
    ids[torch.arange(length)[None, :] >= lengths[:, None]] = pad_id
    return ids


def _solve_seq2seq_masks(src: torch.Tensor, tgt: torch.Tensor, pad_id: int) -> dict:
    src_key_padding_mask = src == pad_id
    return {
        "src_key_padding_mask": src_key_padding_mask,
        "tgt_key_padding_mask": tgt == pad_id,
        "memory_key_padding_mask": src_key_padding_mask,
        "tgt_mask": torch.nn.Transformer.generate_square_subsequent_mask(
            tgt.shape[1], dtype=torch.bool),
    }


def _without(key: str):
    return lambda src, tgt, pad_id: {k: v for k, v in _solve_seq2seq_masks(src, tgt, pad_id)
                                     .items() if k != key}


def _replace(key: str, make):
    return lambda src, tgt, pad_id: {**_solve_seq2seq_masks(src, tgt, pad_id),
                                     key: make(src, tgt, pad_id)}


@exercise(
    "04.seq2seq_masks",
    task="Return the masks of a standard seq2seq `nn.Transformer` call as a dict of its keyword "
         "arguments.",
    hint="three padding masks (ids == pad_id) of shape [B, S], [B, T] and [B, S] - the memory "
         "keys ARE the source positions - plus a bool causal tgt_mask [T, T]",
    solution=_solve_seq2seq_masks,
    explanation="Three bool padding masks, `src == pad_id` twice (the memory keys are the source "
                "positions) and `tgt == pad_id`, plus a bool causal `tgt_mask` `[T, T]`; "
                "`src_mask` and `memory_mask` stay out. The checker tries S != T and names a "
                "missing `memory_key_padding_mask` (nn.Transformer does not copy it), a float "
                "`tgt_mask` next to bool padding masks, inverted polarity, a `[B, T]` tgt_mask, a "
                "target-side memory mask, a transposed causal mask and unknown argument names.",
    wrong_answers=[
        (_without("memory_key_padding_mask"), "does not copy"),
        (_replace("tgt_mask", lambda s, t, p: torch.nn.Transformer.generate_square_subsequent_mask(
            t.shape[1])), "mismatched"),
        (_replace("src_key_padding_mask", lambda s, t, p: s != p), "inverted polarity"),
        (_replace("tgt_mask", lambda s, t, p: t == p), "[B, T] is the shape of a padding mask"),
        (_replace("memory_key_padding_mask", lambda s, t, p: t == p), "SOURCE"),
        (_replace("tgt_mask", lambda s, t, p: causal_mask(t.shape[1]).T), "future"),
        (lambda s, t, p: {**_solve_seq2seq_masks(s, t, p), "causal_mask": True}, "no argument"),
    ],
)
def _check_seq2seq_masks(answer) -> str | None:
    generator = torch.Generator().manual_seed(40)
    for batch, src_len, tgt_len, pad_id in ((2, 6, 5, 0), (3, 4, 7, 0), (4, 9, 3, 1), (5, 5, 6, 7)):
        src = _random_batch(generator, batch, src_len, pad_id)
        tgt = _random_batch(generator, batch, tgt_len, pad_id)
        where = f"for src [B, S] = [{batch}, {src_len}], tgt [B, T] = [{batch}, {tgt_len}], " \
                f"pad_id={pad_id}"
        masks = answer(src.clone(), tgt.clone(), pad_id)
        if not isinstance(masks, dict):
            return f"expected a dict of nn.Transformer mask arguments, got {_describe(masks)}"
        unknown = set(masks) - set(MASK_NAMES)
        if unknown:
            return (f"nn.Transformer.forward has no argument {sorted(unknown)}: its masks are "
                    f"{list(MASK_NAMES)}")
        masks = {k: v for k, v in masks.items() if v is not None}
        if "memory_key_padding_mask" not in masks:
            return ("memory_key_padding_mask is missing: nn.Transformer does not copy "
                    "src_key_padding_mask into the cross-attention, so every target token "
                    "would attend to the source PAD positions")
        for name in ("src_key_padding_mask", "tgt_key_padding_mask", "tgt_mask"):
            if name not in masks:
                return f"{name} is missing: {WHY[name]}"
        for name in ("src_mask", "memory_mask"):
            if name in masks:
                return (f"a standard seq2seq model needs no {name} (leave it out or None): "
                        f"{WHY[name]}, and blocking cells there restricts what the model can see")
        tgt_mask = masks["tgt_mask"]
        if isinstance(tgt_mask, torch.Tensor) and tgt_mask.dtype.is_floating_point:
            return ("tgt_mask is a float mask (generate_square_subsequent_mask(T) is float "
                    "0/-inf) while the padding masks are bool: PyTorch warns 'Support for "
                    "mismatched key_padding_mask and attn_mask is deprecated'. Use "
                    "generate_square_subsequent_mask(T, dtype=torch.bool)")
        if isinstance(tgt_mask, torch.Tensor) and tuple(tgt_mask.shape) == (batch, tgt_len):
            return (f"tgt_mask: got shape {list(tgt_mask.shape)}; [B, T] is the shape of a "
                    f"padding mask. tgt_mask is the causal [T, T] = [{tgt_len}, {tgt_len}] "
                    f"mask shared by the batch {where}")
        if isinstance(tgt_mask, torch.Tensor) and torch.equal(tgt_mask, causal_mask(tgt_len).T):
            return ("tgt_mask: your mask blocks the past and lets every token see the future: "
                    "True must be ABOVE the diagonal (key j > query i), e.g. .triu(diagonal=1)")
        memory = masks["memory_key_padding_mask"]
        if isinstance(memory, torch.Tensor) and memory.shape == (batch, tgt_len) \
                and src_len != tgt_len:
            return ("memory_key_padding_mask: got shape [B, T]; it masks the SOURCE positions "
                    "(the memory keys), so it is [B, S], the same as src_key_padding_mask")
        expected = _solve_seq2seq_masks(src, tgt, pad_id)
        for name, mask in expected.items():
            problem = _compare_mask(name, masks[name], mask, where)
            if problem:
                return problem
    return None


# --- 04.which_block ----------------------------------------------------------------------------

@exercise(
    "04.which_block",
    task="Name the attention block (encoder self-attention, decoder self-attention or "
         "cross-attention) that each of the six masks reaches.",
    hint=f"src_* masks act where the source attends to itself, tgt_* where the target does, "
         f"memory_* where target queries read the encoder output; blocks: {BLOCK_NAMES}",
    solution=dict(WHICH_BLOCK),
    explanation="`src_*` masks act where the source attends to itself, `tgt_*` where the target "
                "prefix attends to itself, and `memory_*` in the cross-attention, whose keys are "
                "the encoder output. The checker names the usual confusions, "
                "`memory_key_padding_mask` in the encoder and `src_key_padding_mask` in the "
                "cross-attention (nn.Transformer does not copy it), a block name not in the list, "
                "and a missing mask.",
    wrong_answers=[
        ({**WHICH_BLOCK, "memory_key_padding_mask": "encoder self-attention"}, "KEYS"),
        ({**WHICH_BLOCK, "src_key_padding_mask": "cross-attention"}, "does not copy"),
        ({**WHICH_BLOCK, "memory_mask": "encoder"}, "one of"),
        ({k: v for k, v in WHICH_BLOCK.items() if k != "tgt_mask"}, "missing"),
    ],
)
def _check_which_block(answer) -> str | None:
    if not isinstance(answer, dict):
        return f"expected a dict {{mask name: block name}}, got {_describe(answer)}"
    missing = [name for name in MASK_NAMES if name not in answer]
    if missing:
        return f"missing: {missing}; give a block for each of the six masks"
    for name in MASK_NAMES:
        block = answer[name]
        if block not in BLOCK_NAMES:
            return f"{name}: {block!r} is not one of {BLOCK_NAMES}"
        if block != WHICH_BLOCK[name]:
            return f"{name} does not reach the {block}: {WHY[name]}"
    extra = set(answer) - set(MASK_NAMES)
    if extra:
        return f"nn.Transformer has no mask called {sorted(extra)}"
    return None


# --- 04.window_src_mask ------------------------------------------------------------------------

@exercise(
    "04.window_src_mask",
    task="Build a local-window `src_mask` `[size, size]`: query i may see key j only when |i - j| "
         "<= radius.",
    hint="block key j for query i when the distance |i - j| is larger than radius; "
         "torch.arange(size) and broadcasting ([:, None] against [None, :]) give every distance",
    solution=window_mask,
    explanation="`(positions[:, None] - positions[None, :]).abs() > radius` is True exactly where "
                "the distance exceeds radius, on both sides of the query, and is bool in "
                "nn.Transformer's convention (True = blocked). The checker names inverted "
                "polarity, a float mask, a window of another radius, and a one-sided mask that "
                "blocks only the keys after the query.",
    wrong_answers=[
        (lambda size, radius: ~window_mask(size, radius), "inverted polarity"),
        (lambda size, radius: window_mask(size, radius).float(), "float"),
        (lambda size, radius: window_mask(size, radius + 1), "radius"),
        (lambda size, radius: torch.ones(size, size, dtype=torch.bool).triu(radius + 1),
         "both sides"),
    ],
)
def _check_window_src_mask(answer) -> str | None:
    for size, radius in ((6, 2), (5, 1), (8, 3), (4, 0), (3, 5)):
        where = f"for size={size}, radius={radius}"
        got = answer(size, radius)
        expected = window_mask(size, radius)
        if isinstance(got, torch.Tensor) and got.dtype == torch.bool \
                and got.shape == expected.shape and not torch.equal(got, expected) \
                and not torch.equal(got, ~expected):
            if torch.equal(got, expected.triu()):
                return (f"your mask blocks only keys AFTER the query; a local window blocks "
                        f"keys further than radius on both sides {where}")
            for other in range(size + 1):
                if other != radius and torch.equal(got, window_mask(size, other)):
                    return (f"your window keeps keys up to {other} positions away, not up to "
                            f"radius={radius}: block where |i - j| > radius {where}")
        problem = _compare_mask("src_mask", got, expected, where)
        if problem:
            return problem
    return None


# --- 04.memory_mask ----------------------------------------------------------------------------

@exercise(
    "04.memory_mask",
    task="Build a wait-k `memory_mask` `[T, S]`: target step t may read source positions j < t + "
         "k only.",
    hint="rows are target steps t, columns source positions j: block where j >= t + k; "
         "compare torch.arange(src_len)[None, :] with torch.arange(tgt_len)[:, None]",
    solution=wait_k_mask,
    explanation="Rows are the cross-attention's queries (target steps) and columns its keys "
                "(source positions), so `arange(src_len)[None, :] >= arange(tgt_len)[:, None] + "
                "k` blocks exactly the source tokens not yet read. The checker names the "
                "transposed `[S, T]` shape, inverted polarity, another k (e.g. k + 1), and a "
                "float mask.",
    wrong_answers=[
        (lambda tgt_len, src_len, k: wait_k_mask(src_len, tgt_len, k), "[T, S]"),
        (lambda tgt_len, src_len, k: ~wait_k_mask(tgt_len, src_len, k), "inverted polarity"),
        (lambda tgt_len, src_len, k: wait_k_mask(tgt_len, src_len, k + 1), "t + k"),
        (lambda tgt_len, src_len, k: wait_k_mask(tgt_len, src_len, k).float(), "float"),
    ],
)
def _check_memory_mask(answer) -> str | None:
    for tgt_len, src_len, k in ((5, 6, 2), (4, 7, 1), (6, 3, 2), (3, 8, 3)):
        where = f"for tgt_len={tgt_len}, src_len={src_len}, k={k}"
        got = answer(tgt_len, src_len, k)
        expected = wait_k_mask(tgt_len, src_len, k)
        if isinstance(got, torch.Tensor) and got.shape == (src_len, tgt_len):
            return (f"memory_mask: expected [T, S] = [{tgt_len}, {src_len}] (target queries x "
                    f"source keys), got {list(got.shape)} {where}")
        if isinstance(got, torch.Tensor) and got.dtype == torch.bool \
                and got.shape == expected.shape and not torch.equal(got, expected):
            for other in range(1, src_len + 2):
                if other != k and torch.equal(got, wait_k_mask(tgt_len, src_len, other)):
                    return (f"target step t may read source positions j < t + k, so "
                            f"{k} tokens at step 0; your mask lets it read {other} {where}")
        problem = _compare_mask("memory_mask", got, expected, where)
        if problem:
            return problem
    return None
