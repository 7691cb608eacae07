"""Lesson 09's helpers: the reverse task as prompt -> answer for a decoder-only model, its
batches (either padding side), its cached trained model, and the copy into Hugging Face GPT-2.

One sequence is ``<bos> a b c = c b a <eos>``: the prompt is ``<bos> a b c =``, the answer
``c b a <eos>``. Training batches are right-padded and labelled on the answer only (``-100``
on the prompt and on PAD); generation batches hold the prompts, left-padded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch

from course_lib.causal_lm import (
    IGNORE_INDEX,
    CausalLM,
    generate,
    lm_loss,
    position_ids_from_padding,
)
from course_lib.data import LETTERS, Pair, Vocab, make_pairs
from course_lib.recipes import cache_dir
from course_lib.training import History, load_checkpoint, save_checkpoint, set_seed, train

__all__ = ["SEPARATOR", "TASK", "MODEL", "TRAINING", "lm_vocab", "LMBatch", "lm_batch",
           "prompt_batch", "lm_stream", "held_out_prompts", "exact_match", "train_causal_lm",
           "trained_causal_lm", "to_gpt2", "POSITIONS", "naive_generate", "alone",
           "differs_from_alone", "hf_log_messages"]

POSITIONS = ("from the mask", "0..L-1")

SEPARATOR = "="
TASK = {"task": "reverse", "min_len": 3, "max_len": 8}
MODEL = {"d_model": 64, "nhead": 4, "num_layers": 2, "dim_feedforward": 128, "dropout": 0.0,
         "max_len": 2 * TASK["max_len"] + 3}
TRAINING = {"batch_size": 128, "steps": 300, "lr": 3e-3, "warmup_steps": 30,
            "weight_decay": 0.01, "clip_norm": 1.0}


def lm_vocab() -> Vocab:
    """The four special tokens, the letters a-j (ids 4-13) and the separator ``=`` (14)."""
    return Vocab((*LETTERS, SEPARATOR))


class LMBatch(NamedTuple):
    """A batch for a decoder-only model.

    ids: LongTensor[B, L]; key_padding_mask: BoolTensor[B, L], True at PAD; labels:
    LongTensor[B, L], the ids where trained and ``-100`` elsewhere; answer_mask:
    BoolTensor[B, L], True at the answer's tokens; prompt_lengths: LongTensor[B].
    """

    ids: torch.Tensor
    key_padding_mask: torch.Tensor
    labels: torch.Tensor
    answer_mask: torch.Tensor
    prompt_lengths: torch.Tensor


def _check_side(padding_side: str) -> None:
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side: expected 'left' or 'right', got {padding_side!r}")


def _pad(rows: Sequence[list[int]], padding_side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), Vocab.PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        start = width - len(row) if padding_side == "left" else 0
        ids[i, start:start + len(row)] = torch.tensor(row)
    padding = torch.ones_like(ids, dtype=torch.bool)
    for i, row in enumerate(rows):
        start = width - len(row) if padding_side == "left" else 0
        padding[i, start:start + len(row)] = False
    return ids, padding


def lm_batch(pairs: Sequence[Pair], vocab: Vocab, *, padding_side: str = "right",
             train_on_prompt: bool = False) -> LMBatch:
    """Whole sequences ``<bos> src = tgt <eos>``, padded on ``padding_side``.

    The labels are the answer's tokens (``tgt <eos>``) and ``-100`` elsewhere; with
    ``train_on_prompt`` the prompt's tokens after ``<bos>`` are labelled too (PAD never).
    """
    _check_side(padding_side)
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one (src, tgt) pair, got none")
    prompts = [[Vocab.BOS, *vocab.encode(src), vocab.stoi[SEPARATOR]] for src, _ in pairs]
    answers = [[*vocab.encode(tgt), Vocab.EOS] for _, tgt in pairs]
    ids, padding = _pad([p + a for p, a in zip(prompts, answers, strict=True)], padding_side)
    answer_mask = torch.zeros_like(padding)
    prompt_lengths = torch.tensor([len(p) for p in prompts])
    for row, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        start = (ids.shape[1] - len(prompt) - len(answer) if padding_side == "left" else 0)
        answer_mask[row, start + len(prompt):start + len(prompt) + len(answer)] = True
    trained = (~padding if train_on_prompt else answer_mask).clone()
    if train_on_prompt:  # <bos> is never a target: nothing comes before it
        trained[torch.arange(len(pairs)), (padding.long().sum(1) if padding_side == "left"
                                           else torch.zeros(len(pairs), dtype=torch.long))] = False
    return LMBatch(ids, padding, ids.masked_fill(~trained, IGNORE_INDEX), answer_mask,
                   prompt_lengths)


def prompt_batch(pairs: Sequence[Pair], vocab: Vocab, *,
                 padding_side: str = "left") -> tuple[torch.Tensor, torch.Tensor]:
    """The prompts ``<bos> src =`` as ``(ids [B, L], key_padding_mask [B, L])``."""
    _check_side(padding_side)
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one (src, tgt) pair, got none")
    return _pad([[Vocab.BOS, *vocab.encode(src), vocab.stoi[SEPARATOR]] for src, _ in pairs],
                padding_side)


def lm_stream(vocab: Vocab, batch_size: int, *, seed: int, disjoint_from: Sequence[Pair] = (),
              train_on_prompt: bool = False) -> Iterator[LMBatch]:
    """Endless right-padded training batches of fresh pairs, none of ``disjoint_from``."""
    excluded = {src for src, _ in disjoint_from}
    generator = torch.Generator().manual_seed(seed)
    alphabet = LETTERS
    while True:
        pairs = []
        while len(pairs) < batch_size:
            length = int(torch.randint(TASK["min_len"], TASK["max_len"] + 1, (1,),
                                       generator=generator))
            src = tuple(alphabet[i] for i in torch.randint(len(alphabet), (length,),
                                                           generator=generator).tolist())
            if src not in excluded:
                pairs.append((src, src[::-1]))
        yield lm_batch(pairs, vocab, train_on_prompt=train_on_prompt)


def held_out_prompts() -> tuple[list[Pair], list[Pair]]:
    """(validation, test): 500 and 2,000 pairs that training never sees."""
    pairs = make_pairs(n=2500, seed=9_009, **TASK)
    return pairs[:500], pairs[500:]


@torch.no_grad()
def exact_match(model: CausalLM, pairs: Sequence[Pair], vocab: Vocab, *,
                use_cache: bool = True) -> float:
    """Share of ``pairs`` whose greedy answer (left-padded batched generation) is exactly
    ``tgt <eos>``."""
    ids, padding = prompt_batch(pairs, vocab)
    longest = max(len(tgt) for _, tgt in pairs) + 1
    answers = generate(model, ids, padding, max_new_tokens=longest, use_cache=use_cache,
                       eos_id=Vocab.EOS)
    right = 0
    for row, (_, tgt) in enumerate(pairs):
        expected = [*vocab.encode(tgt), Vocab.EOS]
        got = answers[row].tolist()
        right += got[:len(expected)] == expected
    return right / len(pairs)


def _loss(model: CausalLM, batch: LMBatch) -> torch.Tensor:
    return lm_loss(model(batch.ids, key_padding_mask=batch.key_padding_mask), batch.labels)


def train_causal_lm(seed: int = 0, *, train_on_prompt: bool = False, steps: int | None = None,
                    progress: bool = True) -> tuple[CausalLM, History]:
    """Train the lesson's :class:`CausalLM` on the answer-only loss (or the prompt too)."""
    vocab = lm_vocab()
    set_seed(seed)
    model = CausalLM(len(vocab), **MODEL, pad_id=Vocab.PAD)
    validation, test = held_out_prompts()
    config = {k: v for k, v in TRAINING.items() if k != "batch_size"}
    if steps is not None:
        config["steps"] = steps
    stream = lm_stream(vocab, TRAINING["batch_size"], seed=seed,
                       disjoint_from=validation + test, train_on_prompt=train_on_prompt)
    history = train(model, stream, loss_fn=_loss, progress=progress, **config)
    return model, history


def trained_causal_lm(seed: int = 0, *, progress: bool = True) -> CausalLM:
    """The lesson's trained model, from the cache (``recipes.cache_dir()``) or trained once."""
    vocab = lm_vocab()
    recipe = json.dumps({"task": TASK, "model": MODEL, "training": TRAINING, "seed": seed,
                         "vocab": vocab.itos, "torch": torch.__version__}, sort_keys=True)
    path = cache_dir() / f"causal-lm-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}.pt"
    if path.exists():
        return load_checkpoint(path, CausalLM(len(vocab), **MODEL, pad_id=Vocab.PAD)).eval()
    model, _ = train_causal_lm(seed, progress=progress)
    save_checkpoint(model, path)
    return model.eval()


def to_gpt2(model: CausalLM):
    """The same network as a Hugging Face ``GPT2LMHeadModel``, weights copied (eval mode).

    GPT-2's block is this course's block: pre-norm, learned positions, no bias in the head;
    its activation is set to the exact GELU (``activation_function="gelu"``) like
    ``nn.GELU()``, and its ``Conv1D`` layers store the transposed weights of ``nn.Linear``.
    Needs ``transformers``; builds from a config, downloads nothing.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    if not isinstance(model, CausalLM):
        raise TypeError(f"model: expected a CausalLM, got {type(model).__name__}")
    c = model.config
    config = GPT2Config(vocab_size=c["vocab_size"], n_positions=c["max_len"], n_embd=c["d_model"],
                        n_layer=c["num_layers"], n_head=c["nhead"], n_inner=c["dim_feedforward"],
                        activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=False,
                        pad_token_id=c["pad_id"], bos_token_id=Vocab.BOS,
                        eos_token_id=Vocab.EOS)
    gpt2 = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        gpt2.transformer.wte.weight.copy_(model.token_embedding.weight)
        gpt2.transformer.wpe.weight.copy_(model.position_embedding.weight)
        for ours, theirs in zip(model.blocks, gpt2.transformer.h, strict=True):
            pairs = [(ours.attention_norm, theirs.ln_1), (ours.feedforward_norm, theirs.ln_2)]
            for norm, hf_norm in pairs:
                hf_norm.weight.copy_(norm.weight)
                hf_norm.bias.copy_(norm.bias)
            for linear, conv in [(ours.qkv, theirs.attn.c_attn),
                                 (ours.attention_out, theirs.attn.c_proj),
                                 (ours.feedforward[0], theirs.mlp.c_fc),
                                 (ours.feedforward[2], theirs.mlp.c_proj)]:
                conv.weight.copy_(linear.weight.T)
                conv.bias.copy_(linear.bias)
        gpt2.transformer.ln_f.weight.copy_(model.norm.weight)
        gpt2.transformer.ln_f.bias.copy_(model.norm.bias)
        gpt2.lm_head.weight.copy_(model.head.weight)
    return gpt2


@torch.no_grad()
def naive_generate(model: CausalLM, ids: torch.Tensor, key_padding_mask: torch.Tensor, *,
                   max_new_tokens: int, positions: str = "from the mask") -> torch.Tensor:
    """Greedy generation the way a first attempt writes it, for any padding side: append each
    new token at the END of the row and read the next one at the last position, with the
    padding mask and ``positions`` ("from the mask" or "0..L-1", GPT-2's default). Without a
    cache. Right padding makes the last position a PAD for every shorter row.

    Returns:
        LongTensor[B, max_new_tokens].
    """
    if positions not in POSITIONS:
        raise ValueError(f"positions: expected one of {POSITIONS}, got {positions!r}")
    was_training = model.training
    model.eval()
    sequence, padding = ids, key_padding_mask
    new = []
    for _ in range(max_new_tokens):
        position_ids = position_ids_from_padding(padding) if positions == "from the mask" \
            else None
        logits = model(sequence, key_padding_mask=padding, position_ids=position_ids)
        token = logits[:, -1].argmax(dim=-1, keepdim=True)
        new.append(token)
        sequence = torch.cat([sequence, token], dim=1)
        padding = torch.cat([padding, torch.zeros_like(token, dtype=torch.bool)], dim=1)
    model.train(was_training)
    return torch.cat(new, dim=1)


@torch.no_grad()
def alone(model: CausalLM, pairs: Sequence[Pair], vocab: Vocab, *,
          max_new_tokens: int) -> torch.Tensor:
    """LongTensor[B, max_new_tokens]: each prompt generated alone (a batch of one, no PAD)."""
    rows = []
    for pair in pairs:
        ids, padding = prompt_batch([pair], vocab)
        rows.append(generate(model, ids, padding, max_new_tokens=max_new_tokens))
    return torch.cat(rows)


def differs_from_alone(batched: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """BoolTensor[B]: rows whose generated tokens differ from the prompt alone anywhere."""
    if batched.shape != reference.shape:
        raise ValueError(f"batched: expected shape {list(reference.shape)} like reference, got "
                         f"{list(batched.shape)}")
    return (batched != reference).any(dim=1)


@contextlib.contextmanager
def hf_log_messages() -> Iterator[list[str]]:
    """Collect what Hugging Face transformers logs inside the block (it warns about right
    padding through its logger, not Python's ``warnings``), instead of printing it to stderr."""
    from transformers.utils import logging as hf_logging

    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect()
    root = hf_logging.get_logger("transformers")
    hf_logging.disable_default_handler()
    root.addHandler(handler)
    try:
        yield messages
    finally:
        root.removeHandler(handler)
        hf_logging.enable_default_handler()
