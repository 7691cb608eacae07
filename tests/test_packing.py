"""course_lib.packing: first-fit decreasing packing, the document mask (dense and as a
FlexAttention mask_mod / BlockMask), boundary-aware labels, and packed == alone."""

import warnings

import pytest
import torch

from course_lib.causal_lm import IGNORE_INDEX, CausalLM
from course_lib.masks import causal_mask
from course_lib.packing import (
    Packed,
    document_block_mask,
    document_mask,
    document_mask_mod,
    pack,
    packed_labels,
)

VOCAB = 20


def random_sequences(seed, count=9, longest=8):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, longest + 1, (count,), generator=generator).tolist()
    return [torch.randint(1, VOCAB, (n,), generator=generator) for n in lengths]


@pytest.mark.parametrize("seed", range(5))
def test_every_sequence_is_placed_whole_with_restarted_positions(seed):
    sequences = random_sequences(seed)
    packed = pack(sequences, 10)
    assert isinstance(packed, Packed) and packed.ids.shape[1] == 10
    assert packed.lengths == [len(s) for s in sequences]
    for index, ((row, start), sequence) in enumerate(zip(packed.placements, sequences,
                                                         strict=True)):
        span = slice(start, start + len(sequence))
        assert torch.equal(packed.ids[row, span], sequence)
        assert torch.all(packed.document_ids[row, span] == index)
        assert torch.equal(packed.position_ids[row, span], torch.arange(len(sequence)))
    assert torch.equal(packed.key_padding_mask, packed.document_ids == -1)
    assert torch.all(packed.ids[packed.key_padding_mask] == 0)
    assert packed.ids.numel() - int(packed.key_padding_mask.sum()) == sum(map(len, sequences))
    # first-fit decreasing never opens a row while an earlier one had room for the sequence
    assert len(packed.ids) <= len(sequences)
    unpacked = packed.unpack(packed.ids)
    assert all(torch.equal(a, b) for a, b in zip(unpacked, sequences, strict=True))


def test_first_fit_decreasing_fills_rows():
    lengths = [6, 4, 5, 5, 3, 7]
    packed = pack([torch.ones(n, dtype=torch.long) for n in lengths], 10)
    assert len(packed.ids) == 3  # 7+3, 6+4, 5+5: optimal here
    assert not packed.key_padding_mask.any()


def test_pack_refuses_bad_input():
    with pytest.raises(ValueError, match=r"sequences\[1\]: has 6 tokens"):
        pack([torch.ones(3, dtype=torch.long), torch.ones(6, dtype=torch.long)], 5)
    with pytest.raises(ValueError, match=r"sequences\[0\]: has 0 tokens"):
        pack([torch.ones(0, dtype=torch.long)], 5)
    with pytest.raises(ValueError, match="sequences: expected a non-empty list"):
        pack([], 5)
    with pytest.raises(ValueError, match="sequences: expected a non-empty list"):
        pack(torch.ones(2, 3, dtype=torch.long), 5)
    with pytest.raises(ValueError, match=r"sequences\[0\]: expected a 1-D"):
        pack([torch.ones(2, 3, dtype=torch.long)], 5)
    with pytest.raises(TypeError, match=r"sequences\[0\]: expected integer token ids"):
        pack([torch.ones(3)], 5)
    with pytest.raises(ValueError, match="row_len"):
        pack([torch.ones(3, dtype=torch.long)], 0)


def test_document_mask_blocks_other_documents_and_pad():
    documents = torch.tensor([[0, 0, 1, 1, 1, -1], [2, 2, 2, 2, 2, 2]])
    blocked = document_mask(documents)
    assert blocked.shape == (2, 6, 6) and blocked.dtype == torch.bool
    assert not blocked[0, :2, :2].any() and blocked[0, :2, 2:].all()
    assert not blocked[0, 2:5, 2:5].any() and blocked[0, :, 5].all()
    assert not blocked[1].any()
    causal = document_mask(documents, causal=True)
    assert torch.equal(causal, blocked | causal_mask(6))
    with pytest.raises(ValueError, match="document_ids: expected document indices"):
        document_mask(torch.tensor([[0, -2]]))
    with pytest.raises(TypeError, match="document_ids"):
        document_mask(documents.float())


@pytest.mark.parametrize("causal", [True, False])
def test_mask_mod_and_block_mask_are_the_dense_mask(causal):
    from torch.nn.attention.flex_attention import create_mask, flex_attention

    packed = pack(random_sequences(3), 16)
    documents = packed.document_ids
    rows, length = documents.shape
    dense = create_mask(document_mask_mod(documents, causal=causal), rows, None, length, length,
                        device="cpu")
    assert torch.equal(dense[:, 0], ~document_mask(documents, causal=causal))
    block_mask = document_block_mask(documents, causal=causal)
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(rows, 2, length, 8, generator=generator) for _ in range(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # eager flex_attention warns on the CPU
        flexed = flex_attention(q, k, v, block_mask=block_mask)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=~document_mask(documents, causal=causal)[:, None])
    real = ~packed.key_padding_mask
    assert torch.allclose(flexed.transpose(1, 2)[real], expected.transpose(1, 2)[real],
                          atol=1e-5)


def test_labels_never_cross_a_document_boundary():
    packed = pack(random_sequences(4), 12)
    labels = packed_labels(packed)
    starts = packed.position_ids == 0
    assert torch.all(labels[packed.key_padding_mask | starts] == IGNORE_INDEX)
    trained = labels != IGNORE_INDEX
    assert torch.equal(labels[trained], packed.ids[trained])
    # position t predicts labels[t + 1]: never a token of another document
    predicts = trained[:, 1:]
    assert torch.all(packed.document_ids[:, 1:][predicts] == packed.document_ids[:, :-1][predicts])
    with pytest.raises(TypeError, match="packed: expected a Packed"):
        packed_labels(packed.ids)


def test_packed_causal_lm_equals_each_sequence_alone_only_with_mask_and_positions():
    torch.manual_seed(0)
    model = CausalLM(VOCAB, d_model=32, nhead=4, num_layers=2, dim_feedforward=64,
                     max_len=16).eval()
    sequences = random_sequences(5)
    packed = pack(sequences, 16)
    mask = document_mask(packed.document_ids, causal=True)
    with torch.no_grad():
        right = model(packed.ids, key_padding_mask=packed.key_padding_mask,
                      position_ids=packed.position_ids, attn_mask=mask)
        no_mask = model(packed.ids, key_padding_mask=packed.key_padding_mask,
                        position_ids=packed.position_ids)  # causal across documents
        no_positions = model(packed.ids, key_padding_mask=packed.key_padding_mask,
                             attn_mask=mask)
        alone = [model(s[None])[0] for s in sequences]
    for outputs, equal in ((right, True), (no_mask, False), (no_positions, False)):
        same = [torch.allclose(a, b, atol=1e-5)
                for a, b in zip(packed.unpack(outputs), alone, strict=True)]
        assert all(same) if equal else not all(same)
    with pytest.raises(ValueError, match="attn_mask: expected"):
        model(packed.ids, attn_mask=mask[:, :-1])
