import numpy as np
import pandas as pd
import pytest
from datasketch import MinHash

from adapterops.errors import AdapterOpsError
from tasks.dedup import (DedupParams, choose_bands, dedup_records, minhash_signatures, normalise_text,
                         shingle_hashes)

BASE = ("the customer reports that the invoice for the annual plan lists twelve seats although the "
        "team only has nine active users and asks for a corrected invoice before the end of the month")


def frame(texts):
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "prompt": texts,
                         "completion": ["ok"] * len(texts), "timestamp": ["2026-01-01T00:00:00"] * len(texts)})


def test_normalisation_makes_case_spacing_and_punctuation_variants_equal():
    assert normalise_text("  Hello,   WORLD!! ") == normalise_text("hello world") == "hello world"
    assert normalise_text("ﬁne") == "fine"          # NFKC ligature


def test_signatures_equal_datasketch_affine32_minhash():
    hashes, offsets = shingle_hashes([normalise_text(BASE)], 5)
    ours = minhash_signatures(hashes, offsets, 128, seed=1)[0]
    folded = (hashes ^ (hashes >> np.uint64(32))).astype(np.uint32)
    reference = MinHash(num_perm=128, seed=1, hashfunc=lambda v: v)
    reference.update_batch([int(v) for v in folded])
    assert np.array_equal(reference.hashvalues, ours)


def test_recall_first_bands_at_default_threshold():
    assert choose_bands(0.8, 128) == (16, 8)


def test_exact_and_formatting_duplicates_are_removed_with_their_keeper():
    table = dedup_records(frame([BASE, BASE.upper() + "!!", "  " + BASE.replace(" ", "   "), "something else entirely"]),
                          DedupParams())
    assert table["kept"].tolist() == [True, False, False, True]
    assert table.loc[1:2, "duplicate_of"].tolist() == ["r0", "r0"]
    assert set(table.loc[1:2, "kind"]) == {"exact"}


def test_near_duplicate_on_each_side_of_the_threshold():
    words = BASE.split()
    one_edit = " ".join(words[:-1] + ["week"])   # 33 words + "ok": 30 shingles, 2 changed → 28/32
    many_edits = " ".join(w if i % 4 else "x" + w for i, w in enumerate(words))
    table = dedup_records(frame([BASE, one_edit, many_edits]), DedupParams(threshold=0.8))
    assert table["kept"].tolist() == [True, False, True]
    assert table.loc[1, "kind"] == "near" and table.loc[1, "jaccard"] == pytest.approx(28 / 32)


def test_every_record_is_accounted_for_and_deterministic():
    texts = [BASE, BASE, "", "one", BASE + " extra words here", "日本語 の テキスト です よ ね", "日本語 の テキスト です よ ね"]
    first = dedup_records(frame(texts), DedupParams())
    second = dedup_records(frame(texts), DedupParams())
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == len(texts)
    assert first["kept"].sum() + (~first["kept"]).sum() == len(texts)
    assert first.loc[6, "duplicate_of"] == "r5"


def test_keeper_choice_longest_vs_first():
    longer = BASE + " please"
    assert dedup_records(frame([BASE, longer]), DedupParams(keep="longest"))["kept"].tolist() == [False, True]
    assert dedup_records(frame([BASE, longer]), DedupParams(keep="first"))["kept"].tolist() == [True, False]


def test_duplicate_ids_are_refused():
    data = frame([BASE, "other"])
    data.loc[1, "id"] = "r0"
    with pytest.raises(AdapterOpsError, match="unique ids"):
        dedup_records(data, DedupParams())
