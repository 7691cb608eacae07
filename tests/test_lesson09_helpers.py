"""course_lib.lessons.lesson09 and course_lib.widgets.lesson09: the prompt -> answer batches,
the naive generation the lesson breaks, the copy into Hugging Face GPT-2, and the explorer."""

import os

import pytest
import torch

from course_lib.causal_lm import IGNORE_INDEX, CausalLM, generate, position_ids_from_padding
from course_lib.data import Vocab
from course_lib.lessons.lesson09 import (
    MODEL,
    alone,
    differs_from_alone,
    hf_log_messages,
    lm_batch,
    lm_vocab,
    naive_generate,
    prompt_batch,
    to_gpt2,
)
from course_lib.widgets.lesson09 import NEW_TOKENS, PROMPTS, batch_at_step

os.environ.setdefault("HF_HUB_OFFLINE", "1")
VOCAB = lm_vocab()
PAIRS = [(tuple("abc"), tuple("cba")), (tuple("hbjdegia"), tuple("aigedjbh")),
         (tuple("ee"), tuple("ee"))]


def random_model(seed=0):
    torch.manual_seed(seed)
    return CausalLM(len(VOCAB), **{**MODEL, "num_layers": 1}, pad_id=Vocab.PAD).eval()


@pytest.mark.parametrize("side", ["left", "right"])
def test_lm_batch_labels_the_answer_only(side):
    batch = lm_batch(PAIRS, VOCAB, padding_side=side)
    for row, (src, tgt) in enumerate(PAIRS):
        real = batch.ids[row][~batch.key_padding_mask[row]]
        expected = [Vocab.BOS, *VOCAB.encode(src), VOCAB.stoi["="], *VOCAB.encode(tgt), Vocab.EOS]
        assert real.tolist() == expected
        labelled = batch.labels[row][batch.labels[row] != IGNORE_INDEX]
        assert labelled.tolist() == [*VOCAB.encode(tgt), Vocab.EOS]
    assert torch.equal(batch.labels != IGNORE_INDEX, batch.answer_mask)
    everything = lm_batch(PAIRS, VOCAB, padding_side=side, train_on_prompt=True)
    trained = everything.labels != IGNORE_INDEX
    assert torch.equal(trained, ~batch.key_padding_mask & (batch.ids != Vocab.BOS))


def test_prompt_batch_and_its_errors():
    ids, padding = prompt_batch(PAIRS, VOCAB)
    assert ids.shape == (3, 10) and torch.all(ids[:, -1] == VOCAB.stoi["="])
    assert torch.equal(padding, ids == Vocab.PAD)
    with pytest.raises(ValueError, match="padding_side"):
        prompt_batch(PAIRS, VOCAB, padding_side="middle")
    with pytest.raises(ValueError, match="pairs"):
        lm_batch([], VOCAB)


def test_naive_generation_matches_generate_only_when_left_padded_with_mask_positions():
    model = random_model()
    ids, padding = prompt_batch(PAIRS, VOCAB)
    right = generate(model, ids, padding, max_new_tokens=5)
    assert torch.equal(naive_generate(model, ids, padding, max_new_tokens=5), right)
    reference = alone(model, PAIRS, VOCAB, max_new_tokens=5)
    assert torch.equal(right, reference)
    assert not differs_from_alone(right, reference).any()
    with pytest.raises(ValueError, match="positions"):
        naive_generate(model, ids, padding, max_new_tokens=2, positions="arange")
    with pytest.raises(ValueError, match="batched: expected shape"):
        differs_from_alone(right[:, :2], reference)


def test_gpt2_copy_has_the_same_logits_and_generation():
    pytest.importorskip("transformers")
    model = random_model(1)
    gpt2 = to_gpt2(model)
    batch = lm_batch(PAIRS, VOCAB, padding_side="left")
    positions = position_ids_from_padding(batch.key_padding_mask)
    with torch.no_grad():
        ours = model(batch.ids, key_padding_mask=batch.key_padding_mask, position_ids=positions)
        theirs = gpt2(input_ids=batch.ids, attention_mask=(~batch.key_padding_mask).long(),
                      position_ids=positions).logits
    real = ~batch.key_padding_mask
    assert torch.allclose(ours[real], theirs[real], atol=1e-5)
    ids, padding = prompt_batch(PAIRS, VOCAB)
    hf = gpt2.generate(input_ids=ids, attention_mask=(~padding).long(), max_new_tokens=6,
                       do_sample=False, pad_token_id=Vocab.PAD, eos_token_id=None)
    assert torch.equal(hf[:, ids.shape[1]:], generate(model, ids, padding, max_new_tokens=6))
    with pytest.raises(TypeError, match="model: expected a CausalLM"):
        to_gpt2(torch.nn.Linear(2, 2))


def test_hf_log_messages_collects_what_transformers_logs():
    pytest.importorskip("transformers")
    from transformers.utils import logging as hf_logging

    with hf_log_messages() as messages:
        hf_logging.get_logger("transformers.generation.utils").warning("right-padding test")
    assert messages == ["right-padding test"]


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("side", ["left", "right"])
def test_explorer_state_shows_the_step_mask(side, use_cache):
    for step in range(NEW_TOKENS):
        state = batch_at_step(side, "from the mask", use_cache, step)
        keys = state["ids"].shape[1]
        queries = 1 if use_cache and step else keys
        assert state["blocked"].shape == (len(PROMPTS), queries, keys)
        padding = state["key_padding_mask"]
        assert state["blocked"][padding[:, None, :].expand(-1, queries, -1)].all()  # PAD keys
        assert torch.equal(state["blocked"][:, -1], padding)  # the newest query: only PAD blocked
    with pytest.raises(ValueError, match="step"):
        batch_at_step(side, "from the mask", use_cache, NEW_TOKENS)
