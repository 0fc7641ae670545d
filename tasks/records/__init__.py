"""Records and contracts, shared by every stage: bounded batch readers and writers, the quarantine row,
the data contract model and loader, the conversation record, and the PII detectors.

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.records.batches import iter_frames, write_rows
from tasks.records.contract import Contract, contract_path, contract_problems, load_contract
from tasks.records.conversation import Conversation, Message, ToolCall, conversation_of, stored_columns
from tasks.records.quarantine import breakdown_lines, breakdown_markdown, quarantine_row, reason_breakdown

__all__ = [
    "Contract", "Conversation", "Message", "ToolCall", "breakdown_lines", "breakdown_markdown", "contract_path",
    "contract_problems", "conversation_of", "iter_frames", "load_contract", "quarantine_row", "reason_breakdown",
    "stored_columns", "write_rows",
]
