"""Exercises of lesson 06: the nucleus filter, the finished-row rule of batched decoding,
reordering a cache by beam index, and the length penalty.

Every checker runs the answer on several random inputs against the library version and
names the usual mistakes: a nucleus that drops the token crossing ``p``, a finished row
that gets a token again, a cache reordered without the source offset, GNMT's length
penalty where Hugging Face's is asked for.
"""

from __future__ import annotations

import math

import torch

from course_lib.decoding import length_penalty_factor, top_p_filter
from course_lib.exercises.core import exercise


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"{type(value).__name__} {value!r:.60}"


# --- 06.top_p_filter ---------------------------------------------------------------------------

def _solve_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    mass_before = cumulative - sorted_logits.softmax(dim=-1)  # mass of the more likely tokens
    remove = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, mass_before >= p)
    return logits.masked_fill(remove, -math.inf)


def _naive_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    keep = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= p  # drops the crossing token
    remove = torch.zeros_like(keep).scatter(-1, order, ~keep)
    return logits.masked_fill(remove, -math.inf)


def _unsorted_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    mass_before = logits.softmax(dim=-1).cumsum(dim=-1) - logits.softmax(dim=-1)
    return logits.masked_fill(mass_before >= p, -math.inf)  # in vocabulary order


def _probabilities_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    return _solve_top_p(logits, p).softmax(dim=-1)  # probabilities, 0 (not -inf) on removed


def _top_p_cases() -> list[tuple[torch.Tensor, float, str]]:
    generator = torch.Generator().manual_seed(60)
    cases = [(torch.tensor([0.5, 0.3, 0.15, 0.05]).log(), 0.7, "probabilities [0.5, 0.3, 0.15, "
              "0.05] and p = 0.7")]
    for shape, p in (((4, 9), 0.8), ((2, 3, 12), 0.62), ((5, 7), 0.05), ((3, 6), 0.97)):
        cases.append((2.5 * torch.randn(shape, generator=generator), p,
                      f"random logits of shape {list(shape)} and p = {p}"))
    cases.append((torch.tensor([[0.1, 0.9], [0.6, 0.4]]).log(), 0.5,
                  "probabilities [[0.1, 0.9], [0.6, 0.4]] and p = 0.5"))
    return cases


@exercise(
    "06.top_p_filter",
    task="Nucleus (top-p) filter: return the logits with -inf on every token outside the smallest "
         "set of most likely tokens whose mass reaches p.",
    hint="sort the logits (descending), softmax, cumsum; a token is removed when the tokens "
         "BEFORE it already hold >= p (cumsum minus its own probability); scatter the removal "
         "back to vocabulary order and masked_fill(-inf)",
    solution=_solve_top_p,
    explanation="After sorting by probability a token is removed when the tokens before it "
                "already hold >= p (the cumsum minus its own probability), so the token that "
                "crosses p stays, and so does the most likely token; `scatter` brings the "
                "decision back to vocabulary order. The checker names dropping the crossing token "
                "(`cumsum <= p`), a cumsum in vocabulary order, and probabilities returned "
                "instead of logits.",
    wrong_answers=[
        (_naive_top_p, "crosses p"),
        (_unsorted_top_p, "most likely"),
        (_probabilities_top_p, "-inf"),
    ],
)
def _check_top_p(answer) -> str | None:
    for logits, p, where in _top_p_cases():
        original = logits.clone()
        got = answer(logits, p)
        where = f"for {where}"
        if not torch.equal(logits, original):
            return f"your function changed `logits` in place {where}; work on a copy"
        if not isinstance(got, torch.Tensor) or got.shape != logits.shape:
            return f"expected logits of shape {list(logits.shape)}, got {_describe(got)} {where}"
        expected = top_p_filter(logits, p)
        kept, wanted = torch.isfinite(got), torch.isfinite(expected)
        if not torch.isneginf(got[~kept]).all():
            return f"removed tokens must be -inf (a logit), got other values {where}"
        if (got[~wanted] == 0).any() and not torch.isneginf(got[~wanted]).any():
            return (f"removed tokens got 0, not -inf: return LOGITS with -inf on removed "
                    f"tokens (softmax then gives them probability 0) {where}")
        if not kept.any(dim=-1).all():
            return (f"a row keeps no token at all {where}: the most likely token must always "
                    "stay, otherwise the softmax of that row is NaN")
        if torch.equal(kept, wanted):
            if not torch.equal(got[kept], logits[kept]):
                return f"the kept tokens' logits changed {where}; keep them as they are"
            continue
        if (kept <= wanted).all() and ((wanted & ~kept).sum(dim=-1) <= 1).all():
            return (f"you keep {kept.sum().item()} token(s) where {wanted.sum().item()} are "
                    f"needed {where}: you drop the token that crosses p. Nucleus sampling keeps "
                    "the smallest set with mass >= p, INCLUDING the token whose probability "
                    "crosses p (test 'mass before the token >= p', not 'cumsum <= p')")
        probs = logits.softmax(dim=-1)
        least_kept = probs.masked_fill(~kept, 2.0).amin(dim=-1)
        if (probs.masked_fill(kept, -1.0).amax(dim=-1) > least_kept).any():
            return (f"you removed a token more likely than one you kept {where}: the nucleus "
                    "is made of the most likely tokens, so sort by probability first")
        return (f"kept {kept.int().tolist()} but expected {wanted.int().tolist()} {where}")
    return None


# --- 06.finished_rows ----------------------------------------------------------------------------

def _solve_greedy_step(logits, finished, pad_id, eos_id):
    next_token = logits.argmax(dim=-1).masked_fill(finished, pad_id)
    return next_token, finished | (next_token == eos_id)


@exercise(
    "06.finished_rows",
    task="One step of batched greedy decoding: the argmax for unfinished rows, PAD for finished "
         "ones, and the updated `finished` rows.",
    hint="next_token = logits.argmax(-1), then masked_fill(finished, pad_id) so a finished row "
         "only gets PAD; a row is finished if it was already, or if its new token is EOS",
    solution=_solve_greedy_step,
    explanation="`argmax` then `masked_fill(finished, pad_id)` writes PAD only in the rows that "
                "had already finished, so a row that produces EOS now keeps its EOS, and "
                "`finished | (next_token == eos_id)` keeps finished rows finished. The checker "
                "names a finished row that gets a real token, a `finished` recomputed instead of "
                "OR-ed, and EOS replaced by PAD in the step it is produced.",
    wrong_answers=[
        (lambda logits, finished, pad_id, eos_id: (
            logits.argmax(-1), finished | (logits.argmax(-1) == eos_id)), "PAD"),
        (lambda logits, finished, pad_id, eos_id: (
            logits.argmax(-1).masked_fill(finished, pad_id),
            logits.argmax(-1).masked_fill(finished, pad_id) == eos_id), "stays finished"),
        (lambda logits, finished, pad_id, eos_id: _solve_greedy_step(
            logits, finished | (logits.argmax(-1) == eos_id), pad_id, eos_id), "EOS itself"),
    ],
)
def _check_greedy_step(answer) -> str | None:
    generator = torch.Generator().manual_seed(61)
    for batch, vocab, pad_id, eos_id in ((6, 8, 0, 2), (9, 5, 0, 1), (4, 12, 3, 7)):
        logits = torch.randn(batch, vocab, generator=generator)
        logits[: batch // 2, eos_id] += 10.0  # these rows pick EOS now
        finished = torch.rand(batch, generator=generator) < 0.5
        finished[0], finished[-1] = False, True
        where = f"for {batch} rows, pad_id={pad_id}, eos_id={eos_id}"
        got = answer(logits.clone(), finished.clone(), pad_id, eos_id)
        if not isinstance(got, tuple) or len(got) != 2:
            return f"expected a tuple (next_token, finished), got {_describe(got)}"
        next_token, now_finished = got
        expected_token, expected_finished = _solve_greedy_step(logits, finished, pad_id, eos_id)
        if not isinstance(next_token, torch.Tensor) or next_token.shape != (batch,):
            return f"next_token: expected a LongTensor[{batch}], got {_describe(next_token)}"
        if (next_token[finished] != pad_id).any():
            return (f"a row that had already finished got a real token {where}: after EOS a row "
                    "must only get PAD (pad_id), so it cannot influence anything later")
        if not torch.equal(next_token, expected_token):
            if (next_token == pad_id).sum() > (expected_token == pad_id).sum():
                return (f"a row that produces EOS now got PAD instead {where}: the EOS itself "
                        "must be written; only the steps AFTER it are PAD")
            return f"next_token: expected {expected_token.tolist()}, got {next_token.tolist()}"
        if not isinstance(now_finished, torch.Tensor) or now_finished.dtype != torch.bool:
            return f"finished: expected a BoolTensor[{batch}], got {_describe(now_finished)}"
        if (finished & ~now_finished).any():
            return (f"a finished row became unfinished again {where}: once a row has produced "
                    "EOS it stays finished (combine with `|`)")
        if not torch.equal(now_finished, expected_finished):
            return f"finished: expected {expected_finished.tolist()}, got {now_finished.tolist()}"
    return None


# --- 06.reorder_cache ----------------------------------------------------------------------------

def _solve_reorder(cache: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    batch, beams = parent.shape
    rows = torch.arange(batch)[:, None] * beams + parent  # source b's beams start at b * K
    return cache.index_select(0, rows.flatten())


@exercise(
    "06.reorder_cache",
    task="Reorder a source-major beam-search cache `[B * K, ...]` so that new beam j of source b "
         "continues old beam `parent[b, j]`.",
    hint="row b * K + k of the flat cache is beam k of source b; the new beam j of source b "
         "continues old beam parent[b, j], i.e. flat row b * K + parent[b, j]: build those row "
         "numbers with torch.arange(B)[:, None] * K + parent and index_select",
    solution=_solve_reorder,
    explanation="Old beam k of source b is flat row `b * K + k`, so new beam j of source b reads "
                "row `b * K + parent[b, j]`: `arange(B)[:, None] * K + parent`, flattened, is the "
                "`index_select` order. The checker names indexing with `parent` alone (every "
                "source reads the rows of source 0), a beam-major offset, and an unchanged cache.",
    wrong_answers=[
        (lambda cache, parent: cache[parent.flatten()], "offset"),
        (lambda cache, parent: cache[(torch.arange(parent.shape[0])[:, None]
                                      + parent * parent.shape[0]).flatten()], "source-major"),
        (lambda cache, parent: cache, "reorder"),
    ],
)
def _check_reorder(answer) -> str | None:
    generator = torch.Generator().manual_seed(62)
    for batch, beams in ((3, 4), (2, 2), (5, 3)):
        parent = torch.randint(0, beams, (batch, beams), generator=generator)
        parent[0] = 0  # every new beam of source 0 continues its old beam 0
        cache = torch.randn(batch * beams, 2, 5, 4, generator=generator)
        where = f"for B = {batch} sources, K = {beams} beams, parent = {parent.tolist()}"
        got = answer(cache.clone(), parent.clone())
        expected = _solve_reorder(cache, parent)
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return f"expected a tensor of shape {list(expected.shape)}, got {_describe(got)}"
        if torch.equal(got, expected):
            continue
        if torch.equal(got, cache):
            return f"the cache is unchanged {where}: reorder its rows to follow the new beams"
        if torch.equal(got, cache[parent.flatten()]):
            return (f"every source reads the rows of source 0 {where}: add the offset b * K of "
                    "source b's block (flat row = b * K + parent[b, j])")
        return (f"wrong rows {where}: the flat cache is source-major (row b * K + k is beam k "
                "of source b, as repeat_interleave lays it out)")
    return None


# --- 06.length_penalty ---------------------------------------------------------------------------

@exercise(
    "06.length_penalty",
    task="Return the score beam search ranks a finished hypothesis by, from its summed "
         "log-probability, its `length` (EOS included) and `alpha`.",
    hint="Hugging Face's convention: divide the summed log-probability by length ** alpha, "
         "where length counts the generated tokens, EOS included and BOS not",
    solution=lambda log_prob, length, alpha: log_prob / length ** alpha,
    explanation="Hugging Face's convention, used by `course_lib.decoding`, divides the summed "
                "log-probability by `length ** alpha`, where length counts the generated tokens "
                "(EOS yes, BOS no): alpha = 0 gives the raw sum, alpha = 1 the mean per token. "
                "The checker names GNMT's `((5 + length) / 6) ** alpha`, multiplying instead of "
                "dividing, counting BOS, the undivided sum, and alpha fixed at 1.",
    wrong_answers=[
        (lambda log_prob, length, alpha: log_prob / ((5 + length) / 6) ** alpha, "GNMT"),
        (lambda log_prob, length, alpha: log_prob * length ** alpha, "divide"),
        (lambda log_prob, length, alpha: log_prob / (length + 1) ** alpha, "BOS"),
        (lambda log_prob, length, alpha: log_prob, "the sum itself"),
        (lambda log_prob, length, alpha: log_prob / length, "alpha=1"),
    ],
)
def _check_length_penalty(answer) -> str | None:
    for log_prob, length, alpha in ((-3.2, 4, 1.0), (-7.5, 10, 0.6), (-0.4, 1, 2.0),
                                    (-5.0, 6, 0.0), (-2.25, 3, -0.5), (-9.0, 12, 1.5)):
        got = answer(log_prob, length, alpha)
        expected = log_prob / length_penalty_factor(length, alpha)
        where = f"for log_prob={log_prob}, length={length}, alpha={alpha}"
        if not isinstance(got, int | float | torch.Tensor):
            return f"expected a number, got {_describe(got)} {where}"
        got = float(got)
        if math.isclose(got, expected, rel_tol=1e-6):
            continue
        score = (f"the score is log_prob / length ** alpha = {log_prob} / {length} ** {alpha} "
                 f"= {expected:.4g}; you returned {got:.4g}")
        if math.isclose(got, log_prob / ((5 + length) / 6) ** alpha, rel_tol=1e-6):
            return (f"{score}: that is GNMT's ((5 + length) / 6) ** alpha; this course "
                    "uses Hugging Face's length ** alpha")
        if math.isclose(got, log_prob * length ** alpha, rel_tol=1e-6):
            return f"{score}: divide the log-probability by the factor, do not multiply"
        if math.isclose(got, log_prob / (length + 1) ** alpha, rel_tol=1e-6):
            return (f"{score}: one token too many, length counts the generated "
                    "tokens; BOS is given, not generated")
        if math.isclose(got, log_prob, rel_tol=1e-6):
            return (f"{score}: that is the sum itself, not divided by length ** alpha "
                    "(the score of alpha = 0)")
        if math.isclose(got, log_prob / length, rel_tol=1e-6):
            return (f"{score}: that is the mean log-probability, log_prob / length, "
                    "as if alpha=1 whatever alpha is; raise length to the power alpha")
        return score
    return None
