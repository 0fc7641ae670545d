"""Replay: general examples beside the corpus's, a set share of the training examples, off by default with the
training key unchanged."""

import json

import pytest

from adapterops.config import Recipe, TrainConfig
from adapterops.errors import AdapterOpsError
from adapterops.general_data import RETAIN_SEED, general_records
from adapterops.refs import BaseModelRef
from tasks.train.replay import replay_count, replay_records


def test_replayed_examples_are_the_share_asked_for_deterministic_and_outside_support():
    train = TrainConfig(replay_share=0.25)
    records = replay_records(train, 900)
    assert len(records) == replay_count(train, 900) == 300             # 300 of 1200 training examples
    assert records == replay_records(train, 900)
    retain_prompts = {r["prompt"] for r in general_records(120, RETAIN_SEED)}
    assert not any(r["prompt"].startswith(("Hello", "Hi ", "Dear", "Good", "Hey")) for r in records)
    assert len({r["prompt"] for r in records} & retain_prompts) < len(retain_prompts) // 4   # another seed
    assert replay_records(TrainConfig(), 900) == []


def test_a_replay_file_is_cycled_and_a_missing_one_is_named(tmp_path):
    path = tmp_path / "general.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(3)) + "\n")
    records = replay_records(TrainConfig(replay_share=0.5, replay_source=str(path)), 5)
    assert [r["prompt"] for r in records] == ["q0", "q1", "q2", "q0", "q1"]
    with pytest.raises(AdapterOpsError, match="train.replay_source 'nope.jsonl' is not a file"):
        replay_records(TrainConfig(replay_share=0.5, replay_source="nope.jsonl"), 5)


def test_without_replay_the_training_key_is_what_it_was_and_with_it_the_share_decides():
    assert not {"replay_share", "replay_source"} & set(Recipe().settings()["train"])
    assert Recipe(train=TrainConfig(replay_share=0.2)).settings() != Recipe(train=TrainConfig(replay_share=0.3)).settings()


def test_the_recipe_trains_the_corpus_and_the_replayed_examples(tiny_model_dir, tmp_path):
    from adapterops.demo_data import generate_records
    from tasks.train.recipe import run_recipe

    records = generate_records(6, 1)
    recipe = Recipe(train=TrainConfig(max_steps=1, batch_size=4, checkpoint_every=0, replay_share=0.5))
    done = run_recipe(recipe, BaseModelRef("tiny", str(tiny_model_dir), "sha256:x"), records, tmp_path)
    assert done["replayed"] == 6 and done["preflight"].records == 12 and done["examples"] == 12
