"""course_lib.models: masks built and passed by forward, pad invariance, padding_idx, errors."""

import pytest
import torch
from torch import nn

from course_lib.masks import causal_mask, padding_mask
from course_lib.models import Seq2SeqTransformer, sinusoidal_positions

PAD, VOCAB_SIZE = 0, 14


def make_model(seed=0, **overrides):
    torch.manual_seed(seed)
    config = dict(d_model=32, nhead=4, num_layers=2, dim_feedforward=64, dropout=0.0,
                  pad_id=PAD, max_len=24) | overrides
    return Seq2SeqTransformer(VOCAB_SIZE, **config)


def ragged_ids(generator, batch, width, *, first=4, start_token=None):
    """Right-padded LongTensor[batch, width]; row 0 is full, every row has >= 1 real token."""
    lengths = torch.randint(1, width + 1, (batch,), generator=generator)
    lengths[0] = width
    ids = torch.randint(first, VOCAB_SIZE, (batch, width), generator=generator)
    if start_token is not None:
        ids[:, 0] = start_token
    is_pad = torch.arange(width)[None, :] >= lengths[:, None]
    return ids.masked_fill(is_pad, PAD), is_pad


def test_forward_returns_logits_for_every_target_position():
    model = make_model()
    g = torch.Generator().manual_seed(0)
    src, _ = ragged_ids(g, 3, 7)
    tgt_in, _ = ragged_ids(g, 3, 5, start_token=1)
    assert model(src, tgt_in).shape == (3, 5, VOCAB_SIZE)


def test_forward_passes_every_mask_as_bool():
    model = make_model()
    g = torch.Generator().manual_seed(1)
    src, src_pad = ragged_ids(g, 4, 6)
    tgt_in, tgt_pad = ragged_ids(g, 4, 5, start_token=1)
    seen = {}

    def record(name):
        def hook(module, args, kwargs):
            seen[name] = kwargs
        return hook

    handles = [model.transformer.encoder.register_forward_pre_hook(record("encoder"),
                                                                   with_kwargs=True),
               model.transformer.decoder.register_forward_pre_hook(record("decoder"),
                                                                   with_kwargs=True)]
    model(src, tgt_in)
    for handle in handles:
        handle.remove()
    assert torch.equal(seen["encoder"]["src_key_padding_mask"], src_pad)
    decoder = seen["decoder"]
    assert torch.equal(decoder["memory_key_padding_mask"], src_pad)
    assert torch.equal(decoder["tgt_key_padding_mask"], tgt_pad)
    assert torch.equal(decoder["tgt_mask"], causal_mask(5))
    for mask in (decoder["memory_key_padding_mask"], decoder["tgt_key_padding_mask"],
                 decoder["tgt_mask"], seen["encoder"]["src_key_padding_mask"]):
        assert mask.dtype == torch.bool


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_real_positions_ignore_pad_contents_and_extra_padding(seed, mode):
    model = make_model(seed).train(mode == "train")
    g = torch.Generator().manual_seed(100 + seed)
    src, src_pad = ragged_ids(g, 5, 8)
    tgt_in, tgt_pad = ragged_ids(g, 5, 6, start_token=1)
    real = ~tgt_pad
    with torch.set_grad_enabled(mode == "train"):  # eval without autograd: PyTorch's fast path
        reference = model(src, tgt_in)
        # Extra PAD columns on both sides.
        wider = model(nn.functional.pad(src, (0, 3), value=PAD),
                      nn.functional.pad(tgt_in, (0, 2), value=PAD))
        # Random tokens at PAD positions, with the masks still saying PAD.
        noisy_src = src.masked_scatter(src_pad, torch.randint(4, VOCAB_SIZE, src.shape,
                                                              generator=g))
        noisy_tgt = tgt_in.masked_scatter(tgt_pad, torch.randint(4, VOCAB_SIZE, tgt_in.shape,
                                                                 generator=g))
        memory = model.encode(noisy_src, src_pad)
        noisy = model.decode(noisy_tgt, memory, tgt_mask=causal_mask(6),
                             tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad)
    torch.testing.assert_close(wider[:, :6][real], reference[real], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(noisy[real], reference[real], atol=2e-5, rtol=1e-4)
    # The check has teeth: without the memory padding mask the real outputs move.
    with torch.no_grad():
        unmasked = model.decode(noisy_tgt, model.encode(noisy_src, src_pad),
                                tgt_mask=causal_mask(6), tgt_key_padding_mask=tgt_pad,
                                memory_key_padding_mask=None)
    assert (unmasked[real] - reference[real]).abs().max() > 1e-3


def test_pad_embedding_rows_stay_zero_and_get_zero_gradient():
    model = make_model()
    g = torch.Generator().manual_seed(2)
    src, _ = ragged_ids(g, 4, 7)
    tgt_in, tgt_pad = ragged_ids(g, 4, 6, start_token=1)
    assert tgt_pad.any()
    logits = model(src, tgt_in)
    logits.square().mean().backward()
    for embedding in (model.src_embedding, model.tgt_embedding):
        assert (embedding.weight[PAD] == 0).all()
        assert (embedding.weight.grad[PAD] == 0).all()
        assert embedding.weight.grad[4:].abs().sum() > 0  # real tokens do learn


def test_embedding_std_scales_the_initial_embeddings_only():
    default, scaled = make_model(), make_model(embedding_std=0.3)  # same seed
    for name in ("src_embedding", "tgt_embedding"):
        weight = getattr(scaled, name).weight.detach()
        assert torch.allclose(weight, 0.3 * getattr(default, name).weight)
        assert (weight[PAD] == 0).all()
        assert 0.25 < float(weight[1:].std()) < 0.35
    assert torch.equal(scaled.generator.weight, default.generator.weight)  # nothing else moves
    assert scaled.config["embedding_std"] == 0.3


def test_odd_head_count_and_eval_mode_raise_no_warning():
    # pytest turns warnings into errors: constructing and running must stay silent.
    model = make_model(nhead=1).eval()
    g = torch.Generator().manual_seed(3)
    src, _ = ragged_ids(g, 3, 5)
    with torch.no_grad():
        model(src, torch.ones(3, 2, dtype=torch.long))


def test_sinusoidal_positions_match_the_formula():
    table = sinusoidal_positions(5, 8)
    assert table.shape == (5, 8)
    assert torch.allclose(table[3, 2], torch.sin(torch.tensor(3 / 10000 ** (2 / 8))))
    assert torch.allclose(table[3, 3], torch.cos(torch.tensor(3 / 10000 ** (2 / 8))))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: make_model(pad_id=VOCAB_SIZE), r"pad_id: expected an id inside the vocabulary"),
        (lambda: make_model(pad_id=-1), "pad_id"),
        (lambda: make_model(d_model=30, nhead=4), "d_model"),
        (lambda: make_model(dropout=1.0), "dropout"),
        (lambda: make_model(max_len=0), "max_len"),
        (lambda: Seq2SeqTransformer(1), "vocab_size"),
        (lambda: make_model(embedding_std=0), r"embedding_std: expected a positive number, got 0"),
        (lambda: make_model(embedding_std="0.3"), "embedding_std"),
    ],
)
def test_constructor_rejects_bad_configuration(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_forward_rejects_bad_inputs_with_the_argument_name():
    model = make_model(max_len=6)
    src = torch.tensor([[5, 6, 7], [8, PAD, PAD]])
    tgt_in = torch.tensor([[1, 5], [1, 6]])
    with pytest.raises(ValueError, match="src: length 7 exceeds the positional encoding's max_len"):
        model(torch.full((2, 7), 5), tgt_in)
    with pytest.raises(ValueError, match="tgt_in: length 8 exceeds"):
        model(src, torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"src: expected ids in 0\.\.13, got values in 0\.\.14"):
        model(torch.tensor([[14, PAD]]), tgt_in[:1])
    with pytest.raises(TypeError, match="src: expected integer token ids"):
        model(src.float(), tgt_in)
    with pytest.raises(ValueError, match="src_key_padding_mask: a row is all PAD"):
        model(torch.tensor([[5, 6], [PAD, PAD]]), tgt_in)
    memory = model.encode(src, padding_mask(src, PAD))
    with pytest.raises(TypeError, match="tgt_mask: got a float 0/1 mask"):
        model.decode(tgt_in, memory, tgt_mask=causal_mask(2).float(), tgt_key_padding_mask=None,
                     memory_key_padding_mask=None)
    with pytest.raises(ValueError, match=r"src_key_padding_mask: expected shape \[2, 3\]"):
        model.encode(src, padding_mask(src, PAD).T)
