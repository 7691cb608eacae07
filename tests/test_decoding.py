"""course_lib.decoding.greedy_decode: an oracle model, PAD after EOS, batched == one at a time."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data import LETTERS, Vocab, collate, make_pairs
from course_lib.decoding import greedy_decode
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
