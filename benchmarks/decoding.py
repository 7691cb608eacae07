"""Speed of course_lib.decoding against the naive decoders tutorials usually write.

Run by `make bench`, or `.venv/bin/python benchmarks/decoding.py`. Everything runs in one
process on 2 CPU threads; each time is the best of a few repeats. The naive versions below
decode ONE source at a time and re-run the decoder on the WHOLE prefix at every step.

1. KV cache, greedy, 128 new tokens, 64 sources: to generate 128 tokens the model must
   accept 129 positions and must not stop at EOS, so it is the recipe's model shape with
   ``max_len=160``, untrained (seed 0), decoded with ``eos_id=None``. Target: the cache
   (batched) >= 3x faster than recomputing the prefix (batched, ``use_cache=False``) with
   identical tokens; the naive one-at-a-time loop is reported too.
2. Beam search, beam 4, 64 sources of the held-out test set, on lesson 05's trained model
   (``length_penalty=1.0``). Target: batched beam search >= 20x faster than looping over the
   sources without a cache, with the same best hypotheses.
3. Sampling (top-p 0.9), the same 64 sources: batched vs the naive loop; the ratio is reported.

The exit status is non-zero when a target is missed or outputs differ.
"""

import math
import os
import sys
import time

import torch
import torch.nn.functional as F

from course_lib import recipes
from course_lib.data import Vocab, collate
from course_lib.decoding import (
    beam_search,
    greedy_decode,
    length_penalty_factor,
    sample,
    top_p_filter,
)
from course_lib.masks import causal_mask

THREADS = 2
SOURCES = 64
NEW_TOKENS = 128
BEAM_SIZE, LENGTH_PENALTY, BEAM_MAX_LEN = 4, 1.0, 16
TOP_P = 0.9


def best_seconds(function, repeats):
    """(the smallest wall time of ``repeats`` calls, the last result)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def unpadded(src_row):
    return src_row[src_row != Vocab.PAD][None]  # LongTensor[1, S]: one source, no PAD


def next_token_logits(model, memory, prefix):
    """Tutorial style: the decoder on the whole prefix LongTensor[N, t], keep the last step."""
    return model.decode(prefix, memory, tgt_mask=causal_mask(prefix.shape[1]),
                        tgt_key_padding_mask=None, memory_key_padding_mask=None)[:, -1]


@torch.no_grad()
def naive_greedy(model, src, max_len, eos_id=None):
    """One source at a time, the whole prefix recomputed every step."""
    outputs = []
    for row in src:
        source = unpadded(row)
        memory = model.encode(source, None)
        prefix = torch.tensor([[Vocab.BOS]])
        for _ in range(max_len):
            token = next_token_logits(model, memory, prefix).argmax(dim=-1, keepdim=True)
            prefix = torch.cat([prefix, token], dim=1)
            if eos_id is not None and int(token) == eos_id:
                break
        outputs.append(prefix[0, 1:])
    return outputs


@torch.no_grad()
def naive_sample(model, src, max_len, top_p, generator):
    """One source at a time, the whole prefix recomputed every step."""
    outputs = []
    for row in src:
        source = unpadded(row)
        memory = model.encode(source, None)
        prefix = torch.tensor([[Vocab.BOS]])
        for _ in range(max_len):
            probs = top_p_filter(next_token_logits(model, memory, prefix), top_p).softmax(-1)
            token = torch.multinomial(probs, 1, generator=generator)
            prefix = torch.cat([prefix, token], dim=1)
            if int(token) == Vocab.EOS:
                break
        outputs.append(prefix[0, 1:])
    return outputs


@torch.no_grad()
def naive_beam_search(model, src, beam_size, max_len, length_penalty):
    """One source at a time, each hypothesis decoded on its own, prefixes recomputed.

    The same algorithm as course_lib.decoding.beam_search, with Python lists: 2 * beam_size
    candidates, EOS among the first beam_size finishes, the same exact stopping test.
    """
    best = []
    for row in src:
        memory = model.encode(unpadded(row), None)
        live = [(0.0, [Vocab.BOS])]
        finished = []  # (score, log_prob, tokens)
        for length in range(1, max_len + 1):
            candidates = []
            for log_prob, tokens in live:
                step = F.log_softmax(next_token_logits(model, memory, torch.tensor([tokens])), -1)
                values, ids = step[0].topk(2 * beam_size)
                candidates += [(log_prob + float(v), tokens + [int(i)]) for v, i in
                               zip(values, ids, strict=True)]
            candidates.sort(key=lambda candidate: -candidate[0])
            candidates = candidates[:2 * beam_size]
            for log_prob, tokens in candidates[:beam_size]:
                if tokens[-1] == Vocab.EOS or length == max_len:
                    score = log_prob / length_penalty_factor(length, length_penalty)
                    finished.append((score, log_prob, tokens[1:]))
            finished = sorted(finished, key=lambda item: -item[0])[:beam_size]
            live = [c for c in candidates if c[1][-1] != Vocab.EOS][:beam_size]
            reachable = max_len if length_penalty > 0 else length + 1
            bound = max(lp for lp, _ in live) / length_penalty_factor(reachable, length_penalty)
            if len(finished) == beam_size and finished[-1][0] >= bound:
                break
        best.append(finished[0])
    return best


def row(name, fast, slow, target, same):
    """Print one comparison; ``target`` None = only reported, ``same`` None = not compared."""
    ratio = slow / fast
    passed = (target is None or ratio >= target) and same is not False
    verdict = "report" if target is None else ("PASS" if passed else "FAIL")
    wanted = f">= {target:g}x" if target else "-"
    print(f"{name:<58} {fast:>8.3f} {slow:>9.3f} {ratio:>7.1f}x {wanted:>7} "
          f"{'-' if same is None else str(same):>6}  {verdict}")
    return passed


def main() -> int:
    torch.set_num_threads(THREADS)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load}")
    _, test = recipes.held_out_pairs()
    src = collate(test[:SOURCES], recipes.reverse_vocab()).src
    print(f"{SOURCES} held-out reverse sources, lengths {int((src != 0).sum(1).min())}-"
          f"{src.shape[1]} (padded batch)\n")
    print(f"{'comparison':<58} {'fast (s)':>8} {'naive (s)':>9} {'ratio':>8} {'target':>7} "
          f"{'same':>6}")
    results = []

    long_model = recipes.new_model(0, max_len=160).eval()  # untrained; 129 positions fit
    cached_time, cached = best_seconds(lambda: greedy_decode(
        long_model, src, max_len=NEW_TOKENS, eos_id=None), 3)
    assert cached.shape == (SOURCES, NEW_TOKENS)
    recompute_time, recomputed = best_seconds(lambda: greedy_decode(
        long_model, src, max_len=NEW_TOKENS, eos_id=None, use_cache=False), 1)
    results.append(row(f"greedy {NEW_TOKENS} tokens: KV cache vs recompute (both batched)",
                       cached_time, recompute_time, 3.0, torch.equal(cached, recomputed)))
    naive_time, naive = best_seconds(lambda: naive_greedy(long_model, src, NEW_TOKENS), 1)
    results.append(row("  ... vs the naive loop (1 source, recompute)", cached_time,
                       naive_time, 3.0, torch.equal(cached, torch.stack(naive))))

    model = recipes.trained_reverse_model(0)
    beam_time, beams = best_seconds(lambda: beam_search(
        model, src, beam_size=BEAM_SIZE, max_len=BEAM_MAX_LEN,
        length_penalty=LENGTH_PENALTY), 3)
    naive_time, naive = best_seconds(lambda: naive_beam_search(
        model, src, BEAM_SIZE, BEAM_MAX_LEN, LENGTH_PENALTY), 1)
    same = all(beams.sequences[i, 0, :len(tokens)].tolist() == tokens
               and bool((beams.sequences[i, 0, len(tokens):] == Vocab.PAD).all())
               and math.isclose(float(beams.scores[i, 0]), score, abs_tol=1e-4)
               for i, (score, _, tokens) in enumerate(naive))
    results.append(row(f"beam search, beam {BEAM_SIZE}: batched vs loop without cache",
                       beam_time, naive_time, 20.0, same))

    generator = torch.Generator()
    sample_time, _ = best_seconds(lambda: sample(
        model, src, max_len=BEAM_MAX_LEN, top_p=TOP_P, generator=generator.manual_seed(0)), 3)
    naive_time, _ = best_seconds(lambda: naive_sample(
        model, src, BEAM_MAX_LEN, TOP_P, generator.manual_seed(0)), 1)
    results.append(row(f"sampling, top-p {TOP_P}: batched vs loop", sample_time, naive_time,
                       None, None))  # random draws: batched and looped use the stream differently

    print("\nPASS" if all(results) else "\nFAIL")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
