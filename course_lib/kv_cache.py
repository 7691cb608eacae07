"""Step-by-step decoders: one new token in, next-token logits out.

Two decoders with the same interface, ``step(tokens) -> logits`` and ``reorder(index)``:

* :class:`IncrementalDecoder`, a key/value cache for :class:`~course_lib.models.Seq2SeqTransformer`,
  written from the decoder layers' own weights. The cross-attention keys and values are
  computed ONCE per layer from the encoder memory; the self-attention keys and values of the
  prefix are kept and ONE new row is appended per step. Each step runs the decoder on the new
  token only: no causal mask is needed (a single query may see every cached key, all in its
  past); PAD keys of the prefix (``token == pad_id``, as the uncached ``tgt_key_padding_mask``)
  and source PAD keys (``memory_key_padding_mask``) are blocked exactly as without the cache.
* :class:`PrefixDecoder`, for any model with the ``encode`` / ``decode`` interface (an RNN
  seq2seq, whose memory may be a tuple): it keeps the prefix and re-runs ``decode`` on all of
  it at every step, with the causal ``tgt_mask`` and both padding masks.

:func:`start_decoder` encodes a batch of sources and returns the right one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib._checks import check_tensor
from course_lib.masks import causal_mask, padding_mask
from course_lib.models import Seq2SeqTransformer

__all__ = ["supports_kv_cache", "IncrementalDecoder", "PrefixDecoder", "start_decoder"]


def supports_kv_cache(model: torch.nn.Module) -> bool:
    """True if ``model`` is a :class:`Seq2SeqTransformer` whose decoder layers the cache can
    replay: post-norm (``norm_first=False``), batch-first attention with packed q/k/v
    projections with biases, no ``add_bias_kv`` / ``add_zero_attn``."""
    if not isinstance(model, Seq2SeqTransformer):
        return False
    for layer in model.transformer.decoder.layers:
        for attention in (layer.self_attn, layer.multihead_attn):
            if (not attention.batch_first or not attention._qkv_same_embed_dim
                    or attention.in_proj_bias is None or attention.bias_k is not None
                    or attention.add_zero_attn):
                return False
        if layer.norm_first:
            return False
    return True


def _check_index(index: object, rows: int) -> torch.Tensor:
    check_tensor("index", index, ndim=1)
    if index.dtype.is_floating_point or index.dtype == torch.bool:
        raise TypeError(f"index: expected integer row numbers, got a {index.dtype} tensor")
    if index.numel() and not 0 <= int(index.min()) <= int(index.max()) < rows:
        raise ValueError(f"index: expected row numbers in 0..{rows - 1}, got values in "
                         f"{int(index.min())}..{int(index.max())}")
    return index


class IncrementalDecoder:
    """The decoder of a :class:`Seq2SeqTransformer`, one token per step, with a KV cache.

    Equal to ``model.decode`` on the whole prefix (with ``causal_mask``, the prefix's padding
    mask and ``memory_key_padding_mask``) at its last position, to float rounding (< 1e-5).
    Computes the eval-mode (dropout-free) decoder.

    Args:
        model: a :class:`Seq2SeqTransformer` (see :func:`supports_kv_cache`).
        memory: FloatTensor[B, S, d_model], ``model.encode(src, src_key_padding_mask)``.
        memory_key_padding_mask: BoolTensor[B, S], True at source PAD; None reads every
            source position, PAD included (an ablation).

    Attributes:
        length: the number of tokens fed so far (the prefix length, BOS included).
        self_keys, self_values: per layer, FloatTensor[B, H, capacity, d_model / H]; the
            first ``length`` positions are filled.
        prefix_padding: BoolTensor[B, capacity], True where the fed token was PAD.
        cross_keys, cross_values: per layer, FloatTensor[B, H, S, d_model / H], computed once.
    """

    def __init__(self, model: Seq2SeqTransformer, memory: torch.Tensor,
                 memory_key_padding_mask: torch.Tensor | None) -> None:
        if not supports_kv_cache(model):
            raise TypeError(f"model: expected a post-norm Seq2SeqTransformer, got "
                            f"{type(model).__name__}; use PrefixDecoder for other models")
        check_tensor("memory", memory, ndim=3)
        batch, source_len, d_model = memory.shape
        if memory_key_padding_mask is not None and memory_key_padding_mask.shape != (
                batch, source_len):
            raise ValueError(f"memory_key_padding_mask: expected shape {[batch, source_len]} "
                             f"(one row per source), got {list(memory_key_padding_mask.shape)}")
        self.model = model
        self.layers = list(model.transformer.decoder.layers)
        self.heads = self.layers[0].self_attn.num_heads
        self.length = 0
        capacity, head_dim = model.max_len, d_model // self.heads
        self.self_keys = [memory.new_zeros(batch, self.heads, capacity, head_dim)
                          for _ in self.layers]
        self.self_values = [torch.zeros_like(keys) for keys in self.self_keys]
        self.prefix_padding = torch.zeros(batch, capacity, dtype=torch.bool, device=memory.device)
        self.cross_keys, self.cross_values = [], []
        for layer in self.layers:  # the only time the memory goes through the k/v projections
            attention = layer.multihead_attn
            _, key_values = attention.in_proj_weight.split([d_model, 2 * d_model])
            _, key_value_bias = attention.in_proj_bias.split([d_model, 2 * d_model])
            keys, values = F.linear(memory, key_values, key_value_bias).chunk(2, dim=-1)
            self.cross_keys.append(self._split_heads(keys))
            self.cross_values.append(self._split_heads(values))
        # F.scaled_dot_product_attention takes the OPPOSITE bool convention: True = allowed.
        self.memory_allowed = (None if memory_key_padding_mask is None
                               else ~memory_key_padding_mask[:, None, None, :])

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, E] -> [B, H, L, E/H]
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    @staticmethod
    def _merge_heads(x: torch.Tensor) -> torch.Tensor:  # [B, H, L, E/H] -> [B, L, E]
        return x.transpose(1, 2).flatten(2)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (LongTensor[B]); return the next-token logits [B, vocab]."""
        check_tensor("tokens", tokens, ndim=1)
        model, t = self.model, self.length
        if t >= model.max_len:
            raise ValueError(f"tgt_in: length {t + 1} exceeds the positional encoding's "
                             f"max_len={model.max_len}; build the model with a larger max_len")
        x = model.tgt_embedding(tokens)[:, None] + model.positions[t]  # [B, 1, E]
        self.prefix_padding[:, t] = tokens == model.pad_id
        allowed = ~self.prefix_padding[:, None, None, : t + 1]  # [B, 1, 1, t + 1]
        for i, layer in enumerate(self.layers):
            attention = layer.self_attn
            query, key, value = F.linear(x, attention.in_proj_weight,
                                         attention.in_proj_bias).chunk(3, dim=-1)
            self.self_keys[i][:, :, t] = key[:, 0].unflatten(-1, (self.heads, -1))
            self.self_values[i][:, :, t] = value[:, 0].unflatten(-1, (self.heads, -1))
            attended = F.scaled_dot_product_attention(
                self._split_heads(query), self.self_keys[i][:, :, : t + 1],
                self.self_values[i][:, :, : t + 1], attn_mask=allowed)
            x = layer.norm1(x + attention.out_proj(self._merge_heads(attended)))
            attention = layer.multihead_attn
            d_model = x.shape[-1]
            query = F.linear(x, attention.in_proj_weight[:d_model],
                             attention.in_proj_bias[:d_model])
            attended = F.scaled_dot_product_attention(
                self._split_heads(query), self.cross_keys[i], self.cross_values[i],
                attn_mask=self.memory_allowed)
            x = layer.norm2(x + attention.out_proj(self._merge_heads(attended)))
            x = layer.norm3(x + layer.linear2(layer.activation(layer.linear1(x))))
        norm = model.transformer.decoder.norm
        if norm is not None:
            x = norm(x)
        self.length += 1
        return model.generator(x[:, 0])

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows ``index`` (LongTensor[N]) of every cached tensor, in that order.

        Beam search calls it with the flat row of each surviving hypothesis' parent
        (``source * beam_size + beam``): the cache then follows its hypotheses.
        """
        index = _check_index(index, self.prefix_padding.shape[0])
        for cached in (self.self_keys, self.self_values, self.cross_keys, self.cross_values):
            cached[:] = [tensor.index_select(0, index) for tensor in cached]
        self.prefix_padding = self.prefix_padding.index_select(0, index)
        if self.memory_allowed is not None:
            self.memory_allowed = self.memory_allowed.index_select(0, index)


class PrefixDecoder:
    """No cache: keeps the prefix and re-runs ``model.decode`` on all of it at every step.

    Works for any model with ``decode(tgt_in, memory, *, tgt_mask, tgt_key_padding_mask,
    memory_key_padding_mask)`` and ``pad_id``; ``memory`` may be a tensor or a tuple, and is
    passed through untouched.

    Args:
        model, memory, memory_key_padding_mask: as for :class:`IncrementalDecoder`
            (``memory`` is whatever ``model.encode`` returned).
    """

    def __init__(self, model: torch.nn.Module, memory, memory_key_padding_mask) -> None:
        self.model, self.memory = model, memory
        self.memory_key_padding_mask = memory_key_padding_mask
        self.prefix: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.prefix is None else self.prefix.shape[1]

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (LongTensor[B]); return the next-token logits [B, vocab]."""
        check_tensor("tokens", tokens, ndim=1)
        self.prefix = (tokens[:, None] if self.prefix is None
                       else torch.cat([self.prefix, tokens[:, None]], dim=1))
        logits = self.model.decode(
            self.prefix, self.memory,
            tgt_mask=causal_mask(self.prefix.shape[1], device=self.prefix.device),
            tgt_key_padding_mask=padding_mask(self.prefix, self.model.pad_id),
            memory_key_padding_mask=self.memory_key_padding_mask)
        return logits[:, -1]

    def reorder(self, index: torch.Tensor) -> None:
        """Reorder the prefix rows (LongTensor[B], a permutation inside each source's beams).

        Only the prefix moves: beam search never sends a hypothesis to another source, and
        all beams of one source share identical memory rows, whatever the memory's structure.
        """
        if self.prefix is not None:
            index = _check_index(index, self.prefix.shape[0])
            if index.numel() != self.prefix.shape[0]:
                raise ValueError(f"index: expected {self.prefix.shape[0]} rows (a permutation "
                                 f"of beams), got {index.numel()}")
            self.prefix = self.prefix.index_select(0, index)


def start_decoder(model: torch.nn.Module, src: torch.Tensor, *,
                  use_cache: bool = True) -> IncrementalDecoder | PrefixDecoder:
    """Encode ``src`` (LongTensor[B, S], right-padded with ``model.pad_id``) and return a
    step decoder: an :class:`IncrementalDecoder` when ``use_cache`` and the model supports
    it (:func:`supports_kv_cache`), else a :class:`PrefixDecoder`. Both get the source's
    padding mask as ``memory_key_padding_mask``."""
    check_tensor("src", src, ndim=2)
    if src.dtype.is_floating_point or src.dtype == torch.bool:
        raise TypeError(f"src: expected integer token ids, got a {src.dtype} tensor")
    src_key_padding_mask = padding_mask(src, model.pad_id)
    memory = model.encode(src, src_key_padding_mask)
    if use_cache and supports_kv_cache(model):
        return IncrementalDecoder(model, memory, src_key_padding_mask)
    return PrefixDecoder(model, memory, src_key_padding_mask)

