"""Lesson 07: the three scheduled-sampling schedules of Bengio et al. 2015, with sliders.

Each curve is ``teacher_forcing_prob(step, kind, **params)``, the probability of feeding the
gold token; the legend gives the schedule's mean over the run (the share of gold tokens the
model reads in total) and the step where it falls below 0.5.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from course_lib.schedules import teacher_forcing_prob
from course_lib.widgets.core import Control, Explorer

__all__ = ["RUN_STEPS", "SCHEDULE_COLORS", "draw_schedules", "schedule_explorer"]

RUN_STEPS = 1000
# Okabe-Ito colours, readable by colour-blind viewers; one per schedule across the lesson.
SCHEDULE_COLORS = {"linear": "#0072b2", "exponential": "#d55e00", "inverse_sigmoid": "#009e73"}


def _describe(values: np.ndarray) -> str:
    below = np.flatnonzero(values < 0.5)
    crossing = f"below 0.5 from step {below[0]}" if below.size else "never below 0.5"
    return f"gold share over the run {values.mean():.2f}; {crossing}"


def draw_schedules(linear_c: float = 0.0005, linear_eps_min: float = 0.0,
                   exponential_k: float = 0.995, inverse_sigmoid_k: float = 50.0,
                   *, steps: int = RUN_STEPS) -> Figure:
    """The probability of the gold token over ``steps`` training steps, for the three kinds.

    Args:
        linear_c, linear_eps_min: ``max(eps_min, 1 - c * step)``.
        exponential_k: ``k ** step``.
        inverse_sigmoid_k: ``k / (k + exp(step / k))``.
    """
    schedules = {
        "linear": ({"c": linear_c, "eps_min": linear_eps_min},
                   f"linear: max({linear_eps_min:g}, 1 - {linear_c:g}·i)"),
        "exponential": ({"k": exponential_k}, f"exponential: {exponential_k:g}^i"),
        "inverse_sigmoid": ({"k": inverse_sigmoid_k},
                            f"inverse sigmoid: {inverse_sigmoid_k:g} / "
                            f"({inverse_sigmoid_k:g} + exp(i / {inverse_sigmoid_k:g}))"),
    }
    step_axis = np.arange(steps + 1)
    fig, ax = plt.subplots(figsize=(11, 4.2), layout="constrained")
    for kind, (params, label) in schedules.items():
        values = np.array([teacher_forcing_prob(int(i), kind, **params) for i in step_axis])
        ax.plot(step_axis, values, color=SCHEDULE_COLORS[kind], linewidth=2,
                label=f"{label}\n   {_describe(values)}")
    ax.axhline(0.5, color="#777777", linewidth=0.8, linestyle=":", label="ε = 0.5")
    ax.set(xlim=(0, steps), ylim=(-0.02, 1.02), xlabel="training step i",
           ylabel="ε_i = P(feed the gold token)")
    fig.suptitle("Scheduled sampling: the decoder reads the gold token with probability ε_i, "
                 "its own prediction with probability 1 - ε_i")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
              labelspacing=1.0)
    ax.grid(alpha=0.3)
    return fig


def schedule_explorer() -> Explorer:
    """Sliders for the three schedules' parameters; each starts at its leftmost value."""
    return Explorer(draw_schedules, {
        "linear_c": Control("linear c", (0.0005, 0.001, 0.002, 0.004)),
        "linear_eps_min": Control("linear eps_min", (0.0, 0.5)),
        "exponential_k": Control("exponential k", (0.995, 0.997, 0.999, 0.9995)),
        "inverse_sigmoid_k": Control("inverse sigmoid k", (50.0, 100.0, 150.0, 200.0)),
    })
