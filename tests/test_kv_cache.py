"""course_lib.kv_cache: the cached decoder equals the uncached one, step by step, and caches
what it says it caches."""

import pytest
import torch
from torch import nn

from course_lib.data import LETTERS, Vocab, collate, make_pairs
from course_lib.decoding import greedy_decode
from course_lib.kv_cache import (
    IncrementalDecoder,
    PrefixDecoder,
    start_decoder,
    supports_kv_cache,
)
from course_lib.masks import padding_mask
from course_lib.models import Seq2SeqTransformer

VOCAB = Vocab(LETTERS)
CONFIGS = [  # (seed, d_model, nhead, num_layers, dim_feedforward)
    (0, 32, 4, 1, 64), (1, 64, 4, 2, 128), (2, 48, 3, 3, 32), (3, 16, 1, 2, 16),
]


def random_model(seed, d_model, nhead, num_layers, dim_feedforward, max_len=24):
    torch.manual_seed(seed)
    return Seq2SeqTransformer(len(VOCAB), d_model=d_model, nhead=nhead, num_layers=num_layers,
                              dim_feedforward=dim_feedforward, max_len=max_len).eval()


def padded_sources(seed, n=6):
    src = collate(make_pairs("copy", n, min_len=1, max_len=9, seed=seed), VOCAB).src
    assert (src == Vocab.PAD).any()  # the batch really is padded
    return src


def random_prefix(seed, batch, length):
    """[BOS] + random ids, PAD included (finished rows and odd model outputs feed PAD)."""
    generator = torch.Generator().manual_seed(seed)
    prefix = torch.randint(0, len(VOCAB), (batch, length), generator=generator)
    prefix[:, 0] = Vocab.BOS
    prefix[0, length // 2:] = Vocab.PAD  # a row that "finished" halfway
    return prefix


@pytest.mark.parametrize("config", CONFIGS)
def test_every_step_equals_the_full_decoder_on_the_prefix(config):
    model = random_model(*config)
    src = padded_sources(config[0])
    prefix = random_prefix(config[0], src.shape[0], 12)
    with torch.no_grad():
        expected = model(src, prefix)  # teacher forcing: every mask, the whole prefix at once
    cached = start_decoder(model, src, use_cache=True)
    uncached = start_decoder(model, src, use_cache=False)
    assert isinstance(cached, IncrementalDecoder) and isinstance(uncached, PrefixDecoder)
    for t in range(prefix.shape[1]):
        logits_cached, logits_uncached = cached.step(prefix[:, t]), uncached.step(prefix[:, t])
        assert torch.allclose(logits_cached, expected[:, t], atol=1e-5, rtol=0), t
        assert torch.allclose(logits_uncached, expected[:, t], atol=1e-5, rtol=0), t
        assert cached.length == uncached.length == t + 1


def test_in_float64_the_cache_is_the_same_computation_to_1e12():
    model = random_model(*CONFIGS[1]).double()
    src = padded_sources(1)
    prefix = random_prefix(1, src.shape[0], 10)
    with torch.no_grad():
        expected = model(src, prefix)
    decoder = start_decoder(model, src)
    for t in range(prefix.shape[1]):
        logits = decoder.step(prefix[:, t])
        assert logits.dtype == torch.float64
        assert (logits - expected[:, t]).abs().max() < 1e-12


@pytest.mark.parametrize("config", CONFIGS)
def test_the_cache_grows_one_row_per_step_and_marks_pad_keys(config):
    model = random_model(*config)
    src = padded_sources(config[0])
    prefix = random_prefix(config[0], src.shape[0], 7)
    decoder = start_decoder(model, src)
    for t in range(prefix.shape[1]):
        decoder.step(prefix[:, t])
        for keys, values in zip(decoder.self_keys, decoder.self_values, strict=True):
            assert keys.shape == (src.shape[0], config[2], model.max_len, config[1] // config[2])
            assert keys[:, :, t].abs().sum() > 0 and values[:, :, t].abs().sum() > 0
            assert keys[:, :, t + 1:].abs().sum() == 0  # nothing beyond the prefix yet
        assert torch.equal(decoder.prefix_padding[:, :t + 1], padding_mask(prefix[:, :t + 1], 0))


def test_cross_attention_keys_and_values_are_computed_once_from_the_memory():
    model = random_model(*CONFIGS[1])
    src = padded_sources(1)
    memory = model.encode(src, src == Vocab.PAD)
    given = memory.clone()
    decoder = IncrementalDecoder(model, given, src == Vocab.PAD)
    reference = IncrementalDecoder(model, memory, src == Vocab.PAD)
    layer = model.transformer.decoder.layers[0].multihead_attn
    keys = nn.functional.linear(memory, layer.in_proj_weight[64:128], layer.in_proj_bias[64:128])
    assert torch.allclose(decoder.cross_keys[0], keys.unflatten(-1, (4, 16)).transpose(1, 2))
    given.zero_()  # the memory is never read again: only its cached projections are
    tokens = torch.full((src.shape[0],), Vocab.BOS)
    for _ in range(5):
        logits = decoder.step(tokens)
        assert torch.equal(logits, reference.step(tokens))
        tokens = logits.argmax(dim=-1)


@pytest.mark.parametrize("config", CONFIGS)
def test_reorder_makes_the_cache_follow_its_rows(config):
    model = random_model(*config)
    src = padded_sources(config[0]).repeat_interleave(2, dim=0)  # two "beams" per source
    prefix = random_prefix(config[0] + 10, src.shape[0], 9)
    decoder = start_decoder(model, src)
    for t in range(5):
        decoder.step(prefix[:, t])
    # within each source, keep beam 1 twice (the way beam search drops a hypothesis)
    index = torch.arange(src.shape[0]) // 2 * 2 + 1
    decoder.reorder(index)
    fresh = start_decoder(model, src)
    reordered = torch.cat([prefix[index, :5], prefix[:, 5:]], dim=1)
    for t in range(5):
        fresh.step(reordered[:, t])
    for t in range(5, 9):
        assert torch.allclose(decoder.step(reordered[:, t]), fresh.step(reordered[:, t]),
                              atol=1e-5, rtol=0)


@pytest.mark.parametrize("config", CONFIGS)
def test_cached_greedy_gives_the_same_tokens_as_recomputing(config):
    model = random_model(*config)
    src = padded_sources(config[0], n=10)
    with torch.no_grad():
        model.generator.bias[Vocab.EOS] += 2.0  # rows end at different steps
    cached = greedy_decode(model, src, max_len=20)
    uncached = greedy_decode(model, src, max_len=20, use_cache=False)
    assert torch.equal(cached, uncached)
    assert ((cached == Vocab.EOS).any(dim=1)).any()  # some rows finished early
    ignoring_eos = greedy_decode(model, src, max_len=20, eos_id=None)
    assert ignoring_eos.shape == (10, 20)
    assert torch.equal(ignoring_eos, greedy_decode(model, src, max_len=20, eos_id=None,
                                                   use_cache=False))


def test_forgetting_memory_key_padding_mask_is_replayed_too():
    model = random_model(*CONFIGS[0])
    src = padded_sources(0)
    memory = model.encode(src, src == Vocab.PAD)
    cached, uncached = IncrementalDecoder(model, memory, None), PrefixDecoder(model, memory, None)
    masked = IncrementalDecoder(model, memory, src == Vocab.PAD)
    tokens = torch.full((src.shape[0],), Vocab.BOS)
    logits = cached.step(tokens)
    assert torch.allclose(logits, uncached.step(tokens), atol=1e-5, rtol=0)
    padded_rows = (src == Vocab.PAD).any(dim=1)
    difference = (logits - masked.step(tokens)).abs().amax(dim=1)
    assert (difference[padded_rows] > 1e-4).all() and (difference[~padded_rows] < 1e-5).all()


class NotATransformer(nn.Module):
    """The encode/decode interface without nn.Transformer: memory is a tuple."""

    pad_id = Vocab.PAD

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(len(VOCAB), 8)
        self.output = nn.Linear(8, len(VOCAB))

    def encode(self, src, src_key_padding_mask):
        return self.embedding(src), src_key_padding_mask

    def decode(self, tgt_in, memory, *, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask):
        source, _ = memory
        mean = source.masked_fill(memory_key_padding_mask[..., None], 0).sum(1, keepdim=True)
        return self.output(self.embedding(tgt_in).cumsum(dim=1) + mean)


def test_models_without_the_cache_are_decoded_by_recomputing_the_prefix():
    torch.manual_seed(0)
    model = NotATransformer()
    src = padded_sources(0)
    assert not supports_kv_cache(model)
    decoder = start_decoder(model, src, use_cache=True)
    assert isinstance(decoder, PrefixDecoder)
    tokens = greedy_decode(model, src, max_len=6)
    assert tokens.shape[0] == src.shape[0]
    transformer = random_model(*CONFIGS[0])
    transformer.transformer.decoder.layers[0].norm_first = True  # pre-norm: not replayed
    assert not supports_kv_cache(transformer)
    assert isinstance(start_decoder(transformer, src), PrefixDecoder)


def test_bad_arguments_are_named():
    model = random_model(*CONFIGS[0], max_len=4)
    src = padded_sources(0)[:, :4]  # column 0 is never PAD
    memory = model.encode(src, src == Vocab.PAD)
    with pytest.raises(TypeError, match="model: expected a post-norm Seq2SeqTransformer"):
        IncrementalDecoder(NotATransformer(), memory, None)
    with pytest.raises(ValueError, match=r"memory_key_padding_mask: expected shape \[6, "):
        IncrementalDecoder(model, memory, (src == Vocab.PAD).T)
    with pytest.raises(TypeError, match="src: expected integer token ids"):
        start_decoder(model, src.float())
    decoder = IncrementalDecoder(model, memory, src == Vocab.PAD)
    with pytest.raises(ValueError, match="tokens: expected a 1-D tensor"):
        decoder.step(src)
    with pytest.raises(ValueError, match="index: expected row numbers in 0..5"):
        decoder.reorder(torch.tensor([0, 6]))
    with pytest.raises(TypeError, match="index: expected integer row numbers"):
        decoder.reorder(torch.zeros(6))
    for _ in range(4):
        decoder.step(torch.full((6,), Vocab.BOS))
    with pytest.raises(ValueError, match="tgt_in: length 5 exceeds the positional"):
        decoder.step(torch.full((6,), Vocab.BOS))
    prefix_decoder = PrefixDecoder(model, memory, src == Vocab.PAD)
    prefix_decoder.step(torch.full((6,), Vocab.BOS))
    with pytest.raises(ValueError, match="index: expected 6 rows"):
        prefix_decoder.reorder(torch.tensor([0, 1]))
