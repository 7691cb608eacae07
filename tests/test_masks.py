"""course_lib.masks: each mask against PyTorch's own builders and attention modules."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import scaled_dot_product_attention
from course_lib.masks import (
    causal_mask,
    from_hf,
    merge,
    padding_mask,
    to_additive,
    to_mask_mod,
    to_mha,
    to_sdpa,
)

PAD = 0


def random_ids(seed, batch=4, length=6, padding="right"):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, length + 1, (batch,), generator=g)
    ids = torch.randint(1, 50, (batch, length), generator=g)
    positions = torch.arange(length)
    if padding == "right":
        is_pad = positions[None, :] >= lengths[:, None]
    else:
        is_pad = positions[None, :] < (length - lengths)[:, None]
    return ids.masked_fill(is_pad, PAD), is_pad


# --- padding_mask -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("padding", ["right", "left"])
def test_padding_mask_is_true_exactly_at_pad(seed, padding):
    ids, is_pad = random_ids(seed, padding=padding)
    mask = padding_mask(ids, PAD)
    assert mask.dtype == torch.bool and mask.shape == ids.shape
    assert torch.equal(mask, is_pad)


def test_padding_mask_uses_the_given_pad_id():
    ids = torch.tensor([[5, 7, 1, 1], [7, 1, 1, 1]])
    assert padding_mask(ids, 1).tolist() == [[False, False, True, True], [False, True, True, True]]
    assert not padding_mask(ids, 0).any()


@pytest.mark.parametrize(
    ("ids", "pad_id", "error", "match"),
    [
        (torch.tensor([1, 2, 0]), 0, ValueError, r"ids: expected a 2-D tensor, got .*\[3\]"),
        (torch.ones(2, 3), 0, TypeError, r"ids: expected integer token ids, got a torch\.float32"),
        (torch.ones(2, 3, dtype=torch.bool), 0, TypeError, r"ids: expected integer token ids"),
        ([[1, 2, 0]], 0, TypeError, r"ids: expected a torch\.Tensor, got list"),
        (torch.ones(2, 3, dtype=torch.long), 0.0, TypeError, r"pad_id: expected an int, got float"),
        (torch.ones(2, 3, dtype=torch.long), True, TypeError, r"pad_id: expected an int, got bool"),
        (torch.ones(2, 3, dtype=torch.long), torch.tensor(0), TypeError,
         r"pad_id: expected an int, got Tensor"),
    ],
)
def test_padding_mask_rejects_bad_input(ids, pad_id, error, match):
    with pytest.raises(error, match=match):
        padding_mask(ids, pad_id)


# --- causal_mask --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_causal_mask_equals_pytorch(size):
    expected = nn.Transformer.generate_square_subsequent_mask(size, dtype=torch.bool)
    mask = causal_mask(size)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, expected)
    # And against PyTorch's default float version: True exactly where it is -inf.
    assert torch.equal(mask, nn.Transformer.generate_square_subsequent_mask(size).isneginf())


def test_causal_mask_device():
    assert causal_mask(3, device="meta").device.type == "meta"


@pytest.mark.parametrize("size", [0, -2, 2.0, True, "3", None, torch.tensor(3)])
def test_causal_mask_rejects_bad_size(size):
    with pytest.raises(ValueError, match=r"size: expected a positive int, got"):
        causal_mask(size)


# --- to_additive --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_to_additive_is_zero_or_minus_inf(dtype):
    mask = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(1)) < 0.5
    additive = to_additive(mask, dtype=dtype)
    assert additive.dtype == dtype and additive.shape == mask.shape
    assert torch.equal(additive.isneginf(), mask)
    assert torch.equal(additive[~mask], torch.zeros(int((~mask).sum()), dtype=dtype))


def test_to_additive_default_dtype_and_float16_softmax():
    assert to_additive(causal_mask(3)).dtype == torch.float32
    # -inf (not finfo.min or -1e9) survives float16 and still gives exactly zero weight.
    scores = torch.randn(3, 3, dtype=torch.float16)
    weights = torch.softmax(scores + to_additive(causal_mask(3), dtype=torch.float16), dim=-1)
    assert torch.equal(weights[causal_mask(3)], torch.zeros(3, dtype=torch.float16))


@pytest.mark.parametrize(
    ("mask", "dtype", "error", "match"),
    [
        (torch.ones(2, 2, dtype=torch.long), torch.float32, TypeError,
         r"mask: got an integer mask.*from_hf"),
        (torch.ones(2, 2).triu(1), torch.float32, TypeError,
         r"mask: got a float 0/1 mask.*Float masks are ADDED"),
        (to_additive(causal_mask(2)), torch.float32, TypeError,
         r"mask: expected a bool mask.*additive float mask is not accepted"),
        (causal_mask(2), torch.int64, TypeError,
         r"dtype: expected a floating dtype, got torch\.int64"),
        (causal_mask(2), torch.bool, TypeError, r"dtype: expected a floating dtype"),
        ([[True, False]], torch.float32, TypeError, r"mask: expected a torch\.Tensor, got list"),
    ],
)
def test_to_additive_rejects_bad_input(mask, dtype, error, match):
    with pytest.raises(error, match=match):
        to_additive(mask, dtype=dtype)


# --- to_sdpa ------------------------------------------------------------------------------


def test_to_sdpa_flips_bool_and_keeps_float():
    mask = torch.rand(4, 6, generator=torch.Generator().manual_seed(2)) < 0.5
    assert torch.equal(to_sdpa(mask), ~mask)
    additive = to_additive(mask) + torch.randn(4, 6)
    assert torch.equal(to_sdpa(additive), additive) and to_sdpa(additive).dtype == torch.float32


@pytest.mark.parametrize("size", [1, 2, 5, 7])
def test_causal_mask_through_to_sdpa_matches_ours(size):
    g = torch.Generator().manual_seed(size)
    q, k, v = (torch.randn(2, 3, size, 4, generator=g) for _ in range(3))
    ours, _ = scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(size))
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=to_sdpa(causal_mask(size)))
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    torch.testing.assert_close(theirs, F.scaled_dot_product_attention(q, k, v, is_causal=True),
                               atol=1e-6, rtol=0)
    if size > 1:  # the wrong polarity runs silently and gives a different answer
        wrong = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(size))
        assert not torch.allclose(wrong, theirs, atol=1e-3)


@pytest.mark.parametrize(
    ("mask", "error", "match"),
    [
        (torch.ones(2, 2, dtype=torch.int32), TypeError, r"mask: got an integer mask"),
        (torch.eye(2), TypeError, r"mask: got a float 0/1 mask.*ADDED"),
        ("causal", TypeError, r"mask: expected a torch\.Tensor, got str"),
    ],
)
def test_to_sdpa_rejects_bad_input(mask, error, match):
    with pytest.raises(error, match=match):
        to_sdpa(mask)


# --- from_hf ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.uint8, torch.bool])
def test_from_hf_is_true_at_pad(dtype):
    hf = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 1, 1]]).to(dtype)
    expected = torch.tensor([[False, False, False, True], [False, True, True, True],
                             [True, True, False, False]])
    assert torch.equal(from_hf(hf), expected)


@pytest.mark.parametrize("seed", range(3))
def test_from_hf_inverts_the_hf_convention_of_a_padded_batch(seed):
    ids, is_pad = random_ids(seed, padding="left")
    hf_attention_mask = (~is_pad).long()  # what a Hugging Face tokenizer returns
    assert torch.equal(from_hf(hf_attention_mask), padding_mask(ids, PAD))


@pytest.mark.parametrize(
    ("attention_mask", "error", "match"),
    [
        (torch.tensor([[1, 2, 0]]), ValueError, r"attention_mask: expected only 0 \(pad\) and 1"),
        (torch.tensor([[1, -1]]), ValueError, r"attention_mask: expected only 0 \(pad\) and 1"),
        (torch.tensor([[1.0, 0.0]]), TypeError,
         r"attention_mask: expected an integer or bool tensor of 1 = keep / 0 = pad, got "
         r"torch\.float32"),
        (torch.tensor([[0.0, float("-inf")]]), TypeError, r"attention_mask: expected an integer"),
        ([[1, 0]], TypeError, r"attention_mask: expected a torch\.Tensor, got list"),
    ],
)
def test_from_hf_rejects_bad_input(attention_mask, error, match):
    with pytest.raises(error, match=match):
        from_hf(attention_mask)


# --- merge --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("attn_rank", [2, 3])
def test_merge_equals_manual_or(seed, attn_rank):
    g = torch.Generator().manual_seed(seed)
    batch, lq, lk = 3, 4, 5
    shape = (lq, lk) if attn_rank == 2 else (batch, lq, lk)
    attn_mask = torch.rand(shape, generator=g) < 0.3
    key_padding_mask = torch.rand(batch, lk, generator=g) < 0.3
    expected = (attn_mask | key_padding_mask[:, None, :])[:, None]  # [B, 1, Lq, Lk]
    merged = merge(attn_mask, key_padding_mask)
    assert merged.dtype == torch.bool and merged.shape == (batch, 1, lq, lk)
    assert torch.equal(merged, expected)
    # An additive 0/-inf attn_mask means the same as its bool version.
    assert torch.equal(merge(to_additive(attn_mask), key_padding_mask), expected)


def test_merge_with_one_mask_only():
    attn_mask = causal_mask(4)
    assert torch.equal(merge(attn_mask), attn_mask[None, None])
    assert torch.equal(merge(attn_mask=to_additive(attn_mask)), attn_mask[None, None])
    key_padding_mask = torch.tensor([[False, True, True], [False, False, True]])
    assert torch.equal(merge(key_padding_mask=key_padding_mask), key_padding_mask[:, None, None])


def test_merge_accepts_an_additive_mask_that_blocks_nothing():
    """to_additive of an all-False mask is all 0.0, a valid additive mask, not a 0/1 mistake."""
    nothing_blocked = torch.zeros(2, 3, dtype=torch.bool)
    assert torch.equal(merge(to_additive(nothing_blocked)), nothing_blocked[None, None])


@pytest.mark.parametrize("seed", range(8))
def test_merged_mask_matches_separate_masks_in_multihead_attention(seed):
    """attn_mask + key_padding_mask given separately == merged [B*H, Lq, Lk] (repeat_interleave)."""
    torch.manual_seed(seed)
    batch, heads, lq, lk, embed = 3, 2, 5, 6, 8
    mha = nn.MultiheadAttention(embed, heads, batch_first=True)
    x_q, x_kv = torch.randn(batch, lq, embed), torch.randn(batch, lk, embed)
    attn_mask = torch.ones(lq, lk).triu(2).bool()  # the last query sees every key
    lengths = torch.randperm(lk)[:batch] + 1  # distinct, >= 1: no fully masked query
    key_padding_mask = torch.arange(lk)[None, :] >= lengths[:, None]
    separate, separate_w = mha(x_q, x_kv, x_kv, attn_mask=attn_mask,
                               key_padding_mask=key_padding_mask, average_attn_weights=False)
    merged = merge(attn_mask, key_padding_mask).squeeze(1).repeat_interleave(heads, dim=0)
    assert merged.shape == (batch * heads, lq, lk)
    together, together_w = mha(x_q, x_kv, x_kv, attn_mask=merged, average_attn_weights=False)
    torch.testing.assert_close(together, separate, atol=1e-6, rtol=0)
    torch.testing.assert_close(together_w, separate_w, atol=1e-6, rtol=0)
    # .repeat(H, 1, 1) orders the copies head-major instead of batch-major: silently wrong.
    wrong = merge(attn_mask, key_padding_mask).squeeze(1).repeat(heads, 1, 1)
    wrong_out, _ = mha(x_q, x_kv, x_kv, attn_mask=wrong)
    assert not torch.allclose(wrong_out, separate, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, r"merge: give attn_mask, key_padding_mask or both; got neither"),
        ({"attn_mask": torch.randn(3, 3)}, ValueError,
         r"attn_mask: an additive mask with values other than 0 and -inf cannot be merged"),
        ({"attn_mask": to_additive(causal_mask(3)) + 0.5}, ValueError,
         r"attn_mask: an additive mask with values other than 0 and -inf"),
        ({"attn_mask": causal_mask(3), "key_padding_mask": torch.zeros(3, 2, dtype=torch.bool)},
         ValueError, r"key_padding_mask: has 2 keys .* but attn_mask has 3 .*transposed"),
        ({"attn_mask": torch.zeros(2, 3, 4, dtype=torch.bool),
          "key_padding_mask": torch.zeros(4, 2, dtype=torch.bool)},
         ValueError, r"key_padding_mask: has 2 keys .*transposed \[Lk, B\] padding mask"),
        ({"attn_mask": torch.zeros(2, 3, 4, dtype=torch.bool),
          "key_padding_mask": torch.zeros(3, 4, dtype=torch.bool)},
         ValueError, r"attn_mask: batch size 2 does not match key_padding_mask's 3"),
        ({"attn_mask": torch.zeros(1, 2, 3, 3, dtype=torch.bool)}, ValueError,
         r"attn_mask: expected a 2-D or 3-D tensor"),
        ({"attn_mask": torch.ones(3, 3, dtype=torch.long)}, TypeError,
         r"attn_mask: got an integer mask"),
        ({"attn_mask": torch.ones(3, 3).triu(1)}, TypeError, r"attn_mask: got a float 0/1 mask"),
        ({"key_padding_mask": torch.ones(2, 3, dtype=torch.uint8)}, TypeError,
         r"key_padding_mask: got an integer mask.*from_hf"),
        ({"key_padding_mask": torch.eye(2, 3)}, TypeError, r"key_padding_mask: got a float 0/1"),
        ({"key_padding_mask": torch.zeros(2, 1, 3, dtype=torch.bool)}, ValueError,
         r"key_padding_mask: expected a 2-D tensor"),
        ({"key_padding_mask": [[False, True]]}, TypeError,
         r"key_padding_mask: expected a torch\.Tensor"),
        ({"attn_mask": causal_mask(3, device="meta"),
          "key_padding_mask": torch.zeros(2, 3, dtype=torch.bool)},
         ValueError, r"key_padding_mask: is on cpu but attn_mask is on meta"),
    ],
)
def test_merge_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        merge(**kwargs)


# --- to_hf_4d / from_hf_4d / to_mha / to_mask_mod ---------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_hf_4d_round_trip_and_values(dtype):
    from course_lib.masks import from_hf_4d, to_hf_4d

    mask = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(0)) > 0.5
    hf = to_hf_4d(mask, dtype)
    assert hf.shape == (3, 1, 5, 5) and hf.dtype == dtype
    assert torch.all(hf[:, 0][mask] == torch.finfo(dtype).min) and torch.all(hf[:, 0][~mask] == 0)
    assert torch.equal(from_hf_4d(hf)[:, 0], mask)
    assert torch.equal(to_hf_4d(mask[:, None], dtype), hf)  # [B, 1, Lq, Lk] is accepted too
    overflowed = hf + hf  # two finfo.min masks added: -inf in float16, still blocked
    assert torch.equal(from_hf_4d(overflowed), from_hf_4d(hf))


def test_hf_4d_refuses_bad_input():
    from course_lib.masks import from_hf_4d, to_hf_4d

    with pytest.raises(TypeError, match="mask: expected a bool mask|mask: .*bool"):
        to_hf_4d(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r"mask: expected \[B, 1, Lq, Lk\]"):
        to_hf_4d(torch.zeros(2, 4, 3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="dtype: expected a floating dtype"):
        to_hf_4d(torch.zeros(2, 3, 3, dtype=torch.bool), torch.int64)
    with pytest.raises(TypeError, match="from_hf"):
        from_hf_4d(torch.ones(2, 1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="a bias"):
        from_hf_4d(torch.full((1, 1, 2, 2), 0.5))


def test_to_mha_is_the_layout_multihead_attention_expects():
    generator = torch.Generator().manual_seed(0)
    batch, heads, length, width = 3, 2, 5, 8
    mask = torch.rand(batch, length, length, generator=generator) > 0.6
    mask[..., 0] = False  # every query keeps a key
    x = torch.randn(batch, length, width, generator=generator)
    attention = nn.MultiheadAttention(width, heads, batch_first=True).eval()
    out, _ = attention(x, x, x, attn_mask=to_mha(mask, heads), need_weights=False)
    for b in range(batch):  # example b alone with its own mask
        alone, _ = attention(x[b:b + 1], x[b:b + 1], x[b:b + 1], attn_mask=mask[b],
                             need_weights=False)
        assert torch.allclose(out[b], alone[0], atol=1e-6)
    assert not torch.equal(to_mha(mask, heads), mask.repeat(heads, 1, 1))
    with pytest.raises(ValueError, match="num_heads: expected a positive int"):
        to_mha(mask, 0)
    with pytest.raises(ValueError, match="mask"):
        to_mha(mask[0], heads)


def test_to_mask_mod_returns_allowed_and_matches_the_dense_mask():
    from torch.nn.attention.flex_attention import create_mask

    mask = torch.rand(2, 4, 6, generator=torch.Generator().manual_seed(1)) > 0.5
    dense = create_mask(to_mask_mod(mask), 2, 1, 4, 6, device="cpu")
    assert torch.equal(dense[:, 0], ~mask)
    with pytest.raises(TypeError):
        to_mask_mod(mask.float())
