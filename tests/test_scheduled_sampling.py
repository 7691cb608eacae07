"""course_lib.scheduled_sampling and RNNSeq2Seq.decode_scheduled: the coin flips, the
two-pass input alignment, the two extremes (all gold = teacher forcing, none = own
predictions) and the loss_fn plugged into training.train."""

import pytest
import torch

from course_lib.data import LETTERS, Vocab, batch_stream
from course_lib.masks import causal_mask, padding_mask
from course_lib.models import Seq2SeqTransformer
from course_lib.rnn import RNNSeq2Seq
from course_lib.scheduled_sampling import (
    ScheduledSamplingLoss,
    coin_flips,
    mix_inputs,
    predicted_tokens,
    two_pass_logits,
)
from course_lib.schedules import teacher_forcing_prob
from course_lib.training import sequence_loss, train

VOCAB = Vocab(LETTERS)
PAD, BOS = Vocab.PAD, Vocab.BOS


def transformer(seed=0):
    torch.manual_seed(seed)
    return Seq2SeqTransformer(len(VOCAB), d_model=16, nhead=2, num_layers=1,
                              dim_feedforward=32, max_len=16)


def rnn(seed=0):
    torch.manual_seed(seed)
    return RNNSeq2Seq(len(VOCAB), embedding_dim=8, hidden_size=16)


def a_batch(seed=0, batch_size=6):
    return next(batch_stream("reverse", VOCAB, batch_size, min_len=2, max_len=7, seed=seed))


def test_mix_inputs_puts_the_guess_made_at_i_into_position_i_plus_1():
    tgt_in = torch.tensor([[BOS, 4, 5, 6, 7],
                           [BOS, 8, 9, PAD, PAD]])
    predicted = torch.tensor([[10, 11, 12, 13, 14],   # predicted[:, i] guesses tgt_in[:, i+1]
                              [20, 21, 22, 23, 24]])
    none_gold = torch.zeros(2, 5, dtype=torch.bool)
    assert mix_inputs(tgt_in, predicted, none_gold, PAD).tolist() == [
        [BOS, 10, 11, 12, 13],
        [BOS, 20, 21, PAD, PAD]]  # BOS kept, PAD kept, the last guess (position 4) unused
    some_gold = torch.tensor([[True, False, True, False, True],
                              [False, True, False, False, False]])
    assert mix_inputs(tgt_in, predicted, some_gold, PAD).tolist() == [
        [BOS, 10, 5, 12, 7],
        [BOS, 8, 21, PAD, PAD]]
    assert torch.equal(mix_inputs(tgt_in, predicted, ~none_gold, PAD), tgt_in)


@pytest.mark.parametrize("seed", range(4))
def test_mix_inputs_on_random_batches_matches_the_definition_cell_by_cell(seed):
    g = torch.Generator().manual_seed(seed)
    tgt_in = a_batch(seed, 9).tgt_in
    predicted = torch.randint(4, len(VOCAB), tgt_in.shape, generator=g)
    use_gold = coin_flips(tuple(tgt_in.shape), 0.4, generator=g)
    mixed = mix_inputs(tgt_in, predicted, use_gold, PAD)
    for b in range(tgt_in.shape[0]):
        for i in range(tgt_in.shape[1]):
            gold = tgt_in[b, i]
            keep = i == 0 or bool(use_gold[b, i]) or gold == PAD
            assert mixed[b, i] == (gold if keep else predicted[b, i - 1]), (b, i)


def test_coin_flips_are_per_token_with_the_given_probability():
    g = torch.Generator().manual_seed(0)
    for gold_prob in (0.0, 0.25, 0.7, 1.0):
        flips = coin_flips((4000, 12), gold_prob, generator=g)
        assert flips.dtype == torch.bool and flips[:, 0].all()
        assert abs(flips[:, 1:].float().mean().item() - gold_prob) < 0.01
    flips = coin_flips((4000, 12), 0.5, generator=g)[:, 1:]
    constant_rows = (flips.all(dim=1) | (~flips).all(dim=1)).float().mean().item()
    assert constant_rows < 0.01  # one coin per sequence would make every row constant
    first = coin_flips((3, 5), 0.5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, coin_flips((3, 5), 0.5, generator=torch.Generator().manual_seed(7)))


def test_predicted_tokens_argmax_or_sample():
    logits = torch.tensor([[[0.0, 5.0, 1.0], [9.0, 0.0, 0.0]]])
    assert predicted_tokens(logits).tolist() == [[1, 0]]
    peaked = torch.tensor([[[0.0, 50.0, 0.0], [0.0, 0.0, 50.0]]])
    assert predicted_tokens(peaked, sample=True).tolist() == [[1, 2]]
    flat = torch.zeros(200, 3, 3)
    drawn = predicted_tokens(flat, sample=True, generator=torch.Generator().manual_seed(0))
    assert set(drawn.unique().tolist()) == {0, 1, 2}


def test_two_pass_with_every_token_gold_is_teacher_forcing_exactly():
    batch = a_batch(1)
    model = transformer(1)
    result = two_pass_logits(model, batch.src, batch.tgt_in, 1.0,
                             generator=torch.Generator().manual_seed(0))
    scheduled_loss = sequence_loss(result.logits, batch.tgt_out, PAD)
    scheduled_loss.backward()
    scheduled_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    plain_logits = model(batch.src, batch.tgt_in)
    plain_loss = sequence_loss(plain_logits, batch.tgt_out, PAD)
    plain_loss.backward()
    assert torch.equal(result.decoder_input, batch.tgt_in) and result.use_gold.all()
    assert torch.equal(result.logits, plain_logits)
    assert torch.equal(scheduled_loss, plain_loss)
    for scheduled, plain in zip(scheduled_grads, (p.grad for p in model.parameters()),
                                strict=True):
        assert torch.equal(scheduled, plain)


@pytest.mark.parametrize("seed", range(3))
def test_two_pass_with_no_gold_token_reads_the_first_pass_guess_shifted_by_one(seed):
    batch = a_batch(seed, 8)
    model = transformer(seed)
    result = two_pass_logits(model, batch.src, batch.tgt_in, 0.0,
                             generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        first_pass = model(batch.src, batch.tgt_in).argmax(-1)
    tgt_in, mixed = batch.tgt_in, result.decoder_input
    assert torch.all(mixed[:, 0] == BOS)
    for b in range(tgt_in.shape[0]):
        for i in range(1, tgt_in.shape[1]):
            if tgt_in[b, i] == PAD:
                assert mixed[b, i] == PAD and result.use_gold[b, i]
            else:  # the guess for tgt_out[:, i-1] == tgt_in[:, i] was made at position i-1
                assert mixed[b, i] == first_pass[b, i - 1], (b, i)
                assert not result.use_gold[b, i]
    assert not torch.equal(mixed, tgt_in)  # an untrained model guesses wrong somewhere
    assert torch.equal(result.first_pass_guess, first_pass)
    # the second pass is the model on the mixed input, with the gold batch's masks
    src_key_padding_mask = padding_mask(batch.src, PAD)
    with torch.no_grad():
        again = model.decode(mixed, model.encode(batch.src, src_key_padding_mask),
                             tgt_mask=causal_mask(tgt_in.shape[1]),
                             tgt_key_padding_mask=tgt_in == PAD,
                             memory_key_padding_mask=src_key_padding_mask)
    assert torch.allclose(result.logits, again, atol=1e-6)
    assert result.logits.requires_grad


def test_rnn_with_every_token_gold_is_teacher_forcing_exactly():
    batch = a_batch(2)
    model = rnn(2)
    memory = model.encode(batch.src, batch.src_key_padding_mask)
    result = model.decode_scheduled(batch.tgt_in, memory, gold_prob=1.0,
                                    memory_key_padding_mask=batch.src_key_padding_mask)
    assert torch.equal(result.decoder_input, batch.tgt_in) and result.use_gold.all()
    assert torch.equal(result.logits, model(batch.src, batch.tgt_in))


@pytest.mark.parametrize("seed", range(3))
def test_rnn_with_no_gold_token_reads_its_own_previous_prediction_at_every_position(seed):
    batch = a_batch(seed, 8)
    model = rnn(seed)
    memory = model.encode(batch.src, batch.src_key_padding_mask)
    result = model.decode_scheduled(batch.tgt_in, memory, gold_prob=0.0,
                                    memory_key_padding_mask=batch.src_key_padding_mask)
    tgt_in, fed = batch.tgt_in, result.decoder_input
    own = result.logits.argmax(-1)
    assert torch.all(fed[:, 0] == BOS)
    for b in range(tgt_in.shape[0]):
        for t in range(1, tgt_in.shape[1]):
            if tgt_in[b, t] == PAD:
                assert fed[b, t] == PAD
            else:
                assert fed[b, t] == own[b, t - 1], (b, t)
                assert not result.use_gold[b, t]
    assert not torch.equal(fed, tgt_in)
    # reading those inputs with teacher forcing reproduces the same logits
    with torch.no_grad():
        replay = model.decode(fed, memory, memory_key_padding_mask=batch.src_key_padding_mask)
    assert torch.allclose(result.logits, replay, atol=1e-6)


def test_rnn_sampling_is_reproducible_and_only_reads_vocabulary_ids():
    batch = a_batch(3)
    model = rnn(3)
    memory = model.encode(batch.src, batch.src_key_padding_mask)
    runs = [model.decode_scheduled(batch.tgt_in, memory, gold_prob=0.3, sample=True,
                                   memory_key_padding_mask=batch.src_key_padding_mask,
                                   generator=torch.Generator().manual_seed(11))
            for _ in range(2)]
    assert torch.equal(runs[0].decoder_input, runs[1].decoder_input)
    assert runs[0].decoder_input.min() >= 0 and runs[0].decoder_input.max() < len(VOCAB)
    with pytest.raises(ValueError, match="gold_prob"):
        model.decode_scheduled(batch.tgt_in, memory, gold_prob=1.5,
                               memory_key_padding_mask=batch.src_key_padding_mask)


@pytest.mark.parametrize("make_model", [transformer, rnn], ids=["transformer", "rnn"])
def test_the_loss_fn_follows_its_schedule_inside_train(make_model):
    model = make_model(4)
    loss_fn = ScheduledSamplingLoss("linear", c=0.1, eps_min=0.3, seed=0)
    first_batch = a_batch(4, 16)
    with torch.no_grad():  # call 0 has probability 1: the plain teacher-forced loss
        expected = sequence_loss(model(first_batch.src, first_batch.tgt_in),
                                 first_batch.tgt_out, PAD)
        assert torch.equal(loss_fn(model, first_batch), expected)
    stream = batch_stream("reverse", VOCAB, 32, min_len=2, max_len=7, seed=4)
    history = train(model, stream, steps=12, warmup_steps=2, progress=False, loss_fn=loss_fn)
    assert loss_fn.step == 13 and len(history.losses) == 12
    assert loss_fn.gold_probs == [teacher_forcing_prob(i, "linear", c=0.1, eps_min=0.3)
                                  for i in range(13)]
    assert loss_fn.gold_fractions[0] == 1.0
    late = loss_fn.gold_fractions[-4:]  # probability 0.3 by then
    assert all(0.15 < fraction < 0.45 for fraction in late), late
    assert "step=13" in repr(loss_fn)


def test_the_loss_fn_validates_its_schedule_up_front():
    with pytest.raises(ValueError, match="kind"):
        ScheduledSamplingLoss("cosine", k=0.5)
    with pytest.raises(TypeError, match="c: the 'linear' schedule needs it"):
        ScheduledSamplingLoss("linear")


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda t: mix_inputs(t, t[:, :-1], torch.ones_like(t, dtype=torch.bool), PAD),
     ValueError, "predicted: expected the shape of tgt_in"),
    (lambda t: mix_inputs(t, t, torch.ones_like(t), PAD), TypeError, "use_gold"),
    (lambda t: mix_inputs(t.float(), t, torch.ones_like(t, dtype=torch.bool), PAD),
     TypeError, "tgt_in"),
    (lambda t: coin_flips((3,), 0.5), ValueError, "shape"),
    (lambda t: coin_flips((3, 4), -0.1), ValueError, "gold_prob"),
    (lambda t: two_pass_logits(transformer(), t, t, 2), ValueError, "gold_prob"),
])
def test_bad_input_is_refused_by_name(call, error, message):
    with pytest.raises(error, match=message):
        call(a_batch().tgt_in)
