import pandas as pd
import pytest

from adapterops.errors import AdapterOpsError
from tasks.corpus.versions import check_accounting, corpus_digest, records_digest


def records(n, offset=0):
    return pd.DataFrame({"id": [f"r{i + offset}" for i in range(n)], "source": "email", "timestamp": "t",
                         "prompt": [f"p{i}" for i in range(n)], "completion": "c"})


def test_digest_ignores_row_order_but_not_content_settings_or_contract():
    train, held = records(5), records(2, 100)
    digest = corpus_digest(train, held, {"k": 1}, 1)
    assert digest == corpus_digest(train.iloc[::-1], held, {"k": 1}, 1)
    changed = train.copy()
    changed.loc[0, "prompt"] = "edited"
    assert digest != corpus_digest(changed, held, {"k": 1}, 1)
    assert digest != corpus_digest(train, held, {"k": 2}, 1)
    assert digest != corpus_digest(train, held, {"k": 1}, 2)
    assert digest != corpus_digest(held, train, {"k": 1}, 1)          # moving records across the split matters
    assert records_digest(train) != records_digest(held)


def test_accounting_must_add_up():
    check_accounting({"input": 10, "kept": 6, "duplicates": 3, "quarantined": 1})
    with pytest.raises(AdapterOpsError, match="does not add up"):
        check_accounting({"input": 10, "kept": 6, "duplicates": 3, "quarantined": 0})
    main = {"input": 10, "kept": 6, "duplicates": 3, "quarantined": 1}
    check_accounting(main | {"eval_input": 5, "eval": 4, "eval_quarantined": 1})
    with pytest.raises(AdapterOpsError, match="Eval record accounting"):
        check_accounting(main | {"eval_input": 5, "eval": 4, "eval_quarantined": 0})


def test_a_stored_reference_names_owners_and_a_contract_edited_since_is_one_line(tmp_path, workspace):
    import shutil
    from types import SimpleNamespace

    import yaml

    from adapterops.storage import file_digest
    from tasks.corpus.versions import CONTRACT_FILE, stored_ref

    contract = {"name": "tickets", "version": 1, "description": "Support tickets.", "scope": "All channels.",
                "owners": [{"name": "dana.k", "public_key": "ed25519:not-checked-here"}, "sam.p"],
                "schema": {"id": {}, "prompt": {}}}
    origin = tmp_path / "elsewhere" / "tickets.yaml"     # given by path: no data_contracts/ or env var involved
    origin.parent.mkdir()
    origin.write_text(yaml.safe_dump(contract))
    folder = workspace.corpus_dir / "t" / "v0001"
    folder.mkdir(parents=True)
    shutil.copyfile(origin, folder / CONTRACT_FILE)
    run = SimpleNamespace(info=SimpleNamespace(run_id="r1"), data=SimpleNamespace(tags={"corpus.path": str(folder)}))
    manifest = {"pipeline": "t", "version": 1, "digest": "sha256:d", "contract": "tickets", "contract_version": 1,
                "counts": {"train": 4, "input": 6, "kept": 5}, "settings": {"contract_digest": file_digest(origin)},
                "contract_file": {"path": str(origin), "digest": file_digest(origin)}}
    ref = stored_ref(run, manifest)
    assert ref.owners == ("dana.k", "sam.p") and list(ref.counts) == ["input", "kept", "train"]
    origin.write_text(yaml.safe_dump(contract | {"owners": ["mallory"]}))
    with pytest.raises(AdapterOpsError) as refused:
        stored_ref(run, manifest)
    text = str(refused.value)
    assert "Contract 'tickets'" in text and "changed after corpus version 1 was curated" in text
    assert manifest["settings"]["contract_digest"] in text and file_digest(origin) in text and "\n" not in text
    origin.unlink()      # moved away: the contract stored with the version is the one used, wherever it went
    assert stored_ref(run, manifest).owners == ("dana.k", "sam.p")
