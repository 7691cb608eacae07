"""course_lib.doctor: every broken setup of the catalogue is flagged with its code, correct
setups (the course's own models, batches, masks and losses) get no finding, the report prints
well, and bad inputs to the doctor itself raise clear errors."""

import functools
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import doctor, recipes
from course_lib.data import Vocab, collate, make_pairs
from course_lib.lessons.lesson04 import example_batch, example_masks, example_model
from course_lib.masks import causal_mask, from_hf, padding_mask, to_additive
from course_lib.models import RNNSeq2Seq, Seq2SeqTransformer
from course_lib.training import sequence_loss

PAD = Vocab.PAD
VOCAB = recipes.reverse_vocab()
PAIRS = make_pairs("reverse", 6, min_len=3, max_len=10, seed=3)
BATCH = collate(PAIRS, VOCAB)  # B = 6, S = 10, T = 11, right-padded
SRC, TGT_IN = BATCH.src, BATCH.tgt_in
SRC_PAD, TGT_PAD = BATCH.src_key_padding_mask, BATCH.tgt_key_padding_mask
T = TGT_IN.shape[1]
CAUSAL = causal_mask(T)


def square_batch():
    """B == S == 4 with lengths 4, 2, 3, 1: a transposed padding mask has the right shape."""
    src = torch.tensor([[4, 5, 6, 7], [8, 9, PAD, PAD], [5, 6, 7, PAD], [9, PAD, PAD, PAD]])
    assert not torch.equal(src == PAD, (src == PAD).T)
    return src


SQUARE = square_batch()


def good_masks(**changes):
    """The four masks of a standard seq2seq call, with some replaced or dropped (None)."""
    masks = {"src_key_padding_mask": SRC_PAD, "tgt_key_padding_mask": TGT_PAD,
             "memory_key_padding_mask": SRC_PAD, "tgt_mask": CAUSAL} | changes
    return {k: v for k, v in masks.items() if v is not None}


def call(**changes):
    return {"src": SRC, "tgt_in": TGT_IN, "pad_id": PAD, **good_masks(**changes)}


class BareModel(nn.Module):
    """A token embedding in front of nn.Transformer, the way many tutorials write it."""

    def __init__(self, padding_idx=None, nested=True):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(len(VOCAB), 16, padding_idx=padding_idx)
        layer = nn.TransformerEncoderLayer(16, 2, 32, 0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=nested)


def reinitialised_model():
    model = recipes.new_model(0)
    nn.init.normal_(model.src_embedding.weight)
    return model


def left_padded(ids):
    """Move each row's PAD to its start."""
    rows = [torch.cat([row[row == PAD], row[row != PAD]]) for row in ids]
    return torch.stack(rows)


def float16_mha():
    return nn.MultiheadAttention(16, 2, batch_first=True).half()


def repeated_3d(order):
    merged = (CAUSAL[None] | TGT_PAD[:, None, :])  # [B, T, T]
    heads = 4
    stacked = merged.repeat(heads, 1, 1) if order == "repeat" else \
        merged.repeat_interleave(heads, dim=0)
    return stacked


# name -> (arguments of doctor.check, the code it must report)
BROKEN = {
    "Hugging Face attention_mask as key padding mask": (
        lambda: call(src_key_padding_mask=(SRC != PAD).long()), "integer-mask"),
    "... then .bool(): inverted polarity": (
        lambda: call(src_key_padding_mask=(SRC != PAD).long().bool()), "padding-mask-inverted"),
    "SDPA-style padding mask, no ids to compare with": (
        lambda: {"src_key_padding_mask": ~SRC_PAD}, "padding-mask-inverted"),
    "SDPA-style causal mask (True = allowed)": (
        lambda: call(tgt_mask=~CAUSAL), "causal-mask-inverted"),
    "causal mask below the diagonal": (lambda: call(tgt_mask=CAUSAL.T), "causal-mask-blocks-past"),
    "tgt_mask that only blocks far keys": (
        lambda: call(tgt_mask=(torch.arange(T)[:, None] - torch.arange(T)).abs() > 2),
        "tgt-mask-allows-future"),
    "float 0/1 causal mask": (lambda: call(tgt_mask=CAUSAL.float()), "float-01-mask"),
    "float 0/1 padding mask": (
        lambda: call(src_key_padding_mask=SRC_PAD.float()), "float-01-mask"),
    "integer causal mask": (lambda: call(tgt_mask=CAUSAL.long()), "integer-mask"),
    "float causal mask with bool padding masks": (
        lambda: call(tgt_mask=nn.Transformer.generate_square_subsequent_mask(T)),
        "mixed-mask-types"),
    "transposed padding mask, B == S": (
        lambda: {"src": SQUARE, "pad_id": PAD, "src_key_padding_mask": (SQUARE == PAD).T},
        "mask-transposed"),
    "transposed padding mask, B != S": (
        lambda: call(src_key_padding_mask=SRC_PAD.T), "mask-transposed"),
    "memory_mask [S, T] instead of [T, S]": (
        lambda: call(memory_mask=torch.zeros(SRC.shape[1], T, dtype=torch.bool)),
        "mask-transposed"),
    "padding mask as src_mask, B == S": (
        lambda: {"src": SQUARE, "pad_id": PAD, "src_key_padding_mask": SQUARE == PAD,
                 "src_mask": SQUARE == PAD}, "padding-mask-as-attn-mask"),
    "padding mask as src_mask, B != S": (
        lambda: call(src_mask=SRC_PAD), "padding-mask-as-attn-mask"),
    "Hugging Face 4-D extended mask": (
        lambda: call(src_key_padding_mask=SRC_PAD[:, None, None, :]), "mask-shape"),
    "3-D mask without the heads": (
        lambda: call(tgt_mask=CAUSAL[None] | TGT_PAD[:, None, :]) | {
            "model": recipes.new_model(0)}, "mask-shape"),
    "3-D mask built with .repeat": (
        lambda: call(tgt_mask=repeated_3d("repeat"), tgt_key_padding_mask=None),
        "mask-head-order"),
    "mask from another pad id": (
        lambda: call(src_key_padding_mask=padding_mask(SRC, VOCAB.stoi["a"])),
        "padding-mask-mismatch"),
    "memory mask from the target, S == T": (
        lambda: {"src": TGT_IN, "tgt_in": TGT_IN.roll(1, 0), "pad_id": PAD,
                 "tgt_mask": CAUSAL, "tgt_key_padding_mask": TGT_IN.roll(1, 0) == PAD,
                 "src_key_padding_mask": TGT_IN == PAD,
                 "memory_key_padding_mask": TGT_IN.roll(1, 0) == PAD},
        "padding-mask-mismatch"),
    "left padding with a causal mask": (
        lambda: call(tgt_mask=CAUSAL, tgt_in=left_padded(TGT_IN),
                     tgt_key_padding_mask=left_padded(TGT_IN) == PAD), "left-padding-causal"),
    "an all-PAD source": (
        lambda: call(src=SRC.index_fill(0, torch.tensor([2]), PAD),
                     src_key_padding_mask=SRC.index_fill(0, torch.tensor([2]), PAD) == PAD,
                     memory_key_padding_mask=SRC.index_fill(0, torch.tensor([2]), PAD) == PAD),
        "fully-masked-rows"),
    "causal src_mask": (lambda: call(src_mask=causal_mask(SRC.shape[1])), "causal-src-mask"),
    "no src_key_padding_mask": (
        lambda: call(src_key_padding_mask=None), "src-key-padding-mask-missing"),
    "no memory_key_padding_mask": (
        lambda: call(memory_key_padding_mask=None), "memory-key-padding-mask-missing"),
    "no tgt_mask": (lambda: call(tgt_mask=None), "tgt-mask-missing"),
    "no tgt_key_padding_mask": (
        lambda: call(tgt_key_padding_mask=None), "tgt-key-padding-mask-missing"),
    "-1e9 fill in a float16 model": (
        lambda: {"tgt_mask": torch.zeros(T, T).masked_fill(CAUSAL, -1e9), "pad_id": PAD,
                 "model": float16_mha()}, "fill-overflows-float16"),
    "embedding without padding_idx": (
        lambda: call() | {"model": BareModel(nested=False)}, "embedding-without-padding-idx"),
    "embedding with another padding_idx": (
        lambda: call() | {"model": BareModel(padding_idx=Vocab.EOS, nested=False)},
        "embedding-padding-idx-mismatch"),
    "re-initialised embedding": (
        lambda: call() | {"model": reinitialised_model()}, "embedding-pad-row-nonzero"),
    "model built with another pad id": (
        lambda: {"src": SRC, "tgt_in": TGT_IN, "pad_id": PAD,
                 "model": Seq2SeqTransformer(len(VOCAB), pad_id=Vocab.UNK)},
        "model-pad-id-mismatch"),
    "nn.TransformerEncoder fast path in eval": (
        lambda: call() | {"model": BareModel(padding_idx=PAD).eval()}, "encoder-fast-path"),
    "CrossEntropyLoss without ignore_index": (
        lambda: call() | {"loss_fn": nn.CrossEntropyLoss()}, "loss-ignore-index"),
    "partial(F.cross_entropy) without ignore_index": (
        lambda: call() | {"loss_fn": functools.partial(F.cross_entropy)}, "loss-ignore-index"),
    "a hand-written loss that averages over PAD": (
        lambda: call() | {"loss_fn": lambda logits, targets: F.cross_entropy(logits, targets)},
        "loss-ignore-index"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_setup_is_flagged_with_its_code(name):
    arguments, code = BROKEN[name]
    report = doctor.check(**arguments())
    assert code in report.codes, (name, str(report))
    assert not report.ok
    found = next(f for f in report if f.code == code)
    assert found.severity == doctor.CODES[code].severity or code == \
        "tgt-key-padding-mask-missing"
    assert found.problem and found.why and found.fix


def test_the_catalogue_covers_every_code():
    from tests.test_doctor_causal_lm import BROKEN as CAUSAL_LM_BROKEN

    covered = {code for _, code in (*BROKEN.values(), *CAUSAL_LM_BROKEN.values())}
    assert covered == set(doctor.CODES)
    assert len(BROKEN) >= 15


def test_one_root_cause_gives_one_finding():
    """An inverted mask is not also reported as rows with no key, or as a missing mask."""
    report = doctor.check(**call(src_key_padding_mask=~SRC_PAD))
    assert report.codes == ["padding-mask-inverted"]
    report = doctor.check(**call(tgt_mask=~CAUSAL))
    assert report.codes == ["causal-mask-inverted"]


def test_severity_of_a_missing_tgt_key_padding_mask_depends_on_padding_side():
    right = doctor.check(**call(tgt_key_padding_mask=None))
    left = doctor.check(**call(tgt_key_padding_mask=None, tgt_in=left_padded(TGT_IN)))
    assert [f.severity for f in right] == ["warning"]
    assert "tgt-key-padding-mask-missing" in left.codes
    assert next(f for f in left if f.code == "tgt-key-padding-mask-missing").severity == "error"


def test_mismatch_names_the_pad_id_it_was_built_with():
    report = doctor.check(**call(src_key_padding_mask=padding_mask(SRC, VOCAB.stoi["a"])))
    assert f"built with pad_id={VOCAB.stoi['a']}" in report[0].problem


def test_the_findings_are_true():
    """What the doctor says about PyTorch holds on this PyTorch."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, 0.0, batch_first=True)
    x = torch.randn(4, 4, 16)
    right = layer(x, src_key_padding_mask=SQUARE == PAD)
    transposed = layer(x, src_key_padding_mask=(SQUARE == PAD).T)  # runs without an error
    real = SQUARE != PAD
    assert (right - transposed)[real].abs().max() > 1e-3
    model = BareModel(padding_idx=PAD).eval()
    assert doctor.check(src=SQUARE, pad_id=PAD, src_key_padding_mask=SQUARE == PAD,
                        model=model).codes == ["encoder-fast-path"]
    with warnings.catch_warnings(record=True), torch.no_grad():
        warnings.simplefilter("always")
        out = model.encoder(model.embedding(SQUARE), src_key_padding_mask=SQUARE == PAD)
    assert (out[SQUARE == PAD] == 0).all()


def test_rows_with_no_key_are_nan_in_eval_mode_and_spread():
    """The 'why' of left-padding-causal: fine in training mode, NaN everywhere in eval mode."""
    left = left_padded(SQUARE)
    masks = {"tgt_mask": causal_mask(4), "tgt_key_padding_mask": left == PAD}
    assert doctor.check(tgt_in=left, pad_id=PAD, **masks).codes == ["left-padding-causal"]
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(16, 2, 32, 0.0, batch_first=True)
    decoder = nn.TransformerDecoder(layer, 2)
    x, memory = torch.randn(4, 4, 16), torch.randn(4, 3, 16)
    with torch.no_grad():
        trained = decoder(x, memory, **masks)
        evaluated = decoder.eval()(x, memory, **masks)
    assert not trained.isnan().any()
    nan_at_real = evaluated.isnan().any(dim=-1) & (left != PAD)
    assert torch.equal(nan_at_real.any(dim=1), (left == PAD).any(dim=1))


# --- correct setups: no finding -------------------------------------------------------------

def rnn_model():
    torch.manual_seed(0)
    return RNNSeq2Seq(len(VOCAB), pad_id=PAD)


def additive_call():
    return call(tgt_mask=to_additive(CAUSAL), src_key_padding_mask=to_additive(SRC_PAD),
                tgt_key_padding_mask=to_additive(TGT_PAD),
                memory_key_padding_mask=to_additive(SRC_PAD))


def lab_call():
    batch = example_batch()
    masks = example_masks(batch)
    standard = {k: masks[k] for k in ("tgt_mask", "src_key_padding_mask",
                                      "tgt_key_padding_mask", "memory_key_padding_mask")}
    return {"src": batch.src, "tgt_in": batch.tgt, "pad_id": PAD, "model": example_model(),
            **standard}


def other_pad_id_call():
    pad_id = 7
    src = torch.tensor([[3, 4, 5], [6, pad_id, pad_id]])
    tgt_in = torch.tensor([[1, 5, 4, 3], [1, 6, pad_id, pad_id]])
    return {"src": src, "tgt_in": tgt_in, "pad_id": pad_id,
            "src_key_padding_mask": padding_mask(src, pad_id),
            "memory_key_padding_mask": padding_mask(src, pad_id),
            "tgt_key_padding_mask": padding_mask(tgt_in, pad_id), "tgt_mask": causal_mask(4)}


CORRECT = {
    "collate batch + new_model + sequence_loss": lambda: doctor.check_batch(
        BATCH, model=recipes.new_model(0), loss_fn=sequence_loss),
    "collate batch + CrossEntropyLoss(ignore_index=PAD)": lambda: doctor.check_batch(
        BATCH, model=recipes.new_model(0), loss_fn=nn.CrossEntropyLoss(ignore_index=PAD)),
    "partial(F.cross_entropy, ignore_index=PAD), label smoothing": lambda: doctor.check_batch(
        BATCH, loss_fn=functools.partial(F.cross_entropy, ignore_index=PAD,
                                         label_smoothing=0.1)),
    "a hand-written masked mean": lambda: doctor.check_batch(
        BATCH, loss_fn=lambda logits, targets: F.cross_entropy(
            logits, targets, reduction="none")[targets != PAD].mean()),
    "Seq2SeqTransformer in eval, building its own masks": lambda: doctor.check(
        src=SRC, tgt_in=TGT_IN, pad_id=PAD, model=recipes.new_model(0).eval()),
    "masks from course_lib.masks": lambda: doctor.check(
        src=SRC, tgt_in=TGT_IN, pad_id=PAD, src_key_padding_mask=padding_mask(SRC, PAD),
        memory_key_padding_mask=padding_mask(SRC, PAD), tgt_mask=causal_mask(T),
        tgt_key_padding_mask=padding_mask(TGT_IN, PAD), model=recipes.new_model(0)),
    "Hugging Face mask converted with from_hf": lambda: doctor.check(
        **call(src_key_padding_mask=from_hf((SRC != PAD).long()))),
    "bool generate_square_subsequent_mask": lambda: doctor.check(
        **call(tgt_mask=nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.bool))),
    "all masks additive float": lambda: doctor.check(**additive_call()),
    "-1e9 fill in float32": lambda: doctor.check(
        **call(tgt_mask=torch.zeros(T, T).masked_fill(CAUSAL, -1e9),
               src_key_padding_mask=torch.zeros(SRC.shape).masked_fill(SRC_PAD, -1e9),
               memory_key_padding_mask=torch.zeros(SRC.shape).masked_fill(SRC_PAD, -1e9),
               tgt_key_padding_mask=torch.zeros(TGT_IN.shape).masked_fill(TGT_PAD, -1e9))),
    "finfo(float16).min fill in a float16 model": lambda: doctor.check(
        tgt_mask=torch.zeros(T, T, dtype=torch.half).masked_fill(
            CAUSAL, torch.finfo(torch.half).min), pad_id=PAD, model=float16_mha()),
    "B == S with the right padding mask": lambda: doctor.check(
        src=SQUARE, pad_id=PAD, src_key_padding_mask=SQUARE == PAD),
    "causal tgt_mask in a batch shaped like it (B == T)": lambda: doctor.check(
        src=SQUARE, tgt_in=SQUARE, pad_id=PAD, tgt_mask=causal_mask(4),
        tgt_key_padding_mask=SQUARE == PAD, src_key_padding_mask=SQUARE == PAD,
        memory_key_padding_mask=SQUARE == PAD),
    "3-D mask built with repeat_interleave": lambda: doctor.check(
        **call(tgt_mask=repeated_3d("repeat_interleave"), tgt_key_padding_mask=None)),
    "encoder only": lambda: doctor.check(src=SRC, pad_id=PAD, src_key_padding_mask=SRC_PAD),
    "no PAD at all": lambda: doctor.check(src=SRC[:, :3], tgt_in=TGT_IN[:, :2], pad_id=PAD,
                                          tgt_mask=causal_mask(2)),
    "another pad id": lambda: doctor.check(**other_pad_id_call()),
    "lesson 04's model (learned positions) in training mode": lambda: doctor.check(**lab_call()),
    "lesson 04's six masks: window src_mask, wait-k memory_mask": lambda: doctor.check(
        src=example_batch().src, tgt_in=example_batch().tgt, pad_id=PAD,
        **example_masks(example_batch())),
    "one greedy decoding step": lambda: doctor.check(
        src=SRC, tgt_in=torch.full((len(SRC), 1), Vocab.BOS), pad_id=PAD,
        tgt_mask=causal_mask(1), src_key_padding_mask=SRC_PAD, memory_key_padding_mask=SRC_PAD,
        model=recipes.new_model(0).eval()),
    "RNNSeq2Seq with a collate batch": lambda: doctor.check_batch(
        BATCH, model=rnn_model(), loss_fn=sequence_loss),
    "RNNSeq2Seq, encoder and attention masks only": lambda: doctor.check(
        src=SRC, tgt_in=TGT_IN, pad_id=PAD, src_key_padding_mask=SRC_PAD,
        memory_key_padding_mask=SRC_PAD, model=rnn_model().eval()),
    "RNNSeq2Seq building its own masks": lambda: doctor.check(
        src=SRC, tgt_in=TGT_IN, pad_id=PAD, model=rnn_model()),
}


@pytest.mark.parametrize("name", CORRECT)
def test_correct_setup_has_no_finding(name):
    report = CORRECT[name]()
    assert report.ok and len(report) == 0, (name, str(report))
    assert str(report).startswith("mask doctor: no problems found")


def test_there_are_enough_correct_setups():
    assert len(CORRECT) >= 10


# --- the report -----------------------------------------------------------------------------

def test_report_is_a_sorted_printable_list_of_findings():
    report = doctor.check(**call(tgt_key_padding_mask=None, memory_key_padding_mask=None))
    assert report.codes == ["memory-key-padding-mask-missing", "tgt-key-padding-mask-missing"]
    assert [f.severity for f in report] == ["error", "warning"]  # errors first
    assert isinstance(report[0], doctor.Finding) and len(report) == 2
    assert report.errors == [report[0]]
    text = str(report)
    assert text == repr(report) == str(doctor.check(**call(tgt_key_padding_mask=None,
                                                           memory_key_padding_mask=None)))
    assert text.splitlines()[0] == ("mask doctor: 1 error and 1 warning (checked src, tgt_in, "
                                    "2 masks)")
    assert "✗ error [memory-key-padding-mask-missing] memory_key_padding_mask" in text
    assert all(len(line) <= 100 for line in text.splitlines())
    for label in ("problem:", "why:", "fix:"):
        assert text.count(label) == 2


def test_report_shows_in_a_notebook_as_readable_html_with_the_text_escaped():
    report = doctor.check(**call(tgt_key_padding_mask=None, memory_key_padding_mask=None))
    shown = report._repr_html_()
    assert shown.startswith('<div class="doctor-report"')
    assert "✗ mask doctor: 1 error and 1 warning" in shown
    assert shown.count('class="doctor-finding doctor-error"') == 1
    assert shown.count('class="doctor-finding doctor-warning"') == 1
    assert "#a40e26" in shown and "#7d4e00" in shown  # red for the error, amber the warning
    assert "✗ error</strong>" in shown and "! warning</strong>" in shown  # not colour alone
    assert "<code>memory-key-padding-mask-missing</code>" in shown
    assert shown.count("<strong>Fix:</strong>") == 2
    font_size = int(re.search(r"font-size: (\d+)px", shown).group(1))
    assert font_size >= 14 and "monospace" not in shown and "overflow-wrap: anywhere" in shown
    healthy = doctor.check(**call())._repr_html_()
    assert "doctor-ok" in healthy and "✓ mask doctor: no problems found" in healthy
    odd = doctor.Finding("integer-mask", "error", "m<a>sk", "a & b < c", "\"why\"", "x = 'y'")
    escaped = doctor.Report([odd], checked=["<src>"])._repr_html_()
    assert "m&lt;a&gt;sk" in escaped and "a &amp; b &lt; c" in escaped
    assert "&quot;why&quot;" in escaped and "x = &#x27;y&#x27;" in escaped
    assert "(checked &lt;src&gt;)" in escaped and "<src>" not in escaped and "<a>" not in escaped


def test_fix_text_names_the_right_ids():
    report = doctor.check(**call(tgt_key_padding_mask=~TGT_PAD))
    assert report.codes == ["padding-mask-inverted"]
    assert report[0].fix.startswith("tgt_key_padding_mask = tgt_in == pad_id")


def test_every_code_has_its_texts():
    for code, entry in doctor.CODES.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", code), code
        assert entry.severity in ("error", "warning")
        assert entry.title and entry.why and entry.fix


# --- bad inputs to the doctor ---------------------------------------------------------------

@pytest.mark.parametrize("arguments, error, message", [
    ({}, ValueError, "nothing to check"),
    ({"src": SRC}, ValueError, "pad_id: needed to check src"),
    ({"loss_fn": sequence_loss}, ValueError, "pad_id: needed to check loss_fn"),
    ({"src": SRC, "pad_id": True}, TypeError, "pad_id: expected an int"),
    ({"src": SRC, "pad_id": "0"}, TypeError, "pad_id: expected an int"),
    ({"src": torch.randn(2, 5, 16), "pad_id": PAD}, TypeError, "not the embeddings"),
    ({"src": SRC[0], "pad_id": PAD}, ValueError, "src: expected a 2-D tensor"),
    ({"src": SRC.float(), "pad_id": PAD}, TypeError, "src: expected integer token ids"),
    ({"src": SRC, "tgt_in": TGT_IN[:2], "pad_id": PAD}, ValueError, "tgt_in: batch size 2"),
    ({"tgt_mask": CAUSAL.tolist()}, TypeError, "tgt_mask: expected a torch.Tensor"),
    ({"src": SRC, "pad_id": PAD, "model": "model"}, TypeError, "model: expected an nn.Module"),
    ({"src": SRC, "pad_id": PAD, "loss_fn": 3}, TypeError, "loss_fn: expected a loss"),
    ({"pad_id": PAD, "loss_fn": lambda model, batch: model(batch.src)}, TypeError,
     r"loss_fn\(logits\[N, V\], targets\[N\]\)"),
])
def test_bad_inputs_raise_clear_errors(arguments, error, message):
    with pytest.raises(error, match=message):
        doctor.check(**arguments)


def test_unknown_argument_and_bad_batch():
    with pytest.raises(TypeError, match="causal_mask"):
        doctor.check(src=SRC, pad_id=PAD, causal_mask=CAUSAL)
    with pytest.raises(TypeError, match="batch: expected a course_lib.data.Batch"):
        doctor.check_batch({"src": SRC})
