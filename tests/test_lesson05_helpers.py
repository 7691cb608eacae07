"""course_lib.lessons.lesson05 and course_lib.widgets.lesson05: the figures, the reversal score, the
ablation losses and the loss-masking explorer do what lesson 05 says they do."""

import dataclasses
import itertools

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

from course_lib import recipes
from course_lib.data import Batch, Vocab, collate, make_pairs
from course_lib.decoding import greedy_decode
from course_lib.lessons.lesson05 import (
    WithoutPaddingMasks,
    loss_counting_pad,
    loss_without_causal_mask,
    loss_without_padding_masks,
    plot_history,
    plot_shift,
    reversal_alignment,
)
from course_lib.masks import causal_mask
from course_lib.training import History, sequence_loss
from course_lib.widgets.lesson05 import (
    BATCHES,
    REDUCTIONS,
    draw_loss_masking,
    example_logits,
    example_targets,
    per_token_losses,
    token_weights,
)

PAD = Vocab.PAD
VOCAB = recipes.reverse_vocab()


@pytest.fixture(scope="module")
def model():
    return recipes.new_model(0)


@pytest.fixture(scope="module")
def batch():
    pairs = make_pairs("reverse", 4, min_len=3, max_len=7, seed=1)
    assert len({len(src) for src, _ in pairs}) > 1  # ragged: PAD in src and in the targets
    return collate(pairs, VOCAB)


def _hatched(ax) -> int:
    return sum(1 for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch())


def _with_extra_pad_column(batch):
    """The same batch padded one position further on both sides, masks rebuilt."""
    src, tgt_in, tgt_out = (F.pad(ids, (0, 1), value=PAD)
                            for ids in (batch.src, batch.tgt_in, batch.tgt_out))
    return Batch(src, tgt_in, tgt_out, src == PAD, tgt_in == PAD, causal_mask(tgt_in.shape[1]))


# --- figures ---------------------------------------------------------------------------------

def test_plot_shift_hatches_every_pad_cell_and_labels_the_rows(batch):
    fig = plot_shift(batch, VOCAB)
    src_ax, tgt_ax = fig.axes[:2]
    assert _hatched(src_ax) == int((batch.src == PAD).sum())
    assert _hatched(tgt_ax) == int((batch.tgt_in == PAD).sum() + (batch.tgt_out == PAD).sum())
    labels = [label.get_text() for label in tgt_ax.get_yticklabels()]
    assert labels[:4] == ["0: tgt_in", "0: tgt_out", "1: tgt_in", "1: tgt_out"]
    cell_text = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text()
                 for t in tgt_ax.texts if t.get_text()}  # not the arrows
    assert cell_text[(0, 0)] == "<bos>" and cell_text[(1, 0)] == cell_text[(0, 1)]
    plt.close(fig)
    with pytest.raises(TypeError, match="batch: expected a course_lib.data.Batch"):
        plot_shift(batch.src, VOCAB)


def test_plot_history_draws_the_losses_on_a_log_axis_and_every_evaluation():
    history = History(losses=[3.0, 1.0, 0.5, 0.1],
                      evaluations=[{"step": 2, "exact_match": 0.2, "token_accuracy": 0.5},
                                   {"step": 4, "exact_match": 0.9, "token_accuracy": 0.95}])
    fig = plot_history(history, target=0.99)
    loss_ax, score_ax = fig.axes
    assert loss_ax.get_yscale() == "log"
    assert list(loss_ax.lines[0].get_ydata()) == history.losses
    assert list(score_ax.lines[0].get_xdata()) == [2, 4]
    assert list(score_ax.lines[0].get_ydata()) == [0.2, 0.9]
    assert all(ax.get_xlabel() and ax.get_ylabel() and ax.get_title() for ax in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="history"):
        plot_history(History())


# --- the reversal score ------------------------------------------------------------------------

def _one_hot_attention(lengths, steps, source, key_of_step):
    weights = torch.zeros(len(lengths), steps, source)
    for b, length in enumerate(lengths):
        for t in range(steps):
            weights[b, t, key_of_step(length, t)] = 1.0
    padding = torch.arange(source)[None, :] >= torch.tensor(lengths)[:, None]
    return weights, padding


def test_reversal_alignment_is_one_on_the_anti_diagonal_and_ignores_eos_steps():
    lengths = [3, 5, 2]
    weights, padding = _one_hot_attention(lengths, 6, 5, lambda n, t: max(n - 1 - t, 0))
    assert reversal_alignment(weights, padding) == 1.0
    diagonal, _ = _one_hot_attention(lengths, 6, 5, lambda n, t: min(t, n - 1))
    # the diagonal meets the anti-diagonal only in the middle of odd lengths: 2 of 10 steps
    assert reversal_alignment(diagonal, padding) == pytest.approx(2 / 10)
    weights[:, 5:, :] = torch.rand(3, 1, 5)  # the EOS step of the longest row: not scored
    assert reversal_alignment(weights, padding) == 1.0
    shifted, _ = _one_hot_attention(lengths, 6, 5, lambda n, t: max(n - 2 - t, 0))
    assert reversal_alignment(shifted, padding) == pytest.approx(3 / 10)  # only the last steps
    assert reversal_alignment(shifted, padding, tolerance=1) == 1.0


def test_reversal_alignment_validates_its_inputs():
    weights, padding = _one_hot_attention([3, 2], 4, 3, lambda n, t: 0)
    with pytest.raises(ValueError, match="src_key_padding_mask: expected shape"):
        reversal_alignment(weights, padding.T)
    with pytest.raises(TypeError, match="src_key_padding_mask"):
        reversal_alignment(weights, padding.float())
    with pytest.raises(ValueError, match="weights: 2 query steps"):
        reversal_alignment(weights[:, :2], padding)
    with pytest.raises(ValueError, match="tolerance"):
        reversal_alignment(weights, padding, tolerance=-1)


# --- the ablation losses -------------------------------------------------------------------------

def test_baseline_loss_ignores_extra_padding_but_the_unmasked_loss_does_not(model, batch):
    wider = _with_extra_pad_column(batch)
    with torch.no_grad():
        masked = [sequence_loss(model(b.src, b.tgt_in), b.tgt_out, PAD) for b in (batch, wider)]
        unmasked = [loss_without_padding_masks(model, b) for b in (batch, wider)]
    assert torch.allclose(*masked, atol=1e-6)
    assert not torch.allclose(*unmasked, atol=1e-3)


def test_loss_counting_pad_is_the_plain_mean_over_every_position(model, batch):
    with torch.no_grad():
        logits = model(batch.src, batch.tgt_in)
        counted = loss_counting_pad(model, batch)
        assert torch.allclose(counted, F.cross_entropy(logits.flatten(0, 1),
                                                       batch.tgt_out.flatten()))
        assert not torch.allclose(counted, sequence_loss(logits, batch.tgt_out, PAD))
        full = collate([(("a", "b", "c"), ("c", "b", "a"))] * 2, VOCAB)  # no PAD anywhere
        assert torch.allclose(loss_counting_pad(model, full),
                              sequence_loss(model(full.src, full.tgt_in), full.tgt_out, PAD))


def test_loss_without_causal_mask_lets_a_step_read_the_future(model, batch):
    only_first_step = torch.full_like(batch.tgt_out, PAD)
    only_first_step[:, 0] = batch.tgt_out[:, 0]  # the loss scores step 0 alone
    probe = dataclasses.replace(batch, tgt_out=only_first_step)
    changed_future = batch.tgt_in.clone()
    changed_future[:, 2] = Vocab.UNK + 1 + (changed_future[:, 2] - Vocab.UNK) % 10
    assert not torch.equal(changed_future, batch.tgt_in)
    changed = dataclasses.replace(probe, tgt_in=changed_future)
    with torch.no_grad():
        baseline = [sequence_loss(model(b.src, b.tgt_in), b.tgt_out, PAD) for b in (probe, changed)]
        leaky = [loss_without_causal_mask(model, b) for b in (probe, changed)]
    assert torch.allclose(*baseline, atol=1e-6)  # step 0 cannot see tgt_in[:, 2]
    assert not torch.allclose(*leaky, atol=1e-4)  # ... unless tgt_mask is off


def test_ablation_losses_are_differentiable_scalars(model, batch):
    for loss_fn in (loss_without_padding_masks, loss_counting_pad, loss_without_causal_mask):
        model.zero_grad()
        loss = loss_fn(model, batch)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        assert model.generator.weight.grad.abs().sum() > 0
    model.zero_grad()


def test_without_padding_masks_ignores_the_masks_it_is_given(model, batch):
    wrapped = WithoutPaddingMasks(model)
    assert wrapped.pad_id == model.pad_id
    with torch.no_grad():
        memory = wrapped.encode(batch.src, batch.src_key_padding_mask)
        assert torch.equal(memory, model.encode(batch.src, None))
        logits = wrapped.decode(batch.tgt_in, memory, tgt_mask=batch.tgt_mask,
                                tgt_key_padding_mask=batch.tgt_key_padding_mask,
                                memory_key_padding_mask=batch.memory_key_padding_mask)
        expected = model.decode(batch.tgt_in, memory, tgt_mask=batch.tgt_mask,
                                tgt_key_padding_mask=None, memory_key_padding_mask=None)
        assert torch.equal(logits, expected)
    full = batch.src[:, :3]  # every source has >= 3 letters: no PAD, so masks change nothing
    assert not (full == PAD).any()
    assert torch.equal(greedy_decode(wrapped, full, max_len=4),
                       greedy_decode(model, full, max_len=4))


# --- the loss-masking explorer ------------------------------------------------------------------

def test_example_targets_end_each_sequence_with_eos_then_pad():
    for kind, lengths in (("ragged", [3, 5, 8]), ("equal lengths", [8, 8, 8]),
                          ("all PAD", [0, 0, 0])):
        targets = example_targets(kind)
        assert targets.shape == (3, 8)
        assert (targets != PAD).sum(1).tolist() == lengths
        for row, n in zip(targets, lengths, strict=True):
            if n:
                assert row[n - 1] == Vocab.EOS and (row[:n - 1] > Vocab.UNK).all()
            assert (row[n:] == PAD).all()
    with pytest.raises(ValueError, match="batch: expected one of"):
        example_targets("empty")


@pytest.mark.parametrize(("kind", "smoothing"), list(itertools.product(BATCHES, (0.0, 0.2))))
def test_weights_reproduce_the_three_reductions(kind, smoothing):
    targets = example_targets(kind)
    logits = example_logits(targets)
    real = targets != PAD
    ignored = per_token_losses(logits, targets, count_pad=False, label_smoothing=smoothing)
    counted = per_token_losses(logits, targets, count_pad=True, label_smoothing=smoothing)
    token_mean = (token_weights(targets, "token mean") * ignored).sum()
    assert torch.allclose(token_mean, sequence_loss(logits, targets, PAD,
                                                    label_smoothing=smoothing))
    sequence_mean = (token_weights(targets, "sequence mean") * ignored).sum()
    per_sequence = (ignored * real).sum(1) / real.sum(1).clamp(min=1)
    assert torch.allclose(sequence_mean, per_sequence.mean())
    pad_counted = (token_weights(targets, "PAD counted") * counted).sum()
    assert torch.allclose(pad_counted, F.cross_entropy(logits.transpose(1, 2), targets,
                                                       label_smoothing=smoothing))
    for reduction in REDUCTIONS:
        total = float(token_weights(targets, reduction).sum())
        assert total == pytest.approx(0.0 if kind == "all PAD" and reduction != "PAD counted"
                                      else 1.0)
    if kind == "ragged":  # what the explorer shows: the reductions disagree
        assert abs(float(token_mean - sequence_mean)) > 0.1
        assert abs(float(token_mean - pad_counted)) > 0.1
    if kind == "equal lengths":
        assert torch.allclose(token_mean, sequence_mean)
    if kind == "all PAD":
        assert float(token_mean) == 0.0 and float(sequence_mean) == 0.0


def test_draw_hatches_pad_only_when_it_is_excluded_and_titles_the_scalar():
    targets = example_targets("ragged")
    pads = int((targets == PAD).sum())
    for reduction in REDUCTIONS:
        fig = draw_loss_masking(reduction, 0.1, "ragged")
        losses_ax, weights_ax, target_ax = fig.axes
        excluded = 0 if reduction == "PAD counted" else pads
        assert _hatched(losses_ax) == excluded and _hatched(weights_ax) == excluded
        weights = token_weights(targets, reduction)
        counted = reduction == "PAD counted"
        losses = per_token_losses(example_logits(targets), targets, count_pad=counted,
                                  label_smoothing=0.1)
        assert f"loss = {float((weights * losses).sum()):.3f}" in fig._suptitle.get_text()
        heights = [bar.get_height() for bar in target_ax.patches]
        assert heights[PAD] == pytest.approx(0.1 / len(VOCAB)) and sum(heights) == \
            pytest.approx(1.0)
        plt.close(fig)
    with pytest.raises(ValueError, match="reduction: expected one of"):
        draw_loss_masking("median")


def test_the_target_panel_shows_what_the_loss_trains_on_an_all_pad_batch():
    fig = draw_loss_masking("token mean", 0.1, "all PAD")
    target_ax = fig.axes[2]
    assert not target_ax.axison and not target_ax.patches  # nothing is trained
    assert "no target distribution" in target_ax.get_title()
    plt.close(fig)
    fig = draw_loss_masking("PAD counted", 0.0, "all PAD")
    heights = [bar.get_height() for bar in fig.axes[2].patches]
    assert heights[PAD] == pytest.approx(1.0)  # counting PAD trains the model to emit <pad>
    assert "'<pad>'" in fig.axes[2].get_title()
    plt.close(fig)
