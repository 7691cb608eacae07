"""Lesson 08: the doctor lab. Pick a masking bug, see the mask as passed, the attention weights
it produces and the doctor's verdict; tick "apply the fix" to see all three put right."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from course_lib import doctor, viz
from course_lib.data import Vocab
from course_lib.lessons.lesson08 import (
    LAB_VOCAB,
    SCENARIOS,
    SHOWN_SEQUENCE,
    lab_attention,
    scenario_call,
    should_block,
)
from course_lib.masks import merge
from course_lib.widgets.core import Control, Explorer

__all__ = ["passed_blocked", "draw_doctor_lab", "doctor_lab"]

# A cell the query must not see that the passed masks leave open: a red dashed frame.
MISSED_STYLE = {"fill": False, "edgecolor": "#d55e00", "linestyle": "--", "linewidth": 2.0}


def passed_blocked(call: dict[str, torch.Tensor]) -> torch.Tensor:
    """BoolTensor[B, L, L]: the cells the masks of ``call`` really block (float masks: -inf)."""
    prefix = "tgt" if "tgt_in" in call else "src"
    ids = call[f"{prefix}_in" if prefix == "tgt" else "src"]
    batch, length = ids.shape
    masks = {}
    for key, name in (("attn_mask", f"{prefix}_mask"),
                      ("key_padding_mask", f"{prefix}_key_padding_mask")):
        mask = call.get(name)
        if mask is not None:
            masks[key] = mask if mask.dtype == torch.bool else torch.isneginf(mask)
    if not masks:
        return torch.zeros(batch, length, length, dtype=torch.bool)
    return merge(**masks)[:, 0].expand(batch, length, length)


def _draw_passed(ax, name: str, call: dict[str, torch.Tensor]) -> None:
    shown = SCENARIOS[name].shown
    ids = call["tgt_in"] if "tgt_in" in call else call["src"]
    if shown == "ids" or shown not in call:
        side = "tgt_in" if "tgt_in" in call else "src"
        viz.plot_padded_batch(ids, Vocab.PAD, itos=LAB_VOCAB.itos, ax=ax,
                              title=f"{side} [B, L] as passed (PAD hatched)")
        return
    mask = call[shown]
    if shown.endswith("key_padding_mask"):
        labels = {"row_labels": [f"seq {b}" for b in range(len(mask))],
                  "xlabel": "key position", "ylabel": "sequence"}
    else:
        labels = {"xlabel": "key position", "ylabel": "query position"}
    if mask.dtype == torch.bool:
        viz.plot_mask(mask, ax=ax, title=f"{shown} as passed (bool: True = blocked)", **labels)
    else:
        cells = [[f"{v:g}" for v in row] for row in mask.tolist()]
        viz.plot_grid(cells, torch.isneginf(mask), ax=ax, **labels,
                      title=f"{shown} as passed ({mask.dtype}: ADDED to the scores)")


def _verdict(call: dict[str, torch.Tensor]) -> str:
    report = doctor.check(**call)
    if report.ok:
        return "mask doctor:\n\nno problems found"
    lines = [f"mask doctor: {len(report)} finding{'s' if len(report) > 1 else ''}", ""]
    for found in report:
        lines.append(f"{found.severity} [{found.code}]")
        lines += textwrap.wrap(found.problem, 46, initial_indent="  ", subsequent_indent="  ")
        lines.append("")
    return "\n".join(lines)


def draw_doctor_lab(bug: str = "inverted padding", fix: bool = False) -> Figure:
    """Three panels for scenario ``bug`` (a key of ``lesson08.SCENARIOS``), broken or fixed:
    the mask as passed, the attention weights of sequence 1 (cells blocked by the passed masks
    hatched, NaN black), and the doctor's verdict."""
    call = scenario_call(bug, fixed=fix)
    weights = lab_attention(call)[SHOWN_SEQUENCE]
    blocked = passed_blocked(call)[SHOWN_SEQUENCE]
    hidden = should_block(call)[SHOWN_SEQUENCE]
    ids = (call["tgt_in"] if "tgt_in" in call else call["src"])[SHOWN_SEQUENCE]
    real = ids != Vocab.PAD
    leak = float(torch.nan_to_num(weights * hidden)[real].sum(dim=-1).max())
    nan_rows = int(weights.isnan().any(dim=-1).sum())
    tokens = LAB_VOCAB.decode(ids)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained",
                             gridspec_kw={"width_ratios": (1, 1.15, 1)})
    _draw_passed(axes[0], bug, call)
    viz.plot_attention(weights, blocked=blocked & ~weights.isnan(), row_labels=tokens,
                       col_labels=tokens, ax=axes[1],
                       title=f"{SCENARIOS[bug].block}, sequence {SHOWN_SEQUENCE}\n"
                             f"weight a real query puts on keys it must not see: {leak:.2f}; "
                             f"NaN rows: {nan_rows}")
    axes[1].title.set_fontsize("medium")
    missed = (hidden & ~blocked).nonzero().tolist()  # must not be seen, yet not blocked
    for row, col in missed:
        axes[1].add_patch(Rectangle((col - 0.42, row - 0.42), 0.84, 0.84, **MISSED_STYLE))
    if missed:
        axes[1].legend(handles=[Patch(**viz.BLOCKED_STYLE, label="blocked"),
                                Patch(**MISSED_STYLE, label="should be blocked, is not")],
                       loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False,
                       fontsize="small", handlelength=1.5, borderpad=0.2, borderaxespad=0.15)
        axes[1].set_title(axes[1].get_title(), fontsize="medium",
                          pad=viz.LEGEND_PAD * viz.points("small"))
    axes[2].axis("off")
    axes[2].text(0.0, 1.0, _verdict(call), va="top", ha="left", family="monospace",
                 fontsize="small", transform=axes[2].transAxes)
    fig.suptitle(f"Doctor lab: {bug}, fixed" if fix else
                 f"Doctor lab: {bug}: {SCENARIOS[bug].description}", fontsize="large")
    return fig


def doctor_lab() -> Explorer:
    """Seven masking bugs, each as written or fixed: 14 states."""
    return Explorer(draw_doctor_lab, {"bug": Control("bug", tuple(SCENARIOS)),
                                      "fix": Control("apply the fix", (False, True))})
