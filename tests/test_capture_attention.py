"""capture_attention: per-layer, per-head weights, zero on blocked cells, outputs unchanged."""

import itertools
import warnings

import pytest
import torch
from torch import nn

from course_lib.attention import capture_attention
from course_lib.masks import causal_mask

B, S, T, E, H = 3, 6, 5, 16, 2


def make_batch(seed):
    generator = torch.Generator().manual_seed(seed)
    src = torch.randn(B, S, E, generator=generator)
    tgt = torch.randn(B, T, E, generator=generator)
    src_lengths = torch.randint(1, S + 1, (B,), generator=generator)
    tgt_lengths = torch.randint(1, T + 1, (B,), generator=generator)
    src_lengths[0], tgt_lengths[0] = S, T  # one unpadded row, so the fast path is possible
    src_key_padding_mask = torch.arange(S)[None, :] >= src_lengths[:, None]
    tgt_key_padding_mask = torch.arange(T)[None, :] >= tgt_lengths[:, None]
    return src, tgt, src_key_padding_mask, tgt_key_padding_mask


def transformer(seed=0):
    torch.manual_seed(seed)
    return nn.Transformer(E, H, num_encoder_layers=2, num_decoder_layers=2,
                          dim_feedforward=32, dropout=0.0, batch_first=True)


def run(model, src, tgt, skpm, tkpm):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors")
        return model(src, tgt, tgt_mask=causal_mask(T), src_key_padding_mask=skpm,
                     tgt_key_padding_mask=tkpm, memory_key_padding_mask=skpm)


@pytest.mark.parametrize(("seed", "training", "grad"),
                         list(itertools.product(range(4), (True, False), (True, False))))
def test_transformer_weights_are_recorded_and_outputs_unchanged(seed, training, grad):
    model = transformer(seed).train(training)
    src, tgt, skpm, tkpm = make_batch(seed)
    with torch.set_grad_enabled(grad):
        expected = run(model, src, tgt, skpm, tkpm)
        with capture_attention(model) as captured:
            output = run(model, src, tgt, skpm, tkpm)
    real = ~tkpm
    assert torch.allclose(output[real], expected[real], atol=1e-6)

    names = [f"encoder.layers.{i}.self_attn" for i in range(2)]
    names += [f"decoder.layers.{i}.{a}" for i in range(2) for a in ("self_attn", "multihead_attn")]
    assert sorted(captured) == sorted(names)
    blocked = {
        "encoder": skpm[:, None, None, :].expand(B, H, S, S),
        "self_attn": (causal_mask(T) | tkpm[:, None, :])[:, None].expand(B, H, T, T),
        "multihead_attn": skpm[:, None, None, :].expand(B, H, T, S),
    }
    for name, weights in captured.items():
        kind = "encoder" if name.startswith("encoder") else name.split(".")[-1]
        assert weights.shape == blocked[kind].shape, name
        assert not weights.isnan().any()
        assert torch.all(weights[blocked[kind]] == 0), name
        rows = weights.sum(-1)
        computed = ~blocked[kind].all(-1)
        if kind == "encoder" and not training and not grad:
            # The nested-tensor fast path never computes PAD query rows: they stay zero.
            assert torch.all(rows[skpm[:, None, :].expand(B, H, S)] == 0)
            computed &= ~skpm[:, None, :]
        assert torch.allclose(rows[computed], torch.ones(()), atol=1e-5), name


def test_empty_rows_give_zero_weights_and_the_same_outputs():
    model = transformer().train()
    src, tgt, skpm, tkpm = make_batch(0)
    tkpm[1] = False
    tkpm[1, 0] = True  # left padding + causal: query 0 of row 1 has no allowed key
    expected = run(model, src, tgt, skpm, tkpm)
    with capture_attention(model) as captured:
        output = run(model, src, tgt, skpm, tkpm)
    assert torch.equal(output.isnan(), expected.isnan())
    assert torch.allclose(output.nan_to_num(), expected.nan_to_num(), atol=1e-6)
    assert torch.all(captured["decoder.layers.0.self_attn"][1, :, 0] == 0)


@pytest.mark.parametrize("part", ["encoder", "decoder", "encoder_layer", "decoder_layer"])
def test_parts_of_a_transformer(part):
    model = transformer().eval()
    src, tgt, skpm, tkpm = make_batch(1)
    memory = model.encoder(src, src_key_padding_mask=skpm).detach()
    calls = {
        "encoder": (model.encoder, lambda m: m(src, src_key_padding_mask=skpm)),
        "decoder": (model.decoder, lambda m: m(tgt, memory, tgt_mask=causal_mask(T),
                                               memory_key_padding_mask=skpm)),
        "encoder_layer": (model.encoder.layers[0], lambda m: m(src, src_key_padding_mask=skpm)),
        "decoder_layer": (model.decoder.layers[0],
                          lambda m: m(tgt, memory, tgt_mask=causal_mask(T),
                                      memory_key_padding_mask=skpm)),
    }
    module, call = calls[part]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors")
        expected = call(module)
        with capture_attention(module) as captured:
            output = call(module)
    assert torch.allclose(output.to_padded_tensor(0.0) if output.is_nested else output,
                          expected.to_padded_tensor(0.0) if expected.is_nested else expected,
                          atol=1e-6)
    assert captured and all(w.shape[:2] == (B, H) for w in captured.values())
    for name, weights in captured.items():
        if "multihead_attn" in name or part.startswith("encoder"):
            assert torch.all(weights[skpm[:, None, None, :].expand_as(weights)] == 0), name


def test_bare_attention_keeps_what_the_caller_asked_for():
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(E, H, batch_first=True)
    x = torch.randn(B, S, E)
    averaged = attention(x, x, x)[1]
    per_head = attention(x, x, x, need_weights=True, average_attn_weights=False)[1]
    with capture_attention(attention) as captured:
        assert torch.allclose(attention(x, x, x)[1], averaged)
        assert attention(x, x, x, need_weights=False)[1] is None
        assert torch.allclose(attention(x, x, x, None, True, None, False)[1], per_head)
    assert list(captured) == ["self"] and len(captured.calls["self"]) == 3
    assert torch.allclose(captured["self"], per_head)


def test_hooks_are_removed_afterwards_even_on_error():
    model = transformer()
    with pytest.raises(RuntimeError), capture_attention(model):
        model(torch.randn(B, S, E), torch.randn(B, T, E + 1))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_bad_modules_are_rejected():
    with pytest.raises(TypeError, match="module: expected an nn.Module"), capture_attention("x"):
        pass
    with pytest.raises(ValueError, match="contains no nn.MultiheadAttention"), \
            capture_attention(nn.Linear(2, 2)):
        pass
