"""course_lib.lessons.lesson06 and course_lib.widgets.lesson06: the KV-cache picture counts what the
cache computes, the scores are right, and the explorer marks exactly the tokens each
decoding method may pick."""

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle

from course_lib import recipes
from course_lib.data import Vocab
from course_lib.decoding import greedy_decode, top_k_filter, top_p_filter
from course_lib.lessons.lesson06 import (
    CACHED_COLOR,
    NEW_COLOR,
    exact_match,
    length_study,
    mean_length,
    plot_kv_cache,
    plot_length_study,
    undertrained_reverse_model,
)
from course_lib.models import Seq2SeqTransformer
from course_lib.widgets.lesson06 import (
    METHODS,
    decoding_explorer,
    draw_decoding,
    explorer_sources,
    kept_tokens,
    uncertain_step,
)


def _cells(ax):
    counts = {"new": 0, "cached": 0, "hatched": 0}
    for patch in ax.patches:
        if not isinstance(patch, Rectangle):
            continue
        if patch.get_hatch():
            counts["hatched"] += 1
        elif to_hex(patch.get_facecolor()) == NEW_COLOR:
            counts["new"] += 1
        elif to_hex(patch.get_facecolor()) == CACHED_COLOR:
            counts["cached"] += 1
    return counts


@pytest.mark.parametrize(("source", "output"), [
    (["b", "d", "a", "<pad>", "<pad>"], ["a", "d", "b", "<eos>"]),
    (["c"], ["c", "<eos>"]),
    (["a", "b", "c", "d", "e", "f", "<pad>"], ["f", "e", "d", "c", "b", "a", "<eos>"]),
])
def test_kv_cache_figure_counts_what_each_decoder_computes(source, output):
    steps, real = len(output), sum(token != "<pad>" for token in source)
    fig = plot_kv_cache(source, output)
    without, with_cache, cross = fig.axes[:3]
    assert _cells(without) == {"new": steps * (steps + 1) // 2, "cached": 0, "hatched": 0}
    assert _cells(with_cache) == {"new": steps, "cached": steps * (steps - 1) // 2,
                                  "hatched": 0}
    assert _cells(cross) == {"new": real, "cached": real * (steps - 1),
                             "hatched": steps * (len(source) - real)}
    assert [label.get_text() for label in without.get_xticklabels()] == ["<bos>", *output[:-1]]
    assert [label.get_text() for label in cross.get_xticklabels()] == source
    plt.close(fig)
    with pytest.raises(ValueError, match="output_tokens"):
        plot_kv_cache(source, [])


def test_exact_match_and_mean_length():
    target = torch.tensor([[5, 6, Vocab.EOS, 0], [7, Vocab.EOS, 0, 0]])
    assert exact_match(torch.tensor([[5, 6, Vocab.EOS], [7, Vocab.EOS, 0]]), target) == 1.0
    assert exact_match(torch.tensor([[5, 6, Vocab.EOS, 0, 0], [7, 8, Vocab.EOS, 0, 0]]),
                       target) == 0.5
    assert exact_match(torch.tensor([[5, 6], [7, Vocab.EOS]]), target) == 0.5  # no EOS: wrong
    assert mean_length(target) == 1.5
    assert mean_length(torch.tensor([[5, 6, 7], [Vocab.EOS, 0, 0]])) == 1.5  # 3 and 0
    with pytest.raises(ValueError, match="predicted: expected 2 rows"):
        exact_match(target[:1], target)


def test_length_study_runs_greedy_and_every_beam_setting():
    torch.manual_seed(0)
    model = Seq2SeqTransformer(14, d_model=32, nhead=4, num_layers=1, dim_feedforward=32,
                               max_len=16)
    with torch.no_grad():
        model.generator.bias[Vocab.EOS] += 2.5
    src = torch.randint(4, 14, (12, 6))
    target = torch.randint(4, 14, (12, 7))
    rows = length_study(model, src, target, beam_sizes=(1, 3), length_penalties=(0.0, 1.0),
                        max_len=8)
    assert [(row["method"], row["beam_size"], row["length_penalty"]) for row in rows] == [
        ("greedy", 1, None), ("beam", 1, 0.0), ("beam", 3, 0.0), ("beam", 1, 1.0),
        ("beam", 3, 1.0)]
    greedy = greedy_decode(model, src, max_len=8)
    assert rows[0]["mean_length"] == mean_length(greedy)
    assert rows[1]["mean_length"] == rows[0]["mean_length"]  # beam 1, no penalty = greedy
    assert torch.equal(rows[0]["tokens"], greedy)
    assert torch.allclose(rows[1]["log_probs"], rows[0]["log_probs"])
    for row in rows:
        assert row["mean_log_prob"] == pytest.approx(float(row["log_probs"].mean()))
        assert row["mean_length"] == mean_length(row["tokens"])
    assert rows[2]["mean_log_prob"] >= rows[1]["mean_log_prob"] - 1e-6  # a wider beam's sum
    fig = plot_length_study(rows, target_length=5.0)
    assert len(fig.axes[0].lines) == 2 + 2  # one per length penalty, greedy, targets
    plt.close(fig)


def test_undertrained_model_is_the_recipe_stopped_early():
    model = undertrained_reverse_model(steps=2)
    fresh = recipes.new_model(0)
    assert isinstance(model, Seq2SeqTransformer) and not model.training
    assert not torch.equal(model.generator.weight, fresh.generator.weight)


def test_explorer_sources_are_held_out_and_the_uncertain_step_follows_greedy():
    validation, test = recipes.held_out_pairs()
    held_out = {" ".join(src) for src, _ in test}
    sources = explorer_sources()
    assert len(sources) == 2 and set(sources) <= held_out
    model = recipes.trained_reverse_model()
    for source in sources:
        prefix, logits = uncertain_step(source)
        src = torch.tensor([recipes.reverse_vocab().encode(source.split())])
        output = greedy_decode(model, src, max_len=12)[0].tolist()
        assert list(prefix) == output[:len(prefix)]
        assert int(logits.argmax()) == output[len(prefix)]  # the logits of that very step


def test_kept_tokens_are_what_each_method_may_pick():
    logits = torch.tensor([2.0, 0.5, 3.0, -1.0, 1.0])
    options = {"beam_size": 2, "top_k": 0, "top_p": 0.9, "temperature": 1.0}
    assert kept_tokens(logits, "greedy", **options).tolist() == [0, 0, 1, 0, 0]
    assert kept_tokens(logits, "beam search", **options).tolist() == [1, 0, 1, 0, 0]
    for top_k, top_p, temperature in ((0, 0.9, 1.0), (3, 1.0, 1.0), (2, 0.5, 2.0),
                                      (0, 0.7, 0.5)):
        expected = torch.isfinite(top_p_filter(top_k_filter(logits / temperature, top_k), top_p))
        assert torch.equal(kept_tokens(logits, "sampling", beam_size=2, top_k=top_k, top_p=top_p,
                                       temperature=temperature), expected)
    with pytest.raises(ValueError, match="method: expected one of"):
        kept_tokens(logits, "nucleus", **options)


@pytest.mark.parametrize("method", METHODS)
def test_the_explorer_hatches_exactly_the_removed_tokens(method):
    explorer = decoding_explorer()
    state = {**explorer.default_state, "method": method, "temperature": 2.0, "top_k": 3}
    fig = draw_decoding(**state)
    _, logits = uncertain_step(state["source"])
    kept = kept_tokens(logits, method, beam_size=state["beam_size"], top_k=3,
                       top_p=state["top_p"], temperature=2.0)
    bars = [patch for patch in fig.axes[0].patches if isinstance(patch, Rectangle)]
    assert len(bars) == len(recipes.reverse_vocab())
    assert [not bar.get_hatch() for bar in bars] == kept.tolist()
    labels = [text for text in fig.axes[1].texts if text.get_position()[0] == 0.0]
    beams = [text for text in labels if text.get_text().strip().startswith("beam ")]
    samples = [text for text in labels if text.get_text().strip().startswith("sample ")]
    assert len(beams) == state["beam_size"] and len(samples) == 4
    bold = {text.get_text().strip().split()[0] for text in labels
            if text.get_fontweight() == "bold"}
    assert bold == {{"sampling": "sample", "greedy": "greedy", "beam search": "beam"}[method]}
    plt.close(fig)


@pytest.mark.parametrize("method", ["greedy", "beam search"])
def test_greedy_and_beam_draw_the_temperature_1_distribution_whatever_the_slider(method):
    explorer = decoding_explorer()
    _, logits = uncertain_step(explorer.default_state["source"])
    for temperature in (0.5, 2.0):
        fig = draw_decoding(**{**explorer.default_state, "method": method,
                               "temperature": temperature})
        bars = [patch for patch in fig.axes[0].patches if isinstance(patch, Rectangle)]
        heights = torch.tensor([bar.get_height() for bar in bars], dtype=logits.dtype)
        assert torch.allclose(heights, logits.softmax(-1), atol=1e-6)
        assert "temperature 1" in fig.axes[0].get_ylabel()
        assert "ignores the temperature" in fig.axes[0].get_title()
        plt.close(fig)


def test_the_sliders_run_in_increasing_order_from_a_middle_default():
    for name, control in decoding_explorer().controls.items():
        if not isinstance(control.options[0], str):
            assert list(control.options) == sorted(control.options), name
    controls = decoding_explorer().controls
    assert (controls["temperature"].default, controls["beam_size"].default) == (1.0, 4)
