import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from datasketch import LeanMinHash, MinHash

from adapterops.config import DedupConfig
from adapterops.errors import AdapterOpsError
from tasks.dedup.clusters import dedup_records
from tasks.dedup.lsh import choose_bands
from tasks.dedup.minhash import minhash_signatures, normalise_text, normalise_texts, shingle_values, token_hashes

BASE = ("the customer reports that the invoice for the annual plan lists twelve seats although the "
        "team only has nine active users and asks for a corrected invoice before the end of the month")


def frame(texts):
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "prompt": texts,
                         "completion": ["ok"] * len(texts), "timestamp": ["2026-01-01T00:00:00"] * len(texts)})


def test_normalisation_makes_case_spacing_and_punctuation_variants_equal():
    assert normalise_text("  Hello,   WORLD!! ") == normalise_text("hello world") == "hello world"
    assert normalise_text("ﬁne") == "fine"          # NFKC ligature


def test_signatures_equal_datasketch_affine32_minhash():
    values, offsets = shingle_values(*token_hashes(normalise_texts([BASE])), 5)
    ours = minhash_signatures(values, offsets, 128, seed=1)[0]
    reference = MinHash(num_perm=128, seed=1, hashfunc=lambda v: v)
    reference.update_batch([int(v) for v in values])
    assert np.array_equal(reference.hashvalues, ours)


def test_recall_first_bands_at_default_threshold():
    assert choose_bands(0.8, 128) == (16, 8)


def test_exact_and_formatting_duplicates_are_removed_with_their_keeper():
    table = dedup_records(frame([BASE, BASE.upper() + "!!", "  " + BASE.replace(" ", "   "), "something else entirely"]),
                          DedupConfig())
    assert table["kept"].tolist() == [True, False, False, True]
    assert table.loc[1:2, "duplicate_of"].tolist() == ["r0", "r0"]
    assert set(table.loc[1:2, "kind"]) == {"exact"}


def test_near_duplicate_on_each_side_of_the_threshold():
    words = BASE.split()
    one_edit = " ".join(words[:-1] + ["week"])   # 33 words + "ok": 30 shingles, 2 changed → 28/32
    many_edits = " ".join(w if i % 4 else "x" + w for i, w in enumerate(words))
    table = dedup_records(frame([BASE, one_edit, many_edits]), DedupConfig(threshold=0.8))
    assert table["kept"].tolist() == [True, False, True]
    assert table.loc[1, "kind"] == "near" and table.loc[1, "jaccard"] == pytest.approx(28 / 32)


def test_every_record_is_accounted_for_and_deterministic():
    texts = [BASE, BASE, "", "one", BASE + " extra words here", "日本語 の テキスト です よ ね", "日本語 の テキスト です よ ね"]
    first = dedup_records(frame(texts), DedupConfig())
    second = dedup_records(frame(texts), DedupConfig())
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == len(texts)
    assert set(first.loc[~first["kept"], "duplicate_of"]) <= set(first.loc[first["kept"], "id"])
    assert first.loc[6, "duplicate_of"] == "r5"


def test_keeper_choice_longest_vs_first():
    longer = BASE + " please"
    assert dedup_records(frame([BASE, longer]), DedupConfig(keep="longest"))["kept"].tolist() == [False, True]
    assert dedup_records(frame([BASE, longer]), DedupConfig(keep="first"))["kept"].tolist() == [True, False]


def test_duplicate_ids_are_refused():
    data = frame([BASE, "other"])
    data.loc[1, "id"] = "r0"
    with pytest.raises(AdapterOpsError, match="unique ids"):
        dedup_records(data, DedupConfig())


# --- scale, incremental, report, CLI, shards ---------------------------------------------------------

import json  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st

from tasks.dedup.clusters import sketch_records  # noqa: E402
from tasks.dedup.lsh import build_lsh_index, lsh_candidate_pairs  # noqa: E402
from tasks.dedup.stage import dedup_file, load_sketches  # noqa: E402


def test_vectorised_normalisation_equals_normalise_text():
    texts = ["  Hello,   WORLD!! ", "ﬁne_day", "Straße ÉTÉ", "日本語、テキスト。", "", "a--b__c", "x\ty\nz", "١٢٣ arabic"]
    normalised = normalise_texts(texts, workers=2)
    assert [normalised.text(k) for k in range(len(texts))] == [normalise_text(t) for t in texts]
    from_arrow = normalise_texts(pa.array(["dropped", *texts, None])[1:], workers=2)   # a slice, with a null
    assert [from_arrow.text(k) for k in range(len(texts) + 1)] == [normalise_text(t) for t in texts] + [""]


def test_arrow_string_frames_give_the_same_result_as_python_strings():
    texts = [BASE, BASE.upper() + "!", "Straße ÉTÉ " + BASE, "strasse été " + BASE, None, "日本語 の テキスト"]
    records = frame(texts).assign(completion=["ok", None, "x", "x", "y", "z"])
    as_objects = records.astype({"prompt": object, "completion": object})
    as_arrow = records.astype({"prompt": pd.StringDtype("pyarrow"), "completion": pd.ArrowDtype(pa.string())})
    from tasks.dedup.clusters import compared_texts
    assert isinstance(compared_texts(as_arrow, ("prompt", "completion")), pa.Array)
    assert not isinstance(compared_texts(as_objects, ("prompt", "completion")), pa.Array)
    expected = dedup_records(as_objects, DedupConfig())
    assert expected["kind"].tolist() == ["near", "near", "unique", "exact", "unique", "unique"]
    pd.testing.assert_frame_equal(dedup_records(as_arrow, DedupConfig()), expected)


def test_results_do_not_depend_on_worker_count_or_run():
    rng = np.random.default_rng(3)
    words = BASE.split()
    texts = [" ".join(rng.choice(words, 40)) for _ in range(60)] + [BASE, BASE + " again", BASE.upper()]
    first = dedup_records(frame(texts), DedupConfig(), workers=1)
    pd.testing.assert_frame_equal(first, dedup_records(frame(texts), DedupConfig(), workers=3))
    pd.testing.assert_frame_equal(first, dedup_records(frame(texts), DedupConfig(), workers=1))


def graded_variants_sketches():
    """80 copies of BASE with ever more words changed: candidate pairs at every similarity."""
    rng = np.random.default_rng(5)
    words = BASE.split()
    texts = [" ".join(w if rng.random() > k / 80 else "x" + w for w in words) for k in range(80)]
    return sketch_records(frame(texts), DedupConfig()), np.arange(len(texts))


def test_shared_bucket_index_finds_the_same_candidates_as_the_full_index():
    sketches, rows = graded_variants_sketches()
    pruned = lsh_candidate_pairs(build_lsh_index(sketches.signatures, rows, DedupConfig()))
    lsh = build_lsh_index(sketches.signatures, rows, DedupConfig(), shared_only=False)
    full = lsh_candidate_pairs(lsh)
    assert len(full) > 0 and np.array_equal(pruned, full)
    assert 0 in lsh.query(LeanMinHash(seed=1, hashvalues=sketches.signatures[0], scheme="affine32"))


def test_empty_one_word_very_long_and_non_latin_texts():
    long_text = " ".join(f"word{k}" for k in range(20000))
    texts = ["", "", "one", "ONE", long_text, long_text + " end", "Привет мир как дела сегодня у тебя",
             "привет мир как дела сегодня у тебя!", "مرحبا بالعالم كيف حالك اليوم يا صديقي"]
    table = dedup_records(frame(texts), DedupConfig())
    assert table["kept"].tolist() == [True, False, True, False, False, True, True, False, True]
    assert table.loc[1, "kind"] == "exact" and table.loc[3, "duplicate_of"] == "r2"
    assert table.loc[4, "kind"] == "near" and table.loc[4, "jaccard"] > 0.99


def test_character_ngrams_catch_short_near_duplicates_that_words_miss():
    texts = ["reset my password", "reset my pasword", "cancel my order"]
    words = dedup_records(frame(texts), DedupConfig(threshold=0.5, ngram=2))
    chars = dedup_records(frame(texts), DedupConfig(threshold=0.5, ngram=3, shingle="char"))
    assert words["kept"].tolist() == [True, True, True]
    assert chars["kept"].tolist() == [True, False, True] and chars.loc[1, "duplicate_of"] == "r0"


def test_exact_key_ignores_formatting_only():
    keys = sketch_records(frame(["Hello,  World", "hello world", "hello worlds"]), DedupConfig()).text_keys
    assert (keys[0] == keys[1]).all() and not (keys[1] == keys[2]).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["", "a b", BASE, BASE.upper(), BASE + " x", "ÉTÉ été", "z " * 30, "k"]), max_size=25),
       st.sampled_from(["longest", "first"]))
def test_every_record_is_accounted_for_exactly_once(texts, keep):
    table = dedup_records(frame(texts), DedupConfig(keep=keep))
    assert table["id"].tolist() == [f"r{i}" for i in range(len(texts))]
    kept_ids = set(table.loc[table["kept"], "id"])
    removed = table[~table["kept"]]
    assert set(removed["duplicate_of"]) <= kept_ids and (table.loc[table["kept"], "cluster_id"] == table.loc[table["kept"], "id"]).all()


def test_dedup_file_writes_report_and_signatures_and_runs_incrementally(tmp_path):
    first = frame([BASE, BASE + " thanks", "an unrelated ticket about shipping delays to the north"])
    first["source"] = ["mail", "chat", "mail"]
    first.to_parquet(tmp_path / "v1.parquet")
    summary = dedup_file(str(tmp_path / "v1.parquet"), DedupConfig(), tmp_path / "v1")
    report = json.loads((tmp_path / "v1" / "report.json").read_text())
    assert report["counts"] == {"input": 3, "kept": 2, "exact": 0, "near": 1, "removed": 1}
    assert {r["source"]: r["near"] for r in report["by_source"]} == {"chat": 0, "mail": 1}
    assert report["largest_clusters"][0]["kept_id"] == "r1" and report["largest_clusters"][0]["duplicates"][0]["id"] == "r0"
    assert sum(h["records"] for h in report["jaccard_histogram"]) == 1
    assert len(load_sketches(summary.signatures).ids) == 3
    new = pd.DataFrame({"id": ["n1", "n2"], "prompt": [BASE.upper() + " thanks!", "brand new question"],
                        "completion": ["ok", "ok"], "timestamp": ["2026-02-01"] * 2})
    new.to_parquet(tmp_path / "v2.parquet")
    dedup_file(str(tmp_path / "v2.parquet"), DedupConfig(), tmp_path / "v2", previous_signatures=summary.signatures)
    table = pd.read_parquet(tmp_path / "v2" / "duplicates.parquet")
    assert table["id"].tolist() == ["n1", "n2"]
    assert table["duplicate_of"].fillna("-").tolist() == ["r1", "-"] and table.loc[0, "kind"] == "exact"
    with pytest.raises(AdapterOpsError, match="no stored dedup signatures"):
        dedup_file(str(tmp_path / "v2.parquet"), DedupConfig(), tmp_path / "v3", previous_signatures=str(tmp_path))


def test_cli_dedup_writes_outputs_and_explains_a_missing_column(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    pd.DataFrame({"key": ["a", "b", "c"], "body": [BASE, BASE.upper(), "other text"]}).to_csv(tmp_path / "in.csv", index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["dedup", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out"),
                                 "--id-column", "key", "--text-column", "body", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(tmp_path / "out" / "kept.parquet")["key"].tolist() == ["a", "c"]
    assert pd.read_parquet(tmp_path / "out" / "duplicates.parquet")["duplicate_of"].fillna("-").tolist() == ["-", "a", "-"]
    assert (tmp_path / "out" / "report.json").is_file()
    bad = runner.invoke(app, ["dedup", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o2"), "--id-column", "key"])
    assert bad.exit_code != 0 and "--text-column" in str(bad.exception)
    no_id = runner.invoke(app, ["dedup", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o3"), "--text-column", "body"])
    assert no_id.exit_code != 0 and "'id'" in str(no_id.exception) and "--id-column" in str(no_id.exception)


# --- keeper by source priority, stored sets, streaming ------------------------------------------------

def test_keeper_by_source_priority_then_longest_then_input_order():
    texts = [BASE, BASE + " please", BASE + " thank you", BASE.upper(), "unrelated words about a refund request now"]
    records = frame(texts).assign(source=["chat", "forum", "forum", "email", "chat"])
    by_priority = dedup_records(records, DedupConfig(keep="source_priority", source_priority=("email", "forum")))
    assert by_priority["kept"].tolist() == [False, False, False, True, True]
    assert set(by_priority.loc[:2, "duplicate_of"]) == {"r3"}
    forum_first = dedup_records(records, DedupConfig(keep="source_priority", source_priority=["forum"]))
    assert forum_first["cluster_id"].tolist()[:4] == ["r2"] * 4      # the longer of the two forum records
    unlisted = dedup_records(records, DedupConfig(keep="source_priority", source_priority=("web",)))
    assert unlisted["kept"].tolist() == [False, False, True, False, True]   # all rank last: longest wins
    shuffled = records.iloc[[3, 1, 0, 2, 4]].reset_index(drop=True)
    again = dedup_records(shuffled, DedupConfig(keep="source_priority", source_priority=("email", "forum")))
    assert again.set_index("id").loc[by_priority["id"], "kept"].tolist() == by_priority["kept"].tolist()


def test_keeper_by_source_priority_needs_the_list_and_missing_sources_rank_last():
    with pytest.raises(ValueError, match="source_priority"):   # the settings the core takes refuse it
        DedupConfig(keep="source_priority")
    no_source = dedup_records(frame([BASE, BASE + " please"]), DedupConfig(keep="source_priority", source_priority=("x",)))
    assert no_source["kept"].tolist() == [False, True]


def test_signatures_saved_as_sorted_64_bit_sets_still_load(tmp_path):
    from tasks.dedup.clusters import Sketches, verified_pairs
    from tasks.dedup.stage import save_sketches

    texts = [BASE, BASE + " please", "short one", BASE.replace("invoice", "bill")]
    sketches = sketch_records(frame(texts), DedupConfig())
    high = np.uint64(0xABCD) << np.uint64(32)     # any high half: the low half is XORed with it when folded
    pieces = [np.unique(sketches.sets[a:b].astype(np.uint64) ^ high ^ (high >> np.uint64(32)))
              for a, b in zip(sketches.set_offsets[:-1], sketches.set_offsets[1:])]   # the old form: sorted unique 64-bit
    old_offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])])
    old = Sketches(**{**sketches.__dict__, "sets": np.concatenate(pieces), "set_offsets": old_offsets})
    save_sketches(old, tmp_path / "old")
    loaded = load_sketches(tmp_path / "old")
    assert loaded.sets.dtype == np.uint32
    params = DedupConfig(threshold=0.5)
    new_pairs, new_jaccard = verified_pairs(sketches, np.arange(len(texts)), params)
    old_pairs, old_jaccard = verified_pairs(loaded, np.arange(len(texts)), params)
    assert len(new_pairs) == 2 and np.array_equal(new_pairs, old_pairs) and np.array_equal(new_jaccard, old_jaccard)


def test_dedup_file_reads_parquet_in_batches_with_the_same_result(tmp_path):
    rng = np.random.default_rng(2)
    words = BASE.split()
    texts = [" ".join(rng.choice(words, 30)) for _ in range(30)] + [BASE, BASE.upper(), BASE + " again"]
    records = frame(texts).assign(source=["mail"] * len(texts), extra=range(len(texts)))
    records.to_parquet(tmp_path / "in.parquet", row_group_size=7)
    summary = dedup_file(str(tmp_path / "in.parquet"), DedupConfig(), tmp_path / "out", batch_rows=4)
    expected = dedup_records(records, DedupConfig())
    pd.testing.assert_frame_equal(pd.read_parquet(summary.duplicates), expected, check_dtype=False)
    kept = pd.read_parquet(summary.kept_records)
    assert list(kept.columns) == list(records.columns)
    assert kept["id"].tolist() == expected.loc[expected["kept"], "id"].tolist()


def test_cli_keeps_by_source_priority_from_parquet(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    pd.DataFrame({"id": ["a", "b", "c"], "text": [BASE, BASE.upper(), "other text"],
                  "origin": ["scraped", "curated", "scraped"]}).to_parquet(tmp_path / "in.parquet")
    runner = CliRunner()
    args = ["dedup", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "out"), "--keep", "source_priority",
            "--source-column", "origin"]
    result = runner.invoke(app, args + ["--source-priority", "curated", "--source-priority", "scraped"])
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(tmp_path / "out" / "kept.parquet")["id"].tolist() == ["b", "c"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {r["source"] for r in report["by_source"]} == {"curated", "scraped"}
    missing = runner.invoke(app, args)
    assert missing.exit_code != 0 and "--source-priority" in str(missing.exception)


def test_index_grouped_by_exact_keys_when_fingerprints_collide(monkeypatch):
    import tasks.dedup.lsh

    sketches, rows = graded_variants_sketches()
    grouped = lsh_candidate_pairs(build_lsh_index(sketches.signatures, rows, DedupConfig()))
    monkeypatch.setattr(tasks.dedup.lsh, "band_groups", lambda block, shared_only=True: None)
    by_keys = lsh_candidate_pairs(build_lsh_index(sketches.signatures, rows, DedupConfig()))
    assert len(grouped) > 0 and np.array_equal(grouped, by_keys)


def test_pair_jaccard_counts_each_value_once_in_any_order():
    from tasks.dedup.kernels import pair_jaccard

    values = np.array([5, 3, 5, 1, 9, 9, 9, 7, 3, 1, 4, 5], dtype=np.uint32)
    offsets = np.array([0, 4, 4, 7, 12])       # {1, 3, 5}, {}, {9}, {1, 3, 4, 5, 7}
    left, right = np.array([0, 1, 0, 3, 2, 0]), np.array([3, 1, 1, 0, 2, 0])
    assert pair_jaccard(values, offsets, left, right).tolist() == [0.6, 1.0, 0.0, 0.6, 1.0, 1.0]


def test_a_template_filled_in_hundreds_of_times_is_one_cluster_without_quadratic_pairs():
    from tasks.dedup.lsh import ALL_PAIRS_UP_TO

    n = 5 * ALL_PAIRS_UP_TO
    texts = [f"{BASE} customer number {k}" for k in range(n)] + ["something else entirely, about shipping"]
    sketches = sketch_records(frame(texts), DedupConfig())
    pairs = lsh_candidate_pairs(build_lsh_index(sketches.signatures, np.arange(len(texts)), DedupConfig()))
    assert len(pairs) <= 16 * (2 * n - 3) < n * (n - 1) // 2
    table = dedup_records(frame(texts), DedupConfig(keep="first"))
    assert table["kept"].tolist() == [True] + [False] * (n - 1) + [True]
    assert set(table.loc[1:n - 1, "duplicate_of"]) == {"r0"}


def test_the_accounting_check_refuses_a_record_removed_in_favour_of_one_not_kept():
    from tasks.dedup.clusters import check_keepers

    check_keepers(np.array([True, False, False, True]), np.array([0, 0, 3, 3]))
    with pytest.raises(AdapterOpsError, match="accounting"):
        check_keepers(np.array([True, False, False, True]), np.array([0, 2, 3, 3]))   # 1 → 2, itself removed


def test_candidate_pairs_are_the_pairs_of_datasketchs_index_buckets(monkeypatch):
    import tasks.dedup.lsh
    from tasks.dedup.lsh import ALL_PAIRS_UP_TO, candidate_pairs

    def from_index(signatures, rows):
        return lsh_candidate_pairs(build_lsh_index(signatures, rows, DedupConfig()))

    sketches, rows = graded_variants_sketches()
    template = sketch_records(frame([f"{BASE} customer {k}" for k in range(ALL_PAIRS_UP_TO + 20)]), DedupConfig())
    cases = [(sketches.signatures, rows), (sketches.signatures, rows[1::2]),
             (template.signatures, np.arange(len(template.ids)))]   # one bucket larger than ALL_PAIRS_UP_TO
    for signatures, chosen in cases:
        expected = from_index(signatures, chosen)
        assert len(expected) > 0 and np.array_equal(candidate_pairs(signatures, chosen, DedupConfig()), expected)
    expected = from_index(sketches.signatures, rows)
    monkeypatch.setattr(tasks.dedup.lsh, "groups_by_fingerprint", lambda *args, **kwargs: None)   # fingerprint collision
    assert np.array_equal(candidate_pairs(sketches.signatures, rows, DedupConfig()), expected)
    assert candidate_pairs(sketches.signatures, rows[:0], DedupConfig()).shape == (0, 2)


def test_the_dedup_command_starts_without_the_pipelines_heavy_libraries(tmp_path):
    import subprocess
    import sys

    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "one two three"}\n{"id": "b", "text": "One, two three!"}\n')
    run = ("import sys; from cli.main import main\n"
           "try:\n    main()\nexcept SystemExit:\n    pass\n"
           "print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", run, "dedup", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert pd.read_parquet(tmp_path / "out" / "kept.parquet")["id"].tolist() == ["a"]
    loaded = {name.split(".")[0] for name in result.stdout.splitlines()[-1].split()}
    heavy = {"prefect", "mlflow", "great_expectations", "torch", "transformers", "datasets", "datasketch", "peft", "pandas"}
    assert loaded & heavy == set()


def test_cli_on_jsonl_writes_signatures_only_when_asked_and_they_serve_as_previous(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    records = pd.DataFrame({"id": ["a", "b", "c"], "text": [BASE, BASE + " thanks", "other text"], "n": [1, 2, 3]})
    records.to_json(tmp_path / "v1.jsonl", orient="records", lines=True)
    runner = CliRunner()
    plain = runner.invoke(app, ["dedup", str(tmp_path / "v1.jsonl"), "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["duplicates.parquet", "kept.parquet", "report.json"]
    kept = pd.read_parquet(tmp_path / "plain" / "kept.parquet")
    assert kept["id"].tolist() == ["b", "c"] and kept["n"].tolist() == [2, 3]     # every column, input order
    first = runner.invoke(app, ["dedup", str(tmp_path / "v1.jsonl"), "--out", str(tmp_path / "v1"), "--signatures"])
    assert first.exit_code == 0 and (tmp_path / "v1" / "signatures").is_dir()
    (tmp_path / "v2.jsonl").write_text(f'{{"id": "d", "text": "{BASE.upper()} thanks!"}}\n')
    second = runner.invoke(app, ["dedup", str(tmp_path / "v2.jsonl"), "--out", str(tmp_path / "v2"),
                                 "--previous", str(tmp_path / "v1" / "signatures")])
    assert second.exit_code == 0, second.output
    assert pd.read_parquet(tmp_path / "v2" / "duplicates.parquet")["duplicate_of"].tolist() == ["b"]
