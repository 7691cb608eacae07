"""Lesson 01 helpers: the padding explorer's figure, and checkers that judge behaviour
(other correct answers pass; mistakes beyond the registered ones still fail clearly)."""

import re

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from course_lib.data import Vocab, bucket_batches, pad_fraction, random_batches, sample_lengths
from course_lib.exercises import check
from course_lib.widgets.lesson01 import MAX_LEN, draw_padded_batches

# --- the padding explorer ----------------------------------------------------------------


@pytest.mark.parametrize("order", ["random", "bucketed"])
@pytest.mark.parametrize(("batch_size", "num_sentences", "seed"), [(4, 24, 0), (16, 48, 2)])
def test_explorer_title_reports_the_pad_fraction_of_the_drawn_batches(
    order, batch_size, num_sentences, seed
):
    figure = draw_padded_batches(order, batch_size, num_sentences, seed)
    title = figure.axes[0].get_title()
    plt.close(figure)
    lengths = sample_lengths(num_sentences, max_len=MAX_LEN, seed=seed)
    batcher = random_batches if order == "random" else bucket_batches
    expected = pad_fraction([[lengths[i] for i in b] for b in batcher(lengths, batch_size,
                                                                       seed=seed)])
    shown = float(re.search(r"([\d.]+)% of the cells are PAD", title).group(1)) / 100
    assert title.startswith(f"{order} order, batch size {batch_size}")
    assert shown == pytest.approx(expected, abs=0.0005)


def test_explorer_draws_one_hatched_pad_run_per_padded_sentence():
    lengths = sample_lengths(24, max_len=MAX_LEN, seed=1)
    batches = random_batches(lengths, 8, seed=1)
    padded = sum(lengths[i] < max(lengths[j] for j in b) for b in batches for i in b)
    figure = draw_padded_batches("random", 8, 24, 1)
    hatched = [p for p in figure.axes[0].patches if p.get_hatch()]
    plt.close(figure)
    assert len(hatched) == padded


def test_explorer_rejects_an_unknown_order():
    with pytest.raises(ValueError, match="order: expected one of"):
        draw_padded_batches("sorted")


# --- checkers accept other correct answers -----------------------------------------------


def test_checkers_accept_other_correct_answers():
    def mask_via_not(lengths, max_len):
        return ~(torch.arange(max_len).expand(len(lengths), -1) < lengths.unsqueeze(1))

    def fraction_as_tensor(ids, pad_id):
        return (ids == pad_id).sum() / ids.numel()

    def bucket_longest_first(lengths, batch_size):
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    def manual_masked_mean(logits, targets):
        per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                    reduction="none")
        keep = (targets.reshape(-1) != Vocab.PAD).float()
        return (per_token * keep).sum() / keep.sum()

    for key, answer in [("01.mask_from_lengths", mask_via_not),
                        ("01.pad_fraction", fraction_as_tensor),
                        ("01.bucket_batches", bucket_longest_first),
                        ("01.masked_loss", manual_masked_mean)]:
        feedback = check(key, answer)
        assert feedback.correct, feedback


# --- checkers reject other mistakes with a useful message --------------------------------


def bucket_with(transform):
    def answer(lengths, batch_size):
        order = transform(sorted(range(len(lengths)), key=lambda i: lengths[i]))
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return answer


@pytest.mark.parametrize(
    ("key", "answer", "phrase"),
    [
        ("01.mask_from_lengths", lambda lengths, max_len: (torch.arange(max_len)[None, :]
                                                           >= lengths[:, None]).tolist(),
         "expected a torch.Tensor"),
        ("01.mask_from_lengths", lambda lengths, max_len: torch.arange(max_len)[None, :]
         >= (lengths[:, None] - 2), "wrong mask"),
        ("01.pad_fraction", lambda ids, pad_id: int((ids == pad_id).sum()) // ids.numel(),
         "expected"),
        ("01.pad_fraction", lambda ids, pad_id: (ids == pad_id).float().mean(dim=1),
         "expected a number"),
        ("01.bucket_batches", bucket_with(lambda order: order + order[:1]), "more than once"),
        ("01.bucket_batches", bucket_with(lambda order: order[1:]), "missing"),
        ("01.bucket_batches", lambda lengths, batch_size: [[i] for i in range(len(lengths))],
         "batches (all full but one)"),
        ("01.masked_loss", lambda logits, targets: F.cross_entropy(
            logits, targets, ignore_index=Vocab.PAD), "transpose(1, 2)"),
        ("01.masked_loss", lambda logits, targets: F.cross_entropy(
            logits.transpose(1, 2), targets, ignore_index=Vocab.PAD, reduction="none"),
         "expected a scalar tensor"),
        ("01.masked_loss", lambda logits, targets: F.cross_entropy(
            logits.transpose(1, 2), targets, ignore_index=Vocab.PAD) * 2, "expected loss"),
    ],
)
def test_checkers_explain_other_mistakes(key, answer, phrase):
    feedback = check(key, answer)
    assert feedback.status == "wrong", feedback
    assert phrase in feedback.message, feedback.message
