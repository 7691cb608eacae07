"""course_lib.lessons.lesson10 and course_lib.widgets.lesson10: packing against brute force,
packed == alone for the encoder, the three layouts, the six spellings of one mask (on random
cases, fully masked rows included) and the explorer's measured leak."""

import warnings

import pytest
import torch

from course_lib.lessons.lesson10 import (
    LAYOUTS,
    SPELLINGS,
    PackedEncoder,
    alone,
    attend,
    attention_scores,
    corpus,
    differs,
    layouts,
    let_pad_see_itself,
    pad_share,
    tokens_per_second,
)
from course_lib.packing import document_mask, pack
from course_lib.widgets.lesson10 import packing_state


def random_sequences(seed, count=14, longest=10):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, longest + 1, (count,), generator=generator).tolist()
    return [torch.randint(4, 100, (n,), generator=generator) for n in lengths]


@pytest.mark.parametrize("seed", range(4))
def test_pack_puts_pad_only_at_row_ends_and_every_token_in_a_row_of_its_own_document(seed):
    sequences = random_sequences(seed)
    packed = pack(sequences, 12)
    padding = packed.key_padding_mask
    # once a row is PAD, it stays PAD to its end
    assert torch.equal(padding, padding.int().cummax(dim=1).values.bool())
    tokens = sorted((int(d), int(p)) for d, p in zip(packed.document_ids[~padding],
                                                      packed.position_ids[~padding], strict=True))
    assert tokens == sorted((i, p) for i, s in enumerate(sequences) for p in range(len(s)))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("causal", [False, True])
def test_document_mask_equals_its_brute_force_definition(seed, causal):
    packed = pack(random_sequences(seed), 12)
    ids = packed.document_ids.tolist()
    expected = torch.tensor([[[not (row[k] >= 0 and row[q] == row[k] and (not causal or k <= q))
                               for k in range(len(row))] for q in range(len(row))] for row in ids])
    assert torch.equal(document_mask(packed.document_ids, causal=causal), expected)


def test_packed_encoder_equals_each_sequence_alone_and_its_fast_path_nan_is_fixed():
    torch.manual_seed(0)
    sequences = random_sequences(1)
    packed = pack(sequences, 12)
    assert packed.key_padding_mask.any(), "the case needs a row with PAD"
    encoder = PackedEncoder(max_len=12).eval()
    reference = alone(encoder, sequences)
    blocked = document_mask(packed.document_ids)
    with torch.no_grad():
        broken = encoder(packed.ids, position_ids=packed.position_ids, mask=blocked)
        right = encoder(packed.ids, position_ids=packed.position_ids,
                        mask=let_pad_see_itself(blocked))
        no_restart = encoder(packed.ids, mask=let_pad_see_itself(blocked))
    padded_rows = packed.key_padding_mask.any(dim=1)
    assert broken[padded_rows].isnan().all() and not broken[~padded_rows].isnan().any()
    assert not differs(packed.unpack(right), reference, atol=1e-5).any()
    not_first = torch.tensor([start > 0 for _, start in packed.placements])
    assert torch.equal(differs(packed.unpack(no_restart), reference), not_first)


def test_let_pad_see_itself_frees_only_fully_blocked_rows():
    mask = torch.tensor([[[False, True, True], [True, True, True], [True, False, True]]])
    fixed = let_pad_see_itself(mask)
    assert torch.equal(fixed, torch.tensor([[[False, True, True], [True, False, True],
                                             [True, False, True]]]))


def test_layouts_train_the_same_targets_and_rank_as_expected():
    sentences = corpus(300)
    batches = layouts(sentences, batch_size=16, row_len=64)
    assert set(batches) == set(LAYOUTS)
    targets = sum(len(s) - 1 for s in sentences)
    for layout in LAYOUTS:
        labels = torch.cat([rows.labels[:, 1:].flatten() for rows in batches[layout]])
        assert int((labels != -100).sum()) == targets, layout
        real = sum(int((~rows.key_padding_mask).sum()) for rows in batches[layout])
        assert real == sum(map(len, sentences)), layout
    assert pad_share(batches["packed"]) < pad_share(batches["bucketed"]) < \
        pad_share(batches["random"])
    scores = {layout: attention_scores(batches[layout]) for layout in LAYOUTS}
    needed = sum(n * (n + 1) // 2 for n in map(len, sentences))  # causal pairs per sentence
    assert all(s["needed"] == needed for s in scores.values())
    assert all(s["computed"] >= s["needed"] for s in scores.values())


def test_tokens_per_second_counts_real_tokens_of_every_layout():
    batches = layouts(corpus(64), batch_size=16)
    speed = tokens_per_second(batches, repeats=1)
    assert set(speed) == set(LAYOUTS) and all(v > 0 for v in speed.values())


def spelling_case(seed):
    generator = torch.Generator().manual_seed(seed)
    packed = pack(random_sequences(seed, count=9, longest=7), 10)
    x = torch.randn(*packed.ids.shape, 8, generator=generator)
    return packed, x


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("causal", [False, True])
def test_the_six_spellings_agree_on_real_tokens_and_as_documented_on_empty_rows(seed, causal):
    packed, x = spelling_case(seed)
    empty = document_mask(packed.document_ids, causal=causal).all(dim=-1)
    assert torch.equal(empty, packed.key_padding_mask) and empty.any()
    reference = attend("SDPA bool (True = allowed)", x, packed.document_ids, causal=causal)
    # the definition: softmax over the allowed keys only, one head at a time
    heads = x.view(*x.shape[:2], 2, 4).transpose(1, 2)
    scores = heads @ heads.transpose(-2, -1) / 2.0
    blocked = document_mask(packed.document_ids, causal=causal)[:, None]
    manual = (scores.masked_fill(blocked, float("-inf")).softmax(-1) @ heads).transpose(1, 2)
    assert torch.allclose(reference[~empty], manual.flatten(2)[~empty], atol=1e-5)
    uniform = heads.mean(dim=2, keepdim=True).expand_as(heads).transpose(1, 2).flatten(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # eager FlexAttention warns
        for name in SPELLINGS:
            if causal and name.startswith("nested"):
                with pytest.raises(RuntimeError, match="No viable backend"):
                    attend(name, x, packed.document_ids, causal=True)
                continue
            out = attend(name, x, packed.document_ids, causal=causal)
            assert torch.allclose(out[~empty], reference[~empty], atol=1e-5), name
            expected = uniform[empty] if name.startswith("Hugging Face") else 0 * x[empty]
            assert torch.allclose(out[empty], expected, atol=1e-5), name


def test_attend_refuses_a_bad_spelling_or_shape():
    packed, x = spelling_case(0)
    with pytest.raises(ValueError, match="spelling: expected one of"):
        attend("sdpa", x, packed.document_ids)
    with pytest.raises(ValueError, match="x: expected"):
        attend("SDPA bool (True = allowed)", x[:, :-1], packed.document_ids)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        attend("SDPA bool (True = allowed)", x, packed.document_ids, num_heads=3)


@pytest.mark.parametrize("document_masking", [True, False])
@pytest.mark.parametrize("reset_positions", [True, False])
def test_the_explorer_measures_the_leak_of_each_missing_piece(document_masking, reset_positions):
    state = packing_state("pack", 24, document_masking, reset_positions)
    not_first = torch.tensor([int((state["document_ids"][:, 0] == i).sum()) == 0
                              for i in range(len(state["differs"]))])
    assert not_first.any()
    if document_masking and reset_positions:
        assert not state["differs"].any()
    else:  # causal: a row's first sentence sees nothing else; the later ones change
        assert torch.equal(state["differs"], not_first)
    for strategy in ("pad", "bucket"):
        padded = packing_state(strategy, 24, document_masking, reset_positions)
        assert not padded["differs"].any()  # one sentence per row: nothing to leak
    assert packing_state("pack", 24)["pad_share"] < packing_state("pad", 24)["pad_share"]
    with pytest.raises(ValueError, match="strategy"):
        packing_state("zip")
