"""course_lib.data: the vocabulary, sampled lengths, batching and padding waste."""

import random

import pytest
import torch
from torch.nn.utils.rnn import pad_sequence

from course_lib.data import Vocab, bucket_batches, pad_fraction, random_batches, sample_lengths

# --- Vocab -------------------------------------------------------------------------------


def test_special_ids_are_fixed_and_come_first():
    vocab = Vocab(["zebra", "apple"])
    assert (Vocab.PAD, Vocab.BOS, Vocab.EOS, Vocab.UNK) == (0, 1, 2, 3)
    assert vocab.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert [vocab.stoi[s] for s in Vocab.SPECIALS] == [0, 1, 2, 3]
    assert vocab.itos[4:] == ["zebra", "apple"]  # ordinary tokens keep the given order
    assert len(vocab) == 6


def test_encode_decode_round_trip_on_random_sentences():
    rng = random.Random(0)
    words = [f"w{i}" for i in range(30)]
    vocab = Vocab(words)
    for _ in range(20):
        sentence = rng.choices(words, k=rng.randint(1, 12))
        ids = vocab.encode(sentence)
        assert all(isinstance(i, int) and 4 <= i < len(vocab) for i in ids)
        assert vocab.decode(ids) == sentence
        assert vocab.decode(torch.tensor(ids)) == sentence


def test_unknown_tokens_become_unk_and_duplicates_keep_their_first_id():
    vocab = Vocab(["a", "b", "a"])
    assert len(vocab) == 6
    assert vocab.encode(["b", "zzz", "a"]) == [5, Vocab.UNK, 4]
    assert vocab.decode([Vocab.PAD, Vocab.EOS]) == ["<pad>", "<eos>"]


@pytest.mark.parametrize(
    ("tokens", "error", "match"),
    [
        ("the cat", TypeError, "split it first"),
        (["a", "<pad>"], ValueError, "special token"),
        (["a", 3], TypeError, "non-empty str"),
        (["a", ""], TypeError, "non-empty str"),
    ],
)
def test_vocab_rejects_bad_tokens(tokens, error, match):
    with pytest.raises(error, match=match):
        Vocab(tokens)


def test_encode_and_decode_reject_bad_input():
    vocab = Vocab(["a", "b"])
    with pytest.raises(TypeError, match="Split it first"):
        vocab.encode("a b")
    with pytest.raises(ValueError, match=r"ints in 0\.\.5"):
        vocab.decode([1, 6])
    with pytest.raises(ValueError, match="ints in"):
        vocab.decode([-1])
    with pytest.raises(ValueError, match="1-D integer tensor"):
        vocab.decode(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="1-D integer tensor"):
        vocab.decode(torch.tensor([1.0, 2.0]))


# --- sample_lengths ----------------------------------------------------------------------


def test_sample_lengths_are_seeded_bounded_and_skewed():
    lengths = sample_lengths(3000, min_len=2, max_len=40, seed=7)
    assert lengths == sample_lengths(3000, min_len=2, max_len=40, seed=7)
    assert lengths != sample_lengths(3000, min_len=2, max_len=40, seed=8)
    assert all(isinstance(n, int) and 2 <= n <= 40 for n in lengths)
    ordered = sorted(lengths)
    median, mean = ordered[len(ordered) // 2], sum(lengths) / len(lengths)
    assert mean > median  # a long tail of long sentences
    assert len(set(lengths)) > 20


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n": 0}, "n: expected a positive int"), ({"n": 5, "min_len": 9, "max_len": 4}, "min_len"),
     ({"n": 5, "max_len": 2.5}, "max_len")],
)
def test_sample_lengths_rejects_bad_arguments(kwargs, match):
    n = kwargs.pop("n")
    with pytest.raises(ValueError, match=match):
        sample_lengths(n, **kwargs)


# --- batching ----------------------------------------------------------------------------


def random_cases():
    rng = random.Random(123)
    for _ in range(40):
        count = rng.randint(1, 300)
        lengths = [rng.randint(1, 60) for _ in range(count)]
        yield lengths, rng.choice([1, 2, 3, 8, 32, 64]), rng.randint(0, 10**6)


def lengths_of(batches, lengths):
    return [[lengths[i] for i in batch] for batch in batches]


@pytest.mark.parametrize("batcher", [random_batches, bucket_batches])
def test_every_index_appears_exactly_once_in_full_batches(batcher):
    for lengths, batch_size, seed in random_cases():
        batches = batcher(lengths, batch_size, seed=seed)
        flat = [i for batch in batches for i in batch]
        assert sorted(flat) == list(range(len(lengths)))
        sizes = sorted(len(batch) for batch in batches)
        assert sizes[1:] == [batch_size] * (len(batches) - 1)  # all full but one
        assert 1 <= sizes[0] <= batch_size


def test_bucketing_wastes_no_more_than_random_order():
    for lengths, batch_size, seed in random_cases():
        bucketed = pad_fraction(lengths_of(bucket_batches(lengths, batch_size, seed=seed), lengths))
        shuffled = pad_fraction(lengths_of(random_batches(lengths, batch_size, seed=seed), lengths))
        assert bucketed <= shuffled
        if batch_size > 1 and len(lengths) >= 4 * batch_size:
            assert bucketed < shuffled / 2  # not just "no more": far less


def test_bucketed_batches_hold_neighbouring_lengths():
    for lengths, batch_size, seed in random_cases():
        ranges = sorted((min(b), max(b)) for b in lengths_of(
            bucket_batches(lengths, batch_size, seed=seed), lengths))
        for (_, high), (low, _) in zip(ranges, ranges[1:], strict=False):
            assert high <= low  # no two batches' length ranges overlap


def test_bucket_batches_seed_and_shuffle():
    lengths = sample_lengths(500, seed=1)
    assert bucket_batches(lengths, 16, seed=3) == bucket_batches(lengths, 16, seed=3)
    assert bucket_batches(lengths, 16, seed=3) != bucket_batches(lengths, 16, seed=4)
    ordered = bucket_batches(lengths, 16, shuffle=False)
    maxima = [max(lengths[i] for i in batch) for batch in ordered]
    assert maxima == sorted(maxima, reverse=True)  # without shuffle: longest batches first
    assert bucket_batches(torch.tensor(lengths), 16, seed=3) == bucket_batches(lengths, 16, seed=3)


def test_random_batches_are_seeded_and_mixed():
    lengths = sample_lengths(200, seed=2)
    assert random_batches(lengths, 8, seed=1) == random_batches(lengths, 8, seed=1)
    assert random_batches(lengths, 8, seed=1) != random_batches(lengths, 8, seed=2)
    assert [i for b in random_batches(lengths, 8, seed=1) for i in b] != list(range(200))


@pytest.mark.parametrize("batcher", [random_batches, bucket_batches])
@pytest.mark.parametrize(
    ("lengths", "batch_size", "error", "match"),
    [
        ([], 4, ValueError, "lengths: expected at least one"),
        ([3, 0, 2], 4, ValueError, "lengths: expected positive ints"),
        ([3, 2.0], 4, ValueError, "lengths: expected positive ints"),
        ("345", 4, TypeError, "lengths: expected a sequence of ints"),
        (torch.ones(2, 3, dtype=torch.long), 4, ValueError, "1-D integer tensor"),
        ([3, 2], 0, ValueError, "batch_size: expected a positive int"),
        ([3, 2], True, ValueError, "batch_size: expected a positive int"),
    ],
)
def test_batchers_reject_bad_input(batcher, lengths, batch_size, error, match):
    with pytest.raises(error, match=match):
        batcher(lengths, batch_size)


# --- pad_fraction ------------------------------------------------------------------------


def test_pad_fraction_counts_the_pad_cells_of_the_padded_tensors():
    for lengths, batch_size, seed in random_cases():
        batches = random_batches(lengths, batch_size, seed=seed)
        pads = cells = 0
        for batch in batches:  # pad real tensors and count, independently of pad_fraction
            ids = pad_sequence([torch.full((lengths[i],), 7) for i in batch], batch_first=True,
                               padding_value=Vocab.PAD)
            pads += int((ids == Vocab.PAD).sum())
            cells += ids.numel()
        assert pad_fraction(lengths_of(batches, lengths)) == pytest.approx(pads / cells)


def test_pad_fraction_of_equal_lengths_is_zero():
    assert pad_fraction([[5, 5, 5], [2], [9, 9]]) == 0.0
    assert pad_fraction([[3, 1], [2, 2]]) == pytest.approx(2 / 10)


@pytest.mark.parametrize(
    ("batch_lengths", "error", "match"),
    [
        ([3, 4, 5], TypeError, "flat list of ints"),
        ([], ValueError, "at least one batch"),
        ([[3], []], ValueError, "batch_lengths: expected at least one"),
        ([[3, -1]], ValueError, "batch_lengths: expected positive ints"),
        (torch.ones(2, 3), TypeError, "one list of lengths per batch"),
    ],
)
def test_pad_fraction_rejects_bad_input(batch_lengths, error, match):
    with pytest.raises(error, match=match):
        pad_fraction(batch_lengths)
