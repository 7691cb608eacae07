"""Packing: several sequences per row instead of one sequence and its padding.

:func:`pack` places whole sequences into rows of ``row_len`` tokens by **first-fit
decreasing** (longest first, each into the first row with room; none is split), and records
per position which document it belongs to (``document_ids``, -1 at PAD) and its position
inside that document (``position_ids``, restarting at 0). Three things then keep the
documents of a row apart:

* the **document mask** (:func:`document_mask`): a query sees only keys of its own document
  (and, causal, not later ones); PAD keys are blocked;
* the **restarted position ids**;
* **labels** that never ask a document's last token to predict the next document's first
  token (:func:`packed_labels`).

The same mask as a FlexAttention ``mask_mod`` and ``BlockMask``: :func:`document_mask_mod`,
:func:`document_block_mask`. Conventions are the course's: a bool mask is True where
attention is BLOCKED (FlexAttention's ``mask_mod`` returns True where it is ALLOWED).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from course_lib._checks import check_tensor, check_token_ids
from course_lib.causal_lm import IGNORE_INDEX

__all__ = ["Packed", "pack", "document_mask", "packed_labels", "document_mask_mod",
           "document_block_mask"]


@dataclass(frozen=True)
class Packed:
    """Rows of packed sequences.

    Attributes:
        ids: LongTensor[R, row_len], the tokens, PAD after the last document of a row.
        document_ids: LongTensor[R, row_len], the index (in the input list) of the sequence
            each position holds; -1 at PAD.
        position_ids: LongTensor[R, row_len], the position inside its document (0 at each
            document's first token); 0 at PAD.
        key_padding_mask: BoolTensor[R, row_len], True at PAD.
        placements: for each input sequence, in input order, ``(row, start)``: it occupies
            ``ids[row, start:start + len(sequence)]``.
    """

    ids: torch.Tensor
    document_ids: torch.Tensor
    position_ids: torch.Tensor
    key_padding_mask: torch.Tensor
    placements: tuple[tuple[int, int], ...]

    @property
    def lengths(self) -> list[int]:
        """The length of each input sequence, in input order."""
        counts = torch.bincount(self.document_ids[self.document_ids >= 0],
                                minlength=len(self.placements))
        return counts.tolist()

    def unpack(self, outputs: torch.Tensor) -> list[torch.Tensor]:
        """Split per-position ``outputs`` [R, row_len, ...] back into one tensor per input
        sequence, in input order (``outputs[row, start:start + n]``)."""
        check_tensor("outputs", outputs)
        if tuple(outputs.shape[:2]) != tuple(self.ids.shape):
            raise ValueError(f"outputs: expected [R, row_len, ...] = {list(self.ids.shape)}, "
                             f"got {list(outputs.shape)}")
        return [outputs[row, start:start + n]
                for (row, start), n in zip(self.placements, self.lengths, strict=True)]


def pack(sequences: Sequence[torch.Tensor], row_len: int, *, pad_id: int = 0) -> Packed:
    """Pack whole sequences into rows of ``row_len`` tokens, first-fit decreasing.

    Args:
        sequences: 1-D LongTensors, each of length 1..row_len.
        row_len: the length of every row.
        pad_id: the id written after the last document of a row.

    Returns:
        A :class:`Packed`. First-fit decreasing uses at most 11/9 of the optimal number of
        rows (plus a constant); ties keep the input order, so the result is deterministic.
    """
    if isinstance(row_len, bool) or not isinstance(row_len, int) or row_len < 1:
        raise ValueError(f"row_len: expected an int >= 1, got {row_len!r}")
    if isinstance(pad_id, bool) or not isinstance(pad_id, int):
        raise TypeError(f"pad_id: expected an int, got {pad_id!r}")
    if isinstance(sequences, torch.Tensor) or len(sequences) == 0:
        raise ValueError("sequences: expected a non-empty list of 1-D LongTensors, got "
                         f"{type(sequences).__name__}"
                         + (f" of shape {list(sequences.shape)}"
                            if isinstance(sequences, torch.Tensor) else " with none"))
    for index, sequence in enumerate(sequences):
        name = f"sequences[{index}]"
        check_tensor(name, sequence, ndim=1)
        check_token_ids(name, sequence[None])
        if not 1 <= len(sequence) <= row_len:
            raise ValueError(f"{name}: has {len(sequence)} tokens; every sequence needs 1 to "
                             f"row_len = {row_len} (packing never splits a sequence)")
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))  # stable
    free: list[int] = []  # room left in each row
    placements: dict[int, tuple[int, int]] = {}
    for index in order:
        n = len(sequences[index])
        row = next((r for r, room in enumerate(free) if room >= n), None)
        if row is None:
            row = len(free)
            free.append(row_len)
        placements[index] = (row, row_len - free[row])
        free[row] -= n
    rows = len(free)
    ids = torch.full((rows, row_len), pad_id, dtype=torch.long)
    document_ids = torch.full((rows, row_len), -1, dtype=torch.long)
    position_ids = torch.zeros((rows, row_len), dtype=torch.long)
    for index, sequence in enumerate(sequences):
        row, start = placements[index]
        ids[row, start:start + len(sequence)] = sequence
        document_ids[row, start:start + len(sequence)] = index
        position_ids[row, start:start + len(sequence)] = torch.arange(len(sequence))
    return Packed(ids, document_ids, position_ids, document_ids < 0,
                  tuple(placements[i] for i in range(len(sequences))))


def _check_document_ids(document_ids: object) -> None:
    check_tensor("document_ids", document_ids, ndim=2)
    if document_ids.dtype.is_floating_point or document_ids.dtype == torch.bool:
        raise TypeError(f"document_ids: expected integer document indices, got a "
                        f"{document_ids.dtype} tensor")
    if document_ids.numel() and int(document_ids.min()) < -1:
        raise ValueError("document_ids: expected document indices >= 0 and -1 at PAD, got "
                         f"values down to {int(document_ids.min())}")


def document_mask(document_ids: torch.Tensor, *, causal: bool = False) -> torch.Tensor:
    """BoolTensor[R, L, L], True = blocked: a query sees only the keys of its own document
    (with ``causal``, not the later ones), never a PAD key (document id -1).

    A PAD query has no allowed key at all (its row is fully blocked): nothing may read its
    output, and an attention without a safe softmax gives NaN there.
    """
    _check_document_ids(document_ids)
    if not isinstance(causal, bool):
        raise TypeError(f"causal: expected True or False, got {causal!r}")
    same = document_ids[:, :, None] == document_ids[:, None, :]
    blocked = ~same | (document_ids < 0)[:, None, :]
    if causal:
        length = document_ids.shape[1]
        blocked |= torch.ones(length, length, dtype=torch.bool,
                              device=document_ids.device).triu(1)
    return blocked


def packed_labels(packed: Packed) -> torch.Tensor:
    """Labels for causal-LM training on packed rows, aligned with the ids (the loss shifts):
    the ids, with ``-100`` at PAD and at each document's FIRST token, which no earlier token of
    its own document predicts. So a document's last token is never asked for the next
    document's first token."""
    if not isinstance(packed, Packed):
        raise TypeError(f"packed: expected a Packed (from packing.pack), got "
                        f"{type(packed).__name__}")
    return packed.ids.masked_fill(packed.key_padding_mask | (packed.position_ids == 0),
                                  IGNORE_INDEX)


def document_mask_mod(document_ids: torch.Tensor, *, causal: bool = True) -> Callable:
    """The document mask as a FlexAttention ``mask_mod(b, h, q_idx, kv_idx)``, which returns
    True where attention is ALLOWED: same document, the key not PAD (and, causal, not later).
    ``~document_mask(...)`` is the same mask, dense."""
    _check_document_ids(document_ids)

    def mask_mod(b, h, q_idx, kv_idx):
        same = document_ids[b, q_idx] == document_ids[b, kv_idx]
        allowed = same & (document_ids[b, kv_idx] >= 0)
        return allowed & (q_idx >= kv_idx) if causal else allowed

    return mask_mod


def document_block_mask(document_ids: torch.Tensor, *, causal: bool = True):
    """The FlexAttention ``BlockMask`` of :func:`document_mask_mod`, built on the CPU
    (``create_block_mask`` defaults to CUDA)."""
    from torch.nn.attention.flex_attention import create_block_mask

    rows, length = document_ids.shape
    return create_block_mask(document_mask_mod(document_ids, causal=causal), B=rows, H=None,
                             Q_LEN=length, KV_LEN=length, device=str(document_ids.device))
