"""Token ids and batches: the vocabulary, length bucketing, and the toy seq2seq tasks.

The special ids are fixed class constants, so code says ``Vocab.PAD`` instead of a bare 0.
Batching works on *lengths* and returns *indices*: the caller decides how a batch of
sequences is padded (``torch.nn.utils.rnn.pad_sequence(..., padding_value=Vocab.PAD)``).
For the seq2seq tasks, :func:`collate` does the padding and builds every mask.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch

from course_lib.masks import causal_mask

__all__ = [
    "Vocab", "sample_lengths", "random_batches", "bucket_batches", "pad_fraction",
    "LETTERS", "TASKS", "make_pairs", "Batch", "collate", "batch_stream", "bucketed_batches",
]


class Vocab:
    """Maps tokens to ids and back; ids 0-3 are the special tokens.

    ``PAD`` fills the rectangle after a sequence ends; ``BOS`` / ``EOS`` mark where a
    sequence begins / ends (they are real tokens the model reads and predicts); ``UNK``
    stands for a token that is not in the vocabulary.

    Args:
        tokens: the ordinary tokens, e.g. ``sorted(set(words))``. They get ids 4, 5, ...
            in order; repeated tokens keep their first id.
    """

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, tokens: Iterable[str]) -> None:
        if isinstance(tokens, str):
            raise TypeError(
                f"tokens: expected a list of tokens, got the str {tokens[:40]!r}; "
                "split it first, e.g. text.split()"
            )
        self.itos: list[str] = list(self.SPECIALS)
        self.stoi: dict[str, int] = {token: i for i, token in enumerate(self.itos)}
        for token in tokens:
            if not isinstance(token, str) or not token:
                raise TypeError(f"tokens: expected non-empty str tokens, got {token!r}")
            if token in self.SPECIALS:
                raise ValueError(
                    f"tokens: {token!r} is a special token; specials are added automatically "
                    f"as ids 0-3 {self.SPECIALS}"
                )
            if token not in self.stoi:
                self.stoi[token] = len(self.itos)
                self.itos.append(token)

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {self.itos[:8]}{' ...' if len(self) > 8 else ''})"

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token strings -> ids; a token not in the vocabulary becomes ``Vocab.UNK``.

        Adds no BOS/EOS: append ``Vocab.EOS`` yourself where the task needs it.
        """
        if isinstance(tokens, str):
            raise TypeError(
                f"tokens: expected a list of tokens, got the str {tokens[:40]!r}; encoding "
                "a str would encode single characters. Split it first, e.g. sentence.split()"
            )
        return [self.stoi.get(token, self.UNK) for token in tokens]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        """Ids (a list or a 1-D tensor) -> token strings, specials included (``"<pad>"``)."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
                raise ValueError(
                    f"ids: expected a 1-D integer tensor, got {ids.dtype} of shape "
                    f"{list(ids.shape)}; decode one row at a time, e.g. ids[0]"
                )
            ids = ids.tolist()
        tokens = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self):
                raise ValueError(f"ids: expected ints in 0..{len(self) - 1}, got {i!r}")
            tokens.append(self.itos[i])
        return tokens


def _check_lengths(lengths: Sequence[int] | torch.Tensor, name: str = "lengths") -> list[int]:
    if isinstance(lengths, torch.Tensor):
        if lengths.dim() != 1 or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise ValueError(
                f"{name}: expected a 1-D integer tensor, got {lengths.dtype} of shape "
                f"{list(lengths.shape)}"
            )
        lengths = lengths.tolist()
    if isinstance(lengths, str | bytes) or not isinstance(lengths, Sequence):
        raise TypeError(f"{name}: expected a sequence of ints, got {type(lengths).__name__}")
    if len(lengths) == 0:
        raise ValueError(f"{name}: expected at least one sequence length, got an empty sequence")
    for length in lengths:
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"{name}: expected positive ints (lengths >= 1), got {length!r}")
    return list(lengths)


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def sample_lengths(n: int, *, min_len: int = 1, max_len: int = 60, seed: int = 0) -> list[int]:
    """``n`` sequence lengths with a realistic skew: many short, a long tail up to ``max_len``.

    Log-normal with median 12, rounded and clipped to ``[min_len, max_len]``. Pure Python
    (``random.Random(seed)``), so the same seed gives the same lengths on every machine.
    """
    _check_positive_int("n", n)
    _check_positive_int("min_len", min_len)
    _check_positive_int("max_len", max_len)
    if min_len > max_len:
        raise ValueError(f"min_len: expected <= max_len = {max_len}, got {min_len}")
    rng = random.Random(seed)
    return [
        min(max_len, max(min_len, round(rng.lognormvariate(math.log(12), 0.6)))) for _ in range(n)
    ]


def random_batches(
    lengths: Sequence[int] | torch.Tensor, batch_size: int, *, seed: int = 0
) -> list[list[int]]:
    """Indices ``0..len(lengths)-1`` in random order, cut into batches of ``batch_size``.

    The usual shuffled data loader: a batch mixes short and long sequences. Only the
    number of lengths is used; the argument matches :func:`bucket_batches`.
    """
    count = len(_check_lengths(lengths))
    _check_positive_int("batch_size", batch_size)
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return [order[start:start + batch_size] for start in range(0, count, batch_size)]


def bucket_batches(
    lengths: Sequence[int] | torch.Tensor, batch_size: int, *, shuffle: bool = True, seed: int = 0
) -> list[list[int]]:
    """Indices grouped into batches of sequences with similar lengths (length bucketing).

    Sorts the indices by length (longest first; ties in random order when ``shuffle``),
    cuts them into batches of ``batch_size`` (the last one may be smaller) and, when
    ``shuffle``, shuffles the order of the batches so training does not see lengths in order.

    Args:
        lengths: the length of every sequence, ``list[int]`` or a 1-D LongTensor, each >= 1.
        batch_size: the number of sequences per batch.

    Returns:
        ``list[list[int]]``: every index exactly once.
    """
    lengths = _check_lengths(lengths)
    _check_positive_int("batch_size", batch_size)
    rng = random.Random(seed)
    tie_break = [rng.random() for _ in lengths] if shuffle else list(range(len(lengths)))
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], tie_break[i]))
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(batches)
    return batches


def pad_fraction(batch_lengths: Iterable[Sequence[int]]) -> float:
    """The fraction of PAD cells when every batch is padded to its longest sequence.

    Args:
        batch_lengths: one sequence of lengths per batch, e.g.
            ``[[lengths[i] for i in batch] for batch in batches]``.

    Returns:
        ``pad cells / all cells`` in ``[0, 1)``: 0 when every batch holds equal lengths.
    """
    if isinstance(batch_lengths, torch.Tensor | str):
        raise TypeError(
            "batch_lengths: expected one list of lengths per batch, got a "
            f"{type(batch_lengths).__name__}; for a padded id tensor use (ids == Vocab.PAD)"
            ".float().mean()"
        )
    cells = pads = 0
    for batch in batch_lengths:
        if isinstance(batch, int):
            raise TypeError(
                "batch_lengths: expected one list of lengths per batch, got a flat list of "
                "ints; wrap it, e.g. [[lengths[i] for i in batch] for batch in batches]"
            )
        batch = _check_lengths(batch, "batch_lengths")
        cells += len(batch) * max(batch)
        pads += len(batch) * max(batch) - sum(batch)
    if cells == 0:
        raise ValueError("batch_lengths: expected at least one batch, got none")
    return pads / cells


# --- toy seq2seq tasks ---------------------------------------------------------------------

LETTERS = tuple("abcdefghij")
TASKS = {"reverse": lambda src: src[::-1], "copy": lambda src: src, "sort": sorted}
Pair = tuple[tuple[str, ...], tuple[str, ...]]


def _check_task(task: str, min_len: int, max_len: int, alphabet: Sequence[str]) -> None:
    if task not in TASKS:
        raise ValueError(f"task: expected one of {sorted(TASKS)}, got {task!r}")
    _check_positive_int("min_len", min_len)
    _check_positive_int("max_len", max_len)
    if min_len > max_len:
        raise ValueError(f"min_len: expected <= max_len = {max_len}, got {min_len}")
    if isinstance(alphabet, str) or not alphabet:
        raise ValueError(f"alphabet: expected a non-empty sequence of tokens, got {alphabet!r}")


def _sources_left(alphabet, min_len: int, max_len: int, excluded: set) -> int:
    """How many distinct sources of an allowed length are not excluded."""
    total = sum(len(alphabet) ** length for length in range(min_len, max_len + 1))
    return total - sum(min_len <= len(src) <= max_len for src in excluded)


def _random_pairs(task, alphabet, min_len, max_len, rng, excluded) -> Iterator[Pair]:
    while True:
        src = tuple(rng.choices(alphabet, k=rng.randint(min_len, max_len)))
        if src not in excluded:
            yield src, tuple(TASKS[task](src))


def make_pairs(
    task: str, n: int, *, min_len: int, max_len: int, seed: int,
    alphabet: Sequence[str] = LETTERS, disjoint_from: Collection[Pair] = (),
) -> list[Pair]:
    """``n`` distinct ``(src_tokens, tgt_tokens)`` pairs of a toy task, as tuples of str.

    Each source has a length drawn uniformly from ``[min_len, max_len]`` and letters drawn
    uniformly from ``alphabet``; the target is the source reversed (``"reverse"``), copied
    (``"copy"``) or sorted (``"sort"``). No source occurs twice, and none occurs in
    ``disjoint_from`` (pairs, e.g. a held-out set that training must never see).
    """
    _check_task(task, min_len, max_len, alphabet)
    _check_positive_int("n", n)
    excluded = {tuple(src) for src, _ in disjoint_from}
    available = _sources_left(alphabet, min_len, max_len, excluded)
    if n > available:
        raise ValueError(
            f"n: only {available} distinct sources of length {min_len}-{max_len} exist over "
            f"{len(alphabet)} letters (minus disjoint_from), got n={n}"
        )
    pairs: dict[tuple[str, ...], Pair] = {}
    rng = random.Random(seed)
    for src, tgt in _random_pairs(task, tuple(alphabet), min_len, max_len, rng, excluded):
        pairs.setdefault(src, (src, tgt))
        if len(pairs) == n:
            return list(pairs.values())


@dataclass(frozen=True)
class Batch:
    """A padded seq2seq batch with every mask ``nn.Transformer`` needs (True = blocked).

    Attributes:
        src: LongTensor[B, S], sources right-padded with PAD.
        tgt_in: LongTensor[B, T], ``[BOS] + target`` (what the decoder reads).
        tgt_out: LongTensor[B, T], ``target + [EOS]`` (what it must predict), one position ahead.
        src_key_padding_mask: BoolTensor[B, S], True at PAD; also the memory_key_padding_mask.
        tgt_key_padding_mask: BoolTensor[B, T], True at PAD.
        tgt_mask: BoolTensor[T, T], True above the diagonal (no peeking at later targets).
    """

    src: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    src_key_padding_mask: torch.Tensor
    tgt_key_padding_mask: torch.Tensor
    tgt_mask: torch.Tensor

    @property
    def memory_key_padding_mask(self) -> torch.Tensor:
        """The decoder's cross-attention keys are the source positions: the same mask."""
        return self.src_key_padding_mask


def collate(pairs: Sequence[Pair], vocab: Vocab) -> Batch:
    """Encode ``(src_tokens, tgt_tokens)`` pairs with ``vocab``, pad them and build the masks.

    The target is shifted around BOS/EOS (teacher forcing): ``tgt_in = [BOS] + tgt`` and
    ``tgt_out = tgt + [EOS]``, so ``tgt_out[:, t]`` is the token that follows ``tgt_in[:, t]``.
    """
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab: expected a course_lib.data.Vocab, got {type(vocab).__name__}")
    if isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence):
        raise TypeError(f"pairs: expected a list of (src, tgt) pairs, got {type(pairs).__name__}")
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one (src, tgt) pair, got an empty batch")
    src_ids, tgt_ids = [], []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, Sequence) or len(pair) != 2 or isinstance(pair, str):
            raise TypeError(f"pairs[{i}]: expected a (src_tokens, tgt_tokens) pair, got {pair!r}")
        if len(pair[0]) == 0:
            raise ValueError(f"pairs[{i}]: the source is empty; every source needs a token")
        src_ids.append(vocab.encode(pair[0]))
        tgt_ids.append(vocab.encode(pair[1]))
    # Padded as Python lists, then one tensor per field: many times faster than a tensor
    # per row and pad_sequence, for the same result.
    src_len = max(map(len, src_ids))
    tgt_len = max(map(len, tgt_ids)) + 1
    pad = Vocab.PAD
    src = torch.tensor([ids + [pad] * (src_len - len(ids)) for ids in src_ids])
    tgt_in = torch.tensor([[Vocab.BOS, *ids] + [pad] * (tgt_len - 1 - len(ids))
                           for ids in tgt_ids])
    tgt_out = torch.tensor([[*ids, Vocab.EOS] + [pad] * (tgt_len - 1 - len(ids))
                            for ids in tgt_ids])
    return Batch(src, tgt_in, tgt_out, src == Vocab.PAD, tgt_in == Vocab.PAD,
                 causal_mask(tgt_in.shape[1]))


def bucketed_batches(
    pairs: Sequence[Pair], vocab: Vocab, batch_size: int, *, shuffle: bool = True, seed: int = 0
) -> list[Batch]:
    """One epoch of ``pairs`` as collated batches of similar source lengths (less PAD)."""
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one (src, tgt) pair, got none")
    lengths = [max(len(src), len(tgt) + 1) for src, tgt in pairs]
    return [collate([pairs[i] for i in batch], vocab)
            for batch in bucket_batches(lengths, batch_size, shuffle=shuffle, seed=seed)]


def batch_stream(
    task: str, vocab: Vocab, batch_size: int, *, min_len: int, max_len: int, seed: int,
    disjoint_from: Collection[Pair] = (),
) -> Iterator[Batch]:
    """Endless collated batches of fresh random pairs: infinite data, nothing seen twice on
    purpose, and never a source of ``disjoint_from`` (the held-out pairs).

    The letters are ``vocab``'s ordinary tokens. Lengths are mixed within a batch: batches
    of similar lengths (bucketing) save PAD but, on the reverse task, slow learning down.
    """
    alphabet = tuple(vocab.itos[len(Vocab.SPECIALS):])
    _check_task(task, min_len, max_len, alphabet)
    _check_positive_int("batch_size", batch_size)
    excluded = {tuple(src) for src, _ in disjoint_from}
    if _sources_left(alphabet, min_len, max_len, excluded) == 0:
        raise ValueError("disjoint_from: excludes every source of the allowed lengths")
    pairs = _random_pairs(task, alphabet, min_len, max_len, random.Random(seed), excluded)
    while True:
        yield collate([next(pairs) for _ in range(batch_size)], vocab)
