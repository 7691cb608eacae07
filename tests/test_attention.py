"""course_lib.attention against PyTorch's own attention, on random padded/causal batches.

Reference facts checked on torch 2.13.0 (CPU) and asserted in test_pytorch_fully_masked_rows:
for a query whose keys are all blocked, F.scaled_dot_product_attention returns a zero output
and zero gradient; nn.MultiheadAttention returns NaN with need_weights=True and a zero
attention output (so out_proj.bias after the output projection) with need_weights=False.
"""

import math
import random
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import masked_softmax, scaled_dot_product_attention
from course_lib.masks import to_additive, to_sdpa

SEEDS = range(240)
ATOL = 1e-6


@dataclass
class Masks:
    """One random masking situation, in our convention, plus the ground truth."""

    attn_mask: torch.Tensor | None  # bool or additive float, [Lq, Lk] or [B|1, H|1, Lq, Lk]
    key_padding_mask: torch.Tensor | None  # bool [B, Lk], True at PAD
    blocked: torch.Tensor  # bool [B, H, Lq, Lk]: every key a query may not see
    kinds: tuple[str, str, str]  # (padding, structure, form)


def random_masks(rng: random.Random, g: torch.Generator, batch, heads, lq, lk, dtype) -> Masks:
    padding = rng.choice(["none", "right", "left"])
    structure = rng.choice(["none", "causal", "random2d", "random4d"])
    form = rng.choice(["bool", "additive", "additive+bias"])
    key_padding_mask = None
    blocked = torch.zeros(batch, heads, lq, lk, dtype=torch.bool)
    if padding != "none":
        # Length 0 = a sequence that is entirely padding: all its query rows are fully masked.
        lengths = torch.randint(0, lk + 1, (batch,), generator=g)
        positions = torch.arange(lk)
        if padding == "right":
            key_padding_mask = positions[None, :] >= lengths[:, None]
        else:
            key_padding_mask = positions[None, :] < (lk - lengths)[:, None]
        blocked = blocked | key_padding_mask[:, None, None, :]
    attn_mask = None
    if structure != "none":
        if structure == "causal":  # rectangular when Lq != Lk
            structural = torch.ones(lq, lk).triu(1).bool()
        elif structure == "random2d":
            structural = torch.rand(lq, lk, generator=g) < 0.35
        else:
            shape = (rng.choice([1, batch]), rng.choice([1, heads]), lq, lk)
            structural = torch.rand(shape, generator=g) < 0.35
        blocked = blocked | structural
        attn_mask = structural
        if form != "bool":
            attn_mask = to_additive(structural, dtype=dtype)
        if form == "additive+bias":  # a finite score bias (ALiBi-style) on top of the -inf
            attn_mask = attn_mask + torch.randn(structural.shape, generator=g, dtype=dtype)
    return Masks(attn_mask, key_padding_mask, blocked, (padding, structure, form))


def random_case(seed: int, dtype=torch.float32):
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    batch, heads = rng.randint(1, 4), rng.randint(1, 4)
    lq, lk, depth = rng.randint(1, 7), rng.randint(1, 7), rng.randint(1, 8)
    masks = random_masks(rng, g, batch, heads, lq, lk, dtype)
    return rng, g, (batch, heads, lq, lk, depth), masks


def sdpa_mask(masks: Masks):
    """The same masks in F.scaled_dot_product_attention's convention (bool True = ALLOWED)."""
    am, kpm = masks.attn_mask, masks.key_padding_mask
    if kpm is None:
        return None if am is None else to_sdpa(am)
    if am is None:
        return to_sdpa(kpm)[:, None, None, :]
    if am.dtype == torch.bool:
        return to_sdpa(am) & to_sdpa(kpm)[:, None, None, :]
    return to_sdpa(am) + to_additive(kpm, dtype=am.dtype)[:, None, None, :]


def qkv(g, batch, heads, lq, lk, depth, dv, dtype=torch.float32, requires_grad=False):
    shapes = ((batch, heads, lq, depth), (batch, heads, lk, depth), (batch, heads, lk, dv))
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_(requires_grad) for s in shapes]


def test_pytorch_fully_masked_rows():
    """What the references do with a query that sees no key (PYTORCH_MASK_FACTS item 2)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, 3, 4, requires_grad=True) for _ in range(3))
    allowed = torch.ones(3, 3, dtype=torch.bool)
    allowed[1] = False
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    out.sum().backward()
    assert torch.equal(out[0, 0, 1], torch.zeros(4))
    assert torch.equal(q.grad[0, 0, 1], torch.zeros(4)) and not q.grad.isnan().any()
    assert out[0, 0, [0, 2]].abs().sum() > 0

    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    nn.init.normal_(mha.out_proj.bias)
    x = torch.randn(2, 3, 4)
    key_padding_mask = torch.tensor([[False, False, True], [True, True, True]])
    out, weights = mha(x, x, x, key_padding_mask=key_padding_mask, average_attn_weights=False)
    assert out[1].isnan().all() and weights[1].isnan().all()
    assert not out[0].isnan().any() and not weights[0].isnan().any()
    out, weights = mha(x, x, x, key_padding_mask=key_padding_mask, need_weights=False)
    assert weights is None
    torch.testing.assert_close(out[1], mha.out_proj.bias.expand(3, 4), atol=0, rtol=0)


def test_random_cases_cover_every_situation():
    """The generator really produces what the random tests claim to cover."""
    seen = set()
    fully_masked = rectangular = left_all_pad = 0
    for seed in SEEDS:
        _, _, (_, _, lq, lk, _), masks = random_case(seed)
        seen.add(masks.kinds)
        fully_masked += bool(masks.blocked.all(-1).any())
        rectangular += lq != lk and masks.kinds[1] == "causal"
        kpm = masks.key_padding_mask
        left_all_pad += masks.kinds[0] == "left" and bool(kpm.all(-1).any())
    assert len(seen) == 3 * 4 * 3, sorted(seen)
    assert fully_masked >= 40 and rectangular >= 10 and left_all_pad >= 5


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_torch_sdpa(seed):
    rng, g, (batch, heads, lq, lk, depth), masks = random_case(seed)
    q, k, v = qkv(g, batch, heads, lq, lk, depth, rng.randint(1, 8))
    out, weights = scaled_dot_product_attention(
        q, k, v, attn_mask=masks.attn_mask, key_padding_mask=masks.key_padding_mask
    )
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask(masks))
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)
    assert torch.equal(weights[masks.blocked], torch.zeros_like(weights[masks.blocked]))
    row_sums = weights.sum(-1)
    torch.testing.assert_close(row_sums, (~masks.blocked.all(-1)).float(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_multihead_attention(seed):
    rng, g, (batch, heads, lq, lk, depth), masks = random_case(seed)
    embed = heads * depth
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(embed, heads, batch_first=True)  # training mode, dropout 0
    with torch.no_grad():  # non-zero biases, so "zero attention output" is visible as out_proj.bias
        nn.init.normal_(mha.in_proj_bias)
        nn.init.normal_(mha.out_proj.bias)
    x_q = torch.randn(batch, lq, embed, generator=g)
    x_kv = torch.randn(batch, lk, embed, generator=g)

    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)

    def split_heads(x, weight, bias):
        return F.linear(x, weight, bias).view(batch, -1, heads, depth).transpose(1, 2)

    with torch.no_grad():
        out, weights = scaled_dot_product_attention(
            split_heads(x_q, w_q, b_q), split_heads(x_kv, w_k, b_k),
            split_heads(x_kv, w_v, b_v),
            attn_mask=masks.attn_mask, key_padding_mask=masks.key_padding_mask,
        )
        ours = mha.out_proj(out.transpose(1, 2).reshape(batch, lq, embed))

    # nn.MultiheadAttention wants [B*H, Lq, Lk] and both masks of the same type.
    attn_mask, key_padding_mask = masks.attn_mask, masks.key_padding_mask
    if attn_mask is not None and attn_mask.dim() == 4:
        attn_mask = attn_mask.expand(batch, heads, lq, lk).reshape(batch * heads, lq, lk)
    if key_padding_mask is not None and attn_mask is not None and attn_mask.is_floating_point():
        key_padding_mask = to_additive(key_padding_mask)
    kwargs = {"attn_mask": attn_mask, "key_padding_mask": key_padding_mask}

    with torch.no_grad():
        mha_out, mha_weights = mha(x_q, x_kv, x_kv, need_weights=True,
                                   average_attn_weights=False, **kwargs)
        mha_out_no_weights, none = mha(x_q, x_kv, x_kv, need_weights=False, **kwargs)
    assert none is None
    empty_rows = masks.blocked.all(-1)  # [B, H, Lq]
    live = ~empty_rows
    torch.testing.assert_close(weights[live], mha_weights[live], atol=ATOL, rtol=0)
    live_tokens = live.all(1)  # [B, Lq]: no head of this query is fully masked
    torch.testing.assert_close(ours[live_tokens], mha_out[live_tokens], atol=ATOL, rtol=0)
    # need_weights=False gives every row, fully masked ones included, without NaN.
    torch.testing.assert_close(ours, mha_out_no_weights, atol=ATOL, rtol=0)
    dead_tokens = empty_rows.all(1)
    bias = mha.out_proj.bias.detach().expand(int(dead_tokens.sum()), embed)
    torch.testing.assert_close(ours[dead_tokens], bias, atol=ATOL, rtol=0)


@pytest.mark.parametrize("seed", SEEDS[::2])
def test_gradients_match_sdpa_without_nan(seed):
    rng, g, (batch, heads, lq, lk, depth), masks = random_case(seed)
    dv = rng.randint(1, 8)
    ours = qkv(g, batch, heads, lq, lk, depth, dv, requires_grad=True)
    theirs = [t.detach().clone().requires_grad_() for t in ours]
    upstream = torch.randn(batch, heads, lq, dv, generator=g)
    out, _ = scaled_dot_product_attention(
        *ours, attn_mask=masks.attn_mask, key_padding_mask=masks.key_padding_mask
    )
    (out * upstream).sum().backward()
    expected = F.scaled_dot_product_attention(*theirs, attn_mask=sdpa_mask(masks))
    (expected * upstream).sum().backward()
    for name, mine, ref in zip("qkv", ours, theirs, strict=True):
        assert not mine.grad.isnan().any(), name
        torch.testing.assert_close(mine.grad, ref.grad, atol=1e-5, rtol=0, msg=name)


def test_left_padding_plus_causal_gives_zero_rows_and_zero_grads():
    """Left padding + causal: the first queries of a short sequence see only PAD keys."""
    q, k, v = (torch.randn(2, 2, 4, 3, requires_grad=True) for _ in range(3))
    key_padding_mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    causal = torch.ones(4, 4).triu(1).bool()
    out, weights = scaled_dot_product_attention(q, k, v, attn_mask=causal,
                                                key_padding_mask=key_padding_mask)
    out.sum().backward()
    assert torch.equal(out[0, :, :2], torch.zeros(2, 2, 3))
    assert torch.equal(weights[0, :, :2], torch.zeros(2, 2, 4))
    assert torch.equal(q.grad[0, :, :2], torch.zeros(2, 2, 3))
    assert out[0, :, 2:].abs().sum() > 0 and out[1].abs().sum() > 0
    for t in (q, k, v):
        assert not t.grad.isnan().any()


def test_all_zero_additive_mask_is_accepted():
    """to_additive of a mask that blocks nothing is all 0.0: valid, it must not be rejected."""
    q, k, v = (torch.randn(1, 1, 1, 2) for _ in range(3))
    for mask in (to_additive(torch.zeros(1, 1, dtype=torch.bool)),
                 nn.Transformer.generate_square_subsequent_mask(1)):
        out, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask)
        torch.testing.assert_close(out, v, atol=0, rtol=0)
        assert torch.equal(weights, torch.ones(1, 1, 1, 1))


# --- masked_softmax ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_masked_softmax_is_softmax_over_the_allowed_keys(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 4, 6, generator=g) < 0.4
    mask[0, 0] = True  # a fully blocked row
    scores[1, 1, :3] = -math.inf  # -inf scores count as blocked
    scores[2, 2] = -math.inf  # a row blocked by its scores alone
    weights = masked_softmax(scores, mask)
    blocked = mask | scores.isneginf()
    assert torch.equal(weights[blocked], torch.zeros(int(blocked.sum()), dtype=torch.float64))
    empty = blocked.all(-1)
    assert empty[0, 0] and empty[2, 2]
    torch.testing.assert_close(weights.sum(-1), (~empty).double(), atol=1e-12, rtol=0)
    for idx in torch.nonzero(~empty).tolist():
        row, allowed = weights[tuple(idx)], ~blocked[tuple(idx)]
        expected = torch.softmax(scores[tuple(idx)][allowed], dim=0)
        torch.testing.assert_close(row[allowed], expected, atol=1e-12, rtol=0)


def test_masked_softmax_broadcasts_mask_and_takes_dim():
    scores = torch.randn(2, 3, 5)
    mask = torch.tensor([False, True, False, False, True])
    weights = masked_softmax(scores, mask)
    torch.testing.assert_close(weights[..., [0, 2, 3]],
                               torch.softmax(scores[..., [0, 2, 3]], dim=-1))
    column_mask = torch.tensor([[True], [False], [True]])  # blocks rows 0 and 2 over dim=1
    weights = masked_softmax(scores, column_mask, dim=1)
    assert torch.equal(weights[:, [0, 2]], torch.zeros(2, 2, 5))
    assert torch.equal(weights[:, 1], torch.ones(2, 5))
    assert not masked_softmax(torch.full((2, 3), -math.inf), None).isnan().any()


@pytest.mark.parametrize(
    ("scores", "mask", "error", "match"),
    [
        ([1.0, 2.0], None, TypeError, r"scores: expected a torch\.Tensor"),
        (torch.ones(2, 3, dtype=torch.long), None, TypeError, r"scores: expected a floating"),
        (torch.ones(2, 3), torch.ones(2, 3, dtype=torch.long), TypeError,
         r"mask: got an integer mask"),
        (torch.ones(2, 3), torch.ones(2, 3), TypeError, r"mask: got a float 0/1 mask.*ADDED"),
        (torch.ones(2, 3), torch.zeros(3, 2, dtype=torch.bool), ValueError,
         r"mask: shape \[3, 2\] does not broadcast to the scores' shape \[2, 3\]"),
        (torch.ones(2, 3), torch.zeros(4, 2, 3, dtype=torch.bool), ValueError,
         r"mask: shape \[4, 2, 3\] does not broadcast"),
        (torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.bool, device="meta"), ValueError,
         r"mask: is on meta but scores is on cpu"),
    ],
)
def test_masked_softmax_rejects_bad_input(scores, mask, error, match):
    with pytest.raises(error, match=match):
        masked_softmax(scores, mask)


# --- scaled_dot_product_attention: bad input ---------------------------------------------

B, H, LQ, LK, D = 2, 3, 4, 5, 6


def good_qkv():
    return torch.randn(B, H, LQ, D), torch.randn(B, H, LK, D), torch.randn(B, H, LK, 7)


BAD_MASKS = [
    ({"attn_mask": torch.ones(LQ, LK, dtype=torch.int64)}, TypeError,
     r"attn_mask: got an integer mask.*from_hf"),
    ({"attn_mask": torch.ones(LQ, LK).triu(1)}, TypeError,
     r"attn_mask: got a float 0/1 mask.*Float masks are ADDED to the scores"),
    ({"key_padding_mask": torch.zeros(B, LK, dtype=torch.int32)}, TypeError,
     r"key_padding_mask: got an integer mask"),
    ({"key_padding_mask": torch.eye(B, LK)}, TypeError,
     r"key_padding_mask: got a float 0/1 mask.*ADDED"),
    ({"key_padding_mask": to_additive(torch.eye(B, LK, dtype=torch.bool))}, TypeError,
     r"key_padding_mask: expected a bool mask.*additive float mask is not accepted"),
    ({"attn_mask": torch.zeros(LQ + 1, LK, dtype=torch.bool)}, ValueError,
     r"attn_mask: expected shape \[Lq, Lk\] = \[4, 5\], got \[5, 5\]"),
    ({"attn_mask": torch.zeros(B, LK, dtype=torch.bool)}, ValueError,
     r"attn_mask: .*got \[2, 5\].*padding mask: pass it as key_padding_mask"),
    ({"attn_mask": torch.zeros(B, LQ, LK, dtype=torch.bool)}, ValueError,
     r"attn_mask: a 3-D mask \[2, 4, 5\] is ambiguous"),
    ({"attn_mask": torch.zeros(B, H, LK, LQ, dtype=torch.bool)}, ValueError,
     r"attn_mask: expected shape \[B, H, Lq, Lk\] = \[2, 3, 4, 5\]"),
    ({"attn_mask": torch.zeros(B, 2, LQ, LK, dtype=torch.bool)}, ValueError,
     r"attn_mask: expected shape \[B, H, Lq, Lk\]"),
    ({"attn_mask": torch.zeros(1, 1, 1, LQ, LK, dtype=torch.bool)}, ValueError,
     r"attn_mask: expected a 2-D or 3-D or 4-D tensor"),
    ({"key_padding_mask": torch.zeros(LK, B, dtype=torch.bool)}, ValueError,
     r"key_padding_mask: expected shape \[B, Lk\] = \[2, 5\], got \[5, 2\]\. It looks transposed"),
    ({"key_padding_mask": torch.zeros(B, LK + 1, dtype=torch.bool)}, ValueError,
     r"key_padding_mask: expected shape \[B, Lk\] = \[2, 5\], got \[2, 6\]\.$"),
    ({"key_padding_mask": torch.zeros(B, 1, LK, dtype=torch.bool)}, ValueError,
     r"key_padding_mask: expected a 2-D tensor"),
    ({"attn_mask": torch.zeros(LQ, LK, dtype=torch.bool, device="meta")}, ValueError,
     r"attn_mask: is on meta but q is on cpu; move it with attn_mask\.to\(q\.device\)"),
    ({"key_padding_mask": torch.zeros(B, LK, dtype=torch.bool, device="meta")}, ValueError,
     r"key_padding_mask: is on meta but q is on cpu"),
    ({"attn_mask": [[True] * LK] * LQ}, TypeError,
     r"attn_mask: expected a torch\.Tensor, got list"),
    ({"key_padding_mask": None, "attn_mask": 0}, TypeError, r"attn_mask: expected a torch\.Tensor"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_MASKS)
def test_bad_masks_raise_naming_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        scaled_dot_product_attention(*good_qkv(), **kwargs)


def _replace(index, value):
    tensors = list(good_qkv())
    tensors[index] = value
    return tensors


BAD_QKV = [
    (lambda: _replace(0, torch.randn(H, LQ, D)), ValueError, r"q: expected a 4-D tensor"),
    (lambda: _replace(1, torch.randn(B, H, LK, D, 1)), ValueError, r"k: expected a 4-D tensor"),
    (lambda: _replace(2, torch.randn(LK, 7)), ValueError, r"v: expected a 4-D tensor"),
    (lambda: _replace(0, torch.ones(B, H, LQ, D, dtype=torch.long)), TypeError,
     r"q: expected a floating tensor"),
    (lambda: _replace(1, torch.randn(B, H, LK, D + 1)), ValueError,
     r"k: expected head size D = 6 like q"),
    (lambda: _replace(2, torch.randn(B, H, LK + 1, 7)), ValueError,
     r"v: expected Lk = 5 rows like k"),
    (lambda: _replace(1, torch.randn(B + 1, H, LK, D)), ValueError,
     r"q, k, v: expected the same \[B, H\] leading dims"),
    (lambda: _replace(2, torch.randn(B, H + 1, LK, 7)), ValueError,
     r"q, k, v: expected the same \[B, H\]"),
    (lambda: _replace(1, torch.randn(B, H, LK, D, device="meta")), ValueError,
     r"k: is on meta but q is on cpu"),
    (lambda: _replace(0, torch.randn(B, H, LQ, D).tolist()), TypeError,
     r"q: expected a torch\.Tensor, got list"),
    (lambda: _replace(2, None), TypeError, r"v: expected a torch\.Tensor, got NoneType"),
]


@pytest.mark.parametrize(("make", "error", "match"), BAD_QKV)
def test_bad_qkv_raise_naming_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        scaled_dot_product_attention(*make())


def test_padding_mask_as_attn_mask_is_only_caught_when_shapes_differ():
    """With B == Lq a [B, Lk] padding mask is a valid [Lq, Lk] shape: no hint is possible."""
    q, k, v = torch.randn(LQ, H, LQ, D), torch.randn(LQ, H, LK, D), torch.randn(LQ, H, LK, D)
    padding = torch.zeros(LQ, LK, dtype=torch.bool)
    padding[:, -1] = True
    out, weights = scaled_dot_product_attention(q, k, v, attn_mask=padding)
    assert out.shape == (LQ, H, LQ, D) and torch.equal(weights[..., -1], torch.zeros(LQ, H, LQ))
