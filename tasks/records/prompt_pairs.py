"""Small JSONL files of {prompt, completion} the owner keeps beside a corpus: the retain set, replayed examples."""

from __future__ import annotations

import json
from pathlib import Path

from adapterops.errors import AdapterOpsError


def prompt_pairs(text: str, path: Path, what: str) -> list[dict]:
    """Every non-blank line as {id, prompt, completion, kind}; a line that is not such an object is an error naming it."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt, completion = row["prompt"], row["completion"]
        except (ValueError, KeyError, TypeError):
            raise AdapterOpsError(f"Line {number} of {what} {path} is not a JSON object with prompt and completion; "
                                  "fix the line.") from None
        rows.append({"id": str(row.get("id", f"line-{number}")), "prompt": str(prompt), "completion": str(completion),
                     "kind": str(row.get("kind", ""))})
    if not rows:
        raise AdapterOpsError(f"{what[0].upper() + what[1:]} {path} has no records; add some.")
    return rows
