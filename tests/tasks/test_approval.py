import pytest

from adapterops.errors import AdapterOpsError
from tasks.approval import check_owner, decision_record, verify_approved

DIGEST = "sha256:abc"


def tags(**extra):
    return {"corpus.version": "3", "corpus.digest": DIGEST, "corpus.status": "approved", "approval.digest": DIGEST} | extra


def test_approved_version_with_unchanged_bytes_passes():
    verify_approved(tags(), DIGEST)


@pytest.mark.parametrize("bad_tags, recomputed, message", [
    (tags(**{"corpus.status": "pending"}), DIGEST, "version 3 is pending"),
    (tags(**{"corpus.status": "rejected"}), DIGEST, "version 3 is rejected"),
    (tags(), "sha256:other", "files changed after approval"),
    (tags(**{"approval.digest": "sha256:old"}), DIGEST, "approval names digest sha256:old"),
])
def test_training_refusals_name_the_version_and_what_to_do(bad_tags, recomputed, message):
    with pytest.raises(AdapterOpsError, match=message):
        verify_approved(bad_tags, recomputed)


def test_only_owners_decide_and_decisions_are_typed():
    check_owner("dana.k", ["dana.k"], "support_tickets")
    with pytest.raises(AdapterOpsError, match="not an owner"):
        check_owner("mallory", ["dana.k"], "support_tickets")
    assert decision_record(3, DIGEST, "dana.k", "approved")["digest"] == DIGEST
    with pytest.raises(AdapterOpsError):
        decision_record(3, DIGEST, "dana.k", "maybe")
    from tasks.approval import record_decision
    with pytest.raises(AdapterOpsError, match="owner's decision is 'approved' or 'rejected'"):
        record_decision("any", DIGEST, "dana.k", "superseded")     # follows from a newer approval only
