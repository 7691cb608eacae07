"""Lesson 06 helpers: the picture of what a KV cache keeps, scoring decoded outputs, and the
beam-size study that shows why length normalisation exists."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from course_lib import recipes, viz
from course_lib._checks import check_tensor
from course_lib.data import Vocab
from course_lib.decoding import beam_search, greedy_decode
from course_lib.models import Seq2SeqTransformer

__all__ = ["NEW_COLOR", "CACHED_COLOR", "plot_kv_cache", "exact_match", "mean_length",
           "undertrained_reverse_model", "length_study", "plot_length_study"]

NEW_COLOR, CACHED_COLOR = "#fde725", "#21918c"  # viridis' ends: computed now / read from cache


def _cell(ax: Axes, row: int, col: int, kind: str) -> None:
    if kind == "blocked":
        ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, **viz.BLOCKED_STYLE))
        return
    color, text, text_color = {"new": (NEW_COLOR, "new", "black"),
                               "cached": (CACHED_COLOR, "cache", "white")}[kind]
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, facecolor=color, edgecolor="white"))
    ax.text(col, row, text, ha="center", va="center", fontsize="x-small", color=text_color)


def _grid(ax: Axes, rows: int, cols: int, row_labels, col_labels, title: str, xlabel: str):
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xticks(range(cols), col_labels)
    ax.set_yticks(range(rows), row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("decoding step (the token fed in)")
    ax.set_title(title, fontsize="medium")
    ax.set_aspect("auto")


def plot_kv_cache(source_tokens: Sequence[str], output_tokens: Sequence[str]) -> Figure:
    """Which keys/values each decoding step computes ("new") or reads from the cache.

    Args:
        source_tokens: the padded source, e.g. ``["b", "d", "a", "<pad>"]``.
        output_tokens: the generated tokens (EOS included); step t feeds the token before it.

    Three panels, one row per step: the decoder self-attention without a cache (every
    prefix position is projected again), with the cache (one new row per step), and the
    cross-attention with the cache (the memory projected once, at step 1; source PAD
    columns hatched: ``memory_key_padding_mask`` blocks them).
    """
    steps = len(output_tokens)
    if steps < 1 or len(source_tokens) < 1:
        raise ValueError("output_tokens, source_tokens: expected at least one token each")
    fed = [Vocab.SPECIALS[Vocab.BOS], *output_tokens[:-1]]
    row_labels = [f"{t + 1}: {token}" for t, token in enumerate(fed)]
    fig, axes = plt.subplots(1, 3, figsize=(14, 0.42 * steps + 2.4), layout="constrained",
                             gridspec_kw={"width_ratios": (steps, steps, len(source_tokens))})
    recomputed = steps * (steps + 1) // 2
    panels = [(f"self-attention WITHOUT a cache:\n{recomputed} key/value rows computed "
               f"per layer", lambda t, j: "new"),
              (f"self-attention WITH the KV cache:\n{steps} computed, {recomputed - steps} "
               f"read from the cache", lambda t, j: "new" if j == t else "cached")]
    for ax, (title, kind) in zip(axes[:2], panels, strict=True):
        _grid(ax, steps, steps, row_labels, fed, title, "key position (prefix token)")
        for t in range(steps):
            for j in range(t + 1):  # later positions do not exist yet at step t
                _cell(ax, t, j, kind(t, j))
    real = [token != Vocab.SPECIALS[Vocab.PAD] for token in source_tokens]
    _grid(axes[2], steps, len(source_tokens), row_labels, source_tokens,
          f"cross-attention WITH the cache:\n{sum(real)} memory rows projected once, at "
          f"step 1", "key position (source token)")
    for t in range(steps):
        for j, is_real in enumerate(real):
            _cell(axes[2], t, j, ("new" if t == 0 else "cached") if is_real else "blocked")
    fig.legend(handles=[Patch(facecolor=NEW_COLOR, label="K/V computed at this step"),
                        Patch(facecolor=CACHED_COLOR, label="K/V read from the cache"),
                        Patch(**viz.BLOCKED_STYLE, label="source PAD: blocked")],
               loc="outside lower center", ncols=3, frameon=False)
    fig.suptitle("What the decoder computes at each step (per layer); blank = position not "
                 "generated yet", fontsize="large")
    return fig


def _padded_to(tokens: torch.Tensor, width: int, pad_id: int) -> torch.Tensor:
    return F.pad(tokens[:, :width], (0, width - min(width, tokens.shape[1])), value=pad_id)


def exact_match(predicted: torch.Tensor, target_out: torch.Tensor, *,
                pad_id: int = Vocab.PAD) -> float:
    """Fraction of rows equal to the target, EOS and the PAD after it included.

    Args:
        predicted: LongTensor[B, L1], decoded tokens (PAD after EOS).
        target_out: LongTensor[B, L2], ``batch.tgt_out`` (target + EOS, right-padded).
    """
    check_tensor("predicted", predicted, ndim=2)
    check_tensor("target_out", target_out, ndim=2)
    if predicted.shape[0] != target_out.shape[0]:
        raise ValueError(f"predicted: expected {target_out.shape[0]} rows like target_out, "
                         f"got {predicted.shape[0]}")
    width = max(predicted.shape[1], target_out.shape[1])
    same = _padded_to(predicted, width, pad_id) == _padded_to(target_out, width, pad_id)
    return float(same.all(dim=1).float().mean())


def mean_length(tokens: torch.Tensor, *, eos_id: int = Vocab.EOS) -> float:
    """Mean number of tokens before EOS (the whole row when it has none), LongTensor[B, L]."""
    check_tensor("tokens", tokens, ndim=2)
    is_eos = tokens == eos_id
    first_eos = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), tokens.shape[1])
    return float(first_eos.float().mean())


def undertrained_reverse_model(steps: int = 40, seed: int = 0) -> Seq2SeqTransformer:
    """The recipe's model trained with a schedule of only ``steps`` steps: a real model from
    early in training, with few outputs exactly right (under 10% at 40 steps)."""
    model, _ = recipes.train_reverse(seed, progress=False, steps=steps, stop_at_target=False,
                                     eval_every=steps)
    return model


def length_study(model: torch.nn.Module, src: torch.Tensor, target_out: torch.Tensor, *,
                 beam_sizes: Sequence[int], length_penalties: Sequence[float],
                 max_len: int) -> list[dict]:
    """Greedy and beam search at several beam sizes and length penalties, on one batch.

    Returns one dict per run: ``method``, ``beam_size`` (1 for greedy),
    ``length_penalty`` (None for greedy), ``exact_match``, ``mean_length``,
    ``mean_log_prob`` (the summed log-probability of the output, averaged over the sources),
    and the outputs themselves: ``tokens`` LongTensor[B, L] and ``log_probs`` FloatTensor[B].
    Greedy's log-probabilities come from beam search with one beam and no penalty, which
    is greedy decoding.
    """
    greedy = greedy_decode(model, src, max_len=max_len)
    greedy_log_probs = beam_search(model, src, beam_size=1, max_len=max_len,
                                   length_penalty=0.0).log_probs[:, 0]
    rows = [{"method": "greedy", "beam_size": 1, "length_penalty": None,
             "exact_match": exact_match(greedy, target_out), "mean_length": mean_length(greedy),
             "mean_log_prob": float(greedy_log_probs.mean()), "tokens": greedy,
             "log_probs": greedy_log_probs}]
    for length_penalty in length_penalties:
        for beam_size in beam_sizes:
            result = beam_search(model, src, beam_size=beam_size, max_len=max_len,
                                 length_penalty=length_penalty)
            best = result.sequences[:, 0]
            rows.append({"method": "beam", "beam_size": beam_size,
                         "length_penalty": length_penalty,
                         "exact_match": exact_match(best, target_out),
                         "mean_length": mean_length(best),
                         "mean_log_prob": float(result.log_probs[:, 0].mean()),
                         "tokens": best, "log_probs": result.log_probs[:, 0]})
    return rows


def plot_length_study(rows: list[dict], target_length: float) -> Figure:
    """Mean output length and exact match against the beam size, one line per length
    penalty, greedy as a horizontal reference (rows from :func:`length_study`)."""
    greedy = next(row for row in rows if row["method"] == "greedy")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    penalties = sorted({row["length_penalty"] for row in rows if row["method"] == "beam"})
    colors = plt.get_cmap(viz.CMAP)([0.15, 0.55, 0.85])
    for color, alpha in zip(colors, penalties, strict=False):
        runs = [row for row in rows if row["length_penalty"] == alpha]
        sizes = [row["beam_size"] for row in runs]
        for ax, key in zip(axes, ("mean_length", "exact_match"), strict=True):
            ax.plot(sizes, [row[key] for row in runs], "o-", color=color,
                    label=f"beam, length_penalty = {alpha:g}")
    for ax, key, label in ((axes[0], "mean_length", "mean output length (tokens before EOS)"),
                           (axes[1], "exact_match", "exact match")):
        ax.axhline(greedy[key], color="black", linestyle=":", label="greedy")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({row["beam_size"] for row in rows}),
                      [str(size) for size in sorted({row["beam_size"] for row in rows})])
        ax.set_xlabel("beam size")
        ax.set_ylabel(label)
    axes[0].axhline(target_length, color="grey", linestyle="--", label="targets")
    axes[0].set_title("Without length normalisation, wider beams find shorter outputs")
    axes[1].set_title("Exact match on the same sources")
    axes[0].legend(fontsize="small")
    return fig
