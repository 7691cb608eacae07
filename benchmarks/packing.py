"""Real tokens per second of a training step: random-order padding vs bucketing vs packing.

Run by `make bench`, or `.venv/bin/python benchmarks/packing.py`. One process, 2 CPU threads.
Lesson 01's corpus (4,000 sentences of 1-60 tokens, most of them short) is batched three ways
by ``course_lib.lessons.lesson10.layouts``: random order (32 a batch, right-padded), bucketed
(lesson 01's ``bucket_batches``) and packed (``packing.pack`` into rows of 64 with the causal
document mask, restarted positions and ``packed_labels``, split evenly into at most as many
batches). Each layout trains the same targets. One epoch of training steps (forward,
backward, AdamW: the course's ``training.train``) from the same fresh lesson 09
``CausalLM``; the layouts take turns three times and each keeps its fastest epoch.

Target: packing >= 2x the real tokens per second of random-order padding; bucketing is
reported. The exit status is non-zero when the target is missed.
"""

import os
import sys

import torch

from course_lib.lessons.lesson10 import (
    LAYOUTS,
    attention_scores,
    corpus,
    layouts,
    pad_share,
    tokens_per_second,
)

THREADS = 2
TARGET = 2.0  # packing / random order


def main() -> int:
    torch.set_num_threads(THREADS)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load}")
    sentences = corpus()
    batches = layouts(sentences)
    speed = tokens_per_second(batches, repeats=3)
    print(f"{len(sentences)} sentences, {sum(map(len, sentences))} tokens (lesson 01's corpus)\n")
    print(f"{'layout':<9} {'batches':>7} {'PAD':>6} {'scores computed':>16} {'needed':>7} "
          f"{'real tokens/s':>14} {'ratio':>6}")
    for layout in LAYOUTS:
        scores = attention_scores(batches[layout])
        print(f"{layout:<9} {len(batches[layout]):>7} {pad_share(batches[layout]):>6.1%} "
              f"{scores['computed']:>16} {scores['needed'] / scores['computed']:>7.0%} "
              f"{speed[layout]:>14.0f} {speed[layout] / speed['random']:>5.1f}x")
    ratio = speed["packed"] / speed["random"]
    passed = ratio >= TARGET
    print(f"\npacking vs random-order padding: {ratio:.1f}x (target >= {TARGET:.0f}x); "
          f"bucketing: {speed['bucketed'] / speed['random']:.1f}x")
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
