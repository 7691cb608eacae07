"""course_lib.decoding: greedy, beam search and sampling; PAD after EOS, batched == one at a
time, beam search == exhaustive search when the beam holds everything, the nucleus filter."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data import LETTERS, Vocab, collate, make_pairs
from course_lib.decoding import beam_search, greedy_decode, sample, top_k_filter, top_p_filter
from course_lib.models import Seq2SeqTransformer

VOCAB = Vocab(LETTERS)


class ReverseOracle(nn.Module):
    """Predicts the reversed source then EOS, whatever its prefix; errs on sources in ``wrong``.

    For a source in ``wrong`` the first output token is replaced by another letter (the
    later ones stay right), so exact match and token accuracy are known in advance.
    """

    pad_id = Vocab.PAD

    def __init__(self, wrong=()):
        super().__init__()
        self.wrong = {tuple(VOCAB.encode(src)) for src in wrong}

    def encode(self, src, src_key_padding_mask):
        return src

    def decode(self, tgt_in, memory, *, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask):
        lengths = (memory != self.pad_id).sum(dim=1, keepdim=True)
        t = torch.arange(tgt_in.shape[1])[None, :]
        reversed_src = memory.gather(1, (lengths - 1 - t).clamp(min=0))
        next_token = torch.where(t < lengths, reversed_src, Vocab.EOS)
        for row, src in enumerate(memory.tolist()):
            if tuple(i for i in src if i != self.pad_id) in self.wrong:
                next_token[row, 0] = 4 if next_token[row, 0] != 4 else 5
        return F.one_hot(next_token, len(VOCAB)).float()


def test_the_oracle_decodes_the_reversal_and_stops_when_every_row_is_done():
    pairs = make_pairs("reverse", 6, min_len=1, max_len=7, seed=0)
    batch = collate(pairs, VOCAB)
    tokens = greedy_decode(ReverseOracle(), batch.src, max_len=50)
    assert torch.equal(tokens, batch.tgt_out)  # reversed letters, EOS, then PAD
    short = greedy_decode(ReverseOracle(), batch.src, max_len=2)
    assert torch.equal(short, batch.tgt_out[:, :2])


def random_model(seed, eos_bias):
    torch.manual_seed(seed)
    model = Seq2SeqTransformer(len(VOCAB), d_model=32, nhead=4, num_layers=1,
                               dim_feedforward=64, max_len=32)
    with torch.no_grad():  # make EOS likely enough that rows finish at different steps
        model.generator.bias[Vocab.EOS] += eos_bias
    return model


def eos_at_median(model, src):
    """Raise EOS's bias until it wins the first step for about half of the rows."""
    bos = torch.full((src.shape[0], 1), Vocab.BOS)
    with torch.no_grad():
        logits = model.eval()(src, bos)[:, 0]
        others = logits.clone()
        others[:, Vocab.EOS] = -torch.inf
        margins = (others.max(1).values - logits[:, Vocab.EOS]).sort().values
        middle = len(margins) // 2  # halfway between two rows: no row sits on a tie
        model.generator.bias[Vocab.EOS] += (margins[middle - 1] + margins[middle]) / 2


@pytest.mark.parametrize("seed", range(4))
def test_rows_after_eos_are_pad_and_batched_equals_one_at_a_time(seed):
    model = random_model(seed, eos_bias=0.0)
    pairs = make_pairs("copy", 8, min_len=1, max_len=9, seed=seed)
    src = collate(pairs, VOCAB).src
    eos_at_median(model, src)
    model.train()
    tokens = greedy_decode(model, src, max_len=12)
    assert model.training  # the mode is restored
    is_eos = tokens == Vocab.EOS
    after_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    assert after_eos.any()  # some row finished early: the check below is not vacuous
    assert (tokens[after_eos] == Vocab.PAD).all()
    assert (tokens[~after_eos] != Vocab.PAD).all()
    for row, (source, _) in enumerate(pairs):
        alone = greedy_decode(model, torch.tensor([VOCAB.encode(source)]), max_len=12)[0]
        assert torch.equal(alone, tokens[row, :len(alone)])
        assert (tokens[row, len(alone):] == Vocab.PAD).all()


def test_decoding_stops_early_only_when_every_row_has_finished():
    model = random_model(0, eos_bias=-100.0)  # EOS never wins
    src = collate(make_pairs("copy", 3, min_len=2, max_len=4, seed=0), VOCAB).src
    assert greedy_decode(model, src, max_len=9).shape == (3, 9)
    model = random_model(0, eos_bias=100.0)  # EOS always wins
    assert torch.equal(greedy_decode(model, src, max_len=9), torch.full((3, 1), Vocab.EOS))


def test_greedy_decode_rejects_bad_input():
    model = random_model(0, eos_bias=0.0)
    with pytest.raises(ValueError, match="max_len: expected a positive int"):
        greedy_decode(model, torch.tensor([[4, 5]]), max_len=0)
    with pytest.raises(ValueError, match="src: expected a 2-D tensor"):
        greedy_decode(model, torch.tensor([4, 5]), max_len=3)
    with pytest.raises(ValueError, match="tgt_in: length 33 exceeds"):
        greedy_decode(model, torch.tensor([[4, 5]]), max_len=40)


# --- beam search --------------------------------------------------------------------------------

def tiny_model(seed, vocab_size=5):
    """PAD, BOS, EOS, UNK and one letter: every sequence of length <= 3 can be enumerated."""
    torch.manual_seed(seed)
    return Seq2SeqTransformer(vocab_size, d_model=16, nhead=2, num_layers=1,
                              dim_feedforward=32, max_len=8).eval()


def all_sequences(vocab_size, max_len):
    """Every output beam search can produce: ends with EOS, or reaches max_len without it."""
    others = [t for t in range(vocab_size) if t != Vocab.EOS]
    for length in range(1, max_len + 1):
        for body in itertools.product(others, repeat=length - 1):
            yield [*body, Vocab.EOS]
    yield from (list(body) for body in itertools.product(others, repeat=max_len))


@torch.no_grad()
def teacher_forced_log_prob(model, src_row, sequence):
    """sum log p(sequence | src): the model reads [BOS] + sequence[:-1], every mask built."""
    tgt_in = torch.tensor([[Vocab.BOS, *sequence[:-1]]])
    log_probs = F.log_softmax(model(src_row[None], tgt_in)[0], dim=-1)
    return float(log_probs.gather(1, torch.tensor(sequence)[:, None]).sum())


def padded_to(sequence, width):
    return sequence + [Vocab.PAD] * (width - len(sequence))


@pytest.mark.parametrize(("seed", "length_penalty"), [(0, 0.0), (1, 1.0), (2, 2.0), (3, -0.5),
                                                      (4, 0.6)])
def test_a_beam_that_holds_every_sequence_finds_the_exhaustive_best(seed, length_penalty):
    model = tiny_model(seed)
    src = torch.tensor([[4, 4, 3], [4, Vocab.PAD, Vocab.PAD]])
    sequences = list(all_sequences(5, max_len=3))
    assert len(sequences) == 1 + 4 + 16 + 64
    result = beam_search(model, src, beam_size=100, max_len=3, length_penalty=length_penalty)
    for row in range(2):
        ranked = sorted(((teacher_forced_log_prob(model, src[row], s) / len(s) ** length_penalty,
                          s) for s in sequences), reverse=True)
        assert ranked[0][0] - ranked[1][0] > 1e-4  # no tie: the best sequence is well defined
        assert result.sequences[row, 0].tolist() == padded_to(ranked[0][1], 3)
        assert result.scores[row, 0] == pytest.approx(ranked[0][0], abs=1e-5)
        top = [score for score, _ in ranked[:10]]  # the n-best list is the exhaustive top
        assert result.scores[row, :10].tolist() == pytest.approx(top, abs=1e-5)
        assert result.scores[row, len(sequences):].isneginf().all()  # more slots than sequences


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_every_hypothesis_carries_its_own_log_probability(length_penalty):
    model = random_model(5, eos_bias=1.0)
    src = collate(make_pairs("copy", 6, min_len=1, max_len=8, seed=5), VOCAB).src
    result = beam_search(model, src, beam_size=3, max_len=7, length_penalty=length_penalty)
    assert (result.scores[:, :-1] >= result.scores[:, 1:]).all()  # best first
    for row, beam in itertools.product(range(6), range(3)):
        tokens = result.sequences[row, beam].tolist()
        length = tokens.index(Vocab.EOS) + 1 if Vocab.EOS in tokens else 7
        expected = teacher_forced_log_prob(model, src[row], tokens[:length])
        assert result.log_probs[row, beam] == pytest.approx(expected, abs=1e-4)
        assert result.scores[row, beam] == pytest.approx(expected / length ** length_penalty,
                                                         abs=1e-4)
        assert all(t == Vocab.PAD for t in tokens[length:])  # PAD after EOS


@pytest.mark.parametrize("seed", range(4))
def test_beam_size_one_is_greedy_and_the_cache_changes_nothing(seed):
    model = random_model(seed, eos_bias=0.0)
    pairs = make_pairs("copy", 8, min_len=1, max_len=9, seed=seed)
    src = collate(pairs, VOCAB).src
    eos_at_median(model, src)
    greedy = greedy_decode(model, src, max_len=12)
    one = beam_search(model, src, beam_size=1, max_len=12, length_penalty=0.0)
    assert torch.equal(one.sequences[:, 0], greedy)
    four = beam_search(model, src, beam_size=4, max_len=12, length_penalty=1.0)
    recomputed = beam_search(model, src, beam_size=4, max_len=12, length_penalty=1.0,
                             use_cache=False)
    assert torch.equal(four.sequences, recomputed.sequences)
    assert torch.allclose(four.scores, recomputed.scores, atol=1e-5)


class LongIsLikely(nn.Module):
    """Step 1: EOS 0.6, ``a`` 0.4. Steps 2-4: ``a`` 0.99. Step 5: EOS 0.99. The short output
    wins on summed log-probability; ``a a a a <eos>`` wins once the length penalty is large."""

    pad_id = Vocab.PAD
    A = 4

    def encode(self, src, src_key_padding_mask):
        return src

    def decode(self, tgt_in, memory, *, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask):
        probs = torch.full((*tgt_in.shape, len(VOCAB)), 1e-6)
        probs[:, 0, [Vocab.EOS, self.A]] = torch.tensor([0.6, 0.4])
        probs[:, 1:4, [Vocab.EOS, self.A]] = torch.tensor([0.01, 0.99])
        probs[:, 4:, [Vocab.EOS, self.A]] = torch.tensor([0.99, 0.01])
        return probs.log()


def test_the_search_does_not_stop_while_a_live_hypothesis_can_still_win():
    src = torch.tensor([[4, 5]])
    short = beam_search(LongIsLikely(), src, beam_size=1, max_len=6, length_penalty=0.0)
    assert short.sequences[0, 0].tolist() == [Vocab.EOS]
    # [<eos>] is finished after step 1 and beats the live "a" (log 0.4) on its current score;
    # but "a" may still grow to length 6, and -0.92 / 6 ** 3 > log 0.6: the search goes on.
    long = beam_search(LongIsLikely(), src, beam_size=1, max_len=6, length_penalty=3.0)
    assert long.sequences[0, 0].tolist() == [4, 4, 4, 4, Vocab.EOS]
    expected = (math.log(0.4) + 3 * math.log(0.99) + math.log(0.99)) / 5 ** 3
    assert long.scores[0, 0] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_batched_beam_search_equals_one_source_at_a_time(seed):
    model = random_model(seed, eos_bias=0.0)
    pairs = make_pairs("copy", 7, min_len=1, max_len=9, seed=seed)
    src = collate(pairs, VOCAB).src
    eos_at_median(model, src)
    batched = beam_search(model, src, beam_size=3, max_len=10, length_penalty=0.6)
    for row, (source, _) in enumerate(pairs):
        alone = beam_search(model, torch.tensor([VOCAB.encode(source)]), beam_size=3,
                            max_len=10, length_penalty=0.6)
        width = alone.sequences.shape[2]
        assert torch.equal(batched.sequences[row, :, :width], alone.sequences[0])
        assert (batched.sequences[row, :, width:] == Vocab.PAD).all()
        assert torch.allclose(batched.scores[row], alone.scores[0], atol=1e-5)


class ConfidentOracle(ReverseOracle):
    """The oracle with logits 20 for its token and 0 elsewhere: log p(oracle) is about 0."""

    def decode(self, tgt_in, memory, **masks):
        return 20 * super().decode(tgt_in, memory, **masks)


def test_beam_search_finds_the_oracles_reversal_for_models_without_a_cache():
    pairs = make_pairs("reverse", 5, min_len=1, max_len=7, seed=1)
    batch = collate(pairs, VOCAB)
    for length_penalty in (0.0, 1.0):
        result = beam_search(ConfidentOracle(), batch.src, beam_size=2, max_len=20,
                             length_penalty=length_penalty)
        width = batch.tgt_out.shape[1]
        assert torch.equal(result.sequences[:, 0, :width], batch.tgt_out)
        assert (result.sequences[:, 0, width:] == Vocab.PAD).all()
        assert (result.scores[:, 0] > -1e-5).all() and (result.scores[:, 1] < -1).all()


# --- sampling and the filters -------------------------------------------------------------------

def test_top_p_keeps_the_token_that_crosses_p():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    assert torch.isfinite(top_p_filter(logits, 0.7)).tolist() == [True, True, False, False]
    assert torch.isfinite(top_p_filter(logits, 0.85)).tolist() == [True, True, True, False]
    assert torch.isfinite(top_p_filter(logits, 0.3)).tolist() == [True, False, False, False]
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    two = torch.tensor([0.9, 0.1]).log()  # the naive cumsum <= p would keep nothing here
    assert torch.isfinite(top_p_filter(two, 0.5)).tolist() == [True, False]


def test_top_p_keeps_the_smallest_set_reaching_p_on_random_rows():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 50, 7, generator=generator) * 3
    permutation = torch.randperm(7, generator=generator)
    for p in (0.05, 0.3, 0.62, 0.9, 0.99):
        kept = torch.isfinite(top_p_filter(logits, p))
        probs = logits.softmax(dim=-1)
        assert kept.any(dim=-1).all()  # never empty
        assert ((probs * kept).sum(dim=-1) >= p - 1e-6).all()  # mass >= p ...
        least_kept = probs.masked_fill(~kept, 2.0).amin(dim=-1)
        assert ((probs * kept).sum(dim=-1) - least_kept < p).all()  # ... and no smaller set
        removed_max = probs.masked_fill(kept, -1.0).amax(dim=-1)
        assert (removed_max <= least_kept).all()  # the most likely tokens are the kept ones
        permuted = top_p_filter(logits[..., permutation], p)
        assert torch.equal(torch.isfinite(permuted), kept[..., permutation])


def test_top_k_keeps_the_k_largest_logits():
    logits = torch.tensor([[1.0, 5.0, 3.0, -2.0], [0.0, 0.0, 1.0, 2.0]])
    assert torch.isfinite(top_k_filter(logits, 2)).tolist() == [[False, True, True, False],
                                                                [False, False, True, True]]
    assert torch.isfinite(top_k_filter(logits, 1)).sum(dim=-1).tolist() == [1, 1]
    assert torch.equal(top_k_filter(logits, 0), logits)
    assert torch.equal(top_k_filter(logits, 10), logits)  # k larger than the vocabulary
    kept = top_k_filter(logits, 3)
    assert torch.equal(kept[torch.isfinite(kept)], logits[torch.isfinite(kept)])  # untouched
    ties = top_k_filter(torch.tensor([2.0, 1.0, 1.0, 0.0]), 2)
    assert torch.isfinite(ties).tolist() == [True, True, True, False]


class FixedDistribution(nn.Module):
    """Whatever the prefix: the next token is EOS, a, b or c with fixed probabilities."""

    pad_id = Vocab.PAD
    PROBS = {Vocab.EOS: 0.1, 4: 0.5, 5: 0.25, 6: 0.15}

    def encode(self, src, src_key_padding_mask):
        return src

    def decode(self, tgt_in, memory, *, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask):
        probs = torch.zeros(len(VOCAB))
        for token, p in self.PROBS.items():
            probs[token] = p
        return probs.log().expand(*tgt_in.shape, -1)


@pytest.mark.parametrize(("options", "expected"), [
    ({}, FixedDistribution.PROBS),
    ({"top_k": 2}, {4: 0.5 / 0.75, 5: 0.25 / 0.75}),
    ({"top_p": 0.7}, {4: 0.5 / 0.75, 5: 0.25 / 0.75}),  # 0.5 + 0.25 crosses 0.7: both kept
    ({"temperature": 0.5}, {t: p ** 2 / 0.345 for t, p in FixedDistribution.PROBS.items()}),
])
def test_sampled_frequencies_follow_the_filtered_distribution(options, expected):
    src = torch.full((4000, 2), 4)
    tokens = sample(FixedDistribution(), src, max_len=1, generator=torch.Generator().manual_seed(0),
                    **options)[:, 0]
    for token in range(len(VOCAB)):
        frequency = float((tokens == token).float().mean())
        assert frequency == pytest.approx(expected.get(token, 0.0), abs=0.03), token


def test_sampling_is_reproducible_with_a_generator_and_pads_after_eos():
    model = random_model(1, eos_bias=1.5)
    src = collate(make_pairs("copy", 12, min_len=1, max_len=9, seed=1), VOCAB).src

    def draw(seed, **options):
        return sample(model, src, max_len=10, temperature=1.5,
                      generator=torch.Generator().manual_seed(seed), **options)

    first = draw(0)
    assert torch.equal(first, draw(0))
    assert torch.equal(first, draw(0, use_cache=False))  # same logits, same draws
    assert not torch.equal(first, draw(1))
    is_eos = first == Vocab.EOS
    after_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    assert after_eos.any() and (first[after_eos] == Vocab.PAD).all()
    assert torch.equal(sample(model, src, max_len=10, top_k=1), greedy_decode(model, src,
                                                                              max_len=10))


def test_decoding_functions_reject_bad_arguments_by_name():
    model = random_model(0, eos_bias=0.0)
    src = torch.tensor([[4, 5]])
    logits = torch.randn(2, 5)
    bad_calls = [
        (lambda: beam_search(model, src, beam_size=0, max_len=3, length_penalty=1.0),
         "beam_size: expected a positive int, got 0"),
        (lambda: beam_search(model, src, beam_size=2.0, max_len=3, length_penalty=1.0),
         "beam_size"),
        (lambda: beam_search(model, src, beam_size=2, max_len=0, length_penalty=1.0),
         "max_len"),
        (lambda: beam_search(model, src, beam_size=2, max_len=3, length_penalty=float("nan")),
         "length_penalty: expected a number"),
        (lambda: sample(model, src, max_len=3, temperature=0.0),
         "temperature: expected a number > 0"),
        (lambda: sample(model, src, max_len=3, temperature=-1), "temperature"),
        (lambda: sample(model, src, max_len=3, top_p=0.0), r"top_p: expected a number in \(0, 1\]"),
        (lambda: sample(model, src, max_len=3, top_p=1.5), "top_p"),
        (lambda: sample(model, src, max_len=3, top_k=-1), "top_k: expected an int >= 0"),
        (lambda: top_p_filter(logits, 0), "p: expected a number in"),
        (lambda: top_p_filter(logits, True), "p: expected a number in"),
        (lambda: top_k_filter(logits, -2), "k: expected an int >= 0, got -2"),
        (lambda: top_k_filter(logits, 1.5), "k: expected an int"),
    ]
    for call, message in bad_calls:
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError, match="logits: expected a float tensor"):
        top_k_filter(torch.tensor([1, 2]), 1)
    with pytest.raises(TypeError, match="logits: expected a torch.Tensor"):
        top_p_filter([0.1, 0.9], 0.5)
