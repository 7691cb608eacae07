"""Lesson 07 helpers: measuring exposure bias, and teacher forcing vs scheduled sampling.

Exposure bias: a model trained with teacher forcing always reads the gold prefix; decoding
free-running, it reads its own, mistakes included. :func:`exposure_bias` scores the same
held-out pairs both ways, per target position and per target length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_lib import viz
from course_lib.data import Pair, Vocab, bucketed_batches
from course_lib.decoding import greedy_decode

__all__ = ["ExposureBias", "exposure_bias", "plot_exposure_bias", "plot_comparison",
           "plot_gap_by_position", "plot_two_pass_alignment"]


@dataclass(frozen=True)
class ExposureBias:
    """Correct-token counts of one model on held-out pairs, teacher-forced vs free-running.

    Arrays are indexed by target position (``by_position``: 0 = first target token, the last
    is EOS) or by target length in tokens without EOS (``by_length``: index = length).
    ``count_*`` is the number of target tokens (EOS included) behind each entry.
    """

    teacher_forced_by_position: np.ndarray
    free_running_by_position: np.ndarray
    count_by_position: np.ndarray
    teacher_forced_by_length: np.ndarray
    free_running_by_length: np.ndarray
    count_by_length: np.ndarray
    teacher_forced_exact: float
    free_running_exact: float

    @staticmethod
    def _ratio(correct: np.ndarray, count: np.ndarray) -> np.ndarray:
        return np.divide(correct, count, out=np.full(count.shape, np.nan), where=count > 0)

    def accuracy(self, mode: str, by: str) -> np.ndarray:
        """Token accuracy per position or length; NaN where there is no token.

        Args:
            mode: ``"teacher_forced"`` or ``"free_running"``; by: ``"position"`` or ``"length"``.
        """
        if mode not in ("teacher_forced", "free_running") or by not in ("position", "length"):
            raise ValueError(f"mode, by: expected 'teacher_forced'/'free_running' and "
                             f"'position'/'length', got {mode!r}, {by!r}")
        return self._ratio(getattr(self, f"{mode}_by_{by}"), getattr(self, f"count_by_{by}"))

    def overall(self, mode: str) -> float:
        """Token accuracy over every target token (EOS included)."""
        return float(getattr(self, f"{mode}_by_position").sum() / self.count_by_position.sum())


@torch.no_grad()
def exposure_bias(model: torch.nn.Module, pairs: Sequence[Pair], vocab: Vocab, *,
                  batch_size: int = 500) -> ExposureBias:
    """Score ``model`` on ``pairs`` reading the gold prefix and reading its own.

    Teacher-forced: ``argmax model(src, tgt_in)`` against ``tgt_out``. Free-running:
    :func:`course_lib.decoding.greedy_decode` against ``tgt_out``, token by token at the same
    positions. Both count every target token including EOS. The model is left in eval mode.
    """
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one (src, tgt) pair, got none")
    model.eval()
    longest = max(len(tgt) for _, tgt in pairs) + 1
    sums = {key: np.zeros(longest, dtype=np.int64) for key in
            ("tf_pos", "fr_pos", "n_pos", "tf_len", "fr_len", "n_len")}
    exact = {"tf": 0, "fr": 0}
    for batch in bucketed_batches(pairs, vocab, batch_size, shuffle=False):
        target, width = batch.tgt_out, batch.tgt_out.shape[1]
        real = target != Vocab.PAD
        forced = model(batch.src, batch.tgt_in).argmax(dim=-1)
        free = greedy_decode(model, batch.src, max_len=width)
        free = F.pad(free, (0, width - free.shape[1]), value=Vocab.PAD)
        lengths = real.sum(dim=1) - 1  # tokens before EOS
        for key, predicted in (("tf", forced), ("fr", free)):
            hit = (predicted == target) & real
            sums[f"{key}_pos"][:width] += hit.sum(dim=0).numpy()
            np.add.at(sums[f"{key}_len"], lengths.numpy(), hit.sum(dim=1).numpy())
            exact[key] += int((hit | ~real).all(dim=1).sum())
        sums["n_pos"][:width] += real.sum(dim=0).numpy()
        np.add.at(sums["n_len"], lengths.numpy(), real.sum(dim=1).numpy())
    return ExposureBias(sums["tf_pos"], sums["fr_pos"], sums["n_pos"], sums["tf_len"],
                        sums["fr_len"], sums["n_len"], exact["tf"] / len(pairs),
                        exact["fr"] / len(pairs))


def plot_exposure_bias(report: ExposureBias, *, title: str = "") -> Figure:
    """Two panels: token accuracy by target position and by target length, both modes."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    styles = {"teacher_forced": ("teacher-forced (reads the gold prefix)", "#0072b2", "o"),
              "free_running": ("free-running (reads its own output)", "#d55e00", "s")}
    for ax, by, xlabel in ((axes[0], "position", "target position (0 = first token)"),
                           (axes[1], "length", "target length (tokens, without EOS)")):
        for mode, (label, color, marker) in styles.items():
            accuracy = report.accuracy(mode, by)
            x = np.flatnonzero(~np.isnan(accuracy))
            ax.plot(x, accuracy[x], marker=marker, color=color, label=label)
        ax.set(xlabel=xlabel, ylabel="token accuracy", ylim=(0, 1.02),
               title=f"token accuracy by {by}")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower left", fontsize="small")
    fig.suptitle(title or "Exposure bias: the same model, scored two ways")
    return fig


def plot_comparison(results: dict[str, dict[str, list[float]]], *, metric: str,
                    title: str) -> Figure:
    """Every seed's score as a dot, and mean ± std beside it, per model and training method.

    The y-axis is zoomed on the data (it does not start at 0), so the spread between seeds
    is visible. Args: ``results``: ``{model name: {method name: [score per seed]}}``;
    ``metric``: the y-axis label, e.g. ``"held-out exact match (greedy)"``.
    """
    methods = list(next(iter(results.values())))
    colors = ["#0072b2", "#d55e00", "#009e73", "#cc79a7"]
    fig, axes = plt.subplots(1, len(results), figsize=(4.8 * len(results), 3.8),
                             layout="constrained", squeeze=False)
    for ax, (model_name, by_method) in zip(axes[0], results.items(), strict=True):
        for i, method in enumerate(methods):
            scores = np.asarray(by_method[method], dtype=float)
            color = colors[i % len(colors)]
            offsets = np.linspace(-0.12, 0.12, len(scores)) if len(scores) > 1 else [0.0]
            ax.scatter(i + np.asarray(offsets), scores, color=color, s=30, zorder=3,
                       label="one seed" if i == 0 else None)
            ax.errorbar(i + 0.32, scores.mean(), yerr=scores.std(), color="black",
                        marker="D", markersize=5, capsize=5,
                        label="mean ± std" if i == 0 else None)
            ax.annotate(f"{scores.mean():.3f}\n± {scores.std():.3f}", (i + 0.4, scores.mean()),
                        fontsize="small", va="center")
        ax.set_xticks(range(len(methods)), methods)
        ax.set_xlim(-0.4, len(methods) - 0.2)
        low = min(min(v) for v in by_method.values())
        high = max(max(v) for v in by_method.values())
        margin = max(0.01, 0.25 * (high - low))
        ax.set_ylim(low - margin, high + margin)
        ax.set(ylabel=metric, title=model_name)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    return fig


def plot_gap_by_position(reports: dict[str, dict[str, Sequence[ExposureBias]]], *,
                         title: str) -> Figure:
    """Free-running minus teacher-forced token accuracy by target position (0 = no gap).

    Args:
        reports: ``{model name: {method name: [one ExposureBias per seed]}}``; the line is the
            mean over seeds, the band spans the lowest and highest seed.
    """
    colors = ["#0072b2", "#d55e00", "#009e73", "#cc79a7"]
    fig, axes = plt.subplots(1, len(reports), figsize=(5.2 * len(reports), 3.8),
                             layout="constrained", squeeze=False, sharey=True)
    for ax, (model_name, by_method) in zip(axes[0], reports.items(), strict=True):
        for color, (method, seeds) in zip(colors, by_method.items(), strict=False):
            gaps = np.array([r.accuracy("free_running", "position")
                             - r.accuracy("teacher_forced", "position") for r in seeds])
            x = np.arange(gaps.shape[1])
            ax.fill_between(x, gaps.min(axis=0), gaps.max(axis=0), color=color, alpha=0.2)
            ax.plot(x, gaps.mean(axis=0), marker="o", color=color,
                    label=f"{method} (mean of {len(seeds)} seeds, band: min-max)")
        ax.axhline(0.0, color="#777777", linewidth=0.8)
        ax.set(xlabel="target position (0 = first token)", title=model_name,
               ylabel="free-running - teacher-forced\ntoken accuracy")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize="small")
    fig.suptitle(title)
    return fig


def plot_two_pass_alignment(tgt_in: torch.Tensor, tgt_out: torch.Tensor,
                            predicted: torch.Tensor, use_gold: torch.Tensor,
                            mixed: torch.Tensor, itos: Sequence[str], pad_id: int) -> Figure:
    """One sequence of the two-pass mix as a grid: arrows carry the guess made at position i
    to the input at position i+1. All arguments are 1-D tensors [T] of one row."""
    names = ["tgt_in (gold input)", "tgt_out (target)", "pass 1: argmax at i",
             "coin: keep gold?", "pass 2 input"]
    is_pad = tgt_in == pad_id
    rows = [[itos[int(t)] for t in tgt_in], [itos[int(t)] for t in tgt_out],
            [itos[int(t)] for t in predicted],
            ["BOS" if i == 0 else ("gold" if bool(g) else "own") for i, g in enumerate(use_gold)],
            [itos[int(t)] for t in mixed]]
    blocked = torch.stack([is_pad, tgt_out == pad_id, tgt_out == pad_id, is_pad, is_pad])
    # Blank the guesses made at PAD targets and the coins of PAD inputs: nothing uses them.
    rows[2] = ["" if bool(p) else cell for p, cell in zip(tgt_out == pad_id, rows[2], strict=True)]
    rows[3] = ["" if bool(p) else cell for p, cell in zip(is_pad, rows[3], strict=True)]
    fig, ax = plt.subplots(figsize=(0.9 * len(tgt_in) + 2.6, 3.4), layout="constrained")
    viz.plot_grid(rows, blocked, row_labels=names, col_labels=range(len(tgt_in)), ax=ax,
                  xlabel="position i", ylabel="", legend_label="PAD",
                  title="Two-pass scheduled sampling: the guess made at position i replaces "
                        "the input at position i+1")
    for i in range(len(tgt_in) - 1):
        if not bool(is_pad[i + 1]) and not bool(use_gold[i + 1]):
            ax.annotate("", xy=(i + 1 - 0.3, 4 - 0.3), xytext=(i + 0.2, 2 + 0.25),
                        arrowprops={"arrowstyle": "->", "color": "#d55e00", "lw": 1.6})
            for column, row in ((i, 2), (i + 1, 4)):
                ax.add_patch(Rectangle((column - 0.46, row - 0.44), 0.92, 0.88, fill=False,
                                       edgecolor="#d55e00", linewidth=2))
    return fig
