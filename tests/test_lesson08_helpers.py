"""course_lib.lessons.lesson08 and course_lib.widgets.lesson08: the masks-as-passed runner, the
accuracy score, and the doctor lab's scenarios do what lesson 08 says they do."""

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.patches import Rectangle

from course_lib import doctor, recipes
from course_lib.data import Vocab, collate, make_pairs
from course_lib.lessons.lesson08 import (
    LAB_TOKENS,
    SCENARIOS,
    SHOWN_SEQUENCE,
    lab_attention,
    lab_ids,
    scenario_call,
    should_block,
    token_accuracy,
    transformer_logits,
)
from course_lib.masks import causal_mask
from course_lib.widgets.lesson08 import doctor_lab, draw_doctor_lab, passed_blocked

PAD = Vocab.PAD
EXPECTED_CODE = {
    "inverted padding": "padding-mask-inverted",
    "no padding mask": "src-key-padding-mask-missing",
    "transposed (B == S)": "mask-transposed",
    "padding as src_mask": "padding-mask-as-attn-mask",
    "SDPA causal": "causal-mask-inverted",
    "float 0/1 causal": "float-01-mask",
    "left padding": "left-padding-causal",
}


def test_transformer_logits_with_the_standard_masks_is_the_model():
    model = recipes.new_model(0)
    batch = collate(make_pairs("reverse", 5, min_len=3, max_len=10, seed=8),
                    recipes.reverse_vocab())
    masks = {"src_key_padding_mask": batch.src_key_padding_mask,
             "memory_key_padding_mask": batch.src_key_padding_mask,
             "tgt_key_padding_mask": batch.tgt_key_padding_mask, "tgt_mask": batch.tgt_mask}
    expected = model(batch.src, batch.tgt_in)
    assert torch.allclose(transformer_logits(model, batch.src, batch.tgt_in, **masks), expected,
                          atol=1e-5)
    without = transformer_logits(model, batch.src, batch.tgt_in,
                                 **{**masks, "memory_key_padding_mask": None})
    assert not torch.allclose(without, expected, atol=1e-3)  # a mask left out is not applied
    with pytest.raises(TypeError, match="no argument"):
        transformer_logits(model, batch.src, batch.tgt_in, causal_mask=batch.tgt_mask)
    with pytest.raises(TypeError, match="Seq2SeqTransformer"):
        transformer_logits(torch.nn.Linear(2, 2), batch.src, batch.tgt_in)


def test_token_accuracy_counts_real_targets_and_nan_as_wrong():
    tgt_out = torch.tensor([[5, 6, Vocab.EOS, PAD], [7, Vocab.EOS, PAD, PAD]])
    logits = torch.nn.functional.one_hot(tgt_out, 10).float()
    assert token_accuracy(logits, tgt_out, PAD) == 1.0
    logits[0, 0] = logits[0, 0].flip(0)  # one wrong token
    logits[1, :2] = float("nan")  # two NaN rows
    assert token_accuracy(logits, tgt_out, PAD) == pytest.approx(2 / 5)
    logits[:, 2:] = 0.0  # PAD targets do not count
    assert token_accuracy(logits, tgt_out, PAD) == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="logits: expected"):
        token_accuracy(logits[:, :3], tgt_out, PAD)


def test_lab_batch_is_square_and_not_symmetric():
    right, left = lab_ids(), lab_ids(left=True)
    assert right.shape == left.shape == (4, 4)
    lengths = [len(tokens) for tokens in LAB_TOKENS]
    assert (right != PAD).sum(dim=1).tolist() == lengths == (left != PAD).sum(dim=1).tolist()
    assert not torch.equal(right == PAD, (right == PAD).T)
    assert (right[:, 0] != PAD).all() and (left[:, -1] != PAD).all()


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_bug_is_caught_and_each_fix_is_clean(name):
    broken = doctor.check(**scenario_call(name, fixed=False))
    assert EXPECTED_CODE[name] in broken.codes, str(broken)
    assert doctor.check(**scenario_call(name, fixed=True)).ok


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_bug_has_a_measurable_symptom(name):
    for fixed in (False, True):
        call = scenario_call(name, fixed=fixed)
        weights = lab_attention(call)
        ids = call.get("src", call.get("tgt_in"))
        real = (ids != PAD)[:, :, None].expand_as(weights)
        hidden = should_block(call)
        leak = torch.nan_to_num(weights * hidden)[real].max()
        nan = weights.isnan().any()
        if fixed:
            assert leak == 0 and not nan
            assert torch.allclose(weights.sum(-1), torch.ones(4, 4), atol=1e-5)
        else:
            assert leak > 0.05 or nan, name


def test_should_block_and_passed_blocked():
    fixed = scenario_call("SDPA causal", fixed=True)
    expected = causal_mask(4) | (lab_ids() == PAD)[:, None, :]
    assert torch.equal(should_block(fixed), expected)
    assert torch.equal(passed_blocked(fixed), expected)
    float_mask = scenario_call("float 0/1 causal", fixed=False)
    assert torch.equal(passed_blocked(float_mask),  # a 0/1 float mask blocks no cell
                       (lab_ids() == PAD)[:, None, :].expand(4, 4, 4))
    assert not passed_blocked(scenario_call("no padding mask", fixed=False)).any()


def test_lab_figure_hatches_what_the_passed_masks_block():
    for name in ("transposed (B == S)", "SDPA causal"):
        call = scenario_call(name, fixed=False)
        fig = draw_doctor_lab(name, False)
        weights = lab_attention(call)[SHOWN_SEQUENCE]
        expected = passed_blocked(call)[SHOWN_SEQUENCE] & ~weights.isnan()
        hatched = sum(1 for p in fig.axes[1].patches
                      if isinstance(p, Rectangle) and p.get_hatch())
        assert hatched == int(expected.sum()), name
        verdict = fig.axes[2].texts[0].get_text()
        assert EXPECTED_CODE[name] in verdict
        plt.close(fig)
    fig = draw_doctor_lab("SDPA causal", True)
    assert "no problems found" in fig.axes[2].texts[0].get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="name: expected one of"):
        draw_doctor_lab("no such bug")


def test_lab_has_fourteen_states():
    explorer = doctor_lab()
    assert len(list(explorer.states())) == 2 * len(SCENARIOS) == 14
    assert explorer.default_state == {"bug": "inverted padding", "fix": False}


@pytest.mark.parametrize("bug", list(SCENARIOS))
def test_the_lab_frames_every_cell_that_should_be_blocked_and_is_not(bug):
    from course_lib.widgets.lesson08 import MISSED_STYLE

    for fixed in (False, True):
        call = scenario_call(bug, fixed=fixed)
        missed = (should_block(call) & ~passed_blocked(call))[SHOWN_SEQUENCE]
        fig = draw_doctor_lab(bug, fixed)
        frames = {(round(p.get_y() + 0.42), round(p.get_x() + 0.42))
                  for p in fig.axes[1].patches
                  if isinstance(p, Rectangle) and p.get_linestyle() == "--"
                  and not p.get_fill()}
        assert frames == {tuple(rc) for rc in missed.nonzero().tolist()}, (bug, fixed)
        assert MISSED_STYLE["linestyle"] == "--"
        plt.close(fig)
