"""course_lib.training: the masked loss, the loop, evaluate, seeds and checkpoints."""

import math
import os
import random

import pytest
import torch
from torch import nn

from course_lib.data import LETTERS, Vocab, batch_stream, make_pairs
from course_lib.models import RNNSeq2Seq, Seq2SeqTransformer
from course_lib.training import (
    evaluate,
    load_checkpoint,
    run_parallel,
    save_checkpoint,
    sequence_loss,
    set_seed,
    train,
)
from tests.test_decoding import ReverseOracle

PAD = Vocab.PAD
VOCAB = Vocab(LETTERS)


def random_logits_and_targets(seed, batch=5, length=7, vocab_size=11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, vocab_size, generator=g, requires_grad=True)
    targets = torch.randint(1, vocab_size, (batch, length), generator=g)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    targets = targets.masked_fill(torch.arange(length)[None, :] >= lengths[:, None], PAD)
    return logits, targets


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_sequence_loss_equals_cross_entropy_with_ignore_index(seed, label_smoothing):
    logits, targets = random_logits_and_targets(seed)
    assert (targets == PAD).any()
    ours = sequence_loss(logits, targets, PAD, label_smoothing=label_smoothing)
    theirs = nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=label_smoothing)(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    torch.testing.assert_close(ours, theirs)
    # ... and the manual masked token mean.
    per_token = nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none",
                                            label_smoothing=label_smoothing)
    real = targets != PAD
    torch.testing.assert_close(ours, (per_token * real).sum() / real.sum())


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_pad_positions_change_neither_the_loss_nor_get_gradient(label_smoothing):
    logits, targets = random_logits_and_targets(3)
    pad = targets == PAD
    loss = sequence_loss(logits, targets, PAD, label_smoothing=label_smoothing)
    loss.backward()
    assert (logits.grad[pad] == 0).all()
    assert (logits.grad[~pad].abs().sum(-1) > 0).all()
    noisy = logits.detach() + 5 * torch.randn(logits.shape) * pad[..., None]
    assert torch.allclose(sequence_loss(noisy, targets, PAD, label_smoothing=label_smoothing),
                          loss.detach())


def test_an_all_pad_batch_gives_zero_loss_and_zero_gradient_not_nan():
    logits = torch.randn(3, 4, 9, requires_grad=True)
    targets = torch.full((3, 4), PAD)
    reference = nn.CrossEntropyLoss(ignore_index=PAD)(logits.reshape(-1, 9), targets.reshape(-1))
    assert math.isnan(reference.item())  # what the plain loss does
    loss = sequence_loss(logits, targets, PAD, label_smoothing=0.1)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_sequence_loss_rejects_bad_input():
    logits, targets = random_logits_and_targets(0)
    with pytest.raises(ValueError, match=r"logits: expected \[B, T, V\].*transpose"):
        sequence_loss(logits.transpose(1, 2), targets, PAD)
    with pytest.raises(TypeError, match="targets: expected integer token ids"):
        sequence_loss(logits, targets.float(), PAD)
    with pytest.raises(ValueError, match="label_smoothing"):
        sequence_loss(logits, targets, PAD, label_smoothing=1.5)


def test_set_seed_makes_every_generator_repeat():
    def draw():
        return random.random(), torch.rand(3).tolist(), __import__("numpy").random.rand()

    set_seed(5)
    first = draw()
    set_seed(5)
    assert draw() == first
    set_seed(6)
    assert draw() != first


def small_model(seed=0, **overrides):
    set_seed(seed)
    config = dict(d_model=32, nhead=4, num_layers=1, dim_feedforward=64, max_len=16) | overrides
    return Seq2SeqTransformer(len(VOCAB), **config)


def test_a_short_training_run_lowers_the_loss_with_warmup_then_decay():
    model = small_model()
    stream = batch_stream("copy", VOCAB, 32, min_len=2, max_len=5, seed=0)
    history = train(model, stream, steps=60, lr=3e-3, warmup_steps=10, progress=False)
    assert history.stopped == "steps"
    assert len(history.losses) == len(history.learning_rates) == 60
    first, last = history.losses[:10], history.losses[-10:]
    assert sum(last) / 10 < 0.8 * sum(first) / 10
    rates = history.learning_rates
    assert rates[0] < rates[9] == pytest.approx(3e-3)  # linear warmup to the peak
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))  # then only decays
    assert rates[-1] < 0.01 * rates[9]
    assert not model.training


def test_train_stops_at_the_target_or_the_time_limit():
    held_out = make_pairs("reverse", 20, min_len=2, max_len=4, seed=1)
    stream = batch_stream("reverse", VOCAB, 8, min_len=2, max_len=4, seed=0,
                          disjoint_from=held_out)
    history = train(small_model(), stream, steps=50, eval_pairs=held_out, vocab=VOCAB,
                    eval_every=5, target_exact_match=0.0, progress=False)
    assert (history.stopped, len(history.losses)) == ("target", 5)
    assert history.evaluations[0]["step"] == 5
    history = train(small_model(), stream, steps=50, max_seconds=0.0, progress=False)
    assert (history.stopped, len(history.losses)) == ("max_seconds", 1)
    with pytest.raises(ValueError, match="target_exact_match: needs eval_pairs"):
        train(small_model(), stream, steps=5, target_exact_match=0.9, progress=False)
    with pytest.raises(ValueError, match="vocab: needed to encode eval_pairs"):
        train(small_model(), stream, steps=5, eval_pairs=held_out, progress=False)
    with pytest.raises(ValueError, match="warmup_steps: expected an int >= 0"):
        train(small_model(), stream, steps=5, warmup_steps=-1, progress=False)


def test_a_custom_loss_fn_replaces_the_masked_loss():
    calls = []

    def loss_fn(model, batch):
        calls.append(batch.src.shape[0])
        return model(batch.src, batch.tgt_in).square().mean()

    stream = batch_stream("copy", VOCAB, 4, min_len=2, max_len=3, seed=0)
    train(small_model(), stream, steps=3, loss_fn=loss_fn, progress=False)
    assert calls == [4, 4, 4]


def test_evaluate_scores_exact_match_and_token_accuracy():
    pairs = make_pairs("reverse", 40, min_len=1, max_len=6, seed=2)
    assert evaluate(ReverseOracle(), pairs, VOCAB, batch_size=7) == {
        "exact_match": 1.0, "token_accuracy": 1.0}
    wrong = [src for src, _ in pairs[:10]]
    tokens = sum(len(tgt) + 1 for _, tgt in pairs)  # EOS counts
    scores = evaluate(ReverseOracle(wrong), pairs, VOCAB, batch_size=7)
    assert scores["exact_match"] == 30 / 40
    assert scores["token_accuracy"] == pytest.approx((tokens - 10) / tokens)


def test_teacher_forced_exact_match_equals_greedy_and_token_accuracy_is_higher():
    # A partly trained model: some rows right, many wrong, so the equality is not 0 == 0.
    held_out = make_pairs("reverse", 300, min_len=2, max_len=6, seed=1)
    stream = batch_stream("reverse", VOCAB, 64, min_len=2, max_len=6, seed=0,
                          disjoint_from=held_out)
    model = small_model()
    train(model, stream, steps=60, lr=5e-3, warmup_steps=10, progress=False)
    greedy = evaluate(model, held_out, VOCAB)
    forced = evaluate(model, held_out, VOCAB, decoding="teacher_forced")
    assert 0.05 < greedy["exact_match"] < 0.95
    assert forced["exact_match"] == greedy["exact_match"]
    assert forced["token_accuracy"] > greedy["token_accuracy"]
    with pytest.raises(ValueError, match="decoding: expected one of .*, got 'beam'"):
        evaluate(model, held_out, VOCAB, decoding="beam")


def test_train_checks_teacher_forced_and_stops_only_when_greedy_confirms(monkeypatch):
    from course_lib import training

    calls = []

    def scores(model, batches, decoding):  # teacher forcing claims the target, greedy denies it
        calls.append(decoding)
        return {"exact_match": 1.0 if decoding == "teacher_forced" else 0.5,
                "token_accuracy": 0.9}

    monkeypatch.setattr(training, "_scores", scores)
    held_out = make_pairs("reverse", 20, min_len=2, max_len=4, seed=1)
    stream = batch_stream("reverse", VOCAB, 8, min_len=2, max_len=4, seed=0)
    history = train(small_model(), stream, steps=12, eval_pairs=held_out, vocab=VOCAB,
                    eval_every=5, target_exact_match=0.99, progress=False)
    assert history.stopped == "steps" and len(history.losses) == 12
    assert calls == ["teacher_forced", "greedy"] * 3  # steps 5, 10 and the last, 12
    assert [(e["step"], e["decoding"]) for e in history.evaluations] == [
        (5, "teacher_forced"), (5, "greedy"), (10, "teacher_forced"), (10, "greedy"),
        (12, "teacher_forced"), (12, "greedy")]
    # Without a target, only the last step decodes greedily.
    calls.clear()
    train(small_model(), stream, steps=12, eval_pairs=held_out, vocab=VOCAB, eval_every=5,
          progress=False)
    assert calls == ["teacher_forced", "teacher_forced", "teacher_forced", "greedy"]


def test_checkpoint_round_trip_is_atomic(tmp_path):
    model, other = small_model(0), small_model(1)
    path = tmp_path / "new folder" / "model.pt"  # missing folders are created
    save_checkpoint(model, path)
    save_checkpoint(model, path)  # overwriting works too
    assert os.listdir(path.parent) == ["model.pt"]  # no temporary file left behind
    load_checkpoint(path, other)
    for key, value in model.state_dict().items():
        assert torch.equal(value, other.state_dict()[key])
    src, tgt_in = torch.tensor([[4, 5, 6]]), torch.tensor([[1, 6]])
    assert torch.equal(model.eval()(src, tgt_in), other.eval()(src, tgt_in))


def test_a_failed_save_leaves_the_old_checkpoint_untouched(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint(small_model(0), path)
    before = path.read_bytes()

    def broken_save(obj, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(small_model(1), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pt"]


def test_loading_another_configuration_names_what_differs(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(small_model(d_model=32, nhead=4), path)
    with pytest.raises(ValueError, match=r"d_model=32 in the checkpoint but 64 in the model; "
                                         r"nhead=4 in the checkpoint but 2 in the model"):
        load_checkpoint(path, small_model(d_model=64, nhead=2))


def test_the_progress_bar_draws_in_a_terminal(capsys):
    stream = batch_stream("copy", VOCAB, 4, min_len=2, max_len=3, seed=0)
    train(small_model(), stream, steps=20, progress=True)
    err = capsys.readouterr().err
    assert "training" in err and "20/20" in err


def test_a_notebook_bar_ends_green_and_full_when_the_target_is_reached(monkeypatch):
    """tqdm.notebook turns a bar closed before its total red ('danger'): reaching the target
    must not read as a failure, a stop at max_seconds still does."""
    import tqdm.notebook

    import course_lib.training

    bars = []

    class RecordingBar(tqdm.notebook.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(course_lib.training, "tqdm", RecordingBar)
    held_out = make_pairs("reverse", 20, min_len=2, max_len=4, seed=1)
    stream = batch_stream("reverse", VOCAB, 8, min_len=2, max_len=4, seed=0,
                          disjoint_from=held_out)
    history = train(small_model(), stream, steps=50, eval_pairs=held_out, vocab=VOCAB,
                    eval_every=5, target_exact_match=0.0)
    assert history.stopped == "target"
    bar = bars[-1]
    _, widget, _ = bar.container.children
    assert bar.n == bar.total == widget.value == widget.max == 5
    assert widget.bar_style == "success"
    assert bar.desc.startswith("training: target reached")

    history = train(small_model(), stream, steps=50, max_seconds=0.0)
    assert history.stopped == "max_seconds"
    bar = bars[-1]
    assert (bar.n, bar.total) == (1, 50)
    assert bar.container.children[1].bar_style == "danger"
    assert bar.desc.startswith("training: stopped at max_seconds")


def _small_run(seed):
    vocab = Vocab(LETTERS)
    set_seed(seed)
    model = RNNSeq2Seq(len(vocab), embedding_dim=8, hidden_size=16, pad_id=Vocab.PAD)
    stream = batch_stream("reverse", vocab, 16, min_len=2, max_len=5, seed=seed)
    return model, lambda: (train(model, stream, steps=5, warmup_steps=1, progress=False), model)


def test_run_parallel_gives_the_results_of_running_one_after_another():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = [task()[1] for _, task in (_small_run(seed) for seed in range(3))]
    finally:
        torch.set_num_threads(threads)
    jobs = [_small_run(seed)[1] for seed in range(3)]  # models built first, one by one
    together = [model for _, model in run_parallel(jobs, desc="test")]
    assert torch.get_num_threads() == threads
    for a, b in zip(alone, together, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_run_parallel_refuses_tasks_that_use_the_global_generator():
    with pytest.raises(RuntimeError, match="global random generator"):
        run_parallel([lambda: torch.rand(1), lambda: torch.rand(1)])
    with pytest.raises(ValueError, match="workers"):
        run_parallel([], workers=0)
