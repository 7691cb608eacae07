"""Lesson 05: the loss-masking explorer.

A small fixed batch of decoder targets (``tgt_out``, 3 sequences of 8 positions) and the logits
of a half-trained model: the short sequence is still predicted badly, the long one well, and
the PAD positions hold garbage, as a decoder's outputs there always do. The explorer shows
each token's cross-entropy, the weight each token gets in the scalar loss under a reduction,
and the label-smoothed target distribution of one token.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_lib import viz
from course_lib.data import LETTERS, Vocab
from course_lib.widgets.core import Control, Explorer

__all__ = ["REDUCTIONS", "SMOOTHING", "BATCHES", "example_targets", "example_logits",
           "per_token_losses", "token_weights", "draw_loss_masking", "loss_masking_explorer"]

REDUCTIONS = ("token mean", "sequence mean", "PAD counted")
SMOOTHING = (0.0, 0.1, 0.2, 0.3)
BATCHES = ("ragged", "equal lengths", "all PAD")
VOCAB = Vocab(LETTERS)
LENGTH = 8  # T: positions of tgt_out
_REAL_TOKENS = {"ragged": (3, 5, 8), "equal lengths": (8, 8, 8), "all PAD": (0, 0, 0)}
_CONFIDENCE = (0.6, 2.0, 4.0)  # how sure the model is of each sequence's right tokens


def _check_choice(name: str, value: object, options: tuple) -> None:
    if value not in options:
        raise ValueError(f"{name}: expected one of {options}, got {value!r}")


def example_targets(batch: str = "ragged") -> torch.Tensor:
    """LongTensor[3, 8] of ``tgt_out``: letters, EOS at the end of each sequence, then PAD.

    Args:
        batch: "ragged" (3, 5 and 8 real tokens, EOS included), "equal lengths" (8 each) or
            "all PAD" (no real token at all, e.g. the empty tail of a bucketed dataset).
    """
    _check_choice("batch", batch, BATCHES)
    generator = torch.Generator().manual_seed(5)
    letters = torch.randint(len(Vocab.SPECIALS), len(VOCAB), (3, LENGTH), generator=generator)
    targets = torch.full((3, LENGTH), Vocab.PAD)
    for b, length in enumerate(_REAL_TOKENS[batch]):
        if length:
            targets[b, :length - 1] = letters[b, :length - 1]
            targets[b, length - 1] = Vocab.EOS
    return targets


def example_logits(targets: torch.Tensor) -> torch.Tensor:
    """FloatTensor[3, 8, V]: noise plus a push towards the right token, stronger for later
    sequences; at PAD targets noise only (what a decoder outputs there is never trained)."""
    generator = torch.Generator().manual_seed(50)
    noise = 1.5 * torch.randn(*targets.shape, len(VOCAB), generator=generator)
    push = torch.tensor(_CONFIDENCE)[:, None, None] * F.one_hot(targets, len(VOCAB))
    return noise + push * (targets != Vocab.PAD)[..., None]


def per_token_losses(logits: torch.Tensor, targets: torch.Tensor, *, count_pad: bool,
                     label_smoothing: float) -> torch.Tensor:
    """FloatTensor[B, T]: each token's cross-entropy; 0 at PAD unless ``count_pad``."""
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none",
                           ignore_index=-100 if count_pad else Vocab.PAD,
                           label_smoothing=label_smoothing)


def token_weights(targets: torch.Tensor, reduction: str) -> torch.Tensor:
    """FloatTensor[B, T]: the weight of each token's loss in the scalar, ``(w * losses).sum()``.

    * "token mean": ``1 / (real tokens in the batch)`` on every real token;
    * "sequence mean": ``1 / (B * real tokens of its sequence)``: each SEQUENCE weighs 1 / B;
    * "PAD counted": ``1 / (B * T)`` on every position, PAD included.

    The counts are clamped to >= 1, so an all-PAD batch gets all-zero weights, never NaN.
    """
    _check_choice("reduction", reduction, REDUCTIONS)
    real = (targets != Vocab.PAD).float()
    if reduction == "PAD counted":
        return torch.full(targets.shape, 1.0 / targets.numel())
    if reduction == "token mean":
        return real / real.sum().clamp(min=1)
    return real / (real.sum(dim=1, keepdim=True).clamp(min=1) * targets.shape[0])


def _plot_smoothed_target(ax, target: int | None, label_smoothing: float) -> None:
    """The smoothed target distribution of token ``target``; None: the batch has none."""
    if target is None:
        ax.axis("off")
        ax.set_title("no target distribution:\nevery target is PAD and ignored,\n"
                     "so no token is trained", fontsize="small")
        return
    classes = len(VOCAB)
    distribution = np.full(classes, label_smoothing / classes)
    distribution[target] += 1.0 - label_smoothing
    bars = ax.bar(range(classes), distribution, color="#0072b2")
    bars[target].set_color("#009e73")
    bars[Vocab.PAD].set(**viz.BLOCKED_STYLE)
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 2.0)
    ax.set_xticks(range(classes), VOCAB.itos, rotation=60, fontsize="small")
    ax.set(xlabel="class", ylabel="target probability (log scale)")
    which = ("of a PAD position: counting PAD\ntrains the model to predict '<pad>'"
             if target == Vocab.PAD else f"of one token ({VOCAB.itos[target]!r})")
    ax.set_title(f"target distribution {which}\n"
                 f"{1 - label_smoothing + label_smoothing / classes:.3f} on it, "
                 f"ε/V = {label_smoothing / classes:.3f} on each other class,\n"
                 "<pad> included (hatched bar)", fontsize="small")


def draw_loss_masking(reduction: str = "token mean", label_smoothing: float = 0.0,
                      batch: str = "ragged") -> Figure:
    """Per-token losses, the weight of each token in the scalar, and a smoothed target.

    Args:
        reduction: "token mean", "sequence mean" or "PAD counted" (see :func:`token_weights`).
        label_smoothing: ε of ``F.cross_entropy``.
        batch: "ragged", "equal lengths" or "all PAD" (see :func:`example_targets`).
    """
    _check_choice("reduction", reduction, REDUCTIONS)
    _check_choice("batch", batch, BATCHES)
    targets = example_targets(batch)
    count_pad = reduction == "PAD counted"
    losses = per_token_losses(example_logits(targets), targets, count_pad=count_pad,
                              label_smoothing=label_smoothing)
    weights = token_weights(targets, reduction)
    loss = float((weights * losses).sum())
    excluded = (targets == Vocab.PAD) & (not count_pad)
    rows = [f"seq {b}: {n} real" for b, n in enumerate((targets != Vocab.PAD).sum(1).tolist())]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), layout="constrained",
                             gridspec_kw={"width_ratios": (5, 5, 3.4)})
    name = {"token mean": "token mean", "sequence mean": "sequence mean",
            "PAD counted": "mean over all B·T positions"}[reduction]
    viz.heatmap(losses, blocked=excluded, row_labels=rows, ax=axes[0], vmin=0.0, vmax=5.0,
                xlabel="position t of tgt_out", ylabel="", colorbar=False,
                title="per-token cross-entropy\n" + ("dashed: PAD targets, counted too"
                                                      if count_pad
                                                      else "hatched: PAD targets, ignored"))
    viz.heatmap(weights, blocked=weights == 0, row_labels=rows, ax=axes[1], vmin=0.0,
                vmax=0.12, fmt="{:.3f}", xlabel="position t of tgt_out", ylabel="",
                colorbar=False, title=f"token weights, {name}\n"
                                      f"(hatched: weight 0; they sum to "
                                      f"{float(weights.sum()):.0f})")
    for ax in axes[:2]:
        if ax.get_legend() is not None:  # the titles say what the hatch means here
            ax.get_legend().remove()
    if count_pad:
        for r, c in (targets == Vocab.PAD).nonzero().tolist():
            axes[0].add_patch(Rectangle((c - 0.45, r - 0.45), 0.9, 0.9, fill=False, linestyle="--",
                                        edgecolor="#d55e00", linewidth=2.5))
    # The first target the loss trains: a real token, or with PAD counted possibly <pad>.
    trained = targets[targets != Vocab.PAD] if not count_pad else targets.flatten()
    _plot_smoothed_target(axes[2], int(trained[0]) if len(trained) else None, label_smoothing)
    note = {"token mean": "every real token weighs the same",
            "sequence mean": "every sequence weighs the same: short ones' tokens weigh more",
            "PAD counted": "PAD targets count like real ones"}[reduction]
    if batch == "all PAD" and not count_pad:
        note = "no real token: 0 with the clamped count (ignore_index + 'mean' gives NaN)"
    fig.suptitle(f"{reduction}, label_smoothing = {label_smoothing}: loss = {loss:.3f}   "
                 f"({note})", fontsize="large")
    return fig


def loss_masking_explorer() -> Explorer:
    """Toggles for the reduction and the batch, a slider for label smoothing."""
    return Explorer(draw_loss_masking, {
        "reduction": Control("reduction", REDUCTIONS),
        "label_smoothing": Control("label_smoothing", SMOOTHING),
        "batch": Control("batch", BATCHES),
    })
