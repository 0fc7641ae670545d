"""Owner approval: signed decisions bound to a corpus digest, the gate that training and release read, and
the review an owner decides on.

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.approve.approval import (
    AUTO_APPROVER,
    VIA_FORM,
    current_decision,
    decision_log,
    record_decision,
    require_approved,
    require_approved_adapter,
)
from tasks.approve.review import version_review

__all__ = [
    "AUTO_APPROVER", "VIA_FORM", "current_decision", "decision_log", "record_decision", "require_approved",
    "require_approved_adapter", "version_review",
]
