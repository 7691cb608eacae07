"""doctor.check_causal_lm: every broken decoder-only setup is flagged with its code, and the
correct ones get no finding at all."""

import pytest
import torch

from course_lib import doctor
from course_lib.causal_lm import (
    IGNORE_INDEX,
    CausalLM,
    decoder_mask,
    position_ids_from_padding,
)
from course_lib.masks import causal_mask, to_additive
from course_lib.packing import document_mask, pack, packed_labels

PAD = 0
LENGTHS = (5, 2, 4, 1)  # prompt lengths; answers of 3 tokens follow in the training batch


def padded(side, lengths=LENGTHS):
    width = max(lengths)
    ids = torch.full((len(lengths), width), PAD)
    padding = torch.ones(len(lengths), width, dtype=torch.bool)
    for row, n in enumerate(lengths):
        where = slice(width - n, width) if side == "left" else slice(0, n)
        ids[row, where] = torch.arange(4, 4 + n)
        padding[row, where] = False
    return ids, padding


LEFT_IDS, LEFT_PAD = padded("left")
RIGHT_IDS, RIGHT_PAD = padded("right")
LEFT_POSITIONS = position_ids_from_padding(LEFT_PAD)
HF_LEFT = (~LEFT_PAD).long()
# Training batch: prompt + 3 answer tokens, right-padded; labels on the answer only.
TRAIN_IDS, TRAIN_PAD = padded("right", [n + 3 for n in LENGTHS])
ANSWER = torch.zeros_like(TRAIN_PAD)
for _row, _n in enumerate(LENGTHS):
    ANSWER[_row, _n:_n + 3] = True
ANSWER_LABELS = TRAIN_IDS.masked_fill(~ANSWER, IGNORE_INDEX)
ALL_LABELS = TRAIN_IDS.masked_fill(TRAIN_PAD, IGNORE_INDEX)  # prompt and answer, no PAD


PACKED = pack([torch.arange(4, 4 + n) for n in (5, 3, 6, 2, 4)], 8)
PACKED_MASK = document_mask(PACKED.document_ids, causal=True)[:, None]


def packed(**changes):
    return {"input_ids": PACKED.ids, "document_ids": PACKED.document_ids, "pad_id": PAD,
            "attn_mask": PACKED_MASK, "position_ids": PACKED.position_ids,
            "labels": packed_labels(PACKED)} | changes


def model(pad_id=PAD):
    torch.manual_seed(0)
    return CausalLM(16, d_model=16, nhead=2, num_layers=1, dim_feedforward=16, max_len=16,
                    pad_id=pad_id)


def generation(**changes):
    return {"input_ids": LEFT_IDS, "key_padding_mask": LEFT_PAD, "position_ids": LEFT_POSITIONS,
            "pad_id": PAD, "generation": True} | changes


def training(**changes):
    return {"input_ids": TRAIN_IDS, "key_padding_mask": TRAIN_PAD, "labels": ANSWER_LABELS,
            "answer_mask": ANSWER, "pad_id": PAD} | changes


def without(arguments, *names):
    return {k: v for k, v in arguments.items() if k not in names}


def nan_mask():
    """Left padding + causal as an additive -inf float16 mask: PAD query rows are all -inf."""
    return to_additive(decoder_mask(LEFT_PAD), torch.float16)


BROKEN = {
    "right padding for generation": (
        lambda: generation(input_ids=RIGHT_IDS, key_padding_mask=RIGHT_PAD,
                           position_ids=position_ids_from_padding(RIGHT_PAD)),
        "right-padding-generation"),
    "left padding, generation, no position ids": (
        lambda: without(generation(), "position_ids"), "position-ids-not-from-mask"),
    "left padding, position ids 0..L-1": (
        lambda: generation(position_ids=torch.arange(LEFT_IDS.shape[1]).expand(4, -1)),
        "position-ids-not-from-mask"),
    "Hugging Face attention_mask inverted": (
        lambda: without(generation(attention_mask=LEFT_PAD.long()), "key_padding_mask"),
        "attention-mask-inverted"),
    "key_padding_mask inverted (an SDPA keep-mask)": (
        lambda: generation(key_padding_mask=~LEFT_PAD), "padding-mask-inverted"),
    "key_padding_mask as float 0/1": (
        lambda: generation(key_padding_mask=LEFT_PAD.float()), "float-01-mask"),
    "a Hugging Face mask passed as key_padding_mask": (
        lambda: generation(key_padding_mask=HF_LEFT), "integer-mask"),
    "labels train on PAD": (
        lambda: without(training(labels=TRAIN_IDS), "answer_mask"), "labels-train-on-pad"),
    "labels train on the prompt": (
        lambda: training(labels=ALL_LABELS), "labels-train-on-prompt"),
    "a [B, L] mask as attn_mask": (
        lambda: generation(attn_mask=LEFT_PAD), "mask-rank"),
    "a 4-D mask as key_padding_mask": (
        lambda: without(generation(key_padding_mask=decoder_mask(LEFT_PAD)), "position_ids"),
        "mask-rank"),
    "additive -inf float16 mask with left padding": (
        lambda: generation(attn_mask=nan_mask()), "additive-mask-nan-rows"),
    "padded ids without a mask": (
        lambda: without(training(), "key_padding_mask"), "padding-mask-missing"),
    "a real token marked as padding": (
        lambda: generation(key_padding_mask=LEFT_PAD | (torch.arange(5) == 4)),
        "padding-mask-mismatch"),
    "model with another pad_id": (
        lambda: generation(model=model(pad_id=1)), "model-pad-id-mismatch"),
    "a float 0/1 4-D attn_mask": (
        lambda: generation(attn_mask=decoder_mask(LEFT_PAD).float()), "float-01-mask"),
    "packed rows without a document mask": (
        lambda: without(packed(), "attn_mask"), "cross-document-attention"),
    "packed rows with a causal mask only": (
        lambda: packed(attn_mask=causal_mask(8)[None, None].expand(len(PACKED.ids), 1, 8, 8)
                       | PACKED.key_padding_mask[:, None, None, :]),
        "cross-document-attention"),
    "packed rows without position ids": (
        lambda: without(packed(), "position_ids"), "position-ids-not-restarted"),
    "packed rows with positions 0..L-1": (
        lambda: packed(position_ids=torch.arange(8).expand(len(PACKED.ids), -1)),
        "position-ids-not-restarted"),
    "packed labels across documents": (
        lambda: packed(labels=PACKED.ids.masked_fill(PACKED.key_padding_mask, IGNORE_INDEX)),
        "labels-cross-documents"),
}

CORRECT = {
    "left padding, mask, position ids from the mask, generation": generation,
    "Hugging Face attention_mask and cumsum positions": lambda: without(
        generation(attention_mask=HF_LEFT,
                   position_ids=(HF_LEFT.cumsum(-1) - 1).masked_fill(HF_LEFT == 0, 1)),
        "key_padding_mask"),
    "float Hugging Face attention_mask": lambda: without(
        generation(attention_mask=HF_LEFT.float()), "key_padding_mask"),
    "right-padded training, answer-only labels": training,
    "right-padded training, labels on every real token": lambda: without(
        training(labels=ALL_LABELS), "answer_mask"),
    "no padding, generation, default positions": lambda: {
        "input_ids": torch.arange(4, 10).expand(3, -1), "pad_id": PAD, "generation": True},
    "bool 4-D decoder mask": lambda: generation(attn_mask=decoder_mask(LEFT_PAD)),
    "finfo.min float16 4-D mask (Hugging Face's)": lambda: generation(
        attn_mask=torch.zeros(4, 1, 5, 5, dtype=torch.float16).masked_fill(
            decoder_mask(LEFT_PAD), torch.finfo(torch.float16).min)),
    "with the course model": lambda: generation(model=model()),
    "left-padded training with positions from the mask": lambda: generation(
        labels=LEFT_IDS.masked_fill(LEFT_PAD, IGNORE_INDEX), generation=False),
    "a correct packed batch": packed,
    "a correct packed batch, finfo.min additive mask": lambda: packed(
        attn_mask=torch.zeros(PACKED_MASK.shape).masked_fill(PACKED_MASK,
                                                             torch.finfo(torch.float32).min)),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_setup_is_flagged_with_its_code(name):
    arguments, code = BROKEN[name]
    report = doctor.check_causal_lm(**arguments())
    assert code in report.codes, (name, str(report))
    found = next(f for f in report if f.code == code)
    assert found.severity == doctor.CODES[code].severity
    assert found.problem and found.why and found.fix


@pytest.mark.parametrize("name", CORRECT)
def test_correct_setup_has_no_finding(name):
    report = doctor.check_causal_lm(**CORRECT[name]())
    assert report.ok, (name, str(report))


def test_catalogue_size():
    assert len(BROKEN) >= 10 and len(CORRECT) >= 8


def test_left_padded_training_without_positions_is_a_warning():
    report = doctor.check_causal_lm(**without(generation(generation=False), "position_ids"))
    assert report.codes == ["position-ids-not-from-mask"]
    assert report[0].severity == "warning"


def test_one_root_cause_gives_one_finding():
    report = doctor.check_causal_lm(**generation(key_padding_mask=~LEFT_PAD))
    assert report.codes == ["padding-mask-inverted"]
    report = doctor.check_causal_lm(**without(generation(attention_mask=LEFT_PAD.long()),
                                              "key_padding_mask"))
    assert report.codes == ["attention-mask-inverted"]
    assert report[0].fix.startswith("attention_mask = (input_ids != pad_id).long()")


def test_pad_labels_say_that_minus_100_is_missing():
    report = doctor.check_causal_lm(input_ids=TRAIN_IDS, key_padding_mask=TRAIN_PAD,
                                    labels=TRAIN_IDS, pad_id=PAD)
    assert "-100 missing" in report[0].problem


@pytest.mark.parametrize("arguments, error, message", [
    ({}, ValueError, "nothing to check"),
    ({"input_ids": LEFT_IDS, "attention_mask": HF_LEFT, "key_padding_mask": LEFT_PAD},
     ValueError, "give the padding once"),
    ({"input_ids": LEFT_IDS.float()}, TypeError, "input_ids: expected integer token ids"),
    ({"input_ids": LEFT_IDS, "key_padding_mask": LEFT_PAD[:, 1:]}, ValueError,
     "key_padding_mask: expected shape"),
    ({"input_ids": LEFT_IDS, "attention_mask": HF_LEFT * 2}, ValueError,
     "attention_mask: expected a Hugging Face"),
    ({"input_ids": LEFT_IDS, "labels": LEFT_IDS[:, 1:]}, ValueError, "labels: expected shape"),
    ({"input_ids": LEFT_IDS, "labels": LEFT_IDS.float()}, TypeError, "labels: expected integer"),
    ({"input_ids": LEFT_IDS, "pad_id": "0"}, TypeError, "pad_id: expected an int"),
    ({"input_ids": LEFT_IDS, "generation": 1}, TypeError, "generation: expected True or False"),
    ({"input_ids": LEFT_IDS, "key_padding_mask": LEFT_PAD, "position_ids": LEFT_POSITIONS[:, 1:]},
     ValueError, "position_ids: expected shape"),
    ({"labels": ANSWER_LABELS, "answer_mask": ANSWER.long()}, TypeError, "answer_mask"),
])
def test_bad_arguments_are_refused_by_name(arguments, error, message):
    with pytest.raises(error, match=message):
        doctor.check_causal_lm(**arguments)
