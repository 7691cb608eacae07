"""An attention RNN seq2seq model with the interface of ``Seq2SeqTransformer``.

Encoder: a bidirectional LSTM over a *packed* sequence, so PAD tokens never reach its
state. Decoder: an LSTM with Luong attention and input feeding; the attention masks the
source PAD keys with ``memory_key_padding_mask`` (True = blocked), so they get exactly zero
weight. ``encode``/``decode``/``forward`` take the same arguments as
:class:`course_lib.models.Seq2SeqTransformer`, so the course's decoding and evaluation work
on it unchanged. :meth:`RNNSeq2Seq.decode_scheduled` unrolls the decoder with a coin flip
per token between the gold token and the model's own prediction (scheduled sampling).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_lib._checks import check_bool_mask, check_probability, check_tensor, check_token_ids
from course_lib.masks import causal_mask, padding_mask

__all__ = ["RNNSeq2Seq", "ScheduledDecoding"]

Memory = tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


class ScheduledDecoding(NamedTuple):
    """What :meth:`RNNSeq2Seq.decode_scheduled` did.

    logits: FloatTensor[B, T, V]; decoder_input: LongTensor[B, T], the token actually read
    at each position; use_gold: BoolTensor[B, T], True where that token was the gold one.
    """

    logits: torch.Tensor
    decoder_input: torch.Tensor
    use_gold: torch.Tensor


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")


class RNNSeq2Seq(nn.Module):
    """Bidirectional LSTM encoder + LSTM decoder with attention over the source.

    Args:
        vocab_size: number of token ids (``len(vocab)``).
        embedding_dim: size of the token embeddings (source and target).
        hidden_size: LSTM size (each encoder direction, and the decoder); any int >= 1.
        num_layers: LSTM layers in the encoder and in the decoder.
        dropout: between LSTM layers (only used when ``num_layers > 1``).
        pad_id: the PAD id; its embedding rows stay zero (``padding_idx``).
    """

    def __init__(self, vocab_size: int, *, embedding_dim: int = 32, hidden_size: int = 64,
                 num_layers: int = 1, dropout: float = 0.0, pad_id: int = 0) -> None:
        super().__init__()
        _check_int("vocab_size", vocab_size, 2)
        for name, value in [("embedding_dim", embedding_dim), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)]:
            _check_int(name, value, 1)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        if isinstance(pad_id, bool) or not isinstance(pad_id, int) or not 0 <= pad_id < vocab_size:
            raise ValueError(
                f"pad_id: expected an id inside the vocabulary, 0..{vocab_size - 1}, got {pad_id!r}"
            )
        self.config = {"vocab_size": vocab_size, "embedding_dim": embedding_dim,
                       "hidden_size": hidden_size, "num_layers": num_layers,
                       "dropout": dropout, "pad_id": pad_id}
        self.pad_id = pad_id
        hidden, layer_dropout = hidden_size, dropout if num_layers > 1 else 0.0
        self.src_embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.encoder = nn.LSTM(embedding_dim, hidden, num_layers, batch_first=True,
                               bidirectional=True, dropout=layer_dropout)
        # Both directions' final states -> the decoder's initial state.
        self.bridge_h = nn.Linear(2 * hidden, hidden)
        self.bridge_c = nn.Linear(2 * hidden, hidden)
        # Input feeding: each step reads its token and the previous attentional vector.
        # One LSTMCell per layer: stepping cells is about twice as fast as nn.LSTM on length 1.
        self.decoder = nn.ModuleList(
            nn.LSTMCell(embedding_dim + hidden if layer == 0 else hidden, hidden)
            for layer in range(num_layers))
        self.layer_dropout = nn.Dropout(layer_dropout)
        self.attention_keys = nn.Linear(2 * hidden, hidden, bias=False)
        self.combine = nn.Linear(2 * hidden + hidden, hidden)
        self.generator = nn.Linear(hidden, vocab_size)

    # --- validation -----------------------------------------------------------------------

    def _check_ids(self, name: str, ids: torch.Tensor) -> None:
        check_token_ids(name, ids, vocab_size=self.config["vocab_size"])

    @staticmethod
    def _check_padding(name: str, mask: torch.Tensor, ids: torch.Tensor) -> None:
        check_bool_mask(name, mask, ndim=2)
        if mask.shape != ids.shape:
            raise ValueError(f"{name}: expected shape {list(ids.shape)}, got {list(mask.shape)}")

    def _check_memory(self, memory: object, memory_key_padding_mask: torch.Tensor | None):
        if not (isinstance(memory, tuple) and len(memory) == 2 and isinstance(memory[1], tuple)
                and len(memory[1]) == 2):
            raise TypeError("memory: expected the (outputs, (h, c)) tuple returned by "
                            f"RNNSeq2Seq.encode, got {type(memory).__name__}")
        outputs = memory[0]
        check_tensor("memory[0]", outputs, ndim=3)
        if memory_key_padding_mask is not None:
            check_bool_mask("memory_key_padding_mask", memory_key_padding_mask, ndim=2)
            if memory_key_padding_mask.shape != outputs.shape[:2]:
                raise ValueError(f"memory_key_padding_mask: expected [B, S] = "
                                 f"{list(outputs.shape[:2])}, got "
                                 f"{list(memory_key_padding_mask.shape)}")
            if bool(memory_key_padding_mask.all(dim=1).any()):
                raise ValueError("memory_key_padding_mask: a row is all PAD, so its attention "
                                 "would have no key (softmax of all -inf is NaN)")

    # --- encoder ---------------------------------------------------------------------------

    def encode(self, src: torch.Tensor, src_key_padding_mask: torch.Tensor | None) -> Memory:
        """Encode right-padded sources; PAD never enters the LSTM (packed sequences).

        Args:
            src: LongTensor[B, S] of source ids, right-padded.
            src_key_padding_mask: BoolTensor[B, S], True at PAD (right padding only: each row
                is real tokens then PAD); None means every position is real.

        Returns:
            The memory ``(outputs, (h, c))``: outputs FloatTensor[B, S, 2 * hidden_size]
            (both directions; exactly 0 at PAD), and the decoder's initial state, each
            FloatTensor[num_layers, B, hidden_size].
        """
        self._check_ids("src", src)
        if src_key_padding_mask is None:
            lengths = torch.full((src.shape[0],), src.shape[1], dtype=torch.long)
        else:
            self._check_padding("src_key_padding_mask", src_key_padding_mask, src)
            if bool((src_key_padding_mask[:, :-1] & ~src_key_padding_mask[:, 1:]).any()):
                raise ValueError("src_key_padding_mask: a real token follows a PAD; the RNN "
                                 "encoder packs right-padded rows (real tokens, then PAD)")
            if bool(src_key_padding_mask.all(dim=1).any()):
                raise ValueError("src_key_padding_mask: a row is all PAD; every source needs a "
                                 "real token")
            lengths = (~src_key_padding_mask).sum(dim=1).cpu()
        packed = pack_padded_sequence(self.src_embedding(src), lengths, batch_first=True,
                                      enforce_sorted=False)
        packed_outputs, (h_n, c_n) = self.encoder(packed)
        outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True,
                                         total_length=src.shape[1])
        # h_n is [num_layers * 2, B, H], directions interleaved per layer.
        layers = self.config["num_layers"]
        both_h = h_n.view(layers, 2, *h_n.shape[1:]).permute(0, 2, 1, 3).flatten(2)
        both_c = c_n.view(layers, 2, *c_n.shape[1:]).permute(0, 2, 1, 3).flatten(2)
        return outputs, (torch.tanh(self.bridge_h(both_h)), self.bridge_c(both_c))

    # --- decoder ---------------------------------------------------------------------------

    def _step(self, token, state, attentional, outputs, keys, memory_key_padding_mask):
        """One decoder step: token LongTensor[B] -> (logits [B, V], weights [B, S], state, h~)."""
        layer_input = torch.cat([self.tgt_embedding(token), attentional], dim=-1)
        new_state = []
        for layer, cell in enumerate(self.decoder):
            if layer > 0:
                layer_input = self.layer_dropout(layer_input)
            h, c = cell(layer_input, state[layer])
            new_state.append((h, c))
            layer_input = h
        query = layer_input  # the top layer's output, [B, H]
        scores = torch.bmm(keys, query[:, :, None])[:, :, 0]  # [B, S]
        if memory_key_padding_mask is not None:  # PAD keys: -inf, so exactly 0 weight
            scores = scores.masked_fill(memory_key_padding_mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        context = torch.bmm(weights[:, None], outputs)[:, 0]  # [B, 2H]
        attentional = torch.tanh(self.combine(torch.cat([context, query], dim=-1)))
        return self.generator(attentional), weights, new_state, attentional

    def _unroll(self, tgt_in, memory, memory_key_padding_mask, choose_input):
        """Run the decoder over T steps; ``choose_input(t, gold_token, logits)`` picks input t."""
        self._check_ids("tgt_in", tgt_in)
        self._check_memory(memory, memory_key_padding_mask)
        outputs, (h_0, c_0) = memory
        if tgt_in.shape[0] != outputs.shape[0]:
            raise ValueError(f"tgt_in: has {tgt_in.shape[0]} rows but the memory encodes "
                             f"{outputs.shape[0]} sources; one target prefix per source")
        state = list(zip(h_0.unbind(0), c_0.unbind(0), strict=True))  # per layer
        keys = self.attention_keys(outputs)
        attentional = outputs.new_zeros(outputs.shape[0], self.config["hidden_size"])
        logits, weights, inputs = [], [], []
        for t in range(tgt_in.shape[1]):
            token = choose_input(t, tgt_in[:, t], logits[-1] if logits else None)
            step_logits, step_weights, state, attentional = self._step(
                token, state, attentional, outputs, keys, memory_key_padding_mask)
            logits.append(step_logits)
            weights.append(step_weights)
            inputs.append(token)
        return torch.stack(logits, 1), torch.stack(weights, 1), torch.stack(inputs, 1)

    def decode_with_attention(
        self, tgt_in: torch.Tensor, memory: Memory, *,
        memory_key_padding_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits FloatTensor[B, T, V] and attention weights FloatTensor[B, T, S]
        (exactly 0 on source PAD keys; each row sums to 1)."""
        logits, weights, _ = self._unroll(tgt_in, memory, memory_key_padding_mask,
                                          lambda t, gold_token, previous_logits: gold_token)
        return logits, weights

    def decode(
        self, tgt_in: torch.Tensor, memory: Memory, *, tgt_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Next-token logits, FloatTensor[B, T, vocab_size], reading the gold ``tgt_in``.

        Args:
            tgt_in: LongTensor[B, T], ``[BOS] + target`` right-padded.
            memory: the tuple returned by :meth:`encode`.
            tgt_mask: None or the causal BoolTensor[T, T]. An RNN reads its input left to
                right, so output t depends on ``tgt_in[:, :t+1]`` only: it is causal by
                construction and a causal mask would change nothing. Any other mask is
                refused, because the RNN could not honour it.
            tgt_key_padding_mask: None or BoolTensor[B, T], True at PAD. Unused: with right
                padding every PAD comes after the real tokens, so a causal model never reads
                it at a real position (and the loss skips PAD targets).
            memory_key_padding_mask: BoolTensor[B, S], True at source PAD: those keys get
                zero attention weight. None attends to every position.
        """
        if tgt_mask is not None:
            check_bool_mask("tgt_mask", tgt_mask, ndim=2)
            if not torch.equal(tgt_mask.cpu(), causal_mask(tgt_in.shape[1])):
                raise ValueError("tgt_mask: the RNN decoder is causal by construction and "
                                 "cannot apply another mask; pass None or causal_mask(T)")
        if tgt_key_padding_mask is not None:
            self._check_padding("tgt_key_padding_mask", tgt_key_padding_mask, tgt_in)
        return self.decode_with_attention(tgt_in, memory,
                                          memory_key_padding_mask=memory_key_padding_mask)[0]

    def decode_scheduled(
        self, tgt_in: torch.Tensor, memory: Memory, *, memory_key_padding_mask: torch.Tensor,
        gold_prob: float, generator: torch.Generator | None = None, sample: bool = False,
    ) -> ScheduledDecoding:
        """Unroll the decoder, flipping a coin per token: gold input or the model's own.

        At step t >= 1 each row reads ``gold_token = tgt_in[:, t]`` with probability
        ``gold_prob`` and otherwise ``predicted_token``, the argmax (or, with ``sample``, a
        sample) of its own logits at step t - 1, detached: no gradient flows through the
        choice. Step 0 always reads BOS; PAD positions (after the target) stay PAD.
        """
        gold_prob = check_probability("gold_prob", gold_prob)
        flips = []

        def choose_input(t, gold_token, previous_logits):
            if t == 0:
                use_gold = torch.ones_like(gold_token, dtype=torch.bool)
                flips.append(use_gold)
                return gold_token
            previous_logits = previous_logits.detach()
            if sample:
                predicted_token = torch.multinomial(previous_logits.softmax(-1), 1,
                                                    generator=generator)[:, 0]
            else:
                predicted_token = previous_logits.argmax(dim=-1)
            coin = torch.rand(gold_token.shape, generator=generator, device=gold_token.device)
            use_gold = (coin < gold_prob) | (gold_token == self.pad_id)
            flips.append(use_gold)
            return torch.where(use_gold, gold_token, predicted_token)

        logits, _, inputs = self._unroll(tgt_in, memory, memory_key_padding_mask, choose_input)
        return ScheduledDecoding(logits, inputs, torch.stack(flips, 1))

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits FloatTensor[B, T, V] for LongTensors ``src`` [B, S],
        ``tgt_in`` [B, T]; builds the padding masks from ``pad_id``."""
        self._check_ids("src", src)
        src_key_padding_mask = padding_mask(src, self.pad_id)
        memory = self.encode(src, src_key_padding_mask)
        return self.decode(tgt_in, memory, memory_key_padding_mask=src_key_padding_mask)
