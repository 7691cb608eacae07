"""The shared reverse-task recipe: held-out sets, the cache of its trained model."""

import torch

from course_lib import recipes
from course_lib.data import Vocab


def test_held_out_sets_are_distinct_disjoint_and_follow_the_task():
    validation, test = recipes.held_out_pairs()
    assert (len(validation), len(test)) == (recipes.VALIDATION_PAIRS, recipes.TEST_PAIRS)
    validation_sources = {src for src, _ in validation}
    test_sources = {src for src, _ in test}
    assert len(validation_sources) == len(validation) and len(test_sources) == len(test)
    assert not validation_sources & test_sources
    assert all(tgt == src[::-1] for src, tgt in validation + test)
    lengths = {len(src) for src, _ in validation + test}
    assert lengths == set(range(recipes.TASK["min_len"], recipes.TASK["max_len"] + 1))
    assert recipes.held_out_pairs() == (validation, test)  # seeded


def test_new_model_is_seeded_and_uses_the_pad_id():
    first, second = recipes.new_model(3), recipes.new_model(3)
    assert first.pad_id == Vocab.PAD and first.config["vocab_size"] == len(recipes.reverse_vocab())
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 second.state_dict().values(), strict=True))
    assert not torch.equal(recipes.new_model(4).generator.weight, first.generator.weight)


def test_checkpoint_path_changes_with_the_seed_and_the_recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    path = recipes.checkpoint_path(0)
    assert path.parent == tmp_path and path == recipes.checkpoint_path(0)
    assert recipes.checkpoint_path(1) != path
    monkeypatch.setitem(recipes.TRAINING, "lr", recipes.TRAINING["lr"] / 2)
    assert recipes.checkpoint_path(0) != path


def test_trained_model_is_trained_once_then_loaded_from_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    calls = []

    def fake_train_reverse(seed, progress):  # an untrained model stands in for a 10 s run
        calls.append(seed)
        return recipes.new_model(seed + 100), None

    monkeypatch.setattr(recipes, "train_reverse", fake_train_reverse)
    trained = recipes.trained_reverse_model(0)
    assert calls == [0] and recipes.checkpoint_path(0).exists()
    loaded = recipes.trained_reverse_model(0)
    assert calls == [0], "the second call must load the checkpoint, not train again"
    assert not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(),
                                                 loaded.state_dict().values(), strict=True))
