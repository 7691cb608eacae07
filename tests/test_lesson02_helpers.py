"""course_lib.widgets.lesson02: the layouts block the cells the lesson says they block, and the
fill values behave as the lesson teaches on a sequence with no real token."""

import matplotlib.pyplot as plt
import pytest
import torch

from course_lib.widgets.lesson02 import (
    LAYOUTS,
    MASKINGS,
    apply_pad_mask,
    example_batch,
    plot_batch_weights,
)


@pytest.fixture
def scores():
    return torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(0))


def test_example_batch_is_right_padded_and_the_toggle_empties_the_last_sequence():
    tokens, key_padding_mask = example_batch()
    assert key_padding_mask.shape == (4, 4) and key_padding_mask.dtype == torch.bool
    assert key_padding_mask.sum(dim=-1).tolist() == [0, 1, 2, 3]
    assert all((t == "PAD") == m for row, mask in zip(tokens, key_padding_mask.tolist(),
                                                       strict=True)
               for t, m in zip(row, mask, strict=True))
    _, fully_padded = example_batch(fully_padded=True)
    assert fully_padded[-1].all() and torch.equal(fully_padded[:-1], key_padding_mask[:-1])


def test_correct_layout_blocks_each_sequence_at_its_own_pads_in_every_head_and_row(scores):
    _, key_padding_mask = example_batch()
    weights, blocked = apply_pad_mask(scores, key_padding_mask, layout="[B,1,1,S] correct",
                                      masking="masked_fill(-inf)")
    for b in range(4):
        for h in range(4):
            for row in range(4):
                assert torch.equal(blocked[b, h, row], key_padding_mask[b])
    assert float(weights.masked_select(blocked).abs().sum()) == 0.0
    assert torch.allclose(weights.sum(dim=-1), torch.ones(4, 4, 4))


@pytest.mark.parametrize("layout", [name for name in LAYOUTS if "correct" not in name])
def test_every_wrong_layout_runs_silently_and_blocks_other_cells(scores, layout):
    _, key_padding_mask = example_batch()
    _, correct = apply_pad_mask(scores, key_padding_mask, layout="[B,1,1,S] correct",
                                masking="masked_fill(-inf)")
    weights, blocked = apply_pad_mask(scores, key_padding_mask, layout=layout,
                                      masking="masked_fill(-inf)")
    assert blocked.shape == correct.shape and not torch.equal(blocked, correct)
    # blocked must be the cells masked_fill really filled: they get zero weight
    assert float(weights.masked_select(blocked).abs().sum()) == 0.0


def test_wrong_layouts_block_what_the_lesson_says(scores):
    _, key_padding_mask = example_batch()
    masking = "masked_fill(-inf)"
    _, as_rows = apply_pad_mask(scores, key_padding_mask, layout="[B,S] as [L,S]", masking=masking)
    _, as_heads = apply_pad_mask(scores, key_padding_mask, layout="[B,1,S] as [H,1,S]",
                                 masking=masking)
    for b in range(4):
        for i in range(4):
            assert torch.equal(as_rows[b, 0, i], key_padding_mask[i])  # row i: sequence i's pads
            assert torch.equal(as_heads[b, i, 0], key_padding_mask[i])  # head i: sequence i's


def test_fill_values_agree_on_real_rows_and_differ_on_a_fully_padded_sequence(scores):
    _, key_padding_mask = example_batch(fully_padded=True)
    layout = "[B,1,1,S] correct"
    weights = {m: apply_pad_mask(scores, key_padding_mask, layout=layout, masking=m)[0]
               for m in MASKINGS}
    for name, w in weights.items():
        assert torch.allclose(w[:3], weights["masked_fill(-inf)"][:3], atol=1e-6), name
    assert torch.isnan(weights["masked_fill(-inf)"][3]).all()
    assert torch.allclose(weights["masked_fill(-1e9)"][3], torch.full((4, 4, 4), 0.25))
    assert torch.allclose(weights["masked_fill(finfo.min)"][3], torch.full((4, 4, 4), 0.25))
    assert torch.equal(weights["masked_softmax"][3], torch.zeros(4, 4, 4))


def test_apply_pad_mask_rejects_unknown_names_and_a_layout_that_does_not_broadcast():
    _, key_padding_mask = example_batch()
    with pytest.raises(ValueError, match="layout: expected one of"):
        apply_pad_mask(torch.zeros(4, 4, 4, 4), key_padding_mask, layout="[B,S]",
                       masking="masked_softmax")
    with pytest.raises(ValueError, match="masking: expected one of"):
        apply_pad_mask(torch.zeros(4, 4, 4, 4), key_padding_mask, layout="[B,1,1,S] correct",
                       masking="-1e9")
    with pytest.raises(RuntimeError, match="must match|expanded size"):
        apply_pad_mask(torch.zeros(4, 2, 4, 4), key_padding_mask, layout="[B,1,S] as [H,1,S]",
                       masking="masked_fill(-inf)")


def test_plot_batch_weights_checks_shapes_and_draws_one_panel_per_sequence():
    tokens, key_padding_mask = example_batch()
    weights = torch.full((4, 4, 4), 0.25)
    blocked = key_padding_mask[:, None, :].expand(4, 4, 4)
    fig, axes = plt.subplots(1, 4)
    plot_batch_weights(weights, blocked, key_padding_mask, tokens, axes=axes)
    assert [ax.get_title().splitlines()[0] for ax in axes] == [f"sequence {b}" for b in range(4)]
    with pytest.raises(ValueError, match="blocked, key_padding_mask"):
        plot_batch_weights(weights, blocked[:, :3], key_padding_mask, tokens, axes=axes)
    with pytest.raises(ValueError, match="tokens, axes"):
        plot_batch_weights(weights, blocked, key_padding_mask, tokens[:3], axes=axes)
    plt.close(fig)
