from pathlib import Path

import pytest
import yaml

from adapterops.config import Config, field_docs, load_config, parse_config
from adapterops.errors import AdapterOpsError
from cli.commands.run import DEMO_SETTINGS

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_valid_and_every_field_is_described():
    Config()
    rows = field_docs()
    assert rows and all(description for _, _, description in rows)
    assert "dedup.threshold" in {name for name, _, _ in rows}


def test_unknown_field_names_field_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndedup:\n  treshold: 0.5\n")
    with pytest.raises(AdapterOpsError, match=r"bad.yaml: unknown field 'dedup.treshold'"):
        load_config(path)


def test_invalid_value_names_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  max_steps: 0\n")
    with pytest.raises(AdapterOpsError, match=r"field 'train.max_steps'"):
        load_config(path)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(AdapterOpsError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(AdapterOpsError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")


def test_demo_config_file_matches_embedded_demo_and_says_how_to_run():
    text = (ROOT / "configs" / "demo.yaml").read_text()
    assert text.splitlines()[0].startswith("# Run with: adapterops run configs/demo.yaml")
    assert load_config(ROOT / "configs" / "demo.yaml") == parse_config(DEMO_SETTINGS)
    assert yaml.safe_load(text)["approval"] == "auto"


def test_dedup_runtime_fields_stay_out_of_the_corpus_settings():
    from flows.curate import curation_settings

    plain = parse_config({})
    spread = parse_config({"dedup": {"workers": 4, "dask_address": "tcp://scheduler:8786"}})
    assert curation_settings(plain) == curation_settings(spread)
    assert "workers" not in curation_settings(spread)["dedup"] and "source_priority" not in curation_settings(plain)["dedup"]
    ranked = parse_config({"dedup": {"keep": "source_priority", "source_priority": ["email", "chat"]}})
    assert curation_settings(ranked)["dedup"]["source_priority"] == ["email", "chat"]


def test_dedup_source_priority_and_dask_address_are_checked():
    with pytest.raises(AdapterOpsError, match=r"field 'dedup'.*source_priority"):
        parse_config({"dedup": {"keep": "source_priority"}})
    with pytest.raises(AdapterOpsError, match=r"field 'dedup.dask_address'.*tcp://"):
        parse_config({"dedup": {"dask_address": "scheduler:8786"}})
    assert parse_config({"dedup": {"dask_address": "local"}}).dedup.dask_address == "local"


def test_command_options_are_validated_by_the_config_section_and_errors_name_the_option():
    from adapterops.config import DedupConfig, from_options

    options = {"threshold": "--threshold", "keep": "--keep"}
    assert from_options(DedupConfig, {"threshold": 0.7}, options).threshold == 0.7
    with pytest.raises(AdapterOpsError, match=r"^--threshold: Input should be less than 1\.$"):
        from_options(DedupConfig, {"threshold": 1.5}, options)
    with pytest.raises(AdapterOpsError, match=r"^--keep: .*'longest'"):
        from_options(DedupConfig, {"keep": "newest"}, options)


def test_a_rule_across_options_names_every_option_it_involves():
    from adapterops.config import LabelingConfig, from_options

    with pytest.raises(AdapterOpsError, match=r"^--policy / --reviewer: policy owner_wins needs labeling.reviewer"):
        from_options(LabelingConfig, {"policy": "owner_wins"}, {"policy": "--policy", "reviewer": "--reviewer"})
