"""A seeded generator of a support-ticket corpus: tickets → triage decision and a house-style reply.

It plants what real exports contain: exact copies, formatting variants, near-duplicates, invalid
rows, a malformed line and a few PII strings, so every curation step has work to do.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

PRODUCTS = ["Ledgerly", "ShipFast", "CloudDesk", "PayRoll+", "Inventra"]
CHANNELS = ["email", "chat", "web-form"]
NAMES = ["Amira", "Ben", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Jules",
         "Kofi", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tomas"]

CATEGORIES = {
    "billing": {
        "priority": "normal", "team": "Billing",
        "issues": ["I was charged twice for my {product} subscription this month",
                   "the invoice for {product} shows a plan we never ordered",
                   "my card was declined on renewal of {product} although it has funds",
                   "we were billed for {n} seats but only use {m} in {product}"],
        "fix": "I have refunded the duplicate charge and corrected the invoice; you will see it within {n} working days",
    },
    "outage": {
        "priority": "urgent", "team": "Site Reliability",
        "issues": ["{product} has been returning errors for every request since {time}",
                   "the {product} dashboard will not load for anyone in our team since {time}",
                   "syncing in {product} stopped at {time} and nothing has been processed since",
                   "all exports from {product} fail with a timeout since {time}"],
        "fix": "our engineers are restoring the service now and I will update you within the hour",
    },
    "access": {
        "priority": "high", "team": "Identity",
        "issues": ["I cannot log in to {product} after resetting my password",
                   "the two-factor code for {product} never arrives on my phone",
                   "a former colleague still has admin rights in our {product} workspace",
                   "my {product} account was locked after {n} failed attempts"],
        "fix": "I have reset your sign-in and sent a secure link that is valid for {n} hours",
    },
    "shipping": {
        "priority": "normal", "team": "Logistics",
        "issues": ["order {order} placed through {product} has not arrived after {n} days",
                   "the tracking page for order {order} has not changed in {n} days",
                   "order {order} arrived damaged and {m} items are missing",
                   "we received order {order} twice and want to return one"],
        "fix": "I have opened a claim with the carrier for order {order} and a replacement ships today",
    },
    "feature": {
        "priority": "low", "team": "Product",
        "issues": ["could {product} export reports to spreadsheet files on a schedule",
                   "we would like {product} to support single sign-on for contractors",
                   "is there a way to bulk edit {n} records at once in {product}",
                   "please add a dark mode to the {product} mobile app"],
        "fix": "I have passed your request to our product team and added your account to the feedback list",
    },
}

OPENERS = ["Hello support,", "Hi team,", "Good morning,", "Dear support team,", "Hey,"]
CONTEXT = ["We are a team of {m} people using it every day.",
           "This is blocking our month-end work.",
           "I already tried the steps in the help centre without luck.",
           "Our account manager asked me to write to you directly.",
           "It worked fine until last week.",
           "Two of my colleagues see exactly the same thing.",
           "We depend on it for our customer deliveries."]
CLOSERS = ["Thanks in advance.", "Looking forward to your answer.", "Please help us quickly.",
           "Kind regards.", "Thank you."]


def _ticket(rng: random.Random, index: int, start: datetime) -> dict:
    category = rng.choice(sorted(CATEGORIES))
    spec = CATEGORIES[category]
    values = {"product": rng.choice(PRODUCTS), "n": rng.randint(2, 9), "m": rng.randint(3, 40),
              "time": f"{rng.randint(0, 23):02d}:{rng.choice(['00', '15', '30', '45'])} UTC",
              "order": f"SO-{rng.randint(10000, 99999)}"}
    name = rng.choice(NAMES)
    context = rng.sample(CONTEXT, k=2)
    body = " ".join([rng.choice(OPENERS), rng.choice(spec["issues"]).capitalize() + ".",
                     *context, rng.choice(CLOSERS), name]).format(**values)
    reply = (f"Triage: {category} | priority: {spec['priority']} | team: {spec['team']}\n"
             f"Reply: Hi {name}, thank you for contacting us. "
             + spec["fix"].format(**values) + ". Best regards, the Acme Support team.")
    return {"id": f"T{index:06d}", "source": rng.choice(CHANNELS),
            "timestamp": (start + timedelta(minutes=37 * index)).isoformat(),
            "prompt": body, "completion": reply}


def _near_variant(rng: random.Random, record: dict) -> dict:
    words = record["prompt"].split()
    position = rng.randrange(1, len(words) - 1)
    words[position] = rng.choice(["really", "still", "again", "now"])
    return {**record, "prompt": " ".join(words)}


def _format_variant(record: dict) -> dict:
    return {**record, "prompt": "  " + record["prompt"].upper().replace(" ", "  ") + "  "}


def generate_records(count: int, seed: int, id_prefix: str = "T") -> list[dict]:
    """`count` clean tickets, deterministic for a seed."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    records = [_ticket(rng, i, start) for i in range(count)]
    for record in records:
        record["id"] = id_prefix + record["id"][1:]
    return records


def demo_lines(count: int, seed: int) -> list[str]:
    """JSONL lines of the training export, with planted duplicates, bad rows and PII."""
    rng = random.Random(seed + 1)
    records = generate_records(count, seed)
    planted: list[dict] = []
    next_id = count
    for _ in range(max(3, count // 40)):                     # exact copies under a new id
        planted.append({**rng.choice(records), "id": f"T{next_id:06d}"}); next_id += 1
    for _ in range(max(3, count // 40)):                     # case and spacing variants
        planted.append({**_format_variant(rng.choice(records)), "id": f"T{next_id:06d}"}); next_id += 1
    for _ in range(max(3, count // 30)):                     # one-word edits
        planted.append({**_near_variant(rng, rng.choice(records)), "id": f"T{next_id:06d}"}); next_id += 1
    invalid = [{"id": f"T{next_id:06d}", "source": "email", "timestamp": "2026-03-01T10:00:00+00:00",
                "prompt": "My order is late, please help.", "completion": ""},
               {"id": f"T{next_id + 1:06d}", "source": "chat", "timestamp": "yesterday",
                "prompt": records[0]["prompt"][:60] + " and the invoice is wrong too", "completion": "Triage: billing"},
               {"id": f"T{next_id + 2:06d}", "source": "fax", "timestamp": "2026-03-02T09:00:00+00:00",
                "prompt": "Hi, " + "please call me back. " * 3, "completion": records[1]["completion"]}]
    for record, pii in zip(rng.sample(records, 3),
                           ["You can reach me at dana.k@example.com.", "Call me on +1 415 555 0132.",
                            "My card 4111 1111 1111 1111 was charged twice."]):
        record["prompt"] = record["prompt"] + " " + pii
    rows = records + planted + invalid
    rng.shuffle(rows)
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    lines.insert(len(lines) // 2, '{"id": "T999999", "prompt": "truncated export line')
    return lines


def write_demo_data(directory: Path, count: int, seed: int) -> tuple[Path, Path]:
    """Write train.jsonl (the export) and eval.jsonl (held-out workload) under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    train = directory / "train.jsonl"
    evaluation = directory / "eval.jsonl"
    _write_atomic(train, "\n".join(demo_lines(count, seed)) + "\n")
    _write_atomic(evaluation, "\n".join(eval_lines(max(40, count // 10), seed)) + "\n")
    return train, evaluation


def eval_lines(count: int, seed: int) -> list[str]:
    """JSONL lines of the held-out workload sample: real traffic, so PII and broken rows turn up here too."""
    records = generate_records(count, seed + 1000, id_prefix="E")
    records[1]["prompt"] += " Reply to me at sam.r@example.org please."     # redacted
    records[2]["prompt"] += " The card 5500 0000 0000 0004 was billed."     # quarantined
    records[3]["completion"] = ""                                          # nothing to score against
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    lines.insert(count // 2, '{"id": "E999999", "prompt": "cut off')       # malformed
    return lines


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
