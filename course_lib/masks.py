"""Masks, in one convention: the one of ``nn.MultiheadAttention`` and ``nn.Transformer``.

* A **bool** mask is ``True`` where attention is **blocked** (a pad key, a future position).
* A **float** mask is **added** to the scores: ``0`` = allowed, ``-inf`` = blocked.

The other conventions found in the wild are converted explicitly:
``F.scaled_dot_product_attention`` (bool ``True`` = *allowed*, see :func:`to_sdpa`),
Hugging Face ``attention_mask`` (``1`` = keep, ``0`` = pad, see :func:`from_hf`) and its 4-D
additive mask (``finfo.min`` = blocked, see :func:`to_hf_4d` / :func:`from_hf_4d`),
``nn.MultiheadAttention``'s per-head 3-D mask (:func:`to_mha`) and FlexAttention's
``mask_mod`` (``True`` = *allowed*, see :func:`to_mask_mod`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_lib._checks import check_bool_mask, check_mask, check_tensor, check_token_ids

__all__ = ["padding_mask", "causal_mask", "to_additive", "to_sdpa", "from_hf", "to_hf_4d",
           "from_hf_4d", "to_mha", "to_mask_mod", "merge"]


def padding_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Which positions of a padded batch are PAD.

    Args:
        ids: LongTensor[B, L] of token ids.
        pad_id: the id used for padding (``Vocab.PAD``).

    Returns:
        BoolTensor[B, L], True at PAD: pass it as ``src_key_padding_mask`` /
        ``tgt_key_padding_mask`` / ``memory_key_padding_mask``.
    """
    check_token_ids("ids", ids)
    if isinstance(pad_id, bool) or not isinstance(pad_id, int):
        raise TypeError(f"pad_id: expected an int, got {type(pad_id).__name__} {pad_id!r}")
    return ids == pad_id


def causal_mask(size: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """BoolTensor[size, size], True above the diagonal: query i may not see keys j > i.

    Equal to ``nn.Transformer.generate_square_subsequent_mask(size, dtype=torch.bool)``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected a positive int, got {size!r}")
    return torch.ones(size, size, dtype=torch.bool, device=device).triu(diagonal=1)


def to_additive(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Bool mask (True = blocked) -> float mask of the same shape: 0 allowed, -inf blocked."""
    check_bool_mask("mask", mask)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))


def to_sdpa(mask: torch.Tensor) -> torch.Tensor:
    """Convert a mask to the ``F.scaled_dot_product_attention`` convention.

    A bool mask flips polarity (SDPA: True = ALLOWED). An additive float mask means
    the same thing in both APIs and is returned unchanged.
    """
    check_mask("mask", mask)
    return ~mask if mask.dtype == torch.bool else mask


def from_hf(attention_mask: torch.Tensor) -> torch.Tensor:
    """Hugging Face ``attention_mask`` (1 = keep, 0 = pad) -> BoolTensor, True at PAD."""
    check_tensor("attention_mask", attention_mask)
    if attention_mask.dtype.is_floating_point:
        raise TypeError(
            f"attention_mask: expected an integer or bool tensor of 1 = keep / 0 = pad, "
            f"got {attention_mask.dtype}"
        )
    if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError("attention_mask: expected only 0 (pad) and 1 (keep) values")
    return attention_mask == 0


def to_hf_4d(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Bool mask [B, Lq, Lk] or [B, 1, Lq, Lk] (True = blocked) -> Hugging Face's 4-D
    additive mask [B, 1, Lq, Lk]: 0 allowed, ``torch.finfo(dtype).min`` blocked.

    ``finfo.min`` is finite, so a row with no allowed key is not NaN but a uniform average
    over every key (Hugging Face's models expect PAD query rows to be ignored later).
    """
    check_bool_mask("mask", mask, ndim=(3, 4))
    if mask.dim() == 4 and mask.shape[1] != 1:
        raise ValueError(f"mask: expected [B, 1, Lq, Lk] (one mask for every head), got "
                         f"{list(mask.shape)}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
    mask = mask if mask.dim() == 4 else mask[:, None]
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        mask, torch.finfo(dtype).min)


def from_hf_4d(mask: torch.Tensor) -> torch.Tensor:
    """Hugging Face's 4-D additive mask [B, 1, Lq, Lk] -> BoolTensor[B, 1, Lq, Lk], True =
    blocked: where it holds ``finfo.min`` (or ``-inf``; in float16 adding two ``finfo.min``
    masks overflows to ``-inf``)."""
    check_tensor("mask", mask, ndim=4)
    if not mask.dtype.is_floating_point:
        raise TypeError(f"mask: expected Hugging Face's additive float mask (0 = keep, "
                        f"finfo.min = blocked), got a {mask.dtype} tensor; a 2-D 1/0 "
                        f"attention_mask goes through from_hf")
    blocked = mask <= torch.finfo(mask.dtype).min
    if bool((mask[~blocked] != 0).any()):
        raise ValueError("mask: expected only 0 (keep) and finfo.min (blocked) values; a mask "
                         "with other values is a bias: add it to the scores instead")
    return blocked


def to_mha(mask: torch.Tensor, num_heads: int) -> torch.Tensor:
    """A per-example mask [B, Lq, Lk] -> ``nn.MultiheadAttention``'s 3-D ``attn_mask``
    [B * num_heads, Lq, Lk]: example b's mask at rows ``b * num_heads ... + num_heads - 1``.

    That is ``repeat_interleave`` along dim 0, not ``repeat`` (which would give head h of
    example b the mask of example ``(b * num_heads + h) % B``). Bool or additive float.
    """
    check_mask("mask", mask, ndim=3)
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads: expected a positive int, got {num_heads!r}")
    return mask.repeat_interleave(num_heads, dim=0)


def to_mask_mod(mask: torch.Tensor) -> Callable:
    """A dense bool mask [B, Lq, Lk] (True = blocked) -> FlexAttention's
    ``mask_mod(b, h, q_idx, kv_idx)``, which returns True where attention is ALLOWED.

    A lookup into the dense mask: right for any mask, but a structured ``mask_mod`` (as
    ``course_lib.packing.document_mask_mod``) needs no [B, Lq, Lk] tensor at all.
    """
    check_bool_mask("mask", mask, ndim=3)
    allowed = ~mask

    def mask_mod(b, h, q_idx, kv_idx):
        return allowed[b, q_idx, kv_idx]

    return mask_mod


def merge(
    attn_mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Combine a structural mask and a padding mask into one BoolTensor[B, 1, Lq, Lk].

    Args:
        attn_mask: Bool or additive float [Lq, Lk] (shared by the batch) or [B, Lq, Lk].
            Additive masks may only hold 0 and -inf here.
        key_padding_mask: BoolTensor[B, Lk], True at PAD keys.

    Returns:
        BoolTensor[B, 1, Lq, Lk], True = blocked; the head dimension is 1 and broadcasts.
        With only ``attn_mask`` 2-D, B is 1. With only ``key_padding_mask``, Lq is 1.
    """
    if attn_mask is None and key_padding_mask is None:
        raise ValueError("merge: give attn_mask, key_padding_mask or both; got neither")
    blocked = None
    if attn_mask is not None:
        check_mask("attn_mask", attn_mask, ndim=(2, 3))
        if attn_mask.dtype != torch.bool:
            finite = torch.isfinite(attn_mask)
            if bool((attn_mask[finite] != 0).any()):
                raise ValueError(
                    "attn_mask: an additive mask with values other than 0 and -inf cannot be "
                    "merged into a bool mask; add it to the scores instead"
                )
            attn_mask = torch.isneginf(attn_mask)
        blocked = attn_mask.unsqueeze(0) if attn_mask.dim() == 2 else attn_mask
        blocked = blocked.unsqueeze(1)  # [B or 1, 1, Lq, Lk]
    if key_padding_mask is not None:
        check_bool_mask("key_padding_mask", key_padding_mask, ndim=2)
        padding = key_padding_mask[:, None, None, :]  # [B, 1, 1, Lk]
        if blocked is None:
            return padding
        if blocked.shape[-1] != padding.shape[-1]:
            raise ValueError(
                f"key_padding_mask: has {padding.shape[-1]} keys (shape "
                f"{list(key_padding_mask.shape)}) but attn_mask has {blocked.shape[-1]} "
                f"(shape {list(attn_mask.shape)}); a transposed [Lk, B] padding mask?"
            )
        if blocked.shape[0] not in (1, padding.shape[0]):
            raise ValueError(
                f"attn_mask: batch size {blocked.shape[0]} does not match key_padding_mask's "
                f"{padding.shape[0]}"
            )
        if padding.device != blocked.device:
            raise ValueError(
                f"key_padding_mask: is on {padding.device} but attn_mask is on {blocked.device}"
            )
        return blocked | padding
    return blocked
