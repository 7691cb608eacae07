"""Checks of one mask at a time: dtype, shape, polarity, agreement with the PAD positions.

:func:`inspect_mask` returns the findings and, when the mask is usable, what it blocks as a
BoolTensor[B or 1, H or 1, Lq or 1, Lk] for the checks of whole attention blocks.
"""

from __future__ import annotations

import torch

from course_lib.doctor.report import Finding, finding
from course_lib.doctor.setup import IDS_NAME, SIDE_LETTER, SPECS, Setup
from course_lib.masks import causal_mask

__all__ = ["FILL_THRESHOLD", "inspect_mask"]

# A float mask value at or below this (or -inf) counts as blocked: -1e4, -1e9, finfo.min.
FILL_THRESHOLD = -1e4


def _cells(n: int, what: str = "cell") -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _blocked(name: str, mask: torch.Tensor, out: list[Finding]) -> torch.Tensor | None:
    """What a mask blocks, as bool; None when its meaning is unclear (a float 0/1 mask)."""
    if mask.dtype == torch.bool:
        return mask
    if mask.dtype.is_floating_point:
        if bool(((mask == 0) | (mask == 1)).all()) and bool((mask == 1).any()):
            out.append(finding("float-01-mask", name, (
                f"{name} is a {mask.dtype} mask of 0.0 and 1.0 ({_cells(int((mask == 1).sum()))} "
                "hold 1.0): those cells get +1 added to their scores and are not blocked")))
            return None
        return torch.isneginf(mask) | (mask <= FILL_THRESHOLD)
    values = torch.unique(mask).tolist()
    shown = ", ".join(map(str, values[:6])) + (", ..." if len(values) > 6 else "")
    out.append(finding("integer-mask", name, f"{name} is a {mask.dtype} mask (values {shown})"))
    return mask != 0


def _expected_shape(setup: Setup, name: str, ndim: int) -> tuple[tuple, str]:
    kind, query, key = SPECS[name]
    batch, lq, lk = setup.batch, setup.length[query], setup.length[key]
    q, k = SIDE_LETTER[query], SIDE_LETTER[key]
    if kind == "padding":
        return (batch, lk), f"[B, {k}]"
    if ndim == 3:
        rows = None if batch is None or setup.heads is None else batch * setup.heads
        return (rows, lq, lk), f"[B*H, {q}, {k}]"
    return (lq, lk), f"[{q}, {k}]"


def _fits(shape: tuple, expected: tuple) -> bool:
    return len(shape) == len(expected) and all(e is None or s == e
                                               for s, e in zip(shape, expected, strict=True))


def _shown(expected: tuple, letters: str) -> str:
    if any(e is None for e in expected):
        return letters
    return f"{letters} = {list(expected)}"


def _shape_finding(setup: Setup, name: str, mask: torch.Tensor) -> Finding | None:
    kind, _, key = SPECS[name]
    shape = tuple(mask.shape)
    if mask.dim() not in ((2,) if kind == "padding" else (2, 3)):
        hint = (" A [B, 1, 1, L] mask is the broadcast form F.scaled_dot_product_attention "
                "takes; nn.Transformer wants the 2-D one." if mask.dim() == 4 else "")
        wanted = "2-D [B, L]" if kind == "padding" else "2-D [Lq, Lk] or 3-D [B*H, Lq, Lk]"
        return finding("mask-shape", name, f"{name} has shape {list(shape)}; expected a "
                                           f"{wanted} mask.{hint}")
    expected, letters = _expected_shape(setup, name, mask.dim())
    if mask.dim() == 3 and expected[0] is None and setup.batch and shape[0] % setup.batch:
        return finding("mask-shape", name, f"{name} has {shape[0]} slices, not a multiple of "
                                           f"the batch size B = {setup.batch}")
    if _fits(shape, expected):
        return None
    if mask.dim() == 2 and _fits(shape[::-1], expected):
        return finding("mask-transposed", name, f"{name} has shape {list(shape)}; expected "
                                                f"{_shown(expected, letters)}: it is transposed")
    if kind == "attn" and mask.dim() == 2 and _fits(shape, (setup.batch, setup.length[key])):
        return finding("padding-mask-as-attn-mask", name, (
            f"{name} has shape {list(shape)} = [B, {SIDE_LETTER[key]}], the shape of a padding "
            f"mask; expected {_shown(expected, letters)}"))
    hint = ""
    if mask.dim() == 3 and setup.heads and shape[0] == setup.batch and setup.heads > 1:
        hint = f"; a [B, Lq, Lk] mask needs .repeat_interleave({setup.heads}, dim=0)"
    return finding("mask-shape", name, f"{name} has shape {list(shape)}; expected "
                                       f"{_shown(expected, letters)}{hint}")


def _other_pad_id(setup: Setup, side: str, blocked: torch.Tensor) -> str:
    ids = setup.ids[side]
    for value in torch.unique(ids).tolist():
        if value != setup.pad_id and torch.equal(blocked, ids == value):
            return f" It equals {IDS_NAME[side]} == {value}: built with pad_id={value}?"
    other = "tgt" if side == "src" else "src"
    if setup.pad(other) is not None and setup.pad(other).shape == blocked.shape \
            and torch.equal(blocked, setup.pad(other)):
        return (f" It is the padding mask of {IDS_NAME[other]}, but its keys are the "
                f"{IDS_NAME[side]} positions.")
    return ""


def _padding_content(setup: Setup, name: str, blocked: torch.Tensor) -> Finding | None:
    key = SPECS[name][2]
    pad = setup.pad(key)
    if pad is None:  # no ids: only an unmistakable inversion is decidable
        if bool(blocked[:, 0].all()) and bool(blocked.all(dim=1).any()) \
                and not bool(blocked.all()):
            return finding("padding-mask-inverted", name, (
                f"{name} blocks the first key of every sequence and every key of "
                f"{_cells(int(blocked.all(dim=1).sum()), 'sequence')}: it looks True where "
                f"tokens are real (give {IDS_NAME[key]} to decide for sure)"), ids=IDS_NAME[key])
        return None
    if torch.equal(blocked, pad):
        return None
    ids_name = IDS_NAME[key]
    if blocked.shape[0] == blocked.shape[1] and torch.equal(blocked.T, pad):
        return finding("mask-transposed", name, (
            f"{name} is {ids_name}'s padding mask transposed: the shape [B, L] = "
            f"{list(blocked.shape)} fits because B == L, so PyTorch cannot notice"))
    if torch.equal(blocked, ~pad):
        return finding("padding-mask-inverted", name, (
            f"{name} is True at the {_cells(int((~pad).sum()), 'real token')} and False at the "
            f"{_cells(int(pad.sum()), 'PAD position')} of {ids_name}: True marks the tokens to "
            "keep"), ids=ids_name)
    leaked, hidden = int((pad & ~blocked).sum()), int((~pad & blocked).sum())
    return finding("padding-mask-mismatch", name, (
        f"{name} leaves {_cells(leaked, 'PAD position')} of {ids_name} unblocked and blocks "
        f"{_cells(hidden, 'real token')}.{_other_pad_id(setup, key, blocked)}"), ids=ids_name)


def _structure(setup: Setup, name: str, stack: torch.Tensor) -> list[Finding]:
    """Causal polarity of a square src_mask / tgt_mask; ``stack`` is [N, L, L]."""
    size = stack.shape[-1]
    future = causal_mask(size, device=stack.device)
    out = []
    if bool((stack == ~future).all()):
        out.append(finding("causal-mask-inverted", name, (
            f"{name} is True on and below the diagonal ({_cells(int((~future).sum()))}"
            f"{' in every slice' if stack.shape[0] > 1 else ''}): it blocks each position's "
            "past and itself")))
    elif name == "tgt_mask" and not bool((stack | ~future).all()):
        if bool((stack == future.T).all()):
            out.append(finding("causal-mask-blocks-past", name, (
                f"{name} is True BELOW the diagonal: query i is blocked from keys j < i and may "
                "see every key j > i")))
        else:
            open_cells = int((future & ~stack).sum())
            out.append(finding("tgt-mask-allows-future", name, (
                f"{name} leaves {_cells(open_cells, 'future cell')} (key j > query i) "
                f"unblocked{' across its slices' if stack.shape[0] > 1 else ''}")))
    if name == "src_mask" and any(bool((stack == pattern).all())
                                  for pattern in (future, ~future, future.T)):
        out.append(finding("causal-src-mask", name, (
            f"src_mask is a causal [{size}, {size}] mask: the encoder's position i cannot see "
            "the source tokens around it")))
    return out


def _head_order(setup: Setup, name: str, stack: torch.Tensor) -> Finding | None:
    batch = setup.batch
    heads = stack.shape[0] // batch if batch else None
    if not batch or batch < 2 or not heads or heads < 2:
        return None
    per_sequence = stack.view(batch, heads, *stack.shape[1:])
    if bool((per_sequence == per_sequence[:, :1]).all()):
        return None
    head_major = stack.view(heads, batch, *stack.shape[1:])
    if bool((head_major == head_major[:1]).all()):
        return finding("mask-head-order", name, (
            f"{name} [{stack.shape[0]}, ...] holds the batch's masks in the order of "
            f".repeat({heads}, 1, 1): slice b*{heads} + h is not sequence b's mask"))
    return None


def _padding_as_attn(setup: Setup, name: str, blocked: torch.Tensor) -> Finding | None:
    """The silent case: a [B, Lk] padding mask passed as a [Lq, Lk] attn_mask when B == Lq."""
    pad = setup.pad(SPECS[name][2])
    if pad is None or pad.shape != blocked.shape or not bool(pad.any()):
        return None
    if torch.equal(blocked, pad) and not torch.equal(blocked, causal_mask(
            blocked.shape[1], device=blocked.device)[: blocked.shape[0]]):
        return finding("padding-mask-as-attn-mask", name, (
            f"{name} equals the padding mask of {IDS_NAME[SPECS[name][2]]}; it fits the "
            f"[Lq, Lk] shape only because B == Lq = {blocked.shape[0]}"))
    return None


def inspect_mask(setup: Setup, name: str) -> tuple[list[Finding], torch.Tensor | None]:
    """Findings about one mask, and what it blocks as [B|1, H|1, Lq|1, Lk] (None if broken)."""
    mask = setup.masks[name]
    out: list[Finding] = []
    blocked = _blocked(name, mask, out)
    shape_problem = _shape_finding(setup, name, mask)
    if shape_problem:
        return [*out, shape_problem], None
    if blocked is None:
        return out, None
    kind, query, key = SPECS[name]
    if kind == "padding":
        problem = _padding_content(setup, name, blocked)
        out += [problem] if problem else []
        merged = blocked[:, None, None, :]
    else:
        stack = blocked if blocked.dim() == 3 else blocked[None]
        problem = _head_order(setup, name, stack) if blocked.dim() == 3 else None
        problem = problem or (_padding_as_attn(setup, name, blocked) if blocked.dim() == 2
                              else None)
        out += [problem] if problem else []
        if name != "memory_mask" and stack.shape[-1] == stack.shape[-2]:
            out += _structure(setup, name, stack)
        if blocked.dim() == 2:
            merged = blocked[None, None]
        elif setup.batch:
            merged = blocked.view(setup.batch, -1, *blocked.shape[1:])
        else:
            merged = None
    usable = not any(f.severity == "error" for f in out)
    return out, merged if usable else None
