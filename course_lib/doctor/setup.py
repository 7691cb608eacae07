"""What the doctor was given, validated, and the sizes it implies (B, S, T, heads)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from course_lib._checks import check_tensor

__all__ = ["MASK_NAMES", "SPECS", "BLOCKS", "Setup", "build_setup"]

MASK_NAMES = ("src_mask", "tgt_mask", "memory_mask", "src_key_padding_mask",
              "tgt_key_padding_mask", "memory_key_padding_mask")
# name -> (kind, query side, key side); a side is "src" or "tgt".
SPECS = {
    "src_mask": ("attn", "src", "src"),
    "tgt_mask": ("attn", "tgt", "tgt"),
    "memory_mask": ("attn", "tgt", "src"),
    "src_key_padding_mask": ("padding", "src", "src"),
    "tgt_key_padding_mask": ("padding", "tgt", "tgt"),
    "memory_key_padding_mask": ("padding", "tgt", "src"),
}
# attention block -> (attn_mask name, key_padding_mask name)
BLOCKS = {
    "encoder self-attention": ("src_mask", "src_key_padding_mask"),
    "decoder self-attention": ("tgt_mask", "tgt_key_padding_mask"),
    "cross-attention": ("memory_mask", "memory_key_padding_mask"),
}
SIDE_LETTER = {"src": "S", "tgt": "T"}
IDS_NAME = {"src": "src", "tgt": "tgt_in"}


@dataclass
class Setup:
    """The validated inputs of one ``doctor.check`` call."""

    pad_id: int | None
    ids: dict[str, torch.Tensor | None]
    masks: dict[str, torch.Tensor]
    model: nn.Module | None
    loss_fn: Callable | None
    batch: int | None = None
    length: dict[str, int | None] = field(default_factory=dict)
    heads: int | None = None

    @property
    def model_builds_masks(self) -> bool:
        """No mask given to a model that has a ``pad_id``: it builds its masks itself."""
        return not self.masks and isinstance(getattr(self.model, "pad_id", None), int)

    def pad(self, side: str) -> torch.Tensor | None:
        """BoolTensor[B, L], True at PAD, from the ids of ``side``; None without ids."""
        ids = self.ids[side]
        return None if ids is None else ids == self.pad_id


def _check_ids(name: str, ids: object) -> None:
    if isinstance(ids, torch.Tensor) and ids.dim() == 3 and ids.dtype.is_floating_point:
        raise TypeError(f"{name}: expected token ids LongTensor[B, L], got a {ids.dtype} tensor "
                        f"of shape {list(ids.shape)}: pass the ids, not the embeddings")
    check_tensor(name, ids, ndim=2)
    if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.dtype.is_complex:
        raise TypeError(f"{name}: expected integer token ids [B, L], got a {ids.dtype} tensor")


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _size(mask: torch.Tensor | None, dim: int, ndims: tuple[int, ...] = (2,)) -> int | None:
    return None if mask is None or mask.dim() not in ndims else mask.shape[dim]


def _heads(model: nn.Module | None) -> int | None:
    if model is None:
        return None
    return next((m.num_heads for m in model.modules() if isinstance(m, nn.MultiheadAttention)),
                None)


def build_setup(pad_id, src, tgt_in, masks, model, loss_fn) -> Setup:
    """Validate the arguments of ``doctor.check`` and infer the sizes (ids first, then masks)."""
    masks = {name: mask for name, mask in masks.items() if mask is not None}
    if src is None and tgt_in is None and not masks and model is None and loss_fn is None:
        raise ValueError("check: nothing to check; give token ids (src, tgt_in), masks, a model "
                         "or a loss_fn")
    if pad_id is not None and (isinstance(pad_id, bool) or not isinstance(pad_id, int)):
        raise TypeError(f"pad_id: expected an int, got {type(pad_id).__name__} {pad_id!r}")
    needs_pad = [name for name, value in (("src", src), ("tgt_in", tgt_in), ("model", model),
                                          ("loss_fn", loss_fn)) if value is not None]
    if pad_id is None and needs_pad:
        raise ValueError(f"pad_id: needed to check {', '.join(needs_pad)}, got None; pass the "
                         "vocabulary's PAD id, e.g. pad_id=Vocab.PAD")
    for name, ids in (("src", src), ("tgt_in", tgt_in)):
        if ids is not None:
            _check_ids(name, ids)
    if src is not None and tgt_in is not None and src.shape[0] != tgt_in.shape[0]:
        raise ValueError(f"tgt_in: batch size {tgt_in.shape[0]} differs from src's "
                         f"{src.shape[0]}; src is [B, S] and tgt_in is [B, T]")
    for name, mask in masks.items():
        check_tensor(name, mask)
        if mask.dtype.is_complex:
            raise TypeError(f"{name}: expected a bool or float mask, got {mask.dtype}")
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn: expected a loss module or function, got "
                        f"{type(loss_fn).__name__} {loss_fn!r:.60}")
    get = masks.get
    setup = Setup(pad_id, {"src": src, "tgt": tgt_in}, masks, model, loss_fn)
    setup.batch = _first(*(None if t is None else t.shape[0] for t in (src, tgt_in)),
                         *(_size(get(n), 0) for n in ("src_key_padding_mask",
                                                      "tgt_key_padding_mask",
                                                      "memory_key_padding_mask")))
    setup.length["src"] = _first(
        None if src is None else src.shape[1], _size(get("src_key_padding_mask"), 1),
        _size(get("memory_key_padding_mask"), 1), _size(get("src_mask"), -1, (2, 3)),
        _size(get("memory_mask"), -1, (2, 3)))
    setup.length["tgt"] = _first(
        None if tgt_in is None else tgt_in.shape[1], _size(get("tgt_key_padding_mask"), 1),
        _size(get("tgt_mask"), -1, (2, 3)), _size(get("memory_mask"), -2, (2, 3)))
    setup.heads = _heads(model)
    return setup
