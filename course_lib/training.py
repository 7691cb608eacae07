"""Training a seq2seq model: the masked loss, the loop, evaluation and checkpoints.

The loss is a token mean over non-PAD targets; decoder outputs at PAD positions are finite
garbage that must never reach the loss.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_lib._checks import check_tensor, check_token_ids
from course_lib.data import Batch, Pair, Vocab, bucketed_batches
from course_lib.decoding import greedy_decode

__all__ = ["sequence_loss", "set_seed", "History", "train", "evaluate", "run_parallel",
           "save_checkpoint", "load_checkpoint"]


def sequence_loss(
    logits: torch.Tensor, targets: torch.Tensor, pad_id: int, *, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy averaged over the non-PAD target tokens of the whole batch.

    Args:
        logits: FloatTensor[B, T, V], the model's output (``forward(src, tgt_in)``).
        targets: LongTensor[B, T], ``tgt_out``; positions equal to ``pad_id`` do not count.
        pad_id: the PAD id.
        label_smoothing: as in ``F.cross_entropy`` (PAD targets stay excluded).

    Returns:
        A scalar. Equal to ``nn.CrossEntropyLoss(ignore_index=pad_id)`` whenever a target is
        not PAD; for an all-PAD batch it is 0 with zero gradients (that loss gives NaN).
    """
    check_tensor("logits", logits, ndim=3)
    check_token_ids("targets", targets)
    if not logits.dtype.is_floating_point:
        raise TypeError(f"logits: expected a float tensor, got {logits.dtype}")
    if logits.shape[:2] != targets.shape:
        raise ValueError(
            f"logits: expected [B, T, V] with [B, T] = targets' {list(targets.shape)}, got "
            f"{list(logits.shape)}; a [B, V, T] tensor needs .transpose(1, 2)"
        )
    if isinstance(pad_id, bool) or not isinstance(pad_id, int):
        raise TypeError(f"pad_id: expected an int, got {pad_id!r}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing: expected a value in [0, 1), got {label_smoothing!r}")
    per_token = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_id,
        reduction="none", label_smoothing=label_smoothing,
    )
    # Clamping the count at 1 turns 0 / 0 (an all-PAD batch) into 0 / 1 = 0.
    return per_token.sum() / (targets != pad_id).sum().clamp(min=1)


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random generators."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 -- the legacy global is what np.random.* calls use
    torch.manual_seed(seed)


@dataclass
class History:
    """What :func:`train` did: one loss and learning rate per step, and each evaluation.

    Each evaluation is ``{"step", "seconds", "decoding", "exact_match", "token_accuracy"}``,
    ``decoding`` being ``"teacher_forced"`` (the regular checks) or ``"greedy"`` (at the end,
    and to confirm the target): the last one is greedy whenever training ran to its last
    step or reached the target.
    """

    losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    evaluations: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = ""


def _warmup_then_cosine(warmup_steps: int, steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def _default_loss(model, batch: Batch, label_smoothing: float) -> torch.Tensor:
    return sequence_loss(model(batch.src, batch.tgt_in), batch.tgt_out, model.pad_id,
                         label_smoothing=label_smoothing)


def train(
    model: torch.nn.Module, batches: Iterable[Batch], *, steps: int, lr: float = 5e-3,
    warmup_steps: int = 50, weight_decay: float = 0.01, clip_norm: float = 1.0,
    label_smoothing: float = 0.0, loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor]
    | None = None, eval_pairs: Sequence[Pair] | None = None, vocab: Vocab | None = None,
    eval_every: int = 100, target_exact_match: float | None = None,
    max_seconds: float | None = None, progress: bool = True,
) -> History:
    """AdamW with linear warmup then cosine decay, gradient clipping and a progress bar
    (``progress``; reaching ``target_exact_match`` ends it full, as "target reached").

    Args:
        model: trained in place: a :class:`course_lib.models.Seq2SeqTransformer` (or any
            model with ``forward(src, tgt_in)``) for the default loss; with ``loss_fn``, any
            module (lesson 09 trains a ``causal_lm.CausalLM`` this way).
        batches: yields :class:`course_lib.data.Batch` (e.g. ``data.batch_stream``); at most
            ``steps`` are drawn (a finite iterable also ends training).
        steps: the length of the schedule: warmup over ``warmup_steps``, then cosine to 0.
        loss_fn: ``loss_fn(model, batch) -> scalar``; default: :func:`sequence_loss` of
            ``model(batch.src, batch.tgt_in)`` against ``batch.tgt_out`` with
            ``label_smoothing``. Ablations swap it (``label_smoothing`` is then unused).
        eval_pairs, vocab: held-out pairs, checked every ``eval_every`` steps with one
            teacher-forced pass (:func:`evaluate`, ``decoding="teacher_forced"``: the same
            exact match as greedy decoding, several times cheaper), and decoded greedily at
            the last step and whenever a check reaches ``target_exact_match``. Training
            stops at the target only once greedy decoding confirms it.
        max_seconds: stop after this much wall time.

    Returns:
        A :class:`History`; ``stopped`` is ``"steps"``, ``"target"`` or ``"max_seconds"``.
        The model is left in eval mode.
    """
    for name, value, minimum in [("steps", steps, 1), ("warmup_steps", warmup_steps, 0),
                                 ("eval_every", eval_every, 1)]:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    if not lr > 0:
        raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
    if eval_pairs is not None and vocab is None:
        raise ValueError("vocab: needed to encode eval_pairs, got None")
    if target_exact_match is not None and eval_pairs is None:
        raise ValueError("target_exact_match: needs eval_pairs to measure it, got none")
    # fused: one kernel for every parameter's update, the fastest AdamW on the CPU.
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                                  fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                 _warmup_then_cosine(warmup_steps, steps))
    compute_loss = loss_fn or (lambda m, b: _default_loss(m, b, label_smoothing))
    history = History(stopped="steps")
    eval_batches = (None if eval_pairs is None else
                    bucketed_batches(eval_pairs, vocab, 250, shuffle=False))  # collated once
    start = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, desc="training", unit="step")
    model.train()
    for step, batch in zip(range(1, steps + 1), batches, strict=False):
        loss = compute_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        history.learning_rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
        history.losses.append(loss.item())
        bar.update()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if eval_batches is not None and (step % eval_every == 0 or step == steps):
            reached = _check(model, eval_batches, step, start, history, target_exact_match,
                             last=step == steps)
            model.train()
            exact = history.evaluations[-1]["exact_match"]
            bar.set_postfix(loss=f"{loss.item():.3f}", exact=f"{exact:.3f}")
            if reached:
                history.stopped = "target"
                break
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            history.stopped = "max_seconds"
            break
    _close(bar, history.stopped)
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def _check(model, batches, step, start, history, target, *, last) -> bool:
    """Score the held-out batches into ``history.evaluations``; True once the target is met.

    Teacher-forced first; greedy decoding at the last step, or to confirm the target.
    """
    model.eval()
    for decoding in ("teacher_forced", "greedy"):
        scores = _scores(model, batches, decoding)
        history.evaluations.append({"step": step, "seconds": time.perf_counter() - start,
                                    "decoding": decoding, **scores})
        reached = target is not None and scores["exact_match"] >= target
        if not (reached or last):
            return False
    return reached


def _close(bar: tqdm, stopped: str) -> None:
    """Close the progress bar so that it tells how training ended.

    A notebook bar (tqdm.notebook) closed before its total turns red, as if training had
    failed. Reaching the target is a success: the bar ends full at the step reached, labelled
    "target reached". A stop at ``max_seconds`` stays short of its total (and red): the
    schedule did not run to its end.
    """
    if stopped == "target":
        bar.total = bar.n
        container = getattr(bar, "container", None)  # tqdm.notebook's (text, bar, text) box
        if container is not None:
            container.children[-2].max = bar.n
        bar.set_description("training: target reached", refresh=False)
    elif stopped == "max_seconds":
        bar.set_description("training: stopped at max_seconds", refresh=False)
    bar.close()


DECODINGS = ("greedy", "teacher_forced")


@torch.no_grad()
def _scores(model: torch.nn.Module, batches: Sequence[Batch], decoding: str) -> dict[str, float]:
    exact = correct = tokens = rows = 0
    for batch in batches:
        target = batch.tgt_out
        if decoding == "greedy":
            predicted = greedy_decode(model, batch.src, max_len=target.shape[1])
            predicted = F.pad(predicted, (0, target.shape[1] - predicted.shape[1]),
                              value=Vocab.PAD)
        else:
            predicted = model(batch.src, batch.tgt_in).argmax(dim=-1)
        real = target != Vocab.PAD
        hit = (predicted == target) & real
        exact += int((hit | ~real).all(dim=1).sum())
        correct += int(hit.sum())
        tokens += int(real.sum())
        rows += target.shape[0]
    return {"exact_match": exact / rows, "token_accuracy": correct / tokens}


def evaluate(
    model: torch.nn.Module, pairs: Sequence[Pair], vocab: Vocab, *, batch_size: int = 500,
    decoding: str = "greedy",
) -> dict[str, float]:
    """Score ``model`` on ``pairs``: greedy decoding (default) or one teacher-forced pass.

    Args:
        decoding: ``"greedy"`` decodes every source with :func:`greedy_decode`;
            ``"teacher_forced"`` takes the argmax of ``model(src, tgt_in)``, the gold prefix
            read at every step (one forward pass instead of one per output token).

    Returns:
        ``{"exact_match": fraction of rows right up to and including EOS,
        "token_accuracy": fraction of target tokens (EOS included) predicted at their place}``.
        Exact match is the same for both decodings, row for row: greedy decoding gets a row
        right exactly when every teacher-forced argmax is right (each step then reads the gold
        prefix), up to floating-point ties between the two computations. Token accuracy is
        higher teacher-forced: one wrong token does not derail the tokens after it.
    """
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one (src, tgt) pair, got none")
    if decoding not in DECODINGS:
        raise ValueError(f"decoding: expected one of {DECODINGS}, got {decoding!r}")
    was_training = model.training
    model.eval()
    scores = _scores(model, bucketed_batches(pairs, vocab, batch_size, shuffle=False), decoding)
    model.train(was_training)
    return scores


def run_parallel(tasks: Sequence[Callable[[], object]], *, workers: int = 2,
                 desc: str = "runs") -> list[object]:
    """Run independent tasks (e.g. trainings) two at a time, each op on one torch thread.

    Small models spend most of a step in Python and in tiny ops, which one thread runs
    fastest; two such runs side by side (PyTorch releases the GIL inside its ops) use two
    cores. The results are exactly those of running the tasks one after another on one
    thread, as long as each task owns its model, data and random generators: build the models
    (``set_seed``) BEFORE, since the global generator is shared.

    Args:
        tasks: zero-argument callables.
        workers: how many run at the same time.
        desc: the progress bar's label (one tick per finished task).

    Returns:
        The tasks' results, in the tasks' order.

    Raises:
        RuntimeError: if a task drew from torch's global generator (its result would depend
            on the other tasks' timing).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    if not all(callable(task) for task in tasks):
        raise TypeError("tasks: expected zero-argument callables")
    threads, generator_state = torch.get_num_threads(), torch.get_rng_state()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool, tqdm(total=len(tasks), desc=desc,
                                                       unit="run") as bar:
            futures = [pool.submit(task) for task in tasks]
            for _ in as_completed(futures):  # the bar moves in this thread, not the workers'
                bar.update()
            results = [future.result() for future in futures]
    finally:
        torch.set_num_threads(threads)
    if not torch.equal(torch.get_rng_state(), generator_state):
        raise RuntimeError("tasks: a task drew from torch's global random generator, so the "
                           "results depend on which task drew first; build the models before "
                           "run_parallel and give each task its own torch.Generator")
    return results


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Write ``model``'s configuration and weights to ``path`` atomically.

    The file is written to a temporary file in the same folder and renamed over ``path``
    (``os.replace``), so an interrupted save never leaves a truncated checkpoint. Missing
    parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save({"config": dict(model.config), "state_dict": model.state_dict()}, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module) -> torch.nn.Module:
    """Load weights saved by :func:`save_checkpoint` into ``model`` (same configuration).

    Raises:
        ValueError: naming every configuration value that differs.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    saved, current = checkpoint["config"], model.config
    differences = [f"{key}={saved.get(key)!r} in the checkpoint but {current.get(key)!r} in "
                   "the model" for key in sorted(saved.keys() | current.keys())
                   if saved.get(key) != current.get(key)]
    if differences:
        raise ValueError(f"path: checkpoint {os.fspath(path)!r} was saved from another "
                         f"configuration: {'; '.join(differences)}")
    model.load_state_dict(checkpoint["state_dict"])
    return model
