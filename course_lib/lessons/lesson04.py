"""A small, real ``nn.Transformer`` on a fixed padded batch, and the six masks it can take.

Lesson 04 and its mask lab use this to look inside the three attention blocks:

============================  =========  =======================================
mask                          shape      attention block it reaches
============================  =========  =======================================
``src_mask``                  [S, S]     encoder self-attention
``src_key_padding_mask``      [B, S]     encoder self-attention
``tgt_mask``                  [T, T]     decoder self-attention
``tgt_key_padding_mask``      [B, T]     decoder self-attention
``memory_mask``               [T, S]     decoder cross-attention
``memory_key_padding_mask``   [B, S]     decoder cross-attention
============================  =========  =======================================

Masks follow the course convention: bool ``True`` = blocked.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from course_lib.data import Vocab
from course_lib.masks import causal_mask, merge, padding_mask

__all__ = [
    "MASK_NAMES",
    "BLOCKS",
    "ExampleBatch",
    "example_batch",
    "window_mask",
    "wait_k_mask",
    "example_masks",
    "TinySeq2Seq",
    "example_model",
    "blocked_cells",
    "AttentionCall",
    "record_attention_calls",
]

MASK_NAMES = ("src_mask", "tgt_mask", "memory_mask",
              "src_key_padding_mask", "tgt_key_padding_mask", "memory_key_padding_mask")
# block -> (the nn.MultiheadAttention inside layer i, its attn_mask, its key_padding_mask)
BLOCKS = {
    "encoder self-attention": ("encoder.layers.{}.self_attn", "src_mask", "src_key_padding_mask"),
    "decoder self-attention": ("decoder.layers.{}.self_attn", "tgt_mask", "tgt_key_padding_mask"),
    "cross-attention": ("decoder.layers.{}.multihead_attn", "memory_mask",
                        "memory_key_padding_mask"),
}

# A toy English -> German batch: the second pair is shorter, so both sides get PAD.
SOURCES = (("i", "want", "a", "coffee", "please", "<eos>"), ("good", "morning", "all", "<eos>"))
TARGETS_IN = (("<bos>", "ich", "will", "einen", "kaffee"), ("<bos>", "morgen", "zusammen"))
WINDOW_RADIUS = 2  # src_mask: each source token sees 2 neighbours on each side
WAIT_K = 2  # memory_mask: target step t reads only the first t + 2 source tokens


@dataclass(frozen=True)
class ExampleBatch:
    """A padded seq2seq batch: ``src`` LongTensor[B, S]; ``tgt`` LongTensor[B, T], the decoder
    input (BOS + target, shifted right)."""

    vocab: Vocab
    src: torch.Tensor
    tgt: torch.Tensor

    def src_tokens(self, b: int) -> list[str]:
        return self.vocab.decode(self.src[b])

    def tgt_tokens(self, b: int) -> list[str]:
        return self.vocab.decode(self.tgt[b])


def _pad(sequences, vocab: Vocab) -> torch.Tensor:
    length = max(len(s) for s in sequences)
    return torch.tensor([vocab.encode(s) + [Vocab.PAD] * (length - len(s)) for s in sequences])


def example_batch() -> ExampleBatch:
    """The lesson's batch: B = 2, S = 6, T = 5; element 1 has 2 PAD in ``src`` and 2 in ``tgt``."""
    words = [t for s in SOURCES + TARGETS_IN for t in s if t not in Vocab.SPECIALS]
    vocab = Vocab(dict.fromkeys(words))
    return ExampleBatch(vocab, _pad(SOURCES, vocab), _pad(TARGETS_IN, vocab))


def window_mask(size: int, radius: int) -> torch.Tensor:
    """Local-window ``src_mask``: BoolTensor[size, size], True where ``|i - j| > radius``.

    Each query sees only the keys at most ``radius`` positions away (sliding-window attention,
    as in Longformer's local attention).
    """
    for name, value, low in (("size", size, 1), ("radius", radius, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    positions = torch.arange(size)
    return (positions[:, None] - positions[None, :]).abs() > radius


def wait_k_mask(tgt_len: int, src_len: int, k: int) -> torch.Tensor:
    """A monotonic ``memory_mask``: BoolTensor[tgt_len, src_len], True where ``j >= t + k``.

    Target step t may read only the first ``t + k`` source tokens: the wait-k policy of
    simultaneous translation (Ma et al., 2019), where the decoder starts writing before
    the whole source sentence has arrived.
    """
    for name, value in (("tgt_len", tgt_len), ("src_len", src_len), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return torch.arange(src_len)[None, :] >= torch.arange(tgt_len)[:, None] + k


def example_masks(batch: ExampleBatch) -> dict[str, torch.Tensor]:
    """All six masks for ``batch``, bool (True = blocked), keyed by their ``nn.Transformer`` names.

    ``src_mask`` is a local window, ``memory_mask`` a wait-k constraint; ``tgt_mask`` is causal.
    """
    (_, src_len), (_, tgt_len) = batch.src.shape, batch.tgt.shape
    src_key_padding_mask = padding_mask(batch.src, Vocab.PAD)
    return {
        "src_mask": window_mask(src_len, WINDOW_RADIUS),
        "tgt_mask": causal_mask(tgt_len),
        "memory_mask": wait_k_mask(tgt_len, src_len, WAIT_K),
        "src_key_padding_mask": src_key_padding_mask,
        "tgt_key_padding_mask": padding_mask(batch.tgt, Vocab.PAD),
        # nn.Transformer does NOT reuse src_key_padding_mask here: it must be passed too.
        "memory_key_padding_mask": src_key_padding_mask,
    }


class TinySeq2Seq(nn.Module):
    """Token + learned position embeddings in front of a small ``nn.Transformer``.

    Args:
        vocab_size: number of token ids.
        d_model, nhead, num_layers, dim_feedforward: sizes of ``self.transformer``
            (``batch_first=True``, ``dropout=0.0``).
        max_len: the longest sequence the position embedding covers.
    """

    def __init__(self, vocab_size: int, *, d_model: int = 16, nhead: int = 2,
                 num_layers: int = 2, dim_feedforward: int = 32, max_len: int = 16) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=Vocab.PAD)
        self.position_embedding = nn.Embedding(max_len, d_model)
        self.transformer = nn.Transformer(
            d_model, nhead, num_encoder_layers=num_layers, num_decoder_layers=num_layers,
            dim_feedforward=dim_feedforward, dropout=0.0, batch_first=True)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """LongTensor[B, L] -> FloatTensor[B, L, d_model]."""
        return self.token_embedding(ids) + self.position_embedding(torch.arange(ids.shape[1]))

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, **masks) -> torch.Tensor:
        """src LongTensor[B, S], tgt LongTensor[B, T], masks as ``nn.Transformer.forward`` takes
        them -> decoder output FloatTensor[B, T, d_model]."""
        return self.transformer(self.embed(src), self.embed(tgt), **masks)


@functools.lru_cache(maxsize=1)
def example_model() -> TinySeq2Seq:
    """The lesson's model: untrained, seeded, in training mode (``dropout=0.0``: deterministic).

    Cached: every call returns the same object, so the mask lab builds it once. Do not train
    or modify it in place; ``copy.deepcopy`` it first.
    """
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        model = TinySeq2Seq(len(example_batch().vocab))
    finally:
        torch.random.set_rng_state(generator_state)  # the caller's random stream is untouched
    return model


def blocked_cells(masks: dict[str, torch.Tensor | None], block: str,
                  batch: ExampleBatch) -> torch.Tensor:
    """The cells a block's masks block, for every sequence: BoolTensor[B, Lq, Lk].

    Args:
        masks: ``nn.Transformer`` mask arguments by name (missing or None = not given), bool.
        block: a key of :data:`BLOCKS`.
        batch: the batch the masks belong to (gives B, S and T).
    """
    if block not in BLOCKS:
        raise ValueError(f"block: expected one of {list(BLOCKS)}, got {block!r}")
    (size, src_len), tgt_len = batch.src.shape, batch.tgt.shape[1]
    lq, lk = {"encoder self-attention": (src_len, src_len),
              "decoder self-attention": (tgt_len, tgt_len),
              "cross-attention": (tgt_len, src_len)}[block]
    _, attn_name, padding_name = BLOCKS[block]
    attn_mask, key_padding_mask = masks.get(attn_name), masks.get(padding_name)
    if attn_mask is None and key_padding_mask is None:
        return torch.zeros(size, lq, lk, dtype=torch.bool)
    return merge(attn_mask, key_padding_mask)[:, 0].expand(size, lq, lk)


@dataclass(frozen=True)
class AttentionCall:
    """What one ``nn.MultiheadAttention`` call received and returned (batch_first tensors)."""

    name: str
    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    attn_mask: torch.Tensor | None
    key_padding_mask: torch.Tensor | None
    is_causal: bool
    output: torch.Tensor


_MHA_SIGNATURE = inspect.signature(nn.MultiheadAttention.forward)


@contextlib.contextmanager
def record_attention_calls(module: nn.Module) -> Iterator[list[AttentionCall]]:
    """Record the inputs, masks and output of every ``nn.MultiheadAttention`` call in ``module``.

    Hooks only read: outputs do not change (apart from switching off the layers' fused fast
    path, as any hook does). Names are those of ``module.named_modules()``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module: expected an nn.Module, got {type(module).__name__}")
    calls: list[AttentionCall] = []
    handles = []
    for name, attention in module.named_modules():
        if isinstance(attention, nn.MultiheadAttention):
            handles.append(attention.register_forward_hook(
                functools.partial(_record, name=name or "self", calls=calls), with_kwargs=True))
    if not handles:
        raise ValueError(f"module: {type(module).__name__} contains no nn.MultiheadAttention")
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _record(attention, args, kwargs, output, *, name, calls):
    bound = _MHA_SIGNATURE.bind(attention, *args, **kwargs)
    bound.apply_defaults()
    given = bound.arguments
    calls.append(AttentionCall(name, given["query"], given["key"], given["value"],
                               given["attn_mask"], given["key_padding_mask"],
                               bool(given["is_causal"]), output[0]))
