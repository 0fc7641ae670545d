import pytest

from adapterops.errors import AdapterOpsError
from tasks.approve.approval import (
    changed_files,
    check_owner,
    check_policy,
    decision_record,
    decision_statement,
    require_decision,
    signer_kind,
    verify_statement,
)
from tasks.records.contract import Contract

DIGEST = "sha256:abc"


def contract(**owner_fields):
    return Contract.model_validate({"name": "tickets", "version": 1, "description": "d", "scope": "s",
                                    "schema": {"id": {}}, "owners": ["policy:auto", {"name": "dana.k"} | owner_fields]})


def statement(**extra):
    return decision_statement("tickets", 3, DIGEST, "dana.k", "approved", "", "owner-key", {"train.parquet": "x"}) | extra


def test_a_verified_approval_of_these_bytes_passes():
    require_decision(verify_statement(statement(), "tickets", DIGEST, contract(), "owner"), 3)


@pytest.mark.parametrize("signed, message", [
    (None, "version 3 is pending"),
    (statement(decision="rejected"), "version 3 is rejected"),
])
def test_training_refusals_name_the_version_and_what_to_do(signed, message):
    with pytest.raises(AdapterOpsError, match=message):
        require_decision(signed, 3)


def test_tags_saying_approved_are_named_but_not_trusted():
    with pytest.raises(AdapterOpsError, match="tags say 'approved', but tags do not approve"):
        require_decision(None, 3, "approved")


@pytest.mark.parametrize("signed, message", [
    (statement(digest="sha256:old"), "names 'tickets' digest sha256:old, not 'tickets' sha256:abc"),
    (statement(pipeline="other"), "names 'other'"),
    (statement(approver="mallory"), "'mallory', who is not an owner"),
    (statement(approver="policy:auto", via="policy"), "automatic policy"),       # an owner pipeline
])
def test_a_statement_for_other_bytes_a_non_owner_or_a_policy_is_refused(signed, message):
    with pytest.raises(AdapterOpsError, match=message):
        verify_statement(signed, "tickets", DIGEST, contract(), "owner")


def test_which_key_must_sign():
    keyed = contract(public_key="ed25519:" + "A" * 43 + "=")
    assert signer_kind("dana.k", "owner-key", keyed) == "owner-key"
    assert signer_kind("policy:auto", "policy", keyed) == "policy"
    with pytest.raises(AdapterOpsError, match="lists no public key for 'dana.k'.*keys init --as dana.k"):
        signer_kind("dana.k", "owner-key", contract())
    with pytest.raises(AdapterOpsError, match="does not accept Prefect-form decisions"):
        signer_kind("dana.k", "prefect-form", keyed)
    assert signer_kind("dana.k", "prefect-form", contract(form=True)) == "prefect-form"
    with pytest.raises(AdapterOpsError, match="mixes a policy and a person"):
        signer_kind("dana.k", "policy", keyed)


def test_only_owners_decide_policies_only_when_automatic_and_decisions_are_typed():
    check_owner("dana.k", ["dana.k"], "support_tickets")
    with pytest.raises(AdapterOpsError, match="not an owner"):
        check_owner("mallory", ["dana.k"], "support_tickets")
    check_policy("policy:auto", "auto")
    check_policy("dana.k", "owner")
    with pytest.raises(AdapterOpsError, match="automatic policy"):
        check_policy("policy:auto", "owner")
    assert decision_record(3, DIGEST, "dana.k", "approved")["digest"] == DIGEST
    with pytest.raises(AdapterOpsError):
        decision_record(3, DIGEST, "dana.k", "maybe")
    from tasks.approve.approval import record_decision
    with pytest.raises(AdapterOpsError, match="owner's decision is 'approved' or 'rejected'"):
        record_decision("any", DIGEST, "dana.k", "superseded")     # follows from a newer approval only


def test_changed_files_compares_every_signed_file():
    signed = {"train.parquet": "a", "eval.parquet": "b"}
    assert changed_files(signed, dict(signed)) == []
    assert changed_files(signed, {"train.parquet": "a", "eval.parquet": "c"}) == ["eval.parquet"]
    assert changed_files(signed, {"train.parquet": "a"}) == ["eval.parquet"]
    assert changed_files({}, {"train.parquet": "a"}) == ["train.parquet"]     # a statement that signed no bytes


def test_envelopes_verify_only_under_the_signers_key_and_unchanged(tmp_path):
    import base64
    import json

    from adapterops.signing import create_key, open_envelope, pae, parse_public_key, public_key_line, sign_statement

    assert pae("t", b"ab") == b"DSSEv1 1 t 2 ab"
    dana, mallory = create_key(tmp_path / "d.key"), create_key(tmp_path / "m.key")
    signed = statement()
    envelope = sign_statement(signed, dana)
    public = parse_public_key(public_key_line(dana.public_key()), "test")
    assert open_envelope(envelope, public, "v3") == signed
    with pytest.raises(AdapterOpsError, match="not signed by the key the contract expects"):
        open_envelope(sign_statement(statement(), mallory), public, "v3")
    edited = envelope | {"payload": base64.b64encode(json.dumps(statement(decision="rejected")).encode()).decode()}
    with pytest.raises(AdapterOpsError, match="not signed by the key"):
        open_envelope(edited, public, "v3")
    with pytest.raises(AdapterOpsError, match="not `ed25519:BASE64`"):
        parse_public_key("rsa:abc", "contract x")
    with pytest.raises(FileExistsError):
        create_key(tmp_path / "d.key")                                  # a key is never overwritten


def test_contract_owners_read_plain_names_and_keyed_entries():
    from tasks.records.contract import contract_problems

    mixed = contract(public_key="ed25519:" + "A" * 43 + "=", form=True)
    assert mixed.owners == ["policy:auto", "dana.k"] and mixed.owner("dana.k").form
    assert mixed.owner("policy:auto").public_key is None and mixed.owner("mallory") is None
    data = {"name": "t", "version": 1, "description": "d", "scope": "s", "schema": {"id": {}},
            "owners": [{"name": "dana.k", "public_key": "rsa:abc"}]}
    assert contract_problems(data, "c.yaml") == [
        "c.yaml: owner 1 (dana.k): public key 'rsa:abc' is not `ed25519:BASE64`; paste the line `adapterops keys init` printed."]
