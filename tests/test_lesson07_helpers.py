"""course_lib.lessons.lesson07 and course_lib.widgets.lesson07: exposure bias is counted right
(on an oracle whose mistakes are known in advance), and the figures show what lesson 07 says."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.collections import PathCollection
from matplotlib.patches import Rectangle
from matplotlib.text import Annotation
from torch import nn

from course_lib.data import LETTERS, Vocab, collate, make_pairs
from course_lib.lessons.lesson07 import (
    exposure_bias,
    plot_comparison,
    plot_exposure_bias,
    plot_gap_by_position,
    plot_two_pass_alignment,
)
from course_lib.scheduled_sampling import mix_inputs
from course_lib.schedules import teacher_forcing_prob
from course_lib.widgets.lesson07 import SCHEDULE_COLORS, draw_schedules, schedule_explorer

VOCAB = Vocab(LETTERS)
WRONG = VOCAB.stoi["a"]  # the oracle's wrong guess: never the right token after position 0


class CopyOracle(nn.Module):
    """Copies the source, then EOS, as long as its input is the gold prefix; after an input
    that is not the gold token it is wrong at every later position. Sources starting with
    ``b`` get a wrong guess at position 1, so they derail when free-running."""

    pad_id = Vocab.PAD

    def encode(self, src, src_key_padding_mask):
        return src

    def decode(self, tgt_in, memory, *, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask):
        batch, length = tgt_in.shape
        lengths = (memory != self.pad_id).sum(dim=1)
        t = torch.arange(length)[None, :]
        gold_next = memory.gather(1, t.clamp(max=memory.shape[1] - 1).expand(batch, -1))
        gold_next = torch.where(t < lengths[:, None], gold_next, Vocab.EOS)
        gold_input = torch.cat([torch.full((batch, 1), Vocab.BOS), gold_next[:, :-1]], dim=1)
        derailed = torch.cumsum((tgt_in != gold_input).long(), dim=1) > 0
        slips = (memory[:, 0] == VOCAB.stoi["b"])[:, None] & (t == 1)
        guess = torch.where(derailed | slips, WRONG, gold_next)
        return F.one_hot(guess, len(VOCAB)).float()

    def forward(self, src, tgt_in):
        return self.decode(tgt_in, self.encode(src, None), tgt_mask=None,
                           tgt_key_padding_mask=None, memory_key_padding_mask=None)


def copy_pairs():
    pairs = make_pairs("copy", 400, min_len=2, max_len=6, seed=3, alphabet=LETTERS[1:])
    assert any(src[0] == "b" for src, _ in pairs) and any(src[0] != "b" for src, _ in pairs)
    return pairs


def test_exposure_bias_counts_match_an_oracle_with_known_mistakes():
    pairs = copy_pairs()
    report = exposure_bias(CopyOracle(), pairs, VOCAB, batch_size=64)
    width = 7  # the longest target (6) + EOS
    expected = {key: np.zeros(width, dtype=int) for key in
                ("n_pos", "tf_pos", "fr_pos", "n_len", "tf_len", "fr_len")}
    for src, _ in pairs:
        length, slips = len(src), src[0] == "b"
        for position in range(length + 1):
            expected["n_pos"][position] += 1
            expected["tf_pos"][position] += not (slips and position == 1)
            expected["fr_pos"][position] += not (slips and position >= 1)
        expected["n_len"][length] += length + 1
        expected["tf_len"][length] += length + 1 - slips
        expected["fr_len"][length] += 1 if slips else length + 1
    np.testing.assert_array_equal(report.count_by_position, expected["n_pos"])
    np.testing.assert_array_equal(report.teacher_forced_by_position, expected["tf_pos"])
    np.testing.assert_array_equal(report.free_running_by_position, expected["fr_pos"])
    np.testing.assert_array_equal(report.count_by_length, expected["n_len"])
    np.testing.assert_array_equal(report.teacher_forced_by_length, expected["tf_len"])
    np.testing.assert_array_equal(report.free_running_by_length, expected["fr_len"])
    right = sum(src[0] != "b" for src, _ in pairs) / len(pairs)
    assert report.teacher_forced_exact == report.free_running_exact == right
    assert report.overall("teacher_forced") > report.overall("free_running")
    assert np.isnan(report.accuracy("free_running", "length")[:2]).all()  # no length 0 or 1
    with pytest.raises(ValueError, match="mode, by"):
        report.accuracy("teacher forced", "position")
    with pytest.raises(ValueError, match="pairs"):
        exposure_bias(CopyOracle(), [], VOCAB)


def test_plot_exposure_bias_draws_both_readings_by_position_and_length():
    report = exposure_bias(CopyOracle(), copy_pairs(), VOCAB)
    fig = plot_exposure_bias(report)
    assert len(fig.axes) == 2
    for ax, by in zip(fig.axes, ("position", "length"), strict=True):
        assert by in ax.get_xlabel() and ax.get_ylabel() == "token accuracy"
        teacher, free = ax.get_lines()
        accuracy = report.accuracy("free_running", by)
        np.testing.assert_allclose(free.get_ydata(), accuracy[~np.isnan(accuracy)])
        assert "gold prefix" in teacher.get_label() and "own" in free.get_label()
    plt.close(fig)


def test_plot_comparison_shows_every_seed_and_the_mean():
    results = {"RNN": {"teacher forcing": [0.9, 0.92, 0.95], "scheduled sampling": [0.91, 0.8]},
               "Transformer": {"teacher forcing": [0.7, 0.71, 0.72],
                               "scheduled sampling": [0.6, 0.65, 0.7]}}
    fig = plot_comparison(results, metric="exact match", title="t")
    for ax, by_method in zip(fig.axes, results.values(), strict=True):
        dots = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections
                               if isinstance(c, PathCollection)])
        assert sorted(np.round(dots, 6)) == sorted(v for values in by_method.values()
                                                   for v in values)
        low, high = ax.get_ylim()
        assert low > 0.5 and high < 1.0  # zoomed on the data, not from 0
    plt.close(fig)


def test_plot_gap_by_position_is_zero_for_a_model_without_exposure_bias():
    report = exposure_bias(CopyOracle(), copy_pairs(), VOCAB)
    perfect = exposure_bias(CopyOracle(), [p for p in copy_pairs() if p[0][0] != "b"], VOCAB)
    fig = plot_gap_by_position({"oracle": {"slips": [report, report], "perfect": [perfect]}},
                               title="t")
    slips, perfect_line = fig.axes[0].get_lines()[:2]
    assert np.all(np.asarray(perfect_line.get_ydata()) == 0)
    # positions 0 and 1: both readings are equally right (0) or wrong (1, the slip itself)
    assert np.all(np.asarray(slips.get_ydata())[:2] == 0)
    assert np.asarray(slips.get_ydata())[2:].max() < 0
    plt.close(fig)


def test_two_pass_figure_marks_exactly_the_replaced_inputs():
    batch = collate([(tuple("dbca"), tuple("abcd")), (tuple("fe"), tuple("ef"))], VOCAB)
    predicted = torch.randint(4, len(VOCAB), batch.tgt_in.shape,
                              generator=torch.Generator().manual_seed(0))
    use_gold = torch.tensor([[1, 0, 1, 0, 0], [1, 0, 0, 0, 1]], dtype=torch.bool)
    mixed = mix_inputs(batch.tgt_in, predicted, use_gold, Vocab.PAD)
    for row in range(2):
        fig = plot_two_pass_alignment(batch.tgt_in[row], batch.tgt_out[row], predicted[row],
                                      use_gold[row], mixed[row], VOCAB.itos, Vocab.PAD)
        ax = fig.axes[0]
        replaced = int((~use_gold[row] & (batch.tgt_in[row] != Vocab.PAD))[1:].sum())
        arrows = [text for text in ax.texts if isinstance(text, Annotation)]
        frames = [p for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()]
        assert len(frames) == 2 * replaced
        assert len(arrows) == replaced
        hatched = sum(1 for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch())
        pads_in, pads_out = int((batch.tgt_in[row] == 0).sum()), int((batch.tgt_out[row] == 0)
                                                                     .sum())
        assert hatched == 3 * pads_in + 2 * pads_out
        plt.close(fig)


def test_schedule_figure_draws_teacher_forcing_prob_for_every_state():
    explorer = schedule_explorer()
    states = list(explorer.states())
    assert len(states) <= 200
    for state in states[::37]:
        fig = draw_schedules(**state)
        ax = fig.axes[0]
        lines = {line.get_color(): line for line in ax.get_lines()}
        params = {"linear": {"c": state["linear_c"], "eps_min": state["linear_eps_min"]},
                  "exponential": {"k": state["exponential_k"]},
                  "inverse_sigmoid": {"k": state["inverse_sigmoid_k"]}}
        for kind, color in SCHEDULE_COLORS.items():
            y = lines[color].get_ydata()
            expected = [teacher_forcing_prob(i, kind, **params[kind]) for i in range(len(y))]
            np.testing.assert_allclose(y, expected)
            assert f"gold share over the run {np.mean(expected):.2f}" in lines[color].get_label()
        assert "P(feed the gold token)" in ax.get_ylabel() and ax.get_xlabel()
        plt.close(fig)
