"""Lesson 10's helpers: lesson 01's corpus packed, the proofs that nothing leaks, the three
batch layouts compared (PAD share, attention scores, real tokens per second), and one mask
in six attention APIs.

The model of the comparisons is lesson 09's :class:`~course_lib.causal_lm.CausalLM`, with
random weights (nothing here needs a trained model); the encoder is a plain
``nn.TransformerEncoder`` with embeddings (:class:`PackedEncoder`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.patches import Rectangle
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from course_lib.causal_lm import IGNORE_INDEX, CausalLM, lm_loss
from course_lib.data import Vocab, bucket_batches, random_batches, sample_lengths
from course_lib.masks import causal_mask, to_additive, to_hf_4d, to_mha, to_sdpa
from course_lib.packing import document_mask, document_mask_mod, pack, packed_labels
from course_lib.training import set_seed, train
from course_lib.viz import BLOCKED_STYLE

__all__ = ["CORPUS_SIZE", "MAX_LEN", "VOCAB_SIZE", "ROW_LEN", "BATCH_SIZE", "LAYOUTS",
           "corpus", "PackedEncoder", "let_pad_see_itself", "alone", "differs",
           "new_causal_lm", "Rows", "layouts", "pad_share", "attention_scores",
           "tokens_per_second", "SPELLINGS", "attend", "plot_documents"]

# Lesson 01's corpus: 4,000 sentences of 1-60 tokens (ids 4-99), most of them short.
CORPUS_SIZE, MAX_LEN, VOCAB_SIZE = 4000, 60, 100
ROW_LEN = 64  # a packed row: room for the longest sentence
BATCH_SIZE = 32  # lesson 01's batch size
LAYOUTS = ("random", "bucketed", "packed")
# Okabe-Ito colours (colour-blind safe), one per document, cycling; its vermillion is kept
# for what leaks (the packing explorer's cross-document cells).
DOCUMENT_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442",
                   "#999999"]


def corpus(n: int = CORPUS_SIZE, *, seed: int = 0) -> list[torch.Tensor]:
    """Lesson 01's sentences: lengths from ``sample_lengths(n, max_len=60, seed)``, random
    tokens 4..99 from a generator seeded ``seed``: the same tensors lesson 01 timed."""
    lengths = sample_lengths(n, max_len=MAX_LEN, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(4, VOCAB_SIZE, (length,), generator=generator) for length in lengths]


class PackedEncoder(nn.Module):
    """Token and learned position embeddings, then a ``nn.TransformerEncoder``.

    ``forward(ids, *, position_ids=None, mask=None, key_padding_mask=None)``: ids
    LongTensor[R, L]; position_ids default 0..L-1; ``mask`` BoolTensor[R, L, L], True =
    blocked, one mask per row (expanded to the heads with ``masks.to_mha``);
    ``key_padding_mask`` BoolTensor[R, L], True at PAD. Returns FloatTensor[R, L, d_model].
    """

    def __init__(self, vocab_size: int = VOCAB_SIZE, *, d_model: int = 32, nhead: int = 4,
                 num_layers: int = 2, max_len: int = ROW_LEN) -> None:
        super().__init__()
        self.nhead = nhead
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=Vocab.PAD)
        self.position_embedding = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, 2 * d_model, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward(self, ids: torch.Tensor, *, position_ids: torch.Tensor | None = None,
                mask: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if position_ids is None:
            position_ids = torch.arange(ids.shape[1]).expand_as(ids)
        x = self.token_embedding(ids) + self.position_embedding(position_ids)
        per_head = None if mask is None else to_mha(mask, self.nhead)
        return self.encoder(x, mask=per_head, src_key_padding_mask=key_padding_mask)


def let_pad_see_itself(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` [R, L, L] (True = blocked) with each query that has no allowed key allowed to
    see itself: a PAD query's output becomes finite garbage instead of NaN, and nothing real
    reads it (its key stays blocked for every other query)."""
    empty = mask.all(dim=-1, keepdim=True)  # [R, L, 1]
    eye = torch.eye(mask.shape[-1], dtype=torch.bool, device=mask.device)
    return mask & ~(empty & eye)


@torch.no_grad()
def alone(model: nn.Module, sequences: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each sequence run by itself (a batch of one, no PAD, positions 0..n-1):
    ``model(sequence[None])[0]``, the reference a packed batch must reproduce."""
    return [model(sequence[None])[0] for sequence in sequences]


def differs(outputs: Sequence[torch.Tensor], references: Sequence[torch.Tensor], *,
            atol: float = 1e-5) -> torch.Tensor:
    """BoolTensor[N]: which sequences' outputs differ from their reference by more than
    ``atol`` anywhere (NaN counts as different)."""
    return torch.tensor([not torch.allclose(out, ref, atol=atol, rtol=0)
                         for out, ref in zip(outputs, references, strict=True)])


def new_causal_lm(seed: int = 0) -> CausalLM:
    """The comparisons' model: lesson 09's CausalLM sized for lesson 01's vocabulary and
    rows, with random weights (seeded)."""
    set_seed(seed)
    return CausalLM(VOCAB_SIZE, d_model=64, nhead=4, num_layers=2, dim_feedforward=256,
                    max_len=ROW_LEN, pad_id=Vocab.PAD)


class Rows(NamedTuple):
    """One training batch for the causal LM: ids, key_padding_mask and position_ids
    [B, L]; attn_mask BoolTensor[B, L, L] (True = blocked) or None for the model's own
    causal mask; labels [B, L] aligned with the ids (-100 where nothing is trained)."""

    ids: torch.Tensor
    key_padding_mask: torch.Tensor
    position_ids: torch.Tensor
    attn_mask: torch.Tensor | None
    labels: torch.Tensor


def _padded(sequences: Sequence[torch.Tensor]) -> Rows:
    ids = pad_sequence(list(sequences), batch_first=True, padding_value=Vocab.PAD)
    padding = ids == Vocab.PAD
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    return Rows(ids, padding, positions, None, ids.masked_fill(padding, IGNORE_INDEX))


def layouts(sequences: Sequence[torch.Tensor], *, batch_size: int = BATCH_SIZE,
            row_len: int = ROW_LEN, seed: int = 0) -> dict[str, list[Rows]]:
    """The same sequences batched three ways, in about the same number of steps:

    * ``"random"``: shuffled, ``batch_size`` per batch, right-padded to the batch's longest;
    * ``"bucketed"``: lesson 01's ``bucket_batches`` (similar lengths together);
    * ``"packed"``: ``packing.pack`` into rows of ``row_len``, the rows split evenly into at
      most as many batches as the other two have, each with its causal document mask,
      restarted positions and ``packed_labels``.

    Every layout trains exactly the same targets (each sequence's tokens after its first).
    """
    lengths = [len(s) for s in sequences]
    result = {order: [_padded([sequences[i] for i in batch]) for batch in batching(
        lengths, batch_size, seed=seed)]
        for order, batching in (("random", random_batches), ("bucketed", bucket_batches))}
    packed = pack(sequences, row_len, pad_id=Vocab.PAD)
    labels = packed_labels(packed)
    steps = len(result["random"])
    rows_per_batch = math.ceil(len(packed.ids) / steps)
    result["packed"] = [
        Rows(packed.ids[part], packed.key_padding_mask[part], packed.position_ids[part],
             document_mask(packed.document_ids[part], causal=True), labels[part])
        for part in torch.arange(len(packed.ids)).split(rows_per_batch)]
    return result


def pad_share(batches: Sequence[Rows]) -> float:
    """PAD positions / all positions of the batches."""
    pads = sum(int(rows.key_padding_mask.sum()) for rows in batches)
    return pads / sum(rows.ids.numel() for rows in batches)


def attention_scores(batches: Sequence[Rows]) -> dict[str, int]:
    """Per head and layer: ``"computed"`` by a dense attention (B * L * L a batch) and
    ``"needed"`` (a real query and an allowed real key: the causal pairs inside each
    sequence)."""
    computed = needed = 0
    for rows in batches:
        batch, length = rows.ids.shape
        computed += batch * length * length
        blocked = rows.attn_mask
        if blocked is None:
            blocked = causal_mask(length)[None]
        allowed = ~blocked & ~rows.key_padding_mask[:, None, :] & ~rows.key_padding_mask[:, :, None]
        needed += int(allowed.sum())
    return {"computed": computed, "needed": needed}


def _loss(model: CausalLM, rows: Rows) -> torch.Tensor:
    return lm_loss(model(rows.ids, key_padding_mask=rows.key_padding_mask,
                         position_ids=rows.position_ids, attn_mask=rows.attn_mask), rows.labels)


def tokens_per_second(batches_by_layout: dict[str, list[Rows]], *, repeats: int = 3,
                      seed: int = 0) -> dict[str, float]:
    """Real tokens per second of training steps (forward, backward, AdamW: the course's
    ``training.train``), one epoch over each layout's batches from the same fresh model.

    The layouts take turns, ``repeats`` times, and each keeps its fastest epoch: a busy
    moment of the machine cannot decide the comparison. Runs on the current thread count.
    """
    best = dict.fromkeys(batches_by_layout, math.inf)
    for _ in range(repeats):
        for layout, batches in batches_by_layout.items():
            history = train(new_causal_lm(seed), batches, steps=len(batches), warmup_steps=0,
                            loss_fn=_loss, progress=False)
            best[layout] = min(best[layout], history.seconds)
    return {layout: sum(int((~rows.key_padding_mask).sum()) for rows in batches) / best[layout]
            for layout, batches in batches_by_layout.items()}


# --- one mask, six spellings --------------------------------------------------------------
# Each takes x [R, L, E] (queries = keys = values: the attention alone, no projections) and
# the packed rows' document_ids [R, L] (-1 at PAD), and attends with num_heads heads of
# E / num_heads dimensions; every one returns [R, L, E].

@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a torch logger's WARNING lines inside the block (they would print to stderr,
    with a timestamp, in every run)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    rows, length, width = x.shape
    return x.view(rows, length, num_heads, width // num_heads).transpose(1, 2)  # [R, H, L, D]


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).flatten(2)


def _mha(x, document_ids, num_heads, causal):
    width = x.shape[-1]
    attention = nn.MultiheadAttention(width, num_heads, bias=False, batch_first=True).eval()
    with torch.no_grad():  # identity projections: nn.MultiheadAttention is then attention alone
        attention.in_proj_weight.copy_(torch.eye(width).repeat(3, 1))
        attention.out_proj.weight.copy_(torch.eye(width))
        padding = document_ids < 0
        blocked = document_mask(document_ids, causal=causal) & ~padding[:, None, :]
        out, _ = attention(x, x, x, attn_mask=to_mha(blocked, num_heads),
                           key_padding_mask=padding, need_weights=False)
    return out


def _additive(x, document_ids, num_heads, causal):
    q = _heads(x, num_heads)
    mask = to_additive(document_mask(document_ids, causal=causal))[:, None]  # [R, 1, L, L]
    return _merge_heads(F.scaled_dot_product_attention(q, q, q, attn_mask=mask))


def _sdpa_bool(x, document_ids, num_heads, causal):
    q = _heads(x, num_heads)
    allowed = to_sdpa(document_mask(document_ids, causal=causal))[:, None]  # True = ALLOWED
    return _merge_heads(F.scaled_dot_product_attention(q, q, q, attn_mask=allowed))


def _hugging_face(x, document_ids, num_heads, causal):
    q = _heads(x, num_heads)
    mask = to_hf_4d(document_mask(document_ids, causal=causal), x.dtype)  # finfo.min
    return _merge_heads(F.scaled_dot_product_attention(q, q, q, attn_mask=mask))


def _flex(x, document_ids, num_heads, causal):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    q = _heads(x, num_heads)
    rows, length = document_ids.shape
    block_mask = create_block_mask(document_mask_mod(document_ids, causal=causal), B=rows,
                                   H=None, Q_LEN=length, KV_LEN=length, device="cpu")
    return _merge_heads(flex_attention(q, q, q, block_mask=block_mask))  # eager: it warns


def _nested(x, document_ids, num_heads, causal):
    """One jagged tensor of the documents themselves: no PAD, no mask, no other document.
    SDPA on jagged tensors takes no attn_mask and (on the CPU) no ``is_causal``."""
    width = x.shape[-1]
    indices = document_ids[document_ids >= 0].unique().tolist()
    documents = [x[document_ids == d] for d in indices]  # [n_d, E] each
    offsets = torch.tensor([0] + [len(d) for d in documents]).cumsum(0)
    values = torch.cat(documents).view(-1, num_heads, width // num_heads)  # [sum n_d, H, D]
    nested = torch.nested.nested_tensor_from_jagged(values, offsets).transpose(1, 2)
    # No fused CPU kernel takes jagged tensors: SDPA logs why at WARNING level, then computes
    # on the strided layout, whose UserWarning recommends the jagged layout we gave it.
    with _quiet("torch.nested._internal.sdpa"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The PyTorch API of nested tensors is in prototype",
                                UserWarning)
        out = F.scaled_dot_product_attention(nested, nested, nested, is_causal=causal)
    result = torch.zeros_like(x)
    for d, document in zip(indices, out.transpose(1, 2).unbind(), strict=True):
        result[document_ids == d] = document.flatten(1)
    return result  # zeros at PAD: there is no PAD query in a nested tensor


SPELLINGS: dict[str, Callable] = {
    "nn.MultiheadAttention (bool, True = blocked)": _mha,
    "additive float (0 / -inf)": _additive,
    "SDPA bool (True = allowed)": _sdpa_bool,
    "Hugging Face 4-D (0 / finfo.min)": _hugging_face,
    "FlexAttention mask_mod -> BlockMask": _flex,
    "nested jagged tensors (no mask)": _nested,
}


def attend(spelling: str, x: torch.Tensor, document_ids: torch.Tensor, *, num_heads: int = 2,
           causal: bool = False) -> torch.Tensor:
    """Attention of the packed rows ``x`` [R, L, E] to themselves under the document mask of
    ``document_ids`` [R, L] (and, ``causal``, the causal mask), written in ``spelling``
    (a key of :data:`SPELLINGS`). Returns [R, L, E]."""
    if spelling not in SPELLINGS:
        raise ValueError(f"spelling: expected one of {list(SPELLINGS)}, got {spelling!r}")
    if x.dim() != 3 or x.shape[:2] != document_ids.shape or x.shape[-1] % num_heads:
        raise ValueError(f"x: expected [R, L, E] with [R, L] = {list(document_ids.shape)} "
                         f"(document_ids) and E divisible by num_heads = {num_heads}, got "
                         f"{list(x.shape)}")
    # nn.MultiheadAttention's fast-path check logs a line about FX tracing, not about masks
    with _quiet("torch.fx._symbolic_trace"):
        return SPELLINGS[spelling](x, document_ids, num_heads, causal)


def plot_documents(document_ids: torch.Tensor, *, ax: Axes | None = None, title: str = "",
                   labels: bool = True) -> Axes:
    """Rows [R, L] of document ids coloured by document, PAD (-1) in the course's blocked
    style, positions outside the tensor (-2: beyond a padded batch's longest) white.

    Colours follow the order in which documents first appear (cycling through seven
    colour-blind-safe ones), so neighbours never share one; with ``labels``, each document's
    first cell shows its index."""
    ids = document_ids.cpu().numpy()
    rows, cols = ids.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(0.18 * cols + 1.5, 0.3 * rows + 1.2), layout="constrained")
    real = ids >= 0
    order = {d: rank for rank, d in enumerate(dict.fromkeys(ids[real].tolist()))}
    colours = np.vectorize(lambda d: order.get(d, 0) % len(DOCUMENT_COLORS))(ids)
    ax.imshow(np.ma.masked_array(colours, mask=~real), aspect="auto", vmin=0,
              vmax=len(DOCUMENT_COLORS) - 1, cmap=ListedColormap(DOCUMENT_COLORS),
              interpolation="nearest")
    for r, c in zip(*np.nonzero(ids == -1), strict=True):
        ax.add_artist(Rectangle((c - 0.5, r - 0.5), 1, 1, **BLOCKED_STYLE))
    starts = np.ones_like(ids, dtype=bool)
    starts[:, 1:] = ids[:, 1:] != ids[:, :-1]
    for r, c in zip(*np.nonzero(starts & real), strict=True):
        ax.axvline(c - 0.5, ymin=1 - (r + 1) / rows, ymax=1 - r / rows, color="white",
                   linewidth=2)
        if labels:
            ax.text(c, r, str(ids[r, c]), ha="left", va="center", fontsize="x-small",
                    color="white", weight="bold")
    ax.set_yticks(range(rows))
    ax.set_xlabel("position in the row")
    ax.set_ylabel("row")
    ax.set_title(title)
    return ax
