"""Decoding a trained seq2seq model: greedy search, beam search and sampling, all batched.

Every function encodes the sources once and then asks a step decoder
(:func:`course_lib.kv_cache.start_decoder`) for the next-token logits:

* a :class:`~course_lib.models.Seq2SeqTransformer` is decoded with the key/value cache
  (:class:`~course_lib.kv_cache.IncrementalDecoder`): each step runs the decoder on the new
  token only, and gives the same tokens as recomputing (``use_cache=False``);
* any other model with the same ``encode`` / ``decode`` interface (e.g. an RNN seq2seq,
  whose memory may be a tuple) is decoded by re-running ``decode`` on the whole prefix with
  the causal ``tgt_mask`` and both padding masks (:class:`~course_lib.kv_cache.PrefixDecoder`).

Masks at inference: the source's padding mask is passed as ``memory_key_padding_mask``
(``nn.Transformer`` never copies it), so a padded batch decodes exactly like each source
alone. A row that has produced EOS gets only PAD afterwards; PAD keys of the prefix are
blocked, so a finished row no longer influences anything.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F

from course_lib._checks import check_tensor
from course_lib.data import Vocab
from course_lib.kv_cache import start_decoder

__all__ = ["greedy_decode", "beam_search", "BeamSearchResult", "length_penalty_factor",
           "sample", "top_k_filter", "top_p_filter"]


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name}: expected {wanted}, got {value!r}")


def _check_number(name: str, value: object, allowed: str, ok: Callable[[float], bool]) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not ok(value):
        raise ValueError(f"{name}: expected a number {allowed}, got {value!r}")


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Decode in eval mode (no dropout); restore the caller's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _generate(model, src, max_len, choose, *, use_cache, bos_id, eos_id) -> torch.Tensor:
    """The loop shared by greedy decoding and sampling: ``choose(logits[B, V]) -> ids[B]``."""
    check_tensor("src", src, ndim=2)
    _check_int("max_len", max_len, 1)
    pad_id = model.pad_id
    with _eval_mode(model):
        decoder = start_decoder(model, src, use_cache=use_cache)
        tokens = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            next_token = choose(decoder.step(tokens[:, -1])).masked_fill(finished, pad_id)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            if eos_id is not None:
                finished |= next_token == eos_id
                if bool(finished.all()):
                    break
    return tokens[:, 1:]


@torch.no_grad()
def greedy_decode(
    model: torch.nn.Module, src: torch.Tensor, *, max_len: int, use_cache: bool = True,
    bos_id: int = Vocab.BOS, eos_id: int | None = Vocab.EOS,
) -> torch.Tensor:
    """The most likely next token at every step, for a whole batch of sources at once.

    Args:
        model: a :class:`~course_lib.models.Seq2SeqTransformer`, or anything with ``encode``,
            ``decode`` and ``pad_id`` (decoded by recomputing the prefix). Run in eval mode;
            its mode is restored afterwards.
        src: LongTensor[B, S] of source ids, right-padded with ``model.pad_id``.
        max_len: the most tokens generated per row, EOS included.
        use_cache: use the key/value cache when the model supports it (same tokens, faster).
        eos_id: the end token; None never ends a row early (exactly ``max_len`` tokens:
            for timing long generations).

    Returns:
        LongTensor[B, L] with L <= max_len, without the leading BOS. A row that has produced
        ``eos_id`` gets only PAD afterwards; decoding stops once every row has finished.
    """
    return _generate(model, src, max_len, lambda logits: logits.argmax(dim=-1),
                     use_cache=use_cache, bos_id=bos_id, eos_id=eos_id)


def length_penalty_factor(length: int | torch.Tensor, length_penalty: float):
    """Hugging Face's convention: a hypothesis' score is ``sum(log p) / length ** alpha``.

    ``length`` counts the generated tokens, EOS included (BOS not). ``alpha = 0`` gives the
    raw sum of log-probabilities, which favours short outputs (every token adds a negative
    term); ``alpha = 1`` the mean log-probability per token; larger values favour longer
    outputs. (GNMT, Wu et al. 2016, divides by ``((5 + length) / 6) ** alpha`` instead.)
    """
    return length ** length_penalty


class BeamSearchResult(NamedTuple):
    """The n-best list of every source, best first.

    sequences: LongTensor[B, beam_size, L], generated tokens (EOS included, PAD after).
    scores: FloatTensor[B, beam_size], ``log_probs / length ** length_penalty``.
    log_probs: FloatTensor[B, beam_size], the summed token log-probabilities.
    Slots with no hypothesis (tiny vocabularies) have score -inf and only PAD.
    """

    sequences: torch.Tensor
    scores: torch.Tensor
    log_probs: torch.Tensor


@torch.no_grad()
def beam_search(
    model: torch.nn.Module, src: torch.Tensor, *, beam_size: int, max_len: int,
    length_penalty: float, use_cache: bool = True, bos_id: int = Vocab.BOS,
    eos_id: int = Vocab.EOS,
) -> BeamSearchResult:
    """Beam search over a batch of sources at once (``B * beam_size`` rows per step).

    Each step extends every live hypothesis by every token and keeps the ``2 * beam_size``
    best candidates per source (by summed log-probability). Candidates ending in EOS among
    the first ``beam_size`` become finished hypotheses, scored by
    :func:`length_penalty_factor` (Hugging Face's ``length ** alpha``); the best
    ``beam_size`` non-EOS candidates stay live, and the decoder's cache is reordered to
    follow them. At ``max_len`` the best live hypotheses are finished as they are.

    A source stops when it has ``beam_size`` finished hypotheses and no live one can still
    beat the worst of them. The test is exact, not a heuristic: log-probabilities are <= 0,
    so a live sum can only fall, and its best possible score is that sum divided by the
    largest factor it can reach (at ``max_len`` when ``length_penalty > 0``, else at the next
    step). With a beam wide enough to hold every sequence, the result is the exhaustive best.
    With ``beam_size=1`` and ``length_penalty=0`` it equals greedy decoding.

    Args:
        model, src, max_len, use_cache, bos_id, eos_id: as in :func:`greedy_decode`.
        beam_size: live hypotheses per source, >= 1.
        length_penalty: ``alpha`` in ``length ** alpha``: 0 = raw sums, 1 = per-token mean.
    """
    check_tensor("src", src, ndim=2)
    _check_int("beam_size", beam_size, 1)
    _check_int("max_len", max_len, 1)
    _check_number("length_penalty", length_penalty, "(e.g. 0.0, 0.6 or 1.0)", math.isfinite)
    batch, beams, pad_id, device = src.shape[0], beam_size, model.pad_id, src.device
    rows = batch * beams
    with _eval_mode(model):
        decoder = start_decoder(model, src.repeat_interleave(beams, dim=0), use_cache=use_cache)
        tokens = torch.full((rows, 1), bos_id, dtype=torch.long, device=device)
        live = torch.full((batch, beams), -math.inf, device=device)
        live[:, 0] = 0.0  # one live hypothesis, [BOS], so the first step has no duplicates
        best = torch.full((batch, beams), -math.inf, device=device)  # finished: scores,
        best_sums = best.clone()  # summed log-probabilities, and tokens
        best_tokens = torch.full((batch, beams, max_len), pad_id, dtype=torch.long, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        first_rows = torch.arange(batch, device=device)[:, None] * beams
        for length in range(1, max_len + 1):
            log_probs = F.log_softmax(decoder.step(tokens[:, -1]).float(), dim=-1)
            vocab_size = log_probs.shape[-1]
            candidates = (live.reshape(rows, 1) + log_probs).reshape(batch, beams * vocab_size)
            sums, flat = candidates.topk(min(2 * beams, beams * vocab_size), dim=1)
            parent, token = flat // vocab_size, flat % vocab_size
            rank = torch.arange(sums.shape[1], device=device)
            # Finished now: EOS (or anything at max_len) among the first beam_size candidates.
            ends = (token == eos_id) | (length == max_len)
            finishing = (ends & (rank < beams) & sums.isfinite() & ~done[:, None])[:, :beams]
            new_tokens = torch.cat([
                tokens.reshape(batch, beams, length)[:, :, 1:].gather(
                    1, parent[:, :beams, None].expand(-1, -1, length - 1)),
                token[:, :beams, None],
                torch.full((batch, beams, max_len - length), pad_id, device=device)], dim=2)
            scores = (sums[:, :beams] / length_penalty_factor(length, length_penalty))
            pool = torch.cat([best, scores.masked_fill(~finishing, -math.inf)], dim=1)
            best, keep = pool.topk(beams, dim=1)
            best_sums = torch.cat([best_sums, sums[:, :beams]], dim=1).gather(1, keep)
            best_tokens = torch.cat([best_tokens, new_tokens], dim=1).gather(
                1, keep[:, :, None].expand(-1, -1, max_len))
            if length == max_len:
                break
            # Live: the first beam_size candidates that do not end in EOS, in rank order.
            _, order = torch.where(token == eos_id, rank + sums.shape[1], rank).topk(
                beams, dim=1, largest=False)
            live, parent, token = sums.gather(1, order), parent.gather(1, order), \
                token.gather(1, order)
            reachable = max_len if length_penalty > 0 else length + 1
            bound = live / length_penalty_factor(reachable, length_penalty)
            done |= best[:, -1] >= bound.max(dim=1).values  # -inf >= -inf: nothing left
            if bool(done.all()):
                break
            source_rows = (first_rows + parent).reshape(rows)
            decoder.reorder(source_rows)
            tokens = torch.cat([tokens[source_rows], token.reshape(rows, 1)], dim=1)
    empty = best.isneginf()
    best_tokens = best_tokens.masked_fill(empty[:, :, None], pad_id)
    used = (best_tokens != pad_id).flatten(0, 1).any(dim=0).nonzero()  # trailing PAD columns
    width = int(used.max()) + 1 if used.numel() else 1  # ... are cut
    return BeamSearchResult(best_tokens[:, :, :width], best,
                            best_sums.masked_fill(empty, -math.inf))


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row, set the others to -inf.

    Args:
        logits: FloatTensor[..., V].
        k: 0 keeps everything (Hugging Face's convention); ``k >= V`` too. Tokens tied
            with the k-th largest logit are all kept.
    """
    check_tensor("logits", logits)
    if not logits.dtype.is_floating_point:
        raise TypeError(f"logits: expected a float tensor, got {logits.dtype}")
    _check_int("k", k, 0)
    if k == 0 or k >= logits.shape[-1]:
        return logits
    kth_largest = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, -math.inf)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability
    mass is >= ``p``, INCLUDING the token that crosses ``p``; set the others to -inf.

    A token is removed when the tokens more likely than it already hold >= ``p`` of the
    mass, so the most likely token is always kept (never an empty set). For probabilities
    [0.5, 0.3, 0.15, 0.05] and p = 0.7 it keeps two tokens; the naive ``cumsum <= p`` keeps
    one, and for [0.9, 0.1] keeps none.

    Args:
        logits: FloatTensor[..., V].
        p: in (0, 1]; 1 keeps every token.
    """
    check_tensor("logits", logits)
    if not logits.dtype.is_floating_point:
        raise TypeError(f"logits: expected a float tensor, got {logits.dtype}")
    _check_number("p", p, "in (0, 1]", lambda value: 0 < value <= 1)
    if p == 1:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    mass_before = F.pad(cumulative[..., :-1], (1, 0))  # mass of the strictly more likely tokens
    remove_sorted = mass_before >= p
    remove = torch.empty_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, -math.inf)


@torch.no_grad()
def sample(
    model: torch.nn.Module, src: torch.Tensor, *, max_len: int, top_k: int = 0,
    top_p: float = 1.0, temperature: float = 1.0, generator: torch.Generator | None = None,
    use_cache: bool = True, bos_id: int = Vocab.BOS, eos_id: int | None = Vocab.EOS,
) -> torch.Tensor:
    """Draw every next token at random from the model's (reshaped) distribution.

    At each step: logits / ``temperature`` (< 1 sharpens, > 1 flattens), then
    :func:`top_k_filter`, then :func:`top_p_filter`, then a draw from the softmax.

    Args:
        model, src, max_len, use_cache, bos_id, eos_id: as in :func:`greedy_decode`.
        top_k: 0 = no top-k filtering.
        top_p: 1.0 = no nucleus filtering.
        temperature: > 0.
        generator: a ``torch.Generator`` for reproducible draws: the same generator state
            and the same batch give the same samples. Rows share the generator, so a row's
            draws depend on the batch it is in.

    Returns:
        LongTensor[B, L] as in :func:`greedy_decode`.
    """
    _check_int("top_k", top_k, 0)
    _check_number("top_p", top_p, "in (0, 1]", lambda value: 0 < value <= 1)
    _check_number("temperature", temperature, "> 0", lambda value: 0 < value < math.inf)

    def choose(logits: torch.Tensor) -> torch.Tensor:
        filtered = top_p_filter(top_k_filter(logits / temperature, top_k), top_p)
        return torch.multinomial(filtered.softmax(dim=-1), 1, generator=generator)[:, 0]

    return _generate(model, src, max_len, choose, use_cache=use_cache, bos_id=bos_id,
                     eos_id=eos_id)
