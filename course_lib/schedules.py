"""Scheduled-sampling schedules (Bengio et al. 2015): how often the decoder reads the gold token.

``teacher_forcing_prob(step, kind, **params)`` is epsilon_i of the paper: the probability that
the decoder input at a position is the ground-truth (gold) token at training step ``step``;
with probability ``1 - epsilon_i`` it is the model's own prediction instead. Every schedule
starts near 1 (teacher forcing) and decays:

* ``"linear"``: ``max(eps_min, k - c * step)``, a straight line down to a floor;
* ``"exponential"``: ``k ** step`` with ``0 < k < 1``;
* ``"inverse_sigmoid"``: ``k / (k + exp(step / k))`` with ``k >= 1``: flat, then a drop
  around ``step = k * ln(k)``, then flat again near 0.
"""

from __future__ import annotations

import math

__all__ = ["KINDS", "teacher_forcing_prob"]

# For each kind: the parameters it requires, and the optional ones with their defaults.
KINDS: dict[str, tuple[tuple[str, ...], dict[str, float]]] = {
    "linear": (("c",), {"k": 1.0, "eps_min": 0.0}),
    "exponential": (("k",), {}),
    "inverse_sigmoid": (("k",), {}),
}


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{name}: expected a finite number, got {type(value).__name__} {value!r}")
    return float(value)


def _check_params(kind: str, given: dict[str, object]) -> dict[str, float]:
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {sorted(KINDS)}, got {kind!r}")
    required, optional = KINDS[kind]
    unknown = sorted(set(given) - set(required) - set(optional))
    if unknown:
        raise TypeError(f"{unknown[0]}: not a parameter of the {kind!r} schedule, which takes "
                        f"{list(required) + list(optional)}")
    missing = [name for name in required if name not in given]
    if missing:
        raise TypeError(f"{missing[0]}: the {kind!r} schedule needs it; got only {sorted(given)}")
    params = {**optional, **given}
    return {name: _number(name, value) for name, value in params.items()}


def teacher_forcing_prob(step: int | float, kind: str, **params: float) -> float:
    """The probability of feeding the gold token at training step ``step`` (epsilon_i).

    Args:
        step: the training step, ``>= 0`` (the paper's ``i``).
        kind: ``"linear"``, ``"exponential"`` or ``"inverse_sigmoid"``.
        **params: the schedule's parameters:

            * linear: ``c > 0`` (the slope, required), ``k`` in ``(0, 1]`` (the value at
              step 0, default 1.0), ``eps_min`` in ``[0, k]`` (the floor, default 0.0);
            * exponential: ``k`` in ``(0, 1)`` (the decay per step, required);
            * inverse_sigmoid: ``k >= 1`` (required; larger ``k`` = a later, slower drop).

    Returns:
        A float in ``[0, 1]``.

    Raises:
        ValueError / TypeError naming the argument that is out of range, unknown or missing.
    """
    step = _number("step", step)
    if step < 0:
        raise ValueError(f"step: expected a training step >= 0, got {step!r}")
    values = _check_params(kind, params)
    k = values["k"]
    if kind == "linear":
        c, eps_min = values["c"], values["eps_min"]
        if not 0.0 < k <= 1.0:
            raise ValueError(f"k: the linear schedule's value at step 0 is a probability in "
                             f"(0, 1], got {k!r}")
        if not c > 0.0:
            raise ValueError(f"c: expected a positive slope (the decay per step), got {c!r}")
        if not 0.0 <= eps_min <= k:
            raise ValueError(f"eps_min: expected a floor in [0, k={k}], got {eps_min!r}")
        return max(eps_min, k - c * step)
    if kind == "exponential":
        if not 0.0 < k < 1.0:
            raise ValueError(f"k: the exponential schedule k**step needs 0 < k < 1, got {k!r}")
        return k ** step
    if not k >= 1.0:
        raise ValueError(f"k: the inverse sigmoid schedule k / (k + exp(step / k)) needs "
                         f"k >= 1, got {k!r}")
    # k / (k + e^(step/k)) = 1 / (1 + e^(step/k - ln k)): no overflow for large steps.
    exponent = step / k - math.log(k)
    if exponent > 0:
        return math.exp(-exponent) / (1.0 + math.exp(-exponent))
    return 1.0 / (1.0 + math.exp(exponent))
