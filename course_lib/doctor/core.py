"""``doctor.check``: look at the tensors about to go into a model and explain what is wrong."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_lib.data import Batch, Vocab
from course_lib.doctor.blocks import block_findings, missing_masks
from course_lib.doctor.masks import inspect_mask
from course_lib.doctor.model import loss_findings, model_findings
from course_lib.doctor.report import Report
from course_lib.doctor.setup import MASK_NAMES, build_setup

__all__ = ["check", "check_batch"]


def check(
    *, src: torch.Tensor | None = None, tgt_in: torch.Tensor | None = None,
    pad_id: int | None = None, src_mask: torch.Tensor | None = None,
    tgt_mask: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None,
    src_key_padding_mask: torch.Tensor | None = None,
    tgt_key_padding_mask: torch.Tensor | None = None,
    memory_key_padding_mask: torch.Tensor | None = None,
    model: nn.Module | None = None, loss_fn: Callable | None = None,
) -> Report:
    """Check the inputs of one ``nn.Transformer``-style call; return a :class:`Report`.

    Give what the model is about to receive, under ``nn.Transformer``'s argument names; every
    argument is optional, and the more you give, the more can be decided (with the ids, a
    transposed ``[B, S]`` mask is caught even when B == S).

    Args:
        src: LongTensor[B, S], source token ids (batch first).
        tgt_in: LongTensor[B, T], decoder input ids (BOS + target).
        pad_id: the PAD id; needed with ids, a model or a loss.
        src_mask: [S, S] (or [B*H, S, S]), bool True = blocked, or additive float.
        tgt_mask: [T, T] (or [B*H, T, T]), the causal mask of the decoder.
        memory_mask: [T, S] (or [B*H, T, S]).
        src_key_padding_mask, memory_key_padding_mask: BoolTensor[B, S], True at source PAD.
        tgt_key_padding_mask: BoolTensor[B, T], True at target PAD.
        model: the module the tensors go into: its embeddings (``padding_idx``), ``pad_id``
            attribute, dtype and encoder fast path are checked. When NO mask is given and the
            model has a ``pad_id`` (``Seq2SeqTransformer``), it builds its masks itself and
            missing masks are not reported.
        loss_fn: the criterion on logits and targets: ``nn.CrossEntropyLoss``,
            ``training.sequence_loss`` or any ``loss_fn(logits[N, V], targets[N])``.

    Returns:
        A :class:`Report`: a list of :class:`Finding` (errors first), ``.ok``, ``.codes``;
        it prints as a plain-text report and shows as markdown in a notebook.

    Raises:
        TypeError / ValueError: when the arguments themselves are not what the doctor reads.
    """
    masks = dict(zip(MASK_NAMES, (src_mask, tgt_mask, memory_mask, src_key_padding_mask,
                                  tgt_key_padding_mask, memory_key_padding_mask), strict=True))
    setup = build_setup(pad_id, src, tgt_in, masks, model, loss_fn)
    findings, usable = [], {}
    for name in setup.masks:
        found, blocked = inspect_mask(setup, name)
        findings += found
        if blocked is not None:
            usable[name] = blocked
    findings += missing_masks(setup)
    findings += block_findings(setup, usable)
    if model is not None:
        findings += model_findings(setup)
    if loss_fn is not None:
        findings += loss_findings(setup)
    count = len(setup.masks)
    checked = [name for name, value in (("src", src), ("tgt_in", tgt_in)) if value is not None]
    checked += [f"{count} mask{'s' if count != 1 else ''}"] if count else ["no masks"]
    checked += [name for name, value in (("model", model), ("loss_fn", loss_fn))
                if value is not None]
    return Report(findings, checked)


def check_batch(batch: Batch, *, model: nn.Module | None = None,
                loss_fn: Callable | None = None, pad_id: int = Vocab.PAD) -> Report:
    """:func:`check` a :class:`course_lib.data.Batch` the way the course's models use it.

    Its masks go to the model as ``src_key_padding_mask``, ``tgt_key_padding_mask``,
    ``tgt_mask``, and ``memory_key_padding_mask = src_key_padding_mask`` (what
    ``Seq2SeqTransformer.forward`` passes).
    """
    if not isinstance(batch, Batch):
        raise TypeError(f"batch: expected a course_lib.data.Batch (from data.collate), got "
                        f"{type(batch).__name__}")
    return check(src=batch.src, tgt_in=batch.tgt_in, pad_id=pad_id,
                 src_key_padding_mask=batch.src_key_padding_mask,
                 tgt_key_padding_mask=batch.tgt_key_padding_mask, tgt_mask=batch.tgt_mask,
                 memory_key_padding_mask=batch.src_key_padding_mask, model=model,
                 loss_fn=loss_fn)
