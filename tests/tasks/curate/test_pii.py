"""PII detectors (with their checksums), the per-contract policy, and masking of what leaves the corpus."""

import pytest

from tasks.curate.pii import apply_policy
from tasks.records.pii_detect import PiiPolicy, find_pii, iban_valid, luhn_valid, mask_all, redact
from tasks.records.quarantine import quarantine_row


@pytest.mark.parametrize("text, kind", [
    ("write to dana.k@example.com today", "email"),
    ("call +1 415 555 0132 please", "phone"),
    ("call (415) 555-0132 please", "phone"),
    ("ring +44 20 7946 0958", "phone"),
    ("card 4111 1111 1111 1111 declined", "card"),
    ("card 5500-0000-0000-0004 declined", "card"),
    ("iban GB82 WEST 1234 5698 7654 32 ok", "iban"),
    ("iban DE89370400440532013000 ok", "iban"),
    ("ssn 123-45-6789 on file", "ssn"),
    ("from 192.168.10.1 at noon", "ip_address"),
    ("from 2001:db8::8a2e:370:7334 at noon", "ip_address"),
])
def test_each_detector_finds_its_kind(text, kind):
    assert [f.kind for f in find_pii(text)] == [kind]


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112 fails Luhn",
    "iban GB82 WEST 1234 5698 7654 33 fails mod 97",
    "ssn 000-45-6789 is not issued",
    "at 2026-03-01T10:00:00+00:00 order SO-11505 of 12345678 units",
    "version 1.2.3 and 300.1.1.1 and time 10:00:00",
    "3 failed attempts, priority: high, 2 hours",
])
def test_no_false_positives_on_near_misses_and_ordinary_numbers(text):
    assert find_pii(text) == []


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")


def test_redact_replaces_spans_with_placeholders_and_keeps_the_rest():
    text = "mail a@b.io or call +1 415 555 0132, card 4111111111111111"
    assert redact(text, find_pii(text)) == "mail [EMAIL] or call [PHONE], card [CARD]"
    assert redact(text, find_pii(text), {"email"}) == "mail [EMAIL] or call +1 415 555 0132, card 4111111111111111"


def records():
    return [{"id": "clean", "prompt": "nothing here", "completion": "ok"},
            {"id": "mail", "prompt": "reach me at a@b.io", "completion": "will do, a@b.io"},
            {"id": "card", "prompt": "card 4111 1111 1111 1111 and a@b.io", "completion": "ok", "input_line": 3},
            {"id": "ip", "prompt": None, "completion": "seen from 10.0.0.1"}]


def test_policy_quarantines_redacts_or_allows_per_detector_and_counts():
    policy = PiiPolicy(email="redact", card="quarantine", ip_address="allow")
    result = apply_policy(records(), policy)
    assert [r["id"] for r in result.records] == ["clean", "mail", "ip"]
    assert result.records[1] == {"id": "mail", "prompt": "reach me at [EMAIL]", "completion": "will do, [EMAIL]"}
    assert result.records[2]["completion"] == "seen from 10.0.0.1"
    (row,) = result.quarantine
    assert (row["id"], row["stage"], row["reason"], row["input_line"]) == ("card", "pii", "pii: card", 3)
    assert "4111" not in row["raw"] and "a@b.io" not in row["raw"]      # the quarantine carries no PII either
    report = {r["detector"]: r for r in result.report(policy)}
    assert report["email"] == {"detector": "email", "action": "redact", "found": 3, "records": 2}
    assert report["card"]["records"] == 1 and report["ip_address"]["found"] == 1 and report["ssn"]["found"] == 0
    assert len(result.records) + len(result.quarantine) == len(records())


def test_only_the_policy_columns_are_scanned():
    result = apply_policy(records(), PiiPolicy(columns=["completion"], card="quarantine", email="redact", ip_address="allow"))
    assert [r["id"] for r in result.records] == ["clean", "mail", "card", "ip"]
    assert result.records[2]["prompt"].startswith("card 4111")


def test_default_policy_quarantines_every_kind():
    result = apply_policy(records(), PiiPolicy())
    assert [r["id"] for r in result.records] == ["clean"]


def test_quarantine_rows_from_any_stage_mask_pii():
    row = quarantine_row(None, "f.jsonl", 4, "ingest", "malformed_json", b'{"prompt": "ssn 123-45-6789')
    assert "[SSN]" in row["raw"] and "6789" not in row["raw"]
    assert mask_all(None) is None
