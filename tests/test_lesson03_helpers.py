"""Lesson 03 helpers: the row-masking explorer shows what the lesson proves, and the checkers
judge behaviour (other correct answers pass; mistakes beyond the registered ones fail clearly)."""

import math

import matplotlib.pyplot as plt
import pytest
import torch

from course_lib.attention import masked_softmax
from course_lib.exercises import check
from course_lib.widgets.lesson03 import (
    FILLS,
    LENGTH,
    draw_row_masking,
    masked_weights,
    self_attention_mask,
)

# --- self_attention_mask ------------------------------------------------------------------


def test_self_attention_mask_blocks_pad_columns_rows_or_both():
    key_padding_mask = torch.tensor([[False, False, True], [False, True, True]])  # [B, L]
    keys = self_attention_mask(key_padding_mask, mask_keys=True, mask_queries=False)
    rows = self_attention_mask(key_padding_mask, mask_keys=False, mask_queries=True)
    both = self_attention_mask(key_padding_mask, mask_keys=True, mask_queries=True)
    neither = self_attention_mask(key_padding_mask, mask_keys=False, mask_queries=False)
    assert keys.shape == rows.shape == both.shape == neither.shape == (2, 3, 3)
    for b in range(2):
        for i in range(3):
            assert torch.equal(keys[b, i], key_padding_mask[b])  # every row: the PAD columns
            assert rows[b, i].all() == key_padding_mask[b, i] and (
                rows[b, i].any() == key_padding_mask[b, i])  # a PAD row is fully blocked
    assert torch.equal(both, keys | rows) and not neither.any()
    single = self_attention_mask(key_padding_mask[1], mask_keys=True, mask_queries=True)
    assert torch.equal(single, both[1])


def test_self_attention_mask_rejects_float_and_scalar_masks():
    with pytest.raises(TypeError, match="key_padding_mask"):
        self_attention_mask(torch.tensor([0.0, 1.0]), mask_keys=True, mask_queries=False)
    with pytest.raises(ValueError, match="key_padding_mask: expected at least 1 dimension"):
        self_attention_mask(torch.tensor(True), mask_keys=True, mask_queries=False)


# --- masked_weights -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_masking_pad_query_rows_leaves_every_real_row_identical(seed):
    generator = torch.Generator().manual_seed(seed)
    batch, length = 3, 7
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    key_padding_mask = torch.arange(length)[None, :] >= lengths[:, None]
    scores = 3.0 * torch.randn(batch, length, length, generator=generator)
    values = torch.randn(batch, length, 4, generator=generator)
    keys = self_attention_mask(key_padding_mask, mask_keys=True, mask_queries=False)
    both = self_attention_mask(key_padding_mask, mask_keys=True, mask_queries=True)
    real = ~key_padding_mask
    for fill in FILLS:
        only_keys = masked_weights(scores, keys, fill)
        with_rows = masked_weights(scores, both, fill)
        assert torch.equal(with_rows[real], only_keys[real]), fill
        assert torch.equal((with_rows @ values)[real], (only_keys @ values)[real]), fill
        assert (only_keys.masked_select(keys) == 0).all(), fill  # exactly 0 on PAD keys
        assert only_keys.isfinite().all(), fill  # every row keeps a real key


def test_fill_values_agree_on_rows_with_a_key_and_differ_on_rows_without():
    scores = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    blocked = torch.tensor([[False, True, False, True, True]] * 2 + [[True] * 5] * 2)
    weights = {fill: masked_weights(scores, blocked, fill) for fill in FILLS}
    for fill, w in weights.items():
        assert torch.equal(w[:2], weights["-inf"][:2]), fill
    assert torch.isnan(weights["-inf"][2:]).all()
    assert torch.allclose(weights["-1e9"][2:], torch.full((2, 5), 0.2))
    assert torch.allclose(weights["finfo.min"][2:], torch.full((2, 5), 0.2))
    assert torch.equal(weights["masked_softmax"][2:], torch.zeros(2, 5))


def test_masked_weights_rejects_an_unknown_fill():
    with pytest.raises(ValueError, match="fill: expected one of"):
        masked_weights(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.bool), "-1e4")


# --- draw_row_masking ---------------------------------------------------------------------


def _drawn(**state):
    figure = draw_row_masking(**state)
    title = figure._suptitle.get_text()
    weights_ax = figure.axes[2]
    row_sums = [t.get_text() for t in figure.axes[-1].get_yticklabels()]
    outlines = [p for p in weights_ax.patches if p.get_linestyle() == "--"]
    plt.close(figure)
    return title, row_sums, outlines


def test_default_state_masks_keys_only_and_every_row_sums_to_one():
    title, row_sums, outlines = _drawn()
    assert "identical to masking keys only" in title and "finite garbage" in title
    assert row_sums == ["1.00"] * LENGTH and not outlines


@pytest.mark.parametrize(("fill", "pad_rows", "pad_sum"), [
    ("-inf", "NaN", "NaN"), ("-1e9", "uniform 1/6", "1.00"),
    ("finfo.min", "uniform 1/6", "1.00"), ("masked_softmax", "zeros", "0.00"),
])
def test_masking_query_rows_shows_what_each_fill_does_to_the_pad_rows(fill, pad_rows, pad_sum):
    title, row_sums, outlines = _drawn(real_length=4, mask_queries=True, fill=fill)
    assert "identical to masking keys only" in title  # the real rows never change
    assert f"PAD rows have no allowed key ({fill}): {pad_rows}" in title
    assert row_sums == ["1.00"] * 4 + [pad_sum] * 2
    assert len(outlines) == 2  # one dashed outline per row without an allowed key


def test_unmasked_keys_leak_weight_and_a_full_sentence_has_nothing_to_mask():
    title, _, _ = _drawn(real_length=3, mask_keys=False)
    assert "of their weight on PAD keys" in title and "attend to every key" in title
    title, row_sums, _ = _drawn(real_length=LENGTH, mask_queries=True)
    assert "no PAD token" in title and row_sums == ["1.00"] * LENGTH


@pytest.mark.parametrize("real_length", [0, LENGTH + 1, 2.5, True])
def test_draw_row_masking_rejects_impossible_lengths(real_length):
    with pytest.raises(ValueError, match="real_length: expected an int"):
        draw_row_masking(real_length=real_length)


# --- the checkers judge behaviour ---------------------------------------------------------


def test_other_correct_answers_pass():
    assert check("03.subset_softmax",
                 lambda scores, mask: scores.masked_fill(mask, -math.inf).softmax(dim=0)).correct
    assert check("03.safe_softmax", masked_softmax).correct

    def from_exp(scores, mask):  # subtract the max of the ALLOWED scores, then exp
        empty = mask.all(dim=-1, keepdim=True)
        row_max = scores.masked_fill(mask, -math.inf).amax(dim=-1, keepdim=True)
        exps = (scores - row_max.masked_fill(empty, 0.0)).exp() * ~mask
        return exps / exps.sum(dim=-1, keepdim=True).clamp_min(1e-30)

    assert check("03.safe_softmax", from_exp).correct
    assert check("03.fully_masked_rows", lambda kpm: (~kpm).cumsum(dim=-1) == 0).correct


def test_mistakes_beyond_the_registered_ones_get_a_clear_message():
    def in_place(scores, mask):
        return scores.masked_fill_(mask, -1e9).softmax(dim=0)

    assert "in place" in check("03.subset_softmax", in_place).message

    def detached(scores, mask):
        return masked_softmax(scores, mask).detach()

    assert "no gradient reaches `scores`" in check("03.safe_softmax", detached).message

    def max_over_every_key(scores, mask):  # shifts by a BLOCKED max: allowed exps underflow
        exps = (scores - scores.amax(dim=-1, keepdim=True)).exp() * ~mask
        return exps / exps.sum(dim=-1, keepdim=True).clamp_min(1e-30)

    assert "subtract the max of the ALLOWED scores" in check("03.safe_softmax",
                                                             max_over_every_key).message
    feedback = check("03.fully_masked_rows", lambda kpm: kpm.int())
    assert feedback.status == "wrong" and "BoolTensor" in feedback.message
