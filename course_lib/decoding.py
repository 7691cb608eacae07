"""Decoding a trained seq2seq model: batched greedy search.

The decoder is re-run on the whole prefix at every step (no key/value cache yet), with the
same masks as in training: the causal ``tgt_mask``, PAD keys of the prefix, PAD keys of
the source (``memory_key_padding_mask``).
"""

from __future__ import annotations

import torch

from course_lib._checks import check_tensor
from course_lib.data import Vocab
from course_lib.masks import causal_mask, padding_mask

__all__ = ["greedy_decode"]


@torch.no_grad()
def greedy_decode(
    model: torch.nn.Module, src: torch.Tensor, *, max_len: int,
    bos_id: int = Vocab.BOS, eos_id: int = Vocab.EOS,
) -> torch.Tensor:
    """The most likely next token at every step, for a whole batch of sources at once.

    Args:
        model: a :class:`course_lib.models.Seq2SeqTransformer` (anything with ``encode``,
            ``decode`` and ``pad_id``). Run in eval mode; its mode is restored afterwards.
        src: LongTensor[B, S] of source ids, right-padded with ``model.pad_id``.
        max_len: the most tokens generated per row, EOS included.

    Returns:
        LongTensor[B, L] with L <= max_len, without the leading BOS. A row that has produced
        ``eos_id`` gets only PAD afterwards; decoding stops once every row has finished.
    """
    check_tensor("src", src, ndim=2)
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len: expected a positive int, got {max_len!r}")
    pad_id = model.pad_id
    was_training = model.training
    model.eval()
    try:
        src_key_padding_mask = padding_mask(src, pad_id)
        memory = model.encode(src, src_key_padding_mask)
        tokens = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            logits = model.decode(
                tokens, memory, tgt_mask=causal_mask(tokens.shape[1], device=src.device),
                tgt_key_padding_mask=padding_mask(tokens, pad_id),
                memory_key_padding_mask=src_key_padding_mask,
            )
            next_token = logits[:, -1].argmax(dim=-1).masked_fill(finished, pad_id)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            finished |= next_token == eos_id
            if bool(finished.all()):
                break
    finally:
        model.train(was_training)
    return tokens[:, 1:]
