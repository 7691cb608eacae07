"""A seq2seq Transformer on ``nn.Transformer`` that builds and passes every mask itself.

``forward(src, tgt_in)`` derives all masks from ``pad_id`` (True = blocked):
``src_key_padding_mask`` and ``memory_key_padding_mask`` from ``src`` (``nn.Transformer``
does not copy one into the other), ``tgt_key_padding_mask`` from ``tgt_in`` and the causal
``tgt_mask``. All are bool, so PyTorch never warns about mixed mask types.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_lib._checks import check_bool_mask, check_token_ids
from course_lib.masks import causal_mask, padding_mask

__all__ = ["Seq2SeqTransformer", "sinusoidal_positions", "RNNSeq2Seq"]


def sinusoidal_positions(max_len: int, d_model: int) -> torch.Tensor:
    """FloatTensor[max_len, d_model]: the sine/cosine position codes of Vaswani et al. 2017."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32)
                          * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")


class Seq2SeqTransformer(nn.Module):
    """Token embeddings + sinusoidal positions -> ``nn.Transformer(batch_first=True)`` -> logits.

    Args:
        vocab_size: number of token ids (``len(vocab)``).
        d_model, nhead, num_layers, dim_feedforward, dropout: as in ``nn.Transformer``;
            ``num_layers`` encoder layers and as many decoder layers.
        pad_id: the PAD id; its embedding row stays zero (``padding_idx``) and every padding
            mask is ``ids == pad_id``.
        max_len: the longest source or target the position table covers.
        embedding_std: the standard deviation of the token embeddings' initial values
            (``nn.Embedding``'s default is 1). Smaller values let the position code, whose
            entries lie in [-1, 1], stand out at the start: the recipe uses 0.3, and learns
            to align positions in fewer steps.
    """

    def __init__(
        self, vocab_size: int, *, d_model: int = 64, nhead: int = 4, num_layers: int = 2,
        dim_feedforward: int = 128, dropout: float = 0.0, pad_id: int = 0, max_len: int = 64,
        embedding_std: float = 1.0,
    ) -> None:
        super().__init__()
        _check_int("vocab_size", vocab_size, 2)
        for name, value in [("d_model", d_model), ("nhead", nhead), ("num_layers", num_layers),
                            ("dim_feedforward", dim_feedforward), ("max_len", max_len)]:
            _check_int(name, value, 1)
        if d_model % nhead or d_model % 2:
            raise ValueError(f"d_model: expected an even multiple of nhead={nhead}, got {d_model}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        if isinstance(pad_id, bool) or not isinstance(pad_id, int) or not 0 <= pad_id < vocab_size:
            raise ValueError(
                f"pad_id: expected an id inside the vocabulary, 0..{vocab_size - 1}, got {pad_id!r}"
            )
        if isinstance(embedding_std, bool) or not isinstance(embedding_std, int | float) \
                or not embedding_std > 0:
            raise ValueError(f"embedding_std: expected a positive number, got {embedding_std!r}")
        self.config = {"vocab_size": vocab_size, "d_model": d_model, "nhead": nhead,
                       "num_layers": num_layers, "dim_feedforward": dim_feedforward,
                       "dropout": dropout, "pad_id": pad_id, "max_len": max_len,
                       "embedding_std": embedding_std}
        self.pad_id = pad_id
        self.max_len = max_len
        self.src_embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        if embedding_std != 1.0:
            for embedding in (self.src_embedding, self.tgt_embedding):
                with torch.no_grad():
                    embedding.weight.mul_(embedding_std)  # the PAD row stays zero
        self.register_buffer("positions", sinusoidal_positions(max_len, d_model),
                             persistent=False)
        # No nested-tensor fast path: in eval mode it warns ("nested tensors is in prototype
        # stage"), which fails a notebook run with warnings as errors; outputs at real
        # positions are the same without it.
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                           batch_first=True)
        encoder = nn.TransformerEncoder(layer, num_layers, nn.LayerNorm(d_model),
                                        enable_nested_tensor=False)
        self.transformer = nn.Transformer(
            d_model, nhead, num_layers, num_layers, dim_feedforward, dropout,
            custom_encoder=encoder, batch_first=True,
        )
        self.generator = nn.Linear(d_model, vocab_size)

    def _check_ids(self, name: str, ids: torch.Tensor) -> None:
        check_token_ids(name, ids, vocab_size=self.config["vocab_size"])
        if ids.shape[1] > self.max_len:
            raise ValueError(
                f"{name}: length {ids.shape[1]} exceeds the positional encoding's max_len="
                f"{self.max_len}; build the model with a larger max_len"
            )

    def _embed(self, name: str, ids: torch.Tensor, embedding: nn.Embedding) -> torch.Tensor:
        self._check_ids(name, ids)
        return embedding(ids) + self.positions[: ids.shape[1]]

    def encode(self, src: torch.Tensor, src_key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        """Encoder outputs (the decoder's memory), FloatTensor[B, S, d_model].

        Args:
            src: LongTensor[B, S] of source ids, right-padded.
            src_key_padding_mask: BoolTensor[B, S], True at PAD; None disables it (ablations).

        Outputs at PAD positions are finite values that nothing should read: the decoder
        skips them through ``memory_key_padding_mask``.
        """
        x = self._embed("src", src, self.src_embedding)
        if src_key_padding_mask is not None:
            check_bool_mask("src_key_padding_mask", src_key_padding_mask, ndim=2)
            if src_key_padding_mask.shape != src.shape:
                raise ValueError(f"src_key_padding_mask: expected shape {list(src.shape)}, got "
                                 f"{list(src_key_padding_mask.shape)}")
            if bool(src_key_padding_mask.all(dim=1).any()):
                raise ValueError("src_key_padding_mask: a row is all PAD; every source needs a "
                                 "real token, otherwise attention over it has no key")
        return self.transformer.encoder(x, src_key_padding_mask=src_key_padding_mask)

    def decode(
        self, tgt_in: torch.Tensor, memory: torch.Tensor, *, tgt_mask: torch.Tensor | None,
        tgt_key_padding_mask: torch.Tensor | None, memory_key_padding_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Next-token logits, FloatTensor[B, T, vocab_size], for every position of ``tgt_in``.

        Args:
            tgt_in: LongTensor[B, T], ``[BOS] + target`` right-padded.
            memory: FloatTensor[B, S, d_model] from :meth:`encode`.
            tgt_mask: BoolTensor[T, T], True above the diagonal (``causal_mask(T)``).
            tgt_key_padding_mask: BoolTensor[B, T], True at PAD.
            memory_key_padding_mask: BoolTensor[B, S], True at source PAD.
            Any mask may be None to switch it off (ablations).
        """
        y = self._embed("tgt_in", tgt_in, self.tgt_embedding)
        for name, mask in [("tgt_mask", tgt_mask), ("tgt_key_padding_mask", tgt_key_padding_mask),
                           ("memory_key_padding_mask", memory_key_padding_mask)]:
            if mask is not None:
                check_bool_mask(name, mask, ndim=2)
        out = self.transformer.decoder(
            y, memory, tgt_mask=tgt_mask, tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
        )
        return self.generator(out)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Logits FloatTensor[B, T, vocab_size] for LongTensors ``src`` [B, S], ``tgt_in`` [B, T].

        Builds every mask from ``pad_id`` and passes all of them.
        """
        self._check_ids("src", src)
        self._check_ids("tgt_in", tgt_in)
        src_key_padding_mask = padding_mask(src, self.pad_id)
        memory = self.encode(src, src_key_padding_mask)
        return self.decode(
            tgt_in, memory, tgt_mask=causal_mask(tgt_in.shape[1], device=tgt_in.device),
            tgt_key_padding_mask=padding_mask(tgt_in, self.pad_id),
            memory_key_padding_mask=src_key_padding_mask,
        )


# The attention RNN of lesson 07 lives in its own module; re-exported so
# ``course_lib.models.RNNSeq2Seq`` names both seq2seq models in one place.
from course_lib.rnn import RNNSeq2Seq  # noqa: E402
