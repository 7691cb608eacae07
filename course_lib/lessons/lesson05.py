"""Lesson 05 helpers: the teacher-forcing figure, the training curves, the reversal score of a
cross-attention map, and the loss functions of the ablations.

Each ablation loss has the signature of ``training.train``'s ``loss_fn`` hook,
``loss_fn(model, batch) -> scalar``, and switches off exactly one thing of the baseline loss
(``sequence_loss`` of ``model(batch.src, batch.tgt_in)``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from course_lib import viz
from course_lib._checks import check_bool_mask, check_tensor
from course_lib.data import Batch, Vocab
from course_lib.training import History, sequence_loss

__all__ = ["plot_shift", "plot_history", "reversal_alignment", "loss_without_padding_masks",
           "loss_counting_pad", "loss_without_causal_mask", "WithoutPaddingMasks"]


def plot_shift(batch: Batch, vocab: Vocab) -> Figure:
    """The sources, then each target as ``tgt_in`` over ``tgt_out``, on one position axis.

    Args:
        batch: a collated :class:`course_lib.data.Batch`.
        vocab: the vocabulary that encoded it (for the token labels).

    PAD cells are hatched; an arrow per sequence shows that ``tgt_out[t]`` is read as
    ``tgt_in[t + 1]`` at the next step.
    """
    if not isinstance(batch, Batch):
        raise TypeError(f"batch: expected a course_lib.data.Batch, got {type(batch).__name__}")
    size, length = batch.tgt_in.shape
    rows = torch.stack([batch.tgt_in, batch.tgt_out], dim=1).reshape(2 * size, length)
    labels = [f"{b}: {name}" for b in range(size) for name in ("tgt_in", "tgt_out")]
    fig, axes = plt.subplots(2, 1, figsize=(0.62 * length + 2.4, 0.42 * 3 * size + 2.6),
                             layout="constrained",
                             gridspec_kw={"height_ratios": (size, 2 * size)})
    viz.plot_padded_batch(batch.src, Vocab.PAD, itos=vocab.itos, ax=axes[0],
                          title="src [B, S] (the encoder reads it)")
    axes[0].set_yticks(range(size), [f"{b}: src" for b in range(size)])
    cells = [[vocab.itos[int(t)] for t in row] for row in rows]
    viz.plot_grid(cells, rows == Vocab.PAD, row_labels=labels, ax=axes[1], xlabel="position t",
                  ylabel="", legend_label="PAD (masked out)",
                  title="tgt_in [B, T] (decoder input) over tgt_out [B, T] (what it must predict)")
    for b in range(size):  # tgt_out[b, 0] comes back as tgt_in[b, 1]
        axes[1].annotate("", xy=(0.72, 2 * b + 0.3), xytext=(0.28, 2 * b + 0.7),
                         arrowprops={"arrowstyle": "->", "color": "#d55e00", "linewidth": 1.5})
    for b in range(1, size):
        axes[1].axhline(2 * b - 0.5, color="black", linewidth=1.5)
    return fig


def plot_history(history: History, *, target: float | None = None) -> Figure:
    """Training loss per step (log scale) and held-out exact match at each evaluation:
    the teacher-forced checks as lines, greedy decoding (which confirms the stop) as stars.

    Args:
        history: what :func:`course_lib.training.train` returned.
        target: an exact-match goal drawn as a dashed line, e.g. ``recipes.STOP_EXACT_MATCH``.
    """
    if not isinstance(history, History) or not history.losses:
        raise ValueError("history: expected a training.History with at least one step")
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    steps = range(1, len(history.losses) + 1)
    loss_ax.plot(steps, history.losses, color="#0072b2", linewidth=1.2)
    loss_ax.set_yscale("log")
    loss_ax.set(xlabel="training step", ylabel="sequence_loss (token mean, log scale)",
                title="training loss per step (one batch of 128 fresh pairs each)")
    loss_ax.grid(True, which="both", alpha=0.3)
    checks = [e for e in history.evaluations
              if e.get("decoding", "teacher_forced") == "teacher_forced"]
    greedy = [e for e in history.evaluations if e.get("decoding") == "greedy"]
    score_ax.plot([e["step"] for e in checks], [e["exact_match"] for e in checks],
                  "o-", color="#009e73", label="exact match (teacher-forced = greedy)")
    score_ax.plot([e["step"] for e in checks], [e["token_accuracy"] for e in checks],
                  "s--", color="#cc79a7", markersize=4, label="token accuracy (teacher-forced)")
    if greedy:
        score_ax.plot([e["step"] for e in greedy], [e["exact_match"] for e in greedy], "*",
                      color="black", markersize=12, linestyle="none",
                      label="exact match, greedy decoding")
    if target is not None:
        score_ax.axhline(target, color="black", linestyle=":", label=f"stop at {target}")
    score_ax.set(xlabel="training step", ylabel="fraction of validation pairs", ylim=(0, 1.03),
                 xlim=loss_ax.get_xlim(), title="held-out validation pairs at each check")
    score_ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
    score_ax.grid(True, alpha=0.3)
    return fig


def reversal_alignment(weights: torch.Tensor, src_key_padding_mask: torch.Tensor, *,
                       tolerance: int = 0) -> float:
    """The fraction of output steps whose strongest source key is the one reversal copies.

    Args:
        weights: FloatTensor[B, T, S], cross-attention weights of teacher-forced decoding
            (one layer, averaged over the heads); query t is the step that outputs
            ``src[len - 1 - t]``.
        src_key_padding_mask: BoolTensor[B, S], True at source PAD.
        tolerance: how far (in source positions) the strongest key may be from ``len - 1 - t``.

    Returns:
        Over every sequence and every step ``t < len`` (EOS steps excluded), the fraction
        where ``|weights[b, t].argmax() - (len - 1 - t)| <= tolerance``: 1.0 is a perfect
        anti-diagonal.
    """
    check_tensor("weights", weights, ndim=3)
    check_bool_mask("src_key_padding_mask", src_key_padding_mask, ndim=2)
    if src_key_padding_mask.shape != (weights.shape[0], weights.shape[2]):
        raise ValueError(f"src_key_padding_mask: expected shape [B, S] = "
                         f"{[weights.shape[0], weights.shape[2]]}, got "
                         f"{list(src_key_padding_mask.shape)}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance: expected an int >= 0, got {tolerance!r}")
    lengths = (~src_key_padding_mask).sum(dim=1)  # [B]
    if int(lengths.max()) > weights.shape[1]:
        raise ValueError(f"weights: {weights.shape[1]} query steps cannot cover sources of "
                         f"length {int(lengths.max())}")
    steps = torch.arange(weights.shape[1])
    real = steps[None, :] < lengths[:, None]  # [B, T]: steps that output a source token
    expected = lengths[:, None] - 1 - steps[None, :]
    hits = ((weights.argmax(dim=-1) - expected).abs() <= tolerance) & real
    return float(hits.sum() / real.sum())


def loss_without_padding_masks(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Ablation (a): src, tgt and memory key padding masks off; tgt_mask and the loss kept."""
    memory = model.encode(batch.src, None)
    logits = model.decode(batch.tgt_in, memory, tgt_mask=batch.tgt_mask,
                          tgt_key_padding_mask=None, memory_key_padding_mask=None)
    return sequence_loss(logits, batch.tgt_out, model.pad_id)


def loss_counting_pad(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Ablation (b): every mask kept, but the cross-entropy averages over ALL positions, PAD too."""
    logits = model(batch.src, batch.tgt_in)
    return F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten())


def loss_without_causal_mask(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Ablation (c): the padding masks kept, ``tgt_mask`` off: step t sees tgt_in[t + 1], ..."""
    memory = model.encode(batch.src, batch.src_key_padding_mask)
    logits = model.decode(batch.tgt_in, memory, tgt_mask=None,
                          tgt_key_padding_mask=batch.tgt_key_padding_mask,
                          memory_key_padding_mask=batch.memory_key_padding_mask)
    return sequence_loss(logits, batch.tgt_out, model.pad_id)


class WithoutPaddingMasks(nn.Module):
    """A view of a seq2seq model that ignores the padding masks it is given.

    ``training.evaluate`` and ``decoding.greedy_decode`` pass every mask; wrap a model
    trained with :func:`loss_without_padding_masks` to decode it the way it was trained
    (``tgt_mask`` is kept, as in that loss).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.pad_id = model.pad_id

    def encode(self, src: torch.Tensor, src_key_padding_mask: torch.Tensor | None):
        return self.model.encode(src, None)

    def decode(self, tgt_in, memory, *, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask):
        return self.model.decode(tgt_in, memory, tgt_mask=tgt_mask, tgt_key_padding_mask=None,
                                 memory_key_padding_mask=None)
