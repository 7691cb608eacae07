"""course_lib.schedules.teacher_forcing_prob: Bengio et al.'s three schedules, values and errors."""

import math
import random

import pytest

from course_lib.schedules import KINDS, teacher_forcing_prob


@pytest.mark.parametrize(("step", "params", "expected"), [
    (0, {"c": 0.01}, 1.0),
    (50, {"c": 0.01}, 0.5),
    (100, {"c": 0.01}, 0.0),
    (250, {"c": 0.01}, 0.0),  # never below 0 with the default floor
    (50, {"c": 0.01, "eps_min": 0.2}, 0.5),
    (90, {"c": 0.01, "eps_min": 0.2}, 0.2),  # 1 - 0.9 = 0.1 is below the floor
    (100, {"c": 0.002, "k": 0.8}, 0.6),
    (0, {"c": 0.002, "k": 0.8, "eps_min": 0.8}, 0.8),
])
def test_linear_is_a_line_down_to_its_floor(step, params, expected):
    assert teacher_forcing_prob(step, "linear", **params) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("step", "k", "expected"), [
    (0, 0.99, 1.0), (1, 0.99, 0.99), (3, 0.5, 0.125), (100, 0.99, 0.36603234127322950),
    (10_000, 0.9, 0.0),
])
def test_exponential_is_k_to_the_step(step, k, expected):
    assert teacher_forcing_prob(step, "exponential", k=k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("step", "k", "expected"), [
    (0, 10, 10 / 11), (0, 1, 0.5), (10 * math.log(10), 10, 0.5), (50, 10, 10 / (10 + math.e ** 5)),
    (1000, 100, 100 / (100 + math.e ** 10)),
])
def test_inverse_sigmoid_is_k_over_k_plus_exp(step, k, expected):
    assert teacher_forcing_prob(step, "inverse_sigmoid", k=k) == pytest.approx(expected, rel=1e-12)


def test_inverse_sigmoid_does_not_overflow_for_huge_steps():
    value = teacher_forcing_prob(10**7, "inverse_sigmoid", k=2)
    assert 0.0 <= value < 1e-300


def test_random_parameters_match_the_formulas_decrease_and_stay_probabilities():
    rng = random.Random(0)
    for _ in range(200):
        k_exp, k_sig = rng.uniform(0.5, 0.9999), rng.uniform(1, 500)
        k_lin = rng.uniform(0.3, 1.0)
        c, eps_min = rng.uniform(1e-4, 0.05), rng.uniform(0, k_lin)
        previous = {kind: 1.0 for kind in KINDS}
        for step in sorted(rng.sample(range(5000), 20)):
            values = {
                "linear": teacher_forcing_prob(step, "linear", k=k_lin, c=c, eps_min=eps_min),
                "exponential": teacher_forcing_prob(step, "exponential", k=k_exp),
                "inverse_sigmoid": teacher_forcing_prob(step, "inverse_sigmoid", k=k_sig),
            }
            assert values["linear"] == pytest.approx(max(eps_min, k_lin - c * step))
            assert values["exponential"] == pytest.approx(k_exp ** step)
            if step / k_sig < 700:  # where the textbook formula itself does not overflow
                assert values["inverse_sigmoid"] == pytest.approx(
                    k_sig / (k_sig + math.exp(step / k_sig)), rel=1e-9, abs=1e-300)
            for kind, value in values.items():
                assert 0.0 <= value <= previous[kind] <= 1.0, (kind, step)
                previous[kind] = value


@pytest.mark.parametrize(("kwargs", "error", "names"), [
    ({"kind": "cosine", "k": 0.5}, ValueError, "kind"),
    ({"kind": "linear"}, TypeError, "c: the 'linear' schedule needs it"),
    ({"kind": "linear", "c": 0.0}, ValueError, "c: expected a positive slope"),
    ({"kind": "linear", "c": -0.1}, ValueError, "c:"),
    ({"kind": "linear", "c": 0.1, "k": 1.5}, ValueError, "k:"),
    ({"kind": "linear", "c": 0.1, "eps_min": -0.1}, ValueError, "eps_min"),
    ({"kind": "linear", "c": 0.1, "k": 0.5, "eps_min": 0.6}, ValueError, "eps_min"),
    ({"kind": "linear", "c": 0.1, "slope": 2}, TypeError, "slope: not a parameter"),
    ({"kind": "exponential"}, TypeError, "k: the 'exponential' schedule needs it"),
    ({"kind": "exponential", "k": 1.0}, ValueError, "k: the exponential schedule"),
    ({"kind": "exponential", "k": 0.0}, ValueError, "0 < k < 1"),
    ({"kind": "exponential", "k": 0.9, "c": 1}, TypeError, "c: not a parameter"),
    ({"kind": "inverse_sigmoid", "k": 0.5}, ValueError, "k >= 1"),
    ({"kind": "inverse_sigmoid", "k": "10"}, TypeError, "k: expected a finite number"),
    ({"kind": "inverse_sigmoid", "k": float("nan")}, TypeError, "k: expected a finite number"),
    ({"kind": "inverse_sigmoid", "k": True}, TypeError, "k:"),
])
def test_bad_parameters_raise_errors_naming_them(kwargs, error, names):
    with pytest.raises(error, match=names):
        teacher_forcing_prob(10, **kwargs)


@pytest.mark.parametrize(("step", "error"), [(-1, ValueError), (True, TypeError),
                                             ("3", TypeError), (float("inf"), TypeError)])
def test_bad_steps_are_refused(step, error):
    with pytest.raises(error, match="step"):
        teacher_forcing_prob(step, "exponential", k=0.9)
