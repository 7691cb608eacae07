"""course_lib.lessons.lesson04 and course_lib.widgets.lesson04: the lesson's batch, masks, model,
call recorder and mask lab do what lesson 04 says they do."""

import itertools

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.patches import Rectangle
from torch import nn

from course_lib.data import Vocab
from course_lib.lessons.lesson04 import (
    BLOCKS,
    MASK_NAMES,
    SOURCES,
    TARGETS_IN,
    blocked_cells,
    example_batch,
    example_masks,
    example_model,
    record_attention_calls,
    wait_k_mask,
    window_mask,
)
from course_lib.masks import causal_mask
from course_lib.widgets.lesson04 import (
    SHOWN_ELEMENT,
    draw_mask_lab,
    lab_weights,
    mask_lab,
    plot_six_masks,
)

ALL_ON = dict.fromkeys(MASK_NAMES, True)


def test_example_batch_is_padded_on_both_sides_with_s_and_t_different():
    batch = example_batch()
    assert batch.src.shape == (2, 6) and batch.tgt.shape == (2, 5)
    for b in range(2):
        assert batch.src_tokens(b)[:len(SOURCES[b])] == list(SOURCES[b])
        assert batch.tgt_tokens(b)[:len(TARGETS_IN[b])] == list(TARGETS_IN[b])
    assert (batch.src == Vocab.PAD).sum(dim=1).tolist() == [0, 2]
    assert (batch.tgt == Vocab.PAD).sum(dim=1).tolist() == [0, 2]


@pytest.mark.parametrize(("size", "radius"), [(1, 0), (4, 0), (6, 2), (7, 1), (3, 5)])
def test_window_mask_blocks_exactly_the_keys_beyond_the_radius(size, radius):
    mask = window_mask(size, radius)
    assert mask.dtype == torch.bool and mask.shape == (size, size)
    for i, j in itertools.product(range(size), repeat=2):
        assert bool(mask[i, j]) == (abs(i - j) > radius), (i, j)


@pytest.mark.parametrize(("tgt_len", "src_len", "k"), [(5, 6, 2), (4, 7, 1), (6, 3, 2), (1, 1, 1)])
def test_wait_k_mask_lets_step_t_read_the_first_t_plus_k_source_tokens(tgt_len, src_len, k):
    mask = wait_k_mask(tgt_len, src_len, k)
    assert mask.dtype == torch.bool and mask.shape == (tgt_len, src_len)
    assert (~mask).sum(dim=1).tolist() == [min(t + k, src_len) for t in range(tgt_len)]
    for t, j in itertools.product(range(tgt_len), range(src_len)):
        assert bool(mask[t, j]) == (j >= t + k)


@pytest.mark.parametrize(("function", "arguments", "name"), [
    (window_mask, (0, 1), "size"), (window_mask, (3, -1), "radius"),
    (window_mask, (3.0, 1), "size"), (wait_k_mask, (5, 6, 0), "k"),
    (wait_k_mask, (True, 6, 2), "tgt_len"),
])
def test_mask_builders_reject_bad_sizes_by_name(function, arguments, name):
    with pytest.raises(ValueError, match=name):
        function(*arguments)


def test_example_masks_have_the_documented_shapes_and_no_row_without_a_key():
    batch = example_batch()
    masks = example_masks(batch)
    shapes = {"src_mask": (6, 6), "tgt_mask": (5, 5), "memory_mask": (5, 6),
              "src_key_padding_mask": (2, 6), "tgt_key_padding_mask": (2, 5),
              "memory_key_padding_mask": (2, 6)}
    assert list(masks) == list(MASK_NAMES)
    assert {name: tuple(mask.shape) for name, mask in masks.items()} == shapes
    assert all(mask.dtype == torch.bool for mask in masks.values())
    assert torch.equal(masks["memory_key_padding_mask"], batch.src == Vocab.PAD)
    assert torch.equal(masks["tgt_mask"], causal_mask(5))
    for block in BLOCKS:  # the lesson relies on every row keeping an allowed key
        assert not blocked_cells(masks, block, batch).all(dim=-1).any(), block


def test_blocked_cells_is_the_or_of_the_blocks_two_masks():
    batch = example_batch()
    masks = example_masks(batch)
    for block, (_, attn_name, padding_name) in BLOCKS.items():
        attn_mask, key_padding_mask = masks[attn_name], masks[padding_name]
        expected = attn_mask[None] | key_padding_mask[:, None, :]
        assert torch.equal(blocked_cells(masks, block, batch), expected)
        only_padding = blocked_cells({padding_name: key_padding_mask}, block, batch)
        assert torch.equal(only_padding, key_padding_mask[:, None, :].expand_as(expected))
        none = blocked_cells({}, block, batch)
        assert none.shape == expected.shape and not none.any()
    with pytest.raises(ValueError, match="block: expected one of"):
        blocked_cells(masks, "encoder", batch)


def test_example_model_is_built_once_seeded_and_leaves_the_callers_random_stream_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    model = example_model()
    assert torch.equal(torch.rand(3), expected_next)
    assert model is example_model()
    assert model.training and model.transformer.batch_first
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, nn.Dropout))
    torch.manual_seed(0)
    reference = type(model)(len(example_batch().vocab))
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters(),
                                 strict=True):
        assert torch.equal(p, q), name


def test_record_attention_calls_records_inputs_masks_and_outputs_without_changing_them():
    batch = example_batch()
    masks = example_masks(batch)
    model = example_model()
    with torch.no_grad():
        expected = model(batch.src, batch.tgt, **masks)
        with record_attention_calls(model.transformer) as calls:
            output = model(batch.src, batch.tgt, **masks)
    assert torch.equal(output, expected)
    assert [c.name for c in calls] == [
        "encoder.layers.0.self_attn", "encoder.layers.1.self_attn",
        "decoder.layers.0.self_attn", "decoder.layers.0.multihead_attn",
        "decoder.layers.1.self_attn", "decoder.layers.1.multihead_attn"]
    for call in calls:
        reads_target = call.name.startswith("decoder") and call.name.endswith("self_attn")
        assert call.query.shape == ((2, 6, 16) if call.name.startswith("encoder") else (2, 5, 16))
        assert call.key.shape == call.value.shape == ((2, 5, 16) if reads_target else (2, 6, 16))
        again, _ = model.transformer.get_submodule(call.name)(
            call.query, call.key, call.value, attn_mask=call.attn_mask,
            key_padding_mask=call.key_padding_mask, need_weights=False)
        assert torch.allclose(again, call.output, atol=1e-6), call.name
    cross = calls[3]
    assert torch.equal(cross.attn_mask, masks["memory_mask"])
    assert torch.equal(cross.key_padding_mask, masks["memory_key_padding_mask"])
    assert calls[2].is_causal and not cross.is_causal
    assert not any(m._forward_hooks for m in model.modules())


def test_record_attention_calls_rejects_modules_without_attention():
    with pytest.raises(ValueError, match="no nn.MultiheadAttention"), \
            record_attention_calls(nn.Linear(2, 2)):
        pass
    with pytest.raises(TypeError, match="module: expected an nn.Module"), \
            record_attention_calls("model"):
        pass


@pytest.mark.parametrize("switches", [ALL_ON, {}, {"src_mask": True, "memory_mask": True},
                                      {"tgt_key_padding_mask": True}])
def test_lab_weights_are_zero_exactly_on_the_blocked_cells(switches):
    batch = example_batch()
    masks = example_masks(batch)
    given = {name: masks[name] for name, on in switches.items() if on}
    weights = lab_weights(**switches)
    for block, block_weights in weights.items():
        blocked = blocked_cells(given, block, batch)[:, None].expand_as(block_weights)
        assert torch.all(block_weights[blocked] == 0), block
        assert torch.all(block_weights[~blocked] > 0), block
        assert torch.allclose(block_weights.sum(-1), torch.ones(()), atol=1e-5)


def test_lab_shows_the_leaks_the_lesson_talks_about():
    b = SHOWN_ELEMENT
    src_pad = example_batch().src[b] == Vocab.PAD
    default = mask_lab().default_state  # the four masks of a standard seq2seq model
    assert default == {**ALL_ON, "src_mask": False, "memory_mask": False}
    full = lab_weights(**default)
    no_memory_padding = lab_weights(**{**default, "memory_key_padding_mask": False})
    no_tgt_mask = lab_weights(**{**default, "tgt_mask": False})
    cross = "cross-attention"
    assert float(full[cross][b][..., src_pad].sum()) == 0.0
    assert float(no_memory_padding[cross][b][..., :3, :][..., src_pad].sum()) > 0.1
    future = causal_mask(5)
    assert float(full["decoder self-attention"][b][:, future].sum()) == 0.0
    assert float(no_tgt_mask["decoder self-attention"][b][:, :3][:, future[:3]].sum()) > 0.1
    with pytest.raises(ValueError, match="unknown mask names"):
        lab_weights(causal_mask=True)


def _hatched(ax) -> int:
    return sum(1 for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch())


def test_figures_hatch_one_cell_per_blocked_cell():
    batch = example_batch()
    masks = example_masks(batch)
    fig = plot_six_masks(batch, masks)
    for ax, (_, attn_name, _) in zip(fig.axes[:3], BLOCKS.values(), strict=True):
        assert _hatched(ax) == int(masks[attn_name].sum())
    for ax, (_, _, padding_name) in zip(fig.axes[3:6], BLOCKS.values(), strict=True):
        assert _hatched(ax) == int(masks[padding_name].sum())
    plt.close(fig)

    fig = draw_mask_lab(**ALL_ON)
    for ax, block in zip(fig.axes[:3], BLOCKS, strict=True):
        assert _hatched(ax) == int(blocked_cells(masks, block, batch)[SHOWN_ELEMENT].sum())
    assert "sequence 1" in fig._suptitle.get_text() and "mean over the 2 heads" in \
        fig._suptitle.get_text()
    plt.close(fig)
