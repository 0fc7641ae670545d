import pandas as pd

from adapterops.config import DedupConfig
from tasks.curate.split import assign_split, leaking_train_ids

TEXT = "my invoice for the annual plan lists twelve seats but we only have nine active users this month"


def test_split_is_stable_per_id_and_near_the_fraction():
    ids = pd.Series([f"r{i}" for i in range(2000)])
    first = assign_split(ids, 0.1, seed=3)
    assert first.equals(assign_split(ids, 0.1, seed=3))
    assert 0.07 < (first == "heldout").mean() < 0.13
    assert assign_split(ids[:100], 0.1, seed=3).equals(first[:100])     # adding records moves nobody


def test_train_record_near_duplicating_a_heldout_record_is_flagged():
    train = pd.DataFrame({"id": ["t1", "t2"], "prompt": [TEXT + " thanks", "completely unrelated words about shipping"],
                          "completion": ["c", "c"]})
    heldout = pd.DataFrame({"id": ["h1"], "prompt": [TEXT], "completion": ["c"]})
    assert leaking_train_ids(train, heldout, DedupConfig(threshold=0.8)) == {"t1": "h1"}
    assert leaking_train_ids(train, heldout.iloc[0:0], DedupConfig()) == {}
