"""Attention written out, with masks in the ``nn.MultiheadAttention`` convention.

``True`` in a bool mask = blocked; a float mask is added to the scores. A row whose
keys are all blocked gets zero weights and zero output (as PyTorch's own SDPA on
CPU gives), never NaN.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Iterator

import torch
from torch import nn

from course_lib._checks import check_bool_mask, check_mask, check_same_device, check_tensor
from course_lib.masks import merge

__all__ = [
    "CapturedAttention",
    "capture_attention",
    "masked_softmax",
    "scaled_dot_product_attention",
]


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """Softmax of ``scores`` over ``dim`` with blocked positions given exactly zero weight.

    Args:
        scores: FloatTensor of any shape, e.g. [B, H, Lq, Lk]. ``-inf`` entries count as blocked.
        mask: BoolTensor broadcastable to ``scores``, True = blocked; or None.
        dim: the dimension that sums to 1 (the keys).

    Returns:
        Weights shaped like ``scores``. Rows with every position blocked are all zero.
    """
    check_tensor("scores", scores)
    if not scores.dtype.is_floating_point:
        raise TypeError(f"scores: expected a floating tensor, got {scores.dtype}")
    blocked = torch.isneginf(scores)
    if mask is not None:
        check_bool_mask("mask", mask)
        check_same_device("mask", mask, "scores", scores)
        try:
            shape = torch.broadcast_shapes(mask.shape, scores.shape)
        except RuntimeError:
            shape = None
        if shape != scores.shape:
            raise ValueError(
                f"mask: shape {list(mask.shape)} does not broadcast to the scores' shape "
                f"{list(scores.shape)}"
            )
        blocked = blocked | mask
    empty_row = blocked.all(dim=dim, keepdim=True)
    # Fully blocked rows keep finite scores so softmax (and its gradient) stays NaN-free;
    # their weights are then set to zero.
    safe_scores = scores.masked_fill(empty_row, 0.0).masked_fill(blocked & ~empty_row, -math.inf)
    return torch.softmax(safe_scores, dim=dim).masked_fill(empty_row, 0.0)


def _check_attn_mask(attn_mask: torch.Tensor, batch: int, heads: int, lq: int, lk: int) -> None:
    check_mask("attn_mask", attn_mask, ndim=(2, 3, 4))
    shape = tuple(attn_mask.shape)
    if attn_mask.dim() == 3:
        raise ValueError(
            f"attn_mask: a 3-D mask {list(shape)} is ambiguous here. nn.MultiheadAttention "
            "expects [B*H, Lq, Lk]; this function takes [Lq, Lk] or [B, H, Lq, Lk] (1 broadcasts),"
            " e.g. mask.view(B, H, Lq, Lk) or mask.unsqueeze(1) for a [B, Lq, Lk] mask"
        )
    if attn_mask.dim() == 2 and shape != (lq, lk):
        hint = ""
        if shape == (batch, lk):
            hint = " It looks like a [B, Lk] padding mask: pass it as key_padding_mask."
        raise ValueError(
            f"attn_mask: expected shape [Lq, Lk] = [{lq}, {lk}], got {list(shape)}.{hint}"
        )
    if attn_mask.dim() == 4:
        ok = all(m in (1, want) for m, want in zip(shape, (batch, heads, lq, lk), strict=True))
        if not ok or shape[2:] != (lq, lk):
            raise ValueError(
                f"attn_mask: expected shape [B, H, Lq, Lk] = [{batch}, {heads}, {lq}, {lk}] "
                f"(B and H may be 1), got {list(shape)}"
            )


def _check_key_padding_mask(key_padding_mask: torch.Tensor, batch: int, lk: int) -> None:
    check_bool_mask("key_padding_mask", key_padding_mask, ndim=2)
    shape = tuple(key_padding_mask.shape)
    if shape != (batch, lk):
        hint = " It looks transposed: use key_padding_mask.T." if shape == (lk, batch) else ""
        raise ValueError(
            f"key_padding_mask: expected shape [B, Lk] = [{batch}, {lk}], got {list(shape)}.{hint}"
        )


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    attn_mask: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / √D + mask) v, returning the output and the weights.

    Args:
        q: FloatTensor[B, H, Lq, D] queries.
        k: FloatTensor[B, H, Lk, D] keys.
        v: FloatTensor[B, H, Lk, Dv] values.
        attn_mask: bool (True = blocked) or additive float (0 / -inf), shape [Lq, Lk]
            or [B, H, Lq, Lk] where B and H may be 1.
        key_padding_mask: BoolTensor[B, Lk], True at PAD keys.

    Returns:
        ``(output [B, H, Lq, Dv], weights [B, H, Lq, Lk])``. A query whose keys are all
        blocked gets zero weights and a zero output.
    """
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, tensor, ndim=4)
        if not tensor.dtype.is_floating_point:
            raise TypeError(f"{name}: expected a floating tensor, got {tensor.dtype}")
        check_same_device(name, tensor, "q", q)
    batch, heads, lq, depth = q.shape
    lk = k.shape[2]
    if k.shape[:2] != (batch, heads) or v.shape[:2] != (batch, heads):
        raise ValueError(
            f"q, k, v: expected the same [B, H] leading dims, got {list(q.shape)}, "
            f"{list(k.shape)}, {list(v.shape)}"
        )
    if k.shape[3] != depth:
        raise ValueError(f"k: expected head size D = {depth} like q, got shape {list(k.shape)}")
    if v.shape[2] != lk:
        raise ValueError(f"v: expected Lk = {lk} rows like k, got shape {list(v.shape)}")

    scores = q @ k.transpose(-2, -1) / math.sqrt(depth)
    blocked = None
    if attn_mask is not None:
        check_tensor("attn_mask", attn_mask)
        check_same_device("attn_mask", attn_mask, "q", q)
        _check_attn_mask(attn_mask, batch, heads, lq, lk)
        if attn_mask.dtype == torch.bool:
            blocked = attn_mask
        else:
            scores = scores + attn_mask
    if key_padding_mask is not None:
        check_tensor("key_padding_mask", key_padding_mask)
        check_same_device("key_padding_mask", key_padding_mask, "q", q)
        _check_key_padding_mask(key_padding_mask, batch, lk)
        padding = merge(key_padding_mask=key_padding_mask)
        blocked = padding if blocked is None else blocked | padding
    weights = masked_softmax(scores, blocked)
    return weights @ v, weights


class CapturedAttention(dict):
    """Attention weights recorded by :func:`capture_attention`.

    ``captured[name]`` is the FloatTensor[B, H, Lq, Lk] of the latest call of the
    ``nn.MultiheadAttention`` called ``name`` (as in ``module.named_modules()``, e.g.
    ``"encoder.layers.0.self_attn"`` or ``"decoder.layers.1.multihead_attn"``);
    ``captured.calls[name]`` lists every call in order (useful when decoding step by step).
    Rows whose keys are all blocked hold zeros, as everywhere in course_lib. So do PAD
    query rows of an ``nn.TransformerEncoder`` on its nested-tensor fast path (eval mode,
    no autograd, a right-padded ``src_key_padding_mask``, no ``mask``): it never computes
    them. Its output there is 0.0 before its final ``norm`` and that norm's bias after it;
    do not rely on either.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, list[torch.Tensor]] = {}

    def _record(self, name: str, weights: torch.Tensor) -> None:
        self[name] = weights
        self.calls.setdefault(name, []).append(weights)


@contextlib.contextmanager
def capture_attention(module: nn.Module) -> Iterator[CapturedAttention]:
    """Record per-layer, per-head attention weights of ``module`` without changing its outputs.

    Works for ``nn.Transformer``, ``nn.TransformerEncoder/Decoder``, their layers, a bare
    ``nn.MultiheadAttention`` (recorded as ``"self"``) and any model containing them, in
    training and eval mode. The layers call their attention with ``need_weights=False``,
    so a plain forward hook sees ``None``; a pre-hook asks for the per-head weights
    instead, and the caller still receives exactly what it asked for. Hooks also turn
    off the layers' fused fast path, so outputs agree with an uncaptured run to ~1e-6.

    Example::

        with capture_attention(model) as captured:
            model(src, tgt, src_key_padding_mask=..., tgt_mask=...)
        captured["decoder.layers.0.multihead_attn"]  # [B, H, T, S]
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module: expected an nn.Module, got {type(module).__name__}")
    attentions = [(name or "self", m) for name, m in module.named_modules()
                  if isinstance(m, nn.MultiheadAttention)]
    if not attentions:
        raise ValueError(
            f"module: {type(module).__name__} contains no nn.MultiheadAttention to capture"
        )
    captured = CapturedAttention()
    handles = []
    for name, attention in attentions:
        requested: list[tuple[bool, bool]] = []  # what each pending call asked for
        handles.append(attention.register_forward_pre_hook(
            functools.partial(_ask_for_weights, requested=requested), with_kwargs=True))
        handles.append(attention.register_forward_hook(
            functools.partial(_record_weights, name=name, requested=requested,
                              captured=captured), with_kwargs=True))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


_MHA_SIGNATURE = inspect.signature(nn.MultiheadAttention.forward)


def _ask_for_weights(attention, args, kwargs, *, requested):
    bound = _MHA_SIGNATURE.bind(attention, *args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    del arguments["self"]
    inputs = (arguments.pop("query"), arguments.pop("key"), arguments.pop("value"))
    requested.append((arguments["need_weights"], arguments["average_attn_weights"]))
    return inputs, {**arguments, "need_weights": True, "average_attn_weights": False}


def _record_weights(attention, args, kwargs, output, *, name, requested, captured):
    need_weights, average = requested.pop()
    attn_output, weights = output
    if torch.isnan(weights).any() and not need_weights:
        # MHA's weight path gives NaN on rows with no allowed key, its fused path zeros:
        # recompute the caller's output the caller's way (hooks are bypassed for the call).
        with _hooks_bypassed(attention):
            attn_output, _ = attention(*args, **{**kwargs, "need_weights": False})
    captured._record(name, weights.detach().nan_to_num(0.0))
    if not need_weights:
        return attn_output, None
    return attn_output, weights.mean(dim=1) if average else weights


@contextlib.contextmanager
def _hooks_bypassed(attention: nn.Module):
    pre_hooks, hooks = attention._forward_pre_hooks, attention._forward_hooks
    attention._forward_pre_hooks, attention._forward_hooks = type(pre_hooks)(), type(hooks)()
    try:
        yield
    finally:
        attention._forward_pre_hooks, attention._forward_hooks = pre_hooks, hooks
