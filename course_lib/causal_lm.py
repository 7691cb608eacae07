"""A decoder-only (GPT-style) language model, its one mask, and batched generation.

A decoder-only model needs one mask, built in one place (:func:`decoder_mask`): a query may
see a key only if the key is not in its future (causal) and is not PAD (key padding). With a
KV cache the keys are the cached ones plus the new ones, so the queries are fewer than the
keys and the causal part is aligned to the **bottom right** (:func:`causal_mask_lower_right`):
the last query is the newest position and sees every key.

Batched generation needs **left** padding: every row's last position is then its last real
token, and new tokens follow real tokens, not PAD. Left padding shifts each row's real tokens
to the right, so the position ids must come from the padding mask
(:func:`position_ids_from_padding`); :class:`CausalLM`'s default positions are ``0..L-1``, as
GPT-2's forward, which is right only for rows without left padding. :func:`generate` does
both and refuses right padding.

Conventions are the course's: ``key_padding_mask`` is a BoolTensor[B, L], True at PAD
(convert a Hugging Face ``attention_mask`` with :func:`course_lib.masks.from_hf`); a bool
attention mask is True where attention is BLOCKED.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._checks import check_bool_mask, check_tensor, check_token_ids

__all__ = ["IGNORE_INDEX", "CausalLM", "KVCache", "causal_mask_lower_right", "decoder_mask",
           "position_ids_from_padding", "last_real_index", "check_left_padded", "lm_loss",
           "generate"]

IGNORE_INDEX = -100  # a label that is not trained on (``F.cross_entropy``'s default)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


def causal_mask_lower_right(num_queries: int, num_keys: int, *,
                            device: torch.device | str | None = None) -> torch.Tensor:
    """BoolTensor[num_queries, num_keys], True = blocked, causal aligned to the bottom right.

    The queries are the LAST ``num_queries`` positions of the ``num_keys`` keys (new tokens
    appended to a cache): query i may see keys ``j <= i + num_keys - num_queries``, so the
    last query sees every key. Equal to ``~torch.nn.attention.bias.causal_lower_right(
    num_queries, num_keys)._materialize()``. SDPA's ``is_causal=True`` aligns to the top left
    instead (query i sees keys ``j <= i``), which is right only when the counts are equal.
    """
    _check_int("num_queries", num_queries, 1)
    _check_int("num_keys", num_keys, 1)
    if num_queries > num_keys:
        raise ValueError(f"num_queries: expected at most num_keys = {num_keys} (queries are "
                         f"the newest keys), got {num_queries}")
    return torch.ones(num_queries, num_keys, dtype=torch.bool, device=device).triu(
        diagonal=num_keys - num_queries + 1)


def decoder_mask(key_padding_mask: torch.Tensor, *, num_queries: int | None = None) -> torch.Tensor:
    """The one mask of a decoder-only model: causal (bottom-right aligned) or PAD key.

    Args:
        key_padding_mask: BoolTensor[B, Lk], True at PAD, for EVERY key: the cached ones
            first, then the new ones.
        num_queries: how many of the last keys are queries (the new tokens); default Lk.

    Returns:
        BoolTensor[B, 1, Lq, Lk], True = blocked (the head dimension broadcasts).
    """
    check_bool_mask("key_padding_mask", key_padding_mask, ndim=2)
    num_keys = key_padding_mask.shape[1]
    num_queries = num_keys if num_queries is None else num_queries
    causal = causal_mask_lower_right(num_queries, num_keys, device=key_padding_mask.device)
    return causal[None, None] | key_padding_mask[:, None, None, :]


def position_ids_from_padding(key_padding_mask: torch.Tensor) -> torch.Tensor:
    """LongTensor[B, L]: each row's real tokens numbered 0, 1, 2, ... from its first one.

    The same as Hugging Face's ``attention_mask.cumsum(-1) - 1``; PAD positions get 0 (any
    valid id would do: a PAD key is blocked and a PAD output is never read). With left
    padding this gives every row the positions it would have alone; ``arange(L)`` would not.
    """
    check_bool_mask("key_padding_mask", key_padding_mask, ndim=2)
    return ((~key_padding_mask).long().cumsum(dim=1) - 1).masked_fill(key_padding_mask, 0)


def last_real_index(key_padding_mask: torch.Tensor) -> torch.Tensor:
    """LongTensor[B]: the position of each row's last real token (for any padding side).

    With left padding it is always ``L - 1``; with right padding ``logits[:, -1]`` reads a
    PAD position for every row shorter than the batch: read ``logits[arange(B), index]``.
    """
    check_bool_mask("key_padding_mask", key_padding_mask, ndim=2)
    if bool(key_padding_mask.all(dim=1).any()):
        raise ValueError("key_padding_mask: a row is all PAD, so it has no last real token")
    positions = torch.arange(key_padding_mask.shape[1], device=key_padding_mask.device)
    return positions.masked_fill(key_padding_mask, -1).amax(dim=1)


def check_left_padded(key_padding_mask: torch.Tensor) -> None:
    """Raise ValueError unless every row is PAD first, then real tokens (left padding)."""
    check_bool_mask("key_padding_mask", key_padding_mask, ndim=2)
    if bool(key_padding_mask.all(dim=1).any()):
        raise ValueError("key_padding_mask: a row is all PAD; every prompt needs a real token")
    after_real = key_padding_mask[:, 1:] & ~key_padding_mask[:, :-1]
    if bool(after_real.any()):
        row = int(after_real.any(dim=1).nonzero()[0])
        raise ValueError(
            f"key_padding_mask: row {row} has a PAD after a real token (right padding). Batched "
            "generation needs LEFT padding: PAD first, then the prompt, so that every row's last "
            "position is its last real token and the new tokens follow it")


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy, averaged over the labels that are not ``IGNORE_INDEX``.

    Args:
        logits: FloatTensor[B, L, V], ``model(ids)``.
        labels: LongTensor[B, L], aligned with the ids as in Hugging Face (``labels = ids``
            where trained, ``-100`` elsewhere: PAD, and the prompt when only the answer is
            trained); the shift happens here: position t predicts ``labels[:, t + 1]``.

    Returns:
        A scalar; 0 (with zero gradients) when every label is ignored.
    """
    check_tensor("logits", logits, ndim=3)
    check_tensor("labels", labels, ndim=2)
    if not logits.dtype.is_floating_point:
        raise TypeError(f"logits: expected a float tensor, got {logits.dtype}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels: expected integer token ids or {IGNORE_INDEX}, got {labels.dtype}")
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"labels: expected shape [B, L] = {list(logits.shape[:2])} like the "
                         f"logits, got {list(labels.shape)}")
    targets = labels[:, 1:]
    per_token = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none")
    return per_token.sum() / (targets != IGNORE_INDEX).sum().clamp(min=1)


class KVCache:
    """The keys and values a :class:`CausalLM` has seen, per layer, and which keys are PAD.

    Pass one to ``model(ids, ..., cache=cache)``: the call attends over the cached keys and
    the new ones, then appends the new ones. ``keys[layer]`` and ``values[layer]`` are
    FloatTensor[B, H, length, d_model / H]; ``key_padding_mask`` is BoolTensor[B, length],
    True at PAD, and covers every cached key.
    """

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.key_padding_mask: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """How many positions are cached."""
        return 0 if self.key_padding_mask is None else self.key_padding_mask.shape[1]


class _Block(nn.Module):
    """A pre-norm decoder block: x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.nhead, self.dropout = nhead, dropout
        self.attention_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attention_out = nn.Linear(d_model, d_model)
        self.feedforward_norm = nn.LayerNorm(d_model)
        self.feedforward = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.GELU(),
                                         nn.Linear(dim_feedforward, d_model))
        self.residual_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor, cache: KVCache | None,
                layer: int) -> torch.Tensor:
        batch, length, width = x.shape
        heads = self.qkv(self.attention_norm(x)).view(batch, length, 3, self.nhead, -1)
        q, k, v = heads.permute(2, 0, 3, 1, 4)  # each [B, H, L, D]
        if cache is not None:
            if layer < len(cache.keys):
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
                cache.keys[layer], cache.values[layer] = k, v
            else:
                cache.keys.append(k)
                cache.values.append(v)
        # SDPA's bool convention is True = ALLOWED; a row with no allowed key gives zeros.
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=~blocked, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.residual_dropout(
            self.attention_out(attended.transpose(1, 2).reshape(batch, length, width)))
        return x + self.residual_dropout(self.feedforward(self.feedforward_norm(x)))


class CausalLM(nn.Module):
    """A GPT-style decoder-only Transformer: token + learned position embeddings, pre-norm
    blocks with causal self-attention, a final LayerNorm and a linear head.

    Args:
        vocab_size: number of token ids.
        d_model, nhead, num_layers, dim_feedforward, dropout: as in ``nn.Transformer``
            (``d_model`` must be divisible by ``nhead``).
        max_len: the number of position ids (0..max_len-1) the position table holds.
        pad_id: the PAD id; its embedding row stays zero (``padding_idx``).
    """

    def __init__(self, vocab_size: int, *, d_model: int, nhead: int, num_layers: int,
                 dim_feedforward: int, dropout: float = 0.0, max_len: int,
                 pad_id: int = 0) -> None:
        super().__init__()
        _check_int("vocab_size", vocab_size, 2)
        for name, value in [("d_model", d_model), ("nhead", nhead), ("num_layers", num_layers),
                            ("dim_feedforward", dim_feedforward), ("max_len", max_len)]:
            _check_int(name, value, 1)
        if d_model % nhead:
            raise ValueError(f"nhead: expected a divisor of d_model = {d_model}, got {nhead}")
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) \
                or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        if isinstance(pad_id, bool) or not isinstance(pad_id, int) or not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id: expected an id inside the vocabulary, "
                             f"0..{vocab_size - 1}, got {pad_id!r}")
        self.config = {"vocab_size": vocab_size, "d_model": d_model, "nhead": nhead,
                       "num_layers": num_layers, "dim_feedforward": dim_feedforward,
                       "dropout": dropout, "max_len": max_len, "pad_id": pad_id}
        self.pad_id = pad_id
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.position_embedding = nn.Embedding(max_len, d_model)
        self.embedding_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(d_model, nhead, dim_feedforward, dropout)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)  # as GPT-2's head
        for module in self.modules():  # GPT-2's initialisation: N(0, 0.02) weights
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.token_embedding.weight[pad_id].zero_()

    def forward(self, ids: torch.Tensor, *, key_padding_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None,
                cache: KVCache | None = None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits, FloatTensor[B, L, vocab_size].

        Args:
            ids: LongTensor[B, L], the tokens (with a cache: the NEW tokens only).
            key_padding_mask: BoolTensor[B, L], True at PAD, for ``ids``; None = no PAD.
            position_ids: LongTensor[B, L]; default ``0..L-1`` in every row (continuing
                after the cache's length), as GPT-2's forward: right for unpadded or
                right-padded rows, wrong for left-padded ones (use
                :func:`position_ids_from_padding`).
            cache: a :class:`KVCache`, read and then extended with these positions.
            attn_mask: BoolTensor[B, L, L], True = blocked, used INSTEAD of the causal mask
                (the key padding is still applied): e.g. a packed batch's document mask
                (``course_lib.packing.document_mask(..., causal=True)``). Not with a cache.
        """
        check_token_ids("ids", ids, vocab_size=self.config["vocab_size"])
        batch, length = ids.shape
        past = 0 if cache is None else cache.length
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"cache: expected a KVCache, got {type(cache).__name__}")
        if key_padding_mask is None:
            key_padding_mask = torch.zeros_like(ids, dtype=torch.bool)
        check_bool_mask("key_padding_mask", key_padding_mask, ndim=2)
        if key_padding_mask.shape != ids.shape:
            raise ValueError(f"key_padding_mask: expected shape {list(ids.shape)} like ids, got "
                             f"{list(key_padding_mask.shape)}")
        if position_ids is None:
            position_ids = torch.arange(past, past + length, device=ids.device).expand(batch, -1)
        check_token_ids("position_ids", position_ids)
        if position_ids.shape != ids.shape:
            raise ValueError(f"position_ids: expected shape {list(ids.shape)} like ids, got "
                             f"{list(position_ids.shape)}")
        if int(position_ids.min()) < 0 or int(position_ids.max()) >= self.config["max_len"]:
            raise ValueError(f"position_ids: expected values in 0..{self.config['max_len'] - 1} "
                             f"(max_len), got {int(position_ids.min())}.."
                             f"{int(position_ids.max())}")
        all_keys = key_padding_mask
        if cache is not None and past:
            if cache.key_padding_mask.shape[0] != batch:
                raise ValueError(f"cache: holds {cache.key_padding_mask.shape[0]} rows but ids "
                                 f"has {batch}")
            all_keys = torch.cat([cache.key_padding_mask, key_padding_mask], dim=1)
        if attn_mask is None:
            blocked = decoder_mask(all_keys, num_queries=length)
        else:
            check_bool_mask("attn_mask", attn_mask, ndim=3)
            if cache is not None:
                raise ValueError("attn_mask: not supported with a cache (the cache step builds "
                                 "its own causal mask)")
            if attn_mask.shape != (batch, length, length):
                raise ValueError(f"attn_mask: expected [B, L, L] = {[batch, length, length]}, "
                                 f"got {list(attn_mask.shape)}")
            blocked = (attn_mask | key_padding_mask[:, None, :])[:, None]
        x = self.token_embedding(ids) + self.position_embedding(position_ids)
        x = self.embedding_dropout(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, blocked, cache, layer)
        if cache is not None:
            cache.key_padding_mask = all_keys
        return self.head(self.norm(x))


@torch.no_grad()
def generate(model: CausalLM, ids: torch.Tensor, key_padding_mask: torch.Tensor, *,
             max_new_tokens: int, use_cache: bool = True, eos_id: int | None = None
             ) -> torch.Tensor:
    """Batched greedy generation from a LEFT-padded batch of prompts.

    Positions come from the padding mask (:func:`position_ids_from_padding`), each new token
    taking the next one of its row; every step masks the PAD keys of the prompt. So each row
    gets exactly the tokens its prompt gets alone, with or without the cache (up to ties in
    the float rounding of two logits).

    Args:
        model: a :class:`CausalLM` (run in eval mode; its mode is restored).
        ids: LongTensor[B, L], the prompts, left-padded.
        key_padding_mask: BoolTensor[B, L], True at PAD; a PAD after a real token (right
            padding) is refused with a ValueError.
        max_new_tokens: how many tokens to generate per row.
        use_cache: keep the keys and values (a :class:`KVCache`) instead of re-running the
            whole sequence at every step.
        eos_id: a row that has generated it is finished and emits PAD from then on.

    Returns:
        LongTensor[B, max_new_tokens].
    """
    if not isinstance(model, CausalLM):
        raise TypeError(f"model: expected a CausalLM, got {type(model).__name__}")
    check_token_ids("ids", ids, vocab_size=model.config["vocab_size"])
    check_bool_mask("key_padding_mask", key_padding_mask, ndim=2)
    if key_padding_mask.shape != ids.shape:
        raise ValueError(f"key_padding_mask: expected shape {list(ids.shape)} like ids, got "
                         f"{list(key_padding_mask.shape)}")
    check_left_padded(key_padding_mask)
    _check_int("max_new_tokens", max_new_tokens, 1)
    if eos_id is not None and (isinstance(eos_id, bool) or not isinstance(eos_id, int)
                               or not 0 <= eos_id < model.config["vocab_size"]):
        raise ValueError(f"eos_id: expected None or an id in 0..{model.config['vocab_size'] - 1},"
                         f" got {eos_id!r}")
    longest = int((~key_padding_mask).sum(dim=1).max()) + max_new_tokens - 1
    if longest > model.config["max_len"]:
        raise ValueError(f"max_new_tokens: the longest prompt plus {max_new_tokens} new tokens "
                         f"needs {longest} positions, more than max_len = "
                         f"{model.config['max_len']}")
    was_training = model.training
    model.eval()
    pad = model.pad_id
    positions = position_ids_from_padding(key_padding_mask)
    next_position = (~key_padding_mask).sum(dim=1, keepdim=True)  # [B, 1]
    cache = KVCache() if use_cache else None
    sequence, padding = ids, key_padding_mask
    logits = model(ids, key_padding_mask=key_padding_mask, position_ids=positions, cache=cache)
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    tokens = torch.full((ids.shape[0], max_new_tokens), pad, dtype=torch.long, device=ids.device)
    for step in range(max_new_tokens):
        token = logits[:, -1].argmax(dim=-1).masked_fill(finished, pad)
        tokens[:, step] = token
        fed_padding = finished[:, None].clone()  # a finished row feeds PAD, masked as PAD
        if eos_id is not None:
            finished |= token == eos_id
        if step == max_new_tokens - 1 or bool(finished.all()):
            break
        token = token[:, None]
        if use_cache:
            logits = model(token, key_padding_mask=fed_padding, position_ids=next_position,
                           cache=cache)
        else:
            sequence = torch.cat([sequence, token], dim=1)
            padding = torch.cat([padding, fed_padding], dim=1)
            positions = torch.cat([positions, next_position], dim=1)
            logits = model(sequence, key_padding_mask=padding, position_ids=positions)
        next_position = next_position + 1
    model.train(was_training)
    return tokens
