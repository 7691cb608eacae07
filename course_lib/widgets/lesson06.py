"""Lesson 06: the decoding explorer.

Lesson 05's trained reverse model (``recipes.trained_reverse_model()``, loaded once) decodes
one of two held-out sources. The left panel is the next-token distribution at the step where
the model is least sure (along the greedy output), after the temperature, with the tokens
the chosen method keeps drawn in colour and the removed ones hatched. The right panel lists
the greedy output, the beam's n-best list and a few samples drawn with top-k / top-p /
temperature.
"""

from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import offset_copy

from course_lib import recipes, viz
from course_lib.data import Vocab
from course_lib.decoding import beam_search, greedy_decode, sample, top_k_filter, top_p_filter
from course_lib.kv_cache import start_decoder
from course_lib.widgets.core import Control, Explorer, one_thread

__all__ = ["METHODS", "SAMPLES", "explorer_sources", "uncertain_step", "kept_tokens",
           "draw_decoding", "decoding_explorer"]

METHODS = ("sampling", "greedy", "beam search")
SAMPLES = 4
MAX_LEN = 12
KEPT_COLOR = plt.get_cmap(viz.CMAP)(0.55)


@functools.lru_cache(maxsize=1)
def _model():
    return recipes.trained_reverse_model()


def explorer_sources() -> tuple[str, ...]:
    """Two held-out test sources (never trained on), as space-separated letters."""
    _, test = recipes.held_out_pairs()
    return tuple(" ".join(test[i][0]) for i in (0, 3))


def _ids(source: str) -> torch.Tensor:
    return torch.tensor([recipes.reverse_vocab().encode(source.split())])


@functools.lru_cache(maxsize=8)
def uncertain_step(source: str) -> tuple[tuple[int, ...], torch.Tensor]:
    """(the greedy prefix before the least certain step, that step's logits [V]).

    Follows the greedy output; the step with the largest entropy of the next-token
    distribution (at temperature 1) is the one where decoding choices matter most.
    """
    model, src = _model(), _ids(source)
    output = _greedy_output(source)
    with one_thread(), torch.no_grad():
        decoder = start_decoder(model, src)
        fed, steps = Vocab.BOS, []
        for token in output:
            logits = decoder.step(torch.tensor([fed]))[0]
            steps.append(logits)
            fed = token
    entropy = [float(-(logits.log_softmax(-1) * logits.softmax(-1)).sum()) for logits in steps]
    step = max(range(len(steps)), key=entropy.__getitem__)
    return tuple(output[:step]), steps[step]


def kept_tokens(logits: torch.Tensor, method: str, *, beam_size: int, top_k: int,
                top_p: float, temperature: float) -> torch.Tensor:
    """BoolTensor[V]: the tokens ``method`` may pick next from ``logits`` [V].

    greedy: the argmax; beam search: the ``beam_size`` best (what the beam keeps from this
    prefix); sampling: what survives temperature, then top-k, then top-p.
    """
    if method == "greedy":
        return torch.arange(logits.shape[0]) == logits.argmax()
    if method == "beam search":
        return torch.zeros_like(logits, dtype=torch.bool).scatter(
            0, logits.topk(beam_size).indices, True)
    if method == "sampling":
        return torch.isfinite(top_p_filter(top_k_filter(logits / temperature, top_k), top_p))
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")


@functools.lru_cache(maxsize=8)
def _greedy_output(source: str) -> tuple[int, ...]:
    with one_thread():
        return tuple(greedy_decode(_model(), _ids(source), max_len=MAX_LEN)[0].tolist())


@functools.lru_cache(maxsize=16)
def _beam_lines(source: str, beam_size: int) -> tuple[str, ...]:
    with one_thread():
        result = beam_search(_model(), _ids(source), beam_size=beam_size, max_len=MAX_LEN,
                             length_penalty=1.0)
    return tuple(f"{_text(tokens):<26} score {score:.3f}" for tokens, score
                 in zip(result.sequences[0].tolist(), result.scores[0].tolist(), strict=True))


@functools.lru_cache(maxsize=64)
def _sample_lines(source: str, top_k: int, top_p: float, temperature: float) -> tuple[str, ...]:
    with one_thread():
        samples = sample(_model(), _ids(source).expand(SAMPLES, -1), max_len=MAX_LEN,
                         top_k=top_k, top_p=top_p, temperature=temperature,
                         generator=torch.Generator().manual_seed(0))
    return tuple(_text(tokens) for tokens in samples.tolist())


def _text(ids) -> str:
    tokens = recipes.reverse_vocab().decode([i for i in ids if i != Vocab.PAD])
    return " ".join(tokens)


def draw_decoding(source: str, method: str = "sampling", beam_size: int = 4, top_k: int = 0,
                  top_p: float = 0.9, temperature: float = 1.0) -> Figure:
    """The next-token distribution with the kept tokens marked, and every method's output."""
    prefix, logits = uncertain_step(source)
    kept = kept_tokens(logits, method, beam_size=beam_size, top_k=top_k, top_p=top_p,
                       temperature=temperature)
    # Greedy and beam search rank the logits, which a temperature does not reorder: their
    # panel shows temperature 1, whatever the slider says.
    shown_temperature = temperature if method == "sampling" else 1.0
    probs = (logits / shown_temperature).softmax(dim=-1)
    itos = recipes.reverse_vocab().itos
    fig, (bars, text) = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained",
                                     gridspec_kw={"width_ratios": (1.1, 1)})
    for i, (p, keep) in enumerate(zip(probs.tolist(), kept.tolist(), strict=True)):
        style = {"color": KEPT_COLOR} if keep else viz.BLOCKED_STYLE
        bars.bar(i, p, width=0.8, **style)
    bars.set_yscale("log")
    bars.set_ylim(1e-5, 1.5)
    bars.set_xticks(range(len(itos)), itos, rotation=60)
    bars.set_xlabel("next token")
    bars.set_ylabel(f"probability, temperature {shown_temperature:g}\n(log scale)")
    where = " ".join(["<bos>", *(itos[i] for i in prefix)])
    note = ("" if method == "sampling" else
            f"; {method} ignores the temperature: bars at temperature 1")
    bars.set_title(f"{method}: {int(kept.sum())} of {len(itos)} tokens kept after '{where}'\n"
                   f"(the greedy output's least certain step{note})", fontsize="medium")
    bars.legend(handles=[Patch(color=KEPT_COLOR, label="kept"),
                         Patch(**viz.BLOCKED_STYLE, label="removed")], loc="upper right",
                fontsize="small")
    target = " ".join(reversed(source.split())) + " <eos>"
    greedy = _text(_greedy_output(source))
    lines = [("source", source, False), ("target", target, False),
             ("greedy", greedy, method == "greedy"),
             *((f"beam {beam_size}, #{i + 1}", line, method == "beam search")
               for i, line in enumerate(_beam_lines(source, beam_size))),
             *((f"sample {i + 1}", line, method == "sampling") for i, line in
               enumerate(_sample_lines(source, top_k, top_p, temperature)))]
    line_height = 1.5 * viz.points("small")  # rows a fixed number of points apart, any style
    for row, (label, line, chosen) in enumerate(lines):
        weight = "bold" if chosen else "normal"
        at = offset_copy(text.transAxes, fig=fig, y=-row * line_height, units="points")
        text.text(0.0, 1.0, f"{label:>12}  {line}", family="monospace", fontsize="small",
                  weight=weight, va="top", transform=at)
    text.axis("off")
    text.set_title(f"outputs (bold: the chosen method)\nbeam: length_penalty 1; samples: "
                   f"top-k {top_k}, top-p {top_p:g}, T = {temperature:g}, seed 0",
                   fontsize="medium", loc="left")
    return fig


def decoding_explorer() -> Explorer:
    """Pick a source, a method, the beam size, top-k, top-p and the temperature."""
    return Explorer(draw_decoding, {
        "source": Control("source", explorer_sources()),
        "method": Control("method", METHODS),
        "beam_size": Control("beam size", (2, 4), default=4),
        "top_k": Control("top-k (0 = off)", (0, 3)),
        "top_p": Control("top-p", (0.9, 1.0)),
        "temperature": Control("temperature", (0.5, 1.0, 2.0), default=1.0),
    })
