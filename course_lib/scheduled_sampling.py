"""Scheduled sampling: train on a mix of gold tokens and the model's own predictions.

Teacher forcing always feeds the decoder the gold previous token; at inference it reads its
own. Scheduled sampling (Bengio et al. 2015) flips a coin per token during training: the gold
token with probability ``gold_prob`` (a schedule from :mod:`course_lib.schedules`), else the
model's prediction.

* :class:`course_lib.rnn.RNNSeq2Seq` does it step by step (``decode_scheduled``).
* A Transformer decodes all positions in parallel, so there is no "previous prediction" while
  it trains. Mihaylova & Martins (2019) run the decoder twice and try several variants: the
  first pass with or without backpropagation through it, and several ways to turn its
  predictions into second-pass input embeddings (the argmax token's embedding, a
  softmax-weighted or Gumbel-softmax mix of embeddings). Ours is one of them: the argmax
  token, no gradient through the first pass. Its logits at position i predict
  ``tgt_out[:, i]``, which is ``tgt_in[:, i+1]``, so the predicted token of position i may
  replace the gold input at position **i+1**. The second pass reads the mixed input and is
  trained as usual.

:class:`ScheduledSamplingLoss` plugs either into :func:`course_lib.training.train` as its
``loss_fn``; it counts its own calls to know the step of the schedule.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from course_lib._checks import check_probability, check_tensor, check_token_ids
from course_lib.data import Batch
from course_lib.masks import causal_mask, padding_mask
from course_lib.rnn import RNNSeq2Seq
from course_lib.schedules import teacher_forcing_prob
from course_lib.training import sequence_loss

__all__ = ["coin_flips", "predicted_tokens", "mix_inputs", "TwoPass", "two_pass_logits",
           "ScheduledSamplingLoss"]


def coin_flips(shape: tuple[int, int], gold_prob: float, *,
               generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """One independent coin per token: BoolTensor[B, T], True = feed the gold token.

    Each cell is True with probability ``gold_prob``; column 0 (BOS) is always True.
    """
    gold_prob = check_probability("gold_prob", gold_prob)
    if len(shape) != 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                              for n in shape):
        raise ValueError(f"shape: expected (B, T) with positive ints, got {shape!r}")
    use_gold = torch.rand(shape, generator=generator, device=device) < gold_prob
    use_gold[:, 0] = True
    return use_gold


def predicted_tokens(logits: torch.Tensor, *, sample: bool = False,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """LongTensor[B, T]: the argmax of FloatTensor[B, T, V] logits, or a sample of their
    softmax (``sample=True``). Position i holds the prediction of ``tgt_out[:, i]``."""
    check_tensor("logits", logits, ndim=3)
    if not sample:
        return logits.argmax(dim=-1)
    probs = logits.detach().softmax(dim=-1).flatten(0, 1)
    return torch.multinomial(probs, 1, generator=generator).view(logits.shape[:2])


def mix_inputs(tgt_in: torch.Tensor, predicted: torch.Tensor, use_gold: torch.Tensor,
               pad_id: int) -> torch.Tensor:
    """The second pass's decoder input: gold tokens, or first-pass predictions shifted by one.

    Args:
        tgt_in: LongTensor[B, T], the gold ``[BOS] + target``, right-padded.
        predicted: LongTensor[B, T], first-pass predictions; ``predicted[:, i]`` is the guess
            for ``tgt_out[:, i] == tgt_in[:, i+1]``.
        use_gold: BoolTensor[B, T], True = keep the gold token (e.g. :func:`coin_flips`).
        pad_id: the PAD id.

    Returns:
        LongTensor[B, T]: ``mixed[:, i+1] = tgt_in[:, i+1]`` where ``use_gold[:, i+1]``, else
        ``predicted[:, i]``. Position 0 (BOS) and PAD positions always keep the gold token.
    """
    check_token_ids("tgt_in", tgt_in)
    check_token_ids("predicted", predicted)
    check_tensor("use_gold", use_gold, ndim=2)
    if use_gold.dtype != torch.bool:
        raise TypeError(f"use_gold: expected a BoolTensor (True = gold token), got "
                        f"{use_gold.dtype}")
    for name, value in (("predicted", predicted), ("use_gold", use_gold)):
        if value.shape != tgt_in.shape:
            raise ValueError(f"{name}: expected the shape of tgt_in {list(tgt_in.shape)}, got "
                             f"{list(value.shape)}")
    # The guess for position i+1 was made at position i: shift the predictions right by one.
    shifted_prediction = torch.cat([tgt_in[:, :1], predicted[:, :-1]], dim=1)
    keep_gold = use_gold | (tgt_in == pad_id)
    keep_gold[:, 0] = True
    return torch.where(keep_gold, tgt_in, shifted_prediction)


class TwoPass(NamedTuple):
    """logits: FloatTensor[B, T, V] of the second pass; decoder_input: LongTensor[B, T] it
    read; use_gold: BoolTensor[B, T], True where that input is the gold token;
    first_pass_guess: LongTensor[B, T], the first pass's guess for ``tgt_out`` at each i."""

    logits: torch.Tensor
    decoder_input: torch.Tensor
    use_gold: torch.Tensor
    first_pass_guess: torch.Tensor


def two_pass_logits(
    model: torch.nn.Module, src: torch.Tensor, tgt_in: torch.Tensor, gold_prob: float, *,
    generator: torch.Generator | None = None, sample: bool = False,
) -> TwoPass:
    """Two-pass scheduled sampling for a model with ``encode``/``decode`` (Seq2SeqTransformer).

    Pass 1 (no gradient): logits on the gold ``tgt_in``. Mix: :func:`mix_inputs` with one
    coin per token. Pass 2 (with gradient): logits on the mixed input. Both passes use the
    masks of the GOLD batch, so a predicted PAD token never turns a real position into a
    padding key. With ``gold_prob=1`` the result is exactly ``model(src, tgt_in)``.

    Args:
        src: LongTensor[B, S]; tgt_in: LongTensor[B, T] (``[BOS] + target``), right-padded.
        gold_prob: the probability of keeping each gold token.
    """
    gold_prob = check_probability("gold_prob", gold_prob)
    check_token_ids("src", src)
    check_token_ids("tgt_in", tgt_in)
    pad_id = model.pad_id
    src_key_padding_mask = padding_mask(src, pad_id)
    masks = {"tgt_mask": causal_mask(tgt_in.shape[1], device=tgt_in.device),
             "tgt_key_padding_mask": padding_mask(tgt_in, pad_id),
             "memory_key_padding_mask": src_key_padding_mask}
    memory = model.encode(src, src_key_padding_mask)
    with torch.no_grad():
        first_pass = model.decode(tgt_in, memory, **masks)
    use_gold = coin_flips(tuple(tgt_in.shape), gold_prob, generator=generator,
                          device=tgt_in.device)
    predicted = predicted_tokens(first_pass, sample=sample, generator=generator)
    mixed = mix_inputs(tgt_in, predicted, use_gold, pad_id)
    logits = model.decode(mixed, memory, **masks)
    return TwoPass(logits, mixed, use_gold | (tgt_in == pad_id), predicted)


class ScheduledSamplingLoss:
    """A ``loss_fn(model, batch)`` for :func:`course_lib.training.train`: scheduled sampling.

    Call ``n`` (0, 1, 2, ...) reads the gold token with probability
    ``teacher_forcing_prob(n, kind, **params)``: per token, step by step for an
    :class:`RNNSeq2Seq`, with the two-pass mix for any other encode/decode model.

    Args:
        kind, **params: the schedule (see :func:`course_lib.schedules.teacher_forcing_prob`).
        seed: seeds the coin flips (and samples), so a run repeats exactly.
        sample: feed a sample of the model's distribution instead of its argmax.

    Attributes:
        step: calls so far. gold_probs: the scheduled probability of each call.
        gold_fractions: the fraction of replaceable inputs (real, after BOS) that were gold.
    """

    def __init__(self, kind: str, *, seed: int = 0, sample: bool = False, **params: float):
        teacher_forcing_prob(0, kind, **params)  # validates kind and params now
        self.kind, self.params, self.sample = kind, dict(params), sample
        self.generator = torch.Generator().manual_seed(seed)
        self.step = 0
        self.gold_probs: list[float] = []
        self.gold_fractions: list[float] = []

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"ScheduledSamplingLoss({self.kind!r}, {params}, step={self.step})"

    def __call__(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        gold_prob = teacher_forcing_prob(self.step, self.kind, **self.params)
        if isinstance(model, RNNSeq2Seq):
            src_key_padding_mask = padding_mask(batch.src, model.pad_id)
            result = model.decode_scheduled(
                batch.tgt_in, model.encode(batch.src, src_key_padding_mask),
                memory_key_padding_mask=src_key_padding_mask, gold_prob=gold_prob,
                generator=self.generator, sample=self.sample)
        else:
            result = two_pass_logits(model, batch.src, batch.tgt_in, gold_prob,
                                     generator=self.generator, sample=self.sample)
        replaceable = batch.tgt_in != model.pad_id
        replaceable[:, 0] = False
        self.gold_probs.append(gold_prob)
        self.gold_fractions.append(
            float(result.use_gold[replaceable].float().mean()) if replaceable.any() else 1.0)
        self.step += 1
        return sequence_loss(result.logits, batch.tgt_out, model.pad_id)
