"""course_lib.rnn.RNNSeq2Seq: packed encoder, masked attention, causality, the
Seq2SeqTransformer interface (decoding, evaluation, checkpoints), training."""

import pytest
import torch

import course_lib.models
from course_lib.data import Vocab, batch_stream, make_pairs
from course_lib.decoding import greedy_decode
from course_lib.masks import causal_mask, padding_mask
from course_lib.rnn import RNNSeq2Seq
from course_lib.training import evaluate, load_checkpoint, save_checkpoint, train

PAD, VOCAB_SIZE = 0, 14
LETTERS_5 = tuple("abcde")


def make_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return RNNSeq2Seq(VOCAB_SIZE, **({"embedding_dim": 8, "hidden_size": 12, "pad_id": PAD}
                                     | overrides))


def ragged_ids(generator, batch, width, *, start_token=None, min_length=1):
    """Right-padded LongTensor[batch, width] (row 0 full) and its padding mask."""
    lengths = torch.randint(min_length, width + 1, (batch,), generator=generator)
    lengths[0] = width
    ids = torch.randint(4, VOCAB_SIZE, (batch, width), generator=generator)
    if start_token is not None:
        ids[:, 0] = start_token
    is_pad = torch.arange(width)[None, :] >= lengths[:, None]
    return ids.masked_fill(is_pad, PAD), is_pad


def random_pad_contents(generator, ids, is_pad):
    """``ids`` with every PAD cell replaced by a random real token."""
    noise = torch.randint(4, VOCAB_SIZE, ids.shape, generator=generator)
    return torch.where(is_pad, noise, ids)


def test_models_module_exports_the_rnn():
    assert course_lib.models.RNNSeq2Seq is RNNSeq2Seq
    assert "RNNSeq2Seq" in course_lib.models.__all__


@pytest.mark.parametrize(("hidden_size", "embedding_dim", "num_layers"),
                         [(1, 1, 1), (7, 5, 1), (13, 8, 2), (64, 32, 3)])
def test_any_hidden_size_and_depth_gives_logits_for_every_target_position(
        hidden_size, embedding_dim, num_layers):
    model = make_model(hidden_size=hidden_size, embedding_dim=embedding_dim,
                       num_layers=num_layers)
    g = torch.Generator().manual_seed(hidden_size)
    src, _ = ragged_ids(g, 3, 6)
    tgt_in, _ = ragged_ids(g, 3, 5, start_token=Vocab.BOS)
    logits = model(src, tgt_in)
    assert logits.shape == (3, 5, VOCAB_SIZE) and torch.isfinite(logits).all()
    outputs, (h, c) = model.encode(src, padding_mask(src, PAD))
    assert outputs.shape == (3, 6, 2 * hidden_size)
    assert h.shape == c.shape == (num_layers, 3, hidden_size)


@pytest.mark.parametrize("seed", range(5))
def test_attention_gives_exactly_zero_weight_to_pad_keys(seed):
    model = make_model(seed)
    g = torch.Generator().manual_seed(seed)
    src, src_pad = ragged_ids(g, 5, 7)
    tgt_in, _ = ragged_ids(g, 5, 6, start_token=Vocab.BOS)
    memory = model.encode(src, src_pad)
    _, weights = model.decode_with_attention(tgt_in, memory, memory_key_padding_mask=src_pad)
    assert weights.shape == (5, 6, 7)
    pad_keys = src_pad[:, None, :].expand_as(weights)
    assert torch.all(weights[pad_keys] == 0)
    assert torch.all(weights[~pad_keys] > 0)
    assert torch.allclose(weights.sum(-1), torch.ones(5, 6), atol=1e-6)
    assert torch.all(memory[0][src_pad] == 0)  # the packed encoder never wrote there


@pytest.mark.parametrize("seed", range(5))
def test_real_outputs_ignore_pad_contents_of_source_and_target(seed):
    model = make_model(seed, num_layers=2)
    g = torch.Generator().manual_seed(100 + seed)
    src, src_pad = ragged_ids(g, 6, 8)
    tgt_in, tgt_pad = ragged_ids(g, 6, 7, start_token=Vocab.BOS, min_length=2)
    src_noise = random_pad_contents(g, src, src_pad)
    tgt_noise = random_pad_contents(g, tgt_in, tgt_pad)
    assert not torch.equal(src_noise, src) and not torch.equal(tgt_noise, tgt_in)
    with torch.no_grad():
        clean = model.decode(tgt_in, model.encode(src, src_pad), memory_key_padding_mask=src_pad)
        noisy = model.decode(tgt_noise, model.encode(src_noise, src_pad),
                             memory_key_padding_mask=src_pad)
        unmasked = model.decode(tgt_in, model.encode(src_noise, None),
                                memory_key_padding_mask=None)
    assert torch.equal(clean[~tgt_pad], noisy[~tgt_pad])
    # Without the masks the PAD contents do leak: the test can tell the difference.
    assert (clean[~tgt_pad] - unmasked[~tgt_pad]).abs().max() > 1e-4


def test_a_padded_source_gives_the_outputs_it_gives_alone():
    model = make_model(3, num_layers=2)
    g = torch.Generator().manual_seed(3)
    src, src_pad = ragged_ids(g, 5, 9)
    tgt_in, _ = ragged_ids(g, 5, 6, start_token=Vocab.BOS)
    tgt_in[:] = tgt_in[0]  # same target prefix everywhere: only the source varies
    with torch.no_grad():
        batched = model(src, tgt_in)
        _, (h_batched, _) = model.encode(src, src_pad)
        for row in range(5):
            alone = src[row:row + 1, :int((~src_pad[row]).sum())]
            assert torch.allclose(model(alone, tgt_in[row:row + 1])[0], batched[row], atol=1e-6)
            _, (h_alone, _) = model.encode(alone, padding_mask(alone, PAD))
            assert torch.allclose(h_alone[:, 0], h_batched[:, row], atol=1e-6)


def test_decoder_is_causal_so_tgt_mask_changes_nothing():
    model = make_model(1)
    g = torch.Generator().manual_seed(1)
    src, _ = ragged_ids(g, 3, 5)
    tgt_in, _ = ragged_ids(g, 3, 6, start_token=Vocab.BOS)
    changed = tgt_in.clone()
    changed[:, 4] = (changed[:, 4] - 3) % 10 + 4  # another real token at position 4
    with torch.no_grad():
        memory = model.encode(src, padding_mask(src, PAD))
        kwargs = {"memory_key_padding_mask": padding_mask(src, PAD)}
        plain = model.decode(tgt_in, memory, **kwargs)
        masked = model.decode(tgt_in, memory, tgt_mask=causal_mask(6),
                              tgt_key_padding_mask=padding_mask(tgt_in, PAD), **kwargs)
        after_change = model.decode(changed, memory, **kwargs)
    assert torch.equal(plain, masked)
    assert torch.equal(plain[:, :4], after_change[:, :4])  # earlier outputs: untouched
    assert not torch.allclose(plain[:, 4:], after_change[:, 4:])
    with pytest.raises(ValueError, match="tgt_mask: the RNN decoder is causal"):
        model.decode(tgt_in, memory, tgt_mask=causal_mask(6).T, **kwargs)


def test_pad_embeddings_are_zero_and_get_no_gradient():
    model = make_model()
    g = torch.Generator().manual_seed(0)
    src, _ = ragged_ids(g, 4, 6)
    tgt_in, _ = ragged_ids(g, 4, 5, start_token=Vocab.BOS)
    model(src, tgt_in).sum().backward()
    for embedding in (model.src_embedding, model.tgt_embedding):
        assert embedding.padding_idx == PAD
        assert torch.all(embedding.weight[PAD] == 0)
        assert torch.all(embedding.weight.grad[PAD] == 0)
        assert embedding.weight.grad[4:].abs().sum() > 0


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda m, s, t: m(s.float(), t), TypeError, "src: expected integer token ids"),
    (lambda m, s, t: m(s, t + 20), ValueError, "tgt_in: expected ids in 0..13"),
    (lambda m, s, t: m(s[0], t), ValueError, "src: expected a 2-D tensor"),
    (lambda m, s, t: m.encode(s, (s == PAD).float()), TypeError, "src_key_padding_mask"),
    (lambda m, s, t: m.encode(s, (s == PAD)[:, :-1]), ValueError, "src_key_padding_mask: "
                                                                  "expected shape"),
    (lambda m, s, t: m.encode(s, (s == PAD).flip(1)), ValueError, "right-padded"),
    (lambda m, s, t: m.encode(s, torch.ones_like(s, dtype=torch.bool)), ValueError, "all PAD"),
    (lambda m, s, t: m.decode(t, m.encode(s, None)[0], memory_key_padding_mask=None),
     TypeError, "memory: expected the"),
    (lambda m, s, t: m.decode(t, m.encode(s, None), memory_key_padding_mask=(s == PAD).T),
     ValueError, "memory_key_padding_mask: expected"),
    (lambda m, s, t: m.decode(t[:2], m.encode(s, None), memory_key_padding_mask=None),
     ValueError, "tgt_in: has 2 rows but the memory encodes 3"),
    (lambda m, s, t: m.decode(t, m.encode(s, None), tgt_mask=causal_mask(5).float(),
                              memory_key_padding_mask=None), TypeError, "tgt_mask"),
    (lambda m, s, t: m.decode(t, m.encode(s, None), tgt_key_padding_mask=(t == PAD)[:, :2],
                              memory_key_padding_mask=None), ValueError, "tgt_key_padding_mask"),
])
def test_bad_input_is_refused_with_a_message_naming_the_argument(call, error, message):
    model = make_model()
    g = torch.Generator().manual_seed(0)
    src, _ = ragged_ids(g, 3, 6)
    src[1, 4:] = PAD  # row 1 is padded, so a flipped mask is left padding
    tgt_in, _ = ragged_ids(g, 3, 5, start_token=Vocab.BOS)
    with pytest.raises(error, match=message):
        call(model, src, tgt_in)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"hidden_size": 0}, "hidden_size"), ({"embedding_dim": 2.5}, "embedding_dim"),
    ({"num_layers": 0}, "num_layers"), ({"dropout": 1.0}, "dropout"), ({"pad_id": 14}, "pad_id"),
])
def test_bad_configuration_is_refused(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RNNSeq2Seq(VOCAB_SIZE, **kwargs)


def test_checkpoint_round_trip(tmp_path):
    model = make_model(5, num_layers=2)
    path = tmp_path / "rnn.pt"
    save_checkpoint(model, path)
    restored = load_checkpoint(path, make_model(6, num_layers=2))
    g = torch.Generator().manual_seed(5)
    src, _ = ragged_ids(g, 3, 6)
    tgt_in, _ = ragged_ids(g, 3, 5, start_token=Vocab.BOS)
    assert restored.config == model.config
    assert torch.equal(restored(src, tgt_in), model(src, tgt_in))
    with pytest.raises(ValueError, match="hidden_size=12 in the checkpoint but 16"):
        load_checkpoint(path, make_model(num_layers=2, hidden_size=16))


def test_training_lowers_the_loss_and_greedy_decode_and_evaluate_work():
    vocab = Vocab(LETTERS_5)
    held_out = make_pairs("copy", 60, min_len=1, max_len=4, seed=1, alphabet=LETTERS_5)
    model = make_model(0, embedding_dim=16, hidden_size=32)
    assert model.config["vocab_size"] >= len(vocab)
    before = evaluate(model, held_out, vocab)
    stream = batch_stream("copy", vocab, 32, min_len=1, max_len=4, seed=0,
                          disjoint_from=held_out)
    history = train(model, stream, steps=120, lr=1e-2, warmup_steps=10, progress=False)
    first, last = history.losses[:10], history.losses[-10:]
    assert sum(last) / 10 < 0.3 * sum(first) / 10
    after = evaluate(model, held_out, vocab)
    assert after["exact_match"] > 0.8 and after["exact_match"] > before["exact_match"] + 0.5
    # greedy_decode's tokens are the model's own argmax chain, checked by hand
    src = make_pairs("copy", 5, min_len=3, max_len=3, seed=2, alphabet=LETTERS_5)
    src = torch.tensor([vocab.encode(s) for s, _ in src])
    decoded = greedy_decode(model, src, max_len=4)
    prefix = torch.full((5, 1), Vocab.BOS)
    with torch.no_grad():
        for _ in range(decoded.shape[1]):
            prefix = torch.cat([prefix, model(src, prefix)[:, -1:].argmax(-1)], dim=1)
    # Up to and including its first EOS a row is the argmax chain; after it, PAD.
    is_eos = (decoded == Vocab.EOS).long()
    before_end = torch.cumsum(is_eos, dim=1) - is_eos == 0
    assert torch.equal(decoded[before_end], prefix[:, 1:][before_end])
    assert torch.all(decoded[~before_end] == PAD)
    assert is_eos.sum(dim=1).le(1).all() and is_eos.any()
