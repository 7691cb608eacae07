"""course_lib.causal_lm: the decoder-only mask, position ids from padding, the KV cache, and
batched generation that equals each prompt alone."""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

from course_lib.causal_lm import (
    IGNORE_INDEX,
    CausalLM,
    KVCache,
    causal_mask_lower_right,
    check_left_padded,
    decoder_mask,
    generate,
    last_real_index,
    lm_loss,
    position_ids_from_padding,
)
from course_lib.masks import causal_mask

PAD, VOCAB = 0, 24


def small_model(seed=0, **overrides):
    torch.manual_seed(seed)
    config = {"d_model": 32, "nhead": 4, "num_layers": 2, "dim_feedforward": 64, "max_len": 40}
    return CausalLM(VOCAB, **{**config, **overrides}).eval()


def random_prompts(seed, count=6, longest=9):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, longest + 1, (count,), generator=generator).tolist()
    return [torch.randint(1, VOCAB, (n,), generator=generator) for n in lengths]


def pad_batch(prompts, side):
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD)
    padding = torch.ones(len(prompts), width, dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        where = slice(width - len(prompt), width) if side == "left" else slice(0, len(prompt))
        ids[row, where], padding[row, where] = prompt, False
    return ids, padding


@pytest.mark.parametrize(("queries", "keys"), [(1, 1), (1, 6), (3, 7), (5, 5)])
def test_lower_right_causal_mask_is_torchs_and_the_square_one_when_equal(queries, keys):
    ours = causal_mask_lower_right(queries, keys)
    assert torch.equal(ours, ~causal_lower_right(queries, keys)._materialize())
    assert ours[-1].sum() == 0  # the newest query sees every key
    if queries == keys:
        assert torch.equal(ours, causal_mask(keys))


def test_lower_right_refuses_more_queries_than_keys():
    with pytest.raises(ValueError, match="num_queries"):
        causal_mask_lower_right(4, 3)


def test_decoder_mask_is_causal_or_pad():
    padding = torch.tensor([[True, False, False, False], [False, False, False, True]])
    blocked = decoder_mask(padding, num_queries=2)
    assert blocked.shape == (2, 1, 2, 4)
    expected = causal_mask_lower_right(2, 4)[None] | padding[:, None, :]
    assert torch.equal(blocked[:, 0], expected)
    assert torch.equal(decoder_mask(padding)[:, 0], causal_mask(4)[None] | padding[:, None, :])


@pytest.mark.parametrize("seed", range(5))
def test_position_ids_count_each_rows_real_tokens(seed):
    generator = torch.Generator().manual_seed(seed)
    padding = torch.rand(7, 11, generator=generator) < 0.4  # any layout, gaps included
    positions = position_ids_from_padding(padding)
    attention_mask = (~padding).long()  # Hugging Face's formula
    assert torch.equal(positions[~padding], (attention_mask.cumsum(-1) - 1)[~padding])
    assert torch.all(positions[padding] == 0)
    for row in range(7):
        real = positions[row][~padding[row]]
        assert torch.equal(real, torch.arange(len(real)))


def test_last_real_index_for_both_sides():
    prompts = random_prompts(3)
    for side in ("left", "right"):
        ids, padding = pad_batch(prompts, side)
        index = last_real_index(padding)
        assert torch.equal(ids[torch.arange(len(prompts)), index],
                           torch.stack([p[-1] for p in prompts]))
    with pytest.raises(ValueError, match="all PAD"):
        last_real_index(torch.ones(2, 3, dtype=torch.bool))


def test_lm_loss_shifts_ignores_and_survives_all_ignored():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, VOCAB, requires_grad=True)
    labels = torch.randint(1, VOCAB, (3, 6))
    labels[0, :3] = IGNORE_INDEX
    labels[2, 4:] = IGNORE_INDEX
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
    assert torch.allclose(lm_loss(logits, labels), expected)
    nothing = lm_loss(logits, torch.full_like(labels, IGNORE_INDEX))
    nothing.backward()
    assert nothing.item() == 0 and torch.all(logits.grad == 0)
    with pytest.raises(ValueError, match="labels: expected shape"):
        lm_loss(logits, labels[:, :-1])


def test_left_padded_forward_equals_alone_only_with_positions_from_the_mask():
    model = small_model()
    prompts = random_prompts(1)
    ids, padding = pad_batch(prompts, "left")
    with torch.no_grad():
        positions = position_ids_from_padding(padding)
        right = model(ids, key_padding_mask=padding, position_ids=positions)
        naive = model(ids, key_padding_mask=padding)  # positions 0..L-1: shifted
        shifted = 0
        for row, prompt in enumerate(prompts):
            alone = model(prompt[None])[0]
            assert torch.allclose(right[row, -len(prompt):], alone, atol=1e-5)
            shifted += not torch.allclose(naive[row, -len(prompt):], alone, atol=1e-5)
    assert shifted == sum(len(p) < ids.shape[1] for p in prompts) > 0


def test_cached_forward_equals_the_full_forward():
    model = small_model()
    ids, padding = pad_batch(random_prompts(2), "left")
    positions = position_ids_from_padding(padding)
    with torch.no_grad():
        full = model(ids, key_padding_mask=padding, position_ids=positions)
        cache = KVCache()
        pieces = [model(ids[:, a:b], key_padding_mask=padding[:, a:b],
                        position_ids=positions[:, a:b], cache=cache)
                  for a, b in ((0, 4), (4, 5), (5, ids.shape[1]))]
    assert cache.length == ids.shape[1] and torch.equal(cache.key_padding_mask, padding)
    real = ~padding
    assert torch.allclose(torch.cat(pieces, dim=1)[real], full[real], atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("use_cache", [True, False])
def test_batched_generation_equals_each_prompt_alone(seed, use_cache):
    model = small_model(seed)
    prompts = random_prompts(seed + 10)
    ids, padding = pad_batch(prompts, "left")
    batched = generate(model, ids, padding, max_new_tokens=12, use_cache=use_cache)
    alone = torch.cat([generate(model, p[None], torch.zeros(1, len(p), dtype=torch.bool),
                                max_new_tokens=12, use_cache=not use_cache) for p in prompts])
    assert batched.shape == (len(prompts), 12)
    assert torch.equal(batched, alone)


def test_finished_rows_emit_pad():
    model = small_model(1)
    ids, padding = pad_batch(random_prompts(4), "left")
    free = generate(model, ids, padding, max_new_tokens=10)
    eos = int(free[0, 3])
    stopped = generate(model, ids, padding, max_new_tokens=10, eos_id=eos)
    for row in range(ids.shape[0]):
        hits = (free[row] == eos).nonzero()
        end = int(hits[0]) + 1 if len(hits) else 10
        assert torch.equal(stopped[row, :end], free[row, :end])
        assert torch.all(stopped[row, end:] == PAD)


def test_generation_refuses_right_padding_and_bad_input():
    model = small_model()
    ids, padding = pad_batch(random_prompts(5), "right")
    with pytest.raises(ValueError, match=r"key_padding_mask: row \d+ has a PAD after a real "
                                         r"token.*LEFT padding"):
        generate(model, ids, padding, max_new_tokens=3)
    ids, padding = pad_batch(random_prompts(5), "left")
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, ids, padding, max_new_tokens=0)
    with pytest.raises(ValueError, match="max_new_tokens: the longest prompt"):
        generate(model, ids, padding, max_new_tokens=40)
    with pytest.raises(TypeError, match="key_padding_mask: got an integer mask"):
        generate(model, ids, (~padding).long(), max_new_tokens=3)
    with pytest.raises(ValueError, match="eos_id"):
        generate(model, ids, padding, max_new_tokens=3, eos_id=VOCAB)
    with pytest.raises(ValueError, match="all PAD"):
        check_left_padded(torch.ones(1, 3, dtype=torch.bool))


def test_model_validates_its_arguments():
    with pytest.raises(ValueError, match="nhead"):
        CausalLM(VOCAB, d_model=30, nhead=4, num_layers=1, dim_feedforward=8, max_len=8)
    with pytest.raises(ValueError, match="pad_id"):
        CausalLM(VOCAB, d_model=32, nhead=4, num_layers=1, dim_feedforward=8, max_len=8,
                 pad_id=VOCAB)
    model = small_model(max_len=8)
    ids = torch.randint(1, VOCAB, (2, 5))
    with pytest.raises(ValueError, match="position_ids: expected values in 0..7"):
        model(ids, position_ids=torch.arange(5, 10).expand(2, -1))
    with pytest.raises(ValueError, match="key_padding_mask: expected shape"):
        model(ids, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="ids: expected ids in"):
        model(torch.full((1, 3), VOCAB))
    assert torch.all(model.token_embedding.weight[PAD] == 0)
