"""course_lib.viz: blocked cells look the same everywhere, and bad input fails clearly."""

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.patches import Rectangle

from course_lib import viz
from course_lib.masks import causal_mask, padding_mask, to_additive


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def hatched_cells(ax) -> set[tuple[int, int]]:
    """(row, col) of every patch drawn in the blocked style."""
    cells = []
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and patch.get_hatch() == viz.BLOCKED_STYLE["hatch"]:
            x, y = patch.get_xy()
            assert (patch.get_width(), patch.get_height()) == (1, 1)
            cells.append((round(y + 0.5), round(x + 0.5)))
    assert len(cells) == len(set(cells)), "a cell was hatched twice"
    return set(cells)


def cells(mask) -> set[tuple[int, int]]:
    return {tuple(rc) for rc in torch.as_tensor(mask).nonzero().tolist()}


def texts(ax) -> dict[tuple[int, int], str]:
    return {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
            for t in ax.texts}


def test_heatmap_hatches_minus_inf_and_blocked_cells_once_each():
    values = torch.randn(4, 5)
    values[0, 1] = values[2, 3] = -math.inf
    blocked = torch.zeros(4, 5, dtype=torch.bool)
    blocked[1, 1] = blocked[2, 3] = blocked[3, 0] = True  # (2, 3) is both: hatched once
    ax = viz.heatmap(values, blocked=blocked)
    assert hatched_cells(ax) == {(0, 1), (2, 3), (1, 1), (3, 0)}
    labels = texts(ax)
    assert not set(labels) & hatched_cells(ax), "a blocked cell shows a value"
    assert labels[(0, 0)] == f"{values[0, 0].item():.2f}"
    assert len(labels) == 20 - 4


def test_heatmap_without_blocked_cells_draws_no_hatch_and_no_legend():
    ax = viz.heatmap(np.arange(6.0).reshape(2, 3))
    assert hatched_cells(ax) == set() and ax.get_legend() is None


def test_heatmap_labels_nan_cells():
    values = torch.tensor([[0.5, math.nan], [math.nan, -math.inf]])
    ax = viz.heatmap(values)
    labels = texts(ax)
    assert labels[(0, 1)] == "NaN" and labels[(1, 0)] == "NaN"
    assert labels[(0, 0)] == "0.50" and (1, 1) not in labels
    assert hatched_cells(ax) == {(1, 1)}


def test_heatmap_uses_the_given_labels():
    ax = viz.heatmap(torch.rand(2, 3), row_labels=["a", "b"], col_labels=["x", "y", "<pad>"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "<pad>"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert ax.get_xlabel() == "key" and ax.get_ylabel() == "query"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"row_labels": ["a"]}, r"row_labels: expected 2 labels, got 1"),
        ({"col_labels": ["a", "b", "c", "d"]}, r"col_labels: expected 3 labels, got 4"),
        ({"blocked": torch.zeros(3, 2, dtype=torch.bool)},
         r"blocked: expected a bool matrix of shape \[2, 3\]"),
        ({"blocked": torch.zeros(2, 3)}, r"blocked: expected a bool matrix"),
    ],
)
def test_heatmap_rejects_bad_labels_and_blocked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        viz.heatmap(torch.rand(2, 3), **kwargs)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()])
def test_heatmap_rejects_non_2d(shape):
    with pytest.raises(ValueError, match=r"values: expected a 2-D matrix .*weights\[0, 0\]"):
        viz.heatmap(torch.rand(shape))


def test_plot_mask_hatches_the_same_cells_for_bool_and_additive():
    mask = causal_mask(4)
    mask[2, 0] = True
    bool_ax = viz.plot_mask(mask)
    additive_ax = viz.plot_mask(to_additive(mask))
    assert hatched_cells(bool_ax) == cells(mask) == hatched_cells(additive_ax)
    # Allowed cells are labelled with what is added to the score: 0.
    assert texts(bool_ax) == dict.fromkeys(cells(~mask), "0") == texts(additive_ax)


def test_plot_mask_rejects_bad_input():
    with pytest.raises(ValueError, match=r"mask: expected a 2-D matrix"):
        viz.plot_mask(causal_mask(3)[None])
    with pytest.raises(ValueError, match=r"col_labels: expected 3 labels, got 2"):
        viz.plot_mask(causal_mask(3), col_labels=["a", "b"])


def test_plot_padded_batch_hatches_exactly_the_pad_cells():
    pad = 0
    ids = torch.tensor([[5, 6, 7, 0], [8, 0, 0, 0], [0, 0, 9, 4]])
    itos = ["<pad>", "", "", "", "d", "the", "cat", "sat", "a", "dog"]
    ax = viz.plot_padded_batch(ids, pad, itos=itos)
    assert hatched_cells(ax) == cells(padding_mask(ids, pad))
    assert texts(ax)[(0, 1)] == "cat" and texts(ax)[(1, 3)] == "<pad>"
    assert texts(viz.plot_padded_batch(ids, pad))[(2, 3)] == "4"


def test_plot_padded_batch_rejects_bad_input():
    with pytest.raises(ValueError, match=r"ids: expected a 2-D LongTensor \[B, L\]"):
        viz.plot_padded_batch(torch.tensor([1, 2, 0]), 0)
    with pytest.raises(ValueError, match=r"ids: expected a 2-D LongTensor"):
        viz.plot_padded_batch([[1, 2, 0]], 0)


def test_plot_attention_uses_a_fixed_0_to_1_scale():
    weights = torch.softmax(torch.randn(3, 3) - 100 * causal_mask(3), dim=-1) * 0.5
    ax = viz.plot_attention(weights, blocked=causal_mask(3))
    norm = ax.images[0].norm
    assert (norm.vmin, norm.vmax) == (0.0, 1.0)
    assert hatched_cells(ax) == cells(causal_mask(3))


def test_use_course_style_outside_ipython():
    from IPython import get_ipython

    assert get_ipython() is None
    with matplotlib.rc_context():
        plt.rcParams["image.cmap"] = "jet"
        viz.use_course_style()
        assert plt.rcParams["image.cmap"] == "viridis"
        assert plt.rcParams["figure.dpi"] == 80
        fig, ax = plt.subplots()
        viz.heatmap(torch.rand(2, 2), ax=ax)
    assert matplotlib.get_backend().lower() == "agg"


def test_the_classroom_style_enlarges_every_text_and_the_html_output(monkeypatch):
    from course_lib import _style

    with matplotlib.rc_context():
        viz.use_course_style(classroom=False)
        standard = viz.points("small"), _style.html_font_size()
        viz.use_course_style(classroom=True)
        assert viz.classroom()
        classroom = viz.points("small"), _style.html_font_size()
        viz.use_course_style(classroom=False)
    assert classroom[0] >= 1.3 * standard[0]
    assert (standard[1], classroom[1]) == ("15px", "20px")


@pytest.mark.parametrize(("setting", "on"), [("1", True), ("0", False), ("", False)])
def test_the_classroom_style_follows_COURSE_CLASSROOM(monkeypatch, setting, on):
    monkeypatch.setenv("COURSE_CLASSROOM", setting)
    with matplotlib.rc_context():
        viz.use_course_style()
        assert viz.classroom() is on
        viz.use_course_style(classroom=False)


def test_the_classroom_switch_rejects_what_it_cannot_read(monkeypatch):
    monkeypatch.setenv("COURSE_CLASSROOM", "yes")
    with pytest.raises(ValueError, match=r"COURSE_CLASSROOM: expected 1 .* or 0, got 'yes'"):
        viz.use_course_style()
    with pytest.raises(ValueError, match=r"classroom: expected True, False or None, got 'on'"):
        viz.use_course_style(classroom="on")


def test_fit_titles_wraps_a_title_wider_than_its_column_and_grows_the_figure():
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    long = "a title that is much too long for a third of a nine inch figure, even small"
    axes[1].set_title(long)
    axes[0].set_title("short")
    height = fig.get_size_inches()[1]
    viz.fit_titles(fig)
    assert axes[0].get_title() == "short"
    lines = axes[1].get_title().split("\n")
    assert len(lines) >= 2 and " ".join(lines) == long
    renderer = fig.canvas.get_renderer()
    assert axes[1].title.get_window_extent(renderer).width <= 0.85 * fig.bbox.width / 3
    assert fig.get_size_inches()[1] > height


def test_blocked_cells_do_not_move_the_axes_limits():
    ax = viz.plot_mask(causal_mask(4))
    assert ax.get_xlim() == (-0.5, 3.5) and ax.get_ylim() == (3.5, -0.5)
