"""Attention written out, with masks in the ``nn.MultiheadAttention`` convention.

``True`` in a bool mask = blocked; a float mask is added to the scores. A row whose
keys are all blocked gets zero weights and zero output (as PyTorch's own SDPA on
CPU gives), never NaN.
"""

from __future__ import annotations

import math

import torch

from course_lib._checks import check_bool_mask, check_mask, check_same_device, check_tensor
from course_lib.masks import merge

__all__ = ["masked_softmax", "scaled_dot_product_attention"]


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
