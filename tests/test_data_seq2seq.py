"""course_lib.data, seq2seq part: toy tasks, held-out disjointness, collate, bucketing."""

import random

import pytest
import torch

from course_lib.data import (
    LETTERS,
    Vocab,
    batch_stream,
    bucketed_batches,
    collate,
    make_pairs,
    pad_fraction,
)
from course_lib.masks import causal_mask

VOCAB = Vocab(LETTERS)


@pytest.mark.parametrize(
    ("task", "relation"),
    [("reverse", lambda s: s[::-1]), ("copy", lambda s: s), ("sort", lambda s: tuple(sorted(s)))],
)
def test_make_pairs_follows_the_task_and_the_length_range(task, relation):
    pairs = make_pairs(task, 300, min_len=2, max_len=7, seed=1)
    assert len(pairs) == 300
    assert len({src for src, _ in pairs}) == 300  # distinct sources
    for src, tgt in pairs:
        assert 2 <= len(src) <= 7
        assert set(src) <= set(LETTERS)
        assert tuple(tgt) == relation(tuple(src))
    assert {len(src) for src, _ in pairs} == set(range(2, 8))  # every length occurs


def test_make_pairs_is_seeded():
    first = make_pairs("reverse", 50, min_len=3, max_len=10, seed=7)
    assert first == make_pairs("reverse", 50, min_len=3, max_len=10, seed=7)
    assert first != make_pairs("reverse", 50, min_len=3, max_len=10, seed=8)


def test_disjoint_from_keeps_held_out_sources_out_of_training_pairs():
    # Only 100 sources of length 2 exist: without the exclusion, overlap is certain.
    held_out = make_pairs("copy", 50, min_len=2, max_len=2, seed=0)
    training = make_pairs("copy", 50, min_len=2, max_len=2, seed=1, disjoint_from=held_out)
    assert not {s for s, _ in held_out} & {s for s, _ in training}
    assert {s for s, _ in held_out} | {s for s, _ in training} == {
        (a, b) for a in LETTERS for b in LETTERS
    }
    with pytest.raises(ValueError, match="n: only 50 distinct sources"):
        make_pairs("copy", 51, min_len=2, max_len=2, seed=1, disjoint_from=held_out)


def test_batch_stream_never_yields_a_held_out_source():
    held_out = make_pairs("reverse", 60, min_len=2, max_len=2, seed=0)
    held_sources = {tuple(VOCAB.encode(src)) for src, _ in held_out}
    stream = batch_stream("reverse", VOCAB, 32, min_len=2, max_len=2, seed=3,
                          disjoint_from=held_out)
    seen = set()
    for _ in range(20):
        seen |= {tuple(row.tolist()) for row in next(stream).src}
    assert seen and not seen & held_sources
    assert len(seen) == 40  # every other source shows up: the exclusion removes only those


def test_batch_stream_batches_are_fresh_and_seeded():
    def first_two(seed):
        stream = batch_stream("reverse", VOCAB, 16, min_len=3, max_len=10, seed=seed)
        return next(stream).src, next(stream).src

    a, b = first_two(0)
    assert not (a.shape == b.shape and torch.equal(a, b))
    assert all(torch.equal(x, y) for x, y in zip(first_two(0), (a, b), strict=True))


@pytest.mark.parametrize("seed", range(5))
def test_collate_shapes_shift_and_masks_on_ragged_pairs(seed):
    rng = random.Random(seed)
    pairs = [(rng.choices(LETTERS, k=rng.randint(1, 9)), rng.choices(LETTERS, k=rng.randint(0, 9)))
             for _ in range(rng.randint(1, 6))]
    batch = collate(pairs, VOCAB)
    width_src = max(len(s) for s, _ in pairs)
    width_tgt = max(len(t) for _, t in pairs) + 1
    assert batch.src.shape == (len(pairs), width_src)
    assert batch.tgt_in.shape == batch.tgt_out.shape == (len(pairs), width_tgt)
    for name in ("src_key_padding_mask", "tgt_key_padding_mask", "tgt_mask"):
        assert getattr(batch, name).dtype == torch.bool
    assert torch.equal(batch.src_key_padding_mask, batch.src == Vocab.PAD)
    assert torch.equal(batch.tgt_key_padding_mask, batch.tgt_in == Vocab.PAD)
    assert batch.memory_key_padding_mask is batch.src_key_padding_mask
    assert torch.equal(batch.tgt_mask, causal_mask(width_tgt))
    for row, (src, tgt) in enumerate(pairs):
        n = len(tgt)
        assert batch.src[row, :len(src)].tolist() == VOCAB.encode(src)
        assert (batch.src[row, len(src):] == Vocab.PAD).all()
        assert batch.tgt_in[row, :n + 1].tolist() == [Vocab.BOS, *VOCAB.encode(tgt)]
        assert batch.tgt_out[row, :n + 1].tolist() == [*VOCAB.encode(tgt), Vocab.EOS]
        # Teacher forcing: the output at t is the input at t + 1.
        assert torch.equal(batch.tgt_in[row, 1:n + 1], batch.tgt_out[row, :n])
        assert (batch.tgt_in[row, n + 1:] == Vocab.PAD).all()
        assert (batch.tgt_out[row, n + 1:] == Vocab.PAD).all()
    # tgt_in and tgt_out are padded at the same places.
    assert torch.equal(batch.tgt_in == Vocab.PAD, batch.tgt_out == Vocab.PAD)


def test_bucketed_batches_use_every_pair_once_with_less_padding():
    pairs = make_pairs("reverse", 400, min_len=1, max_len=20, seed=0)
    batches = bucketed_batches(pairs, VOCAB, 32, seed=0)
    sources = sorted(tuple(row[row != Vocab.PAD].tolist()) for b in batches for row in b.src)
    assert sources == sorted(tuple(VOCAB.encode(s)) for s, _ in pairs)
    bucketed = pad_fraction([(~b.src_key_padding_mask).sum(1).tolist() for b in batches])
    rng = random.Random(0)
    shuffled = rng.sample(pairs, len(pairs))
    mixed = pad_fraction([[len(s) for s, _ in shuffled[i:i + 32]] for i in range(0, 400, 32)])
    assert bucketed < mixed / 3


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: make_pairs("rotate", 5, min_len=1, max_len=3, seed=0), ValueError,
         "task: expected one of"),
        (lambda: make_pairs("copy", 5, min_len=4, max_len=3, seed=0), ValueError,
         "min_len: expected <= max_len"),
        (lambda: make_pairs("copy", 0, min_len=1, max_len=3, seed=0), ValueError, "n: expected"),
        (lambda: make_pairs("copy", 11, min_len=1, max_len=1, seed=0), ValueError,
         "n: only 10 distinct"),
        (lambda: collate([], VOCAB), ValueError, "pairs: .*empty batch"),
        (lambda: collate([((), ("a",))], VOCAB), ValueError, r"pairs\[0\]: the source is empty"),
        (lambda: collate([("ab", "ba", "x")], VOCAB), TypeError, r"pairs\[0\]: expected a"),
        (lambda: collate([(("a",), ("a",))], LETTERS), TypeError, "vocab: expected"),
        (lambda: next(batch_stream("sort", VOCAB, 0, min_len=1, max_len=2, seed=0)), ValueError,
         "batch_size"),
        (lambda: bucketed_batches([], VOCAB, 4), ValueError, "pairs: expected at least one"),
        (lambda: make_pairs("copy", 3, min_len=1, max_len=2, seed=0, alphabet="ab"), ValueError,
         "alphabet: expected a non-empty sequence"),
        (lambda: next(batch_stream("copy", VOCAB, 2, min_len=1, max_len=1, seed=0,
                                   disjoint_from=[((c,), (c,)) for c in LETTERS])),
         ValueError, "disjoint_from: excludes every source"),
    ],
)
def test_seq2seq_data_rejects_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
