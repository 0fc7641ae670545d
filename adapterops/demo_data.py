"""A seeded generator of a support corpus: conversations under a house-policy system prompt → triage decision
and a house-style reply, as an OpenAI chat JSONL export.

A conversation has 1-4 customer turns; a share calls `lookup_order` or `lookup_account` and decides on the
tool's result; in the multi-turn ones the issue comes after a vague opener. The export plants what real ones
contain: exact copies, formatting variants, near-duplicates, invalid rows, malformed conversations, a
truncated line and a few PII strings, so every curation step has work to do. `generate_records` keeps the
one-turn tickets the built-in tiny model's tokenizer is trained on.
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


def generate_records(count: int, seed: int, id_prefix: str = "T") -> list[dict]:
    """`count` clean one-turn tickets (prompt → completion), deterministic for a seed: the built-in tiny
    model's tokenizer is trained on them."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    records = [_ticket(rng, i, start) for i in range(count)]
    for record in records:
        record["id"] = id_prefix + record["id"][1:]
    return records


HOUSE_POLICY = ("Acme Support triage. Policy: first a line `Triage: <queue> | priority: <level> | team: <team>`, "
                "then `Reply:`. Look up named orders and accounts before deciding.")

TOOLS = [
    {"type": "function", "function": {"name": "lookup_order", "description": "Status of an order by its number.",
                                      "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                                                     "required": ["order_id"]}}},
    {"type": "function", "function": {"name": "lookup_account", "description": "State of a customer account.",
                                      "parameters": {"type": "object", "properties": {"account_id": {"type": "string"}},
                                                     "required": ["account_id"]}}},
]

VAGUE = ["Hi, I have a problem with {product} and need some help.", "Hello, something is wrong with our {product}.",
         "Good morning, could someone look at our {product} account?", "Hey, {product} is giving us trouble again."]
CLARIFY = "Thanks for reaching out. Could you tell me what exactly is going wrong?"
MORE = "I see. Is there anything else I should know before I route this?"
# (status the order lookup returns, the queue it decides)
ORDER_OUTCOMES = [("in_transit_delayed", "shipping"), ("lost_by_carrier", "shipping"),
                  ("payment_failed", "billing"), ("charged_twice", "billing")]
ACCOUNT_OUTCOMES = [("locked_after_failed_logins", "access"), ("sso_misconfigured", "access"),
                    ("invoice_past_due", "billing"), ("plan_mismatch", "billing")]
ORDER_ASKS = ["What is happening with order {order}? Nobody has told me anything.",
              "Can you check order {order} for me? Something is off with it."]
ACCOUNT_ASKS = ["Please check account {account}, we cannot work normally since {time}.",
                "Our account {account} has a problem, can you look into it?"]


def _reply(rng: random.Random, category: str, values: dict, name: str) -> str:
    spec = CATEGORIES[category]
    return (f"Triage: {category} | priority: {spec['priority']} | team: {spec['team']}\n"
            f"Reply: Hi {name}, thank you for contacting us. " + spec["fix"].format(**values)
            + ". Best regards, the Acme Support team.")


def _conversation(rng: random.Random, index: int, start: datetime) -> dict:
    """One support conversation: house policy, 1-4 customer turns, and for a share a tool call and its result.

    The final triage depends on the last customer turn (a vague opener first) or on the tool's result."""
    category = rng.choice(sorted(CATEGORIES))
    spec = CATEGORIES[category]
    values = {"product": rng.choice(PRODUCTS), "n": rng.randint(2, 9), "m": rng.randint(3, 40),
              "time": f"{rng.randint(0, 23):02d}:{rng.choice(['00', '15', '30', '45'])} UTC",
              "order": f"SO-{rng.randint(10000, 99999)}", "account": f"AC-{rng.randint(1000, 9999)}"}
    name = rng.choice(NAMES)
    issue = rng.choice(spec["issues"]).capitalize() + "."
    body = " ".join([rng.choice(OPENERS), issue, *rng.sample(CONTEXT, k=2), rng.choice(CLOSERS), name]).format(**values)
    messages = [{"role": "system", "content": HOUSE_POLICY}]
    shape = rng.random()
    if shape < 0.25:                                            # a tool call decides
        tool = rng.choice(["lookup_order", "lookup_account"])
        status, category = rng.choice(ORDER_OUTCOMES if tool == "lookup_order" else ACCOUNT_OUTCOMES)
        key, ident = ("order_id", values["order"]) if tool == "lookup_order" else ("account_id", values["account"])
        ask = rng.choice(ORDER_ASKS if tool == "lookup_order" else ACCOUNT_ASKS).format(**values)
        call_id = f"call_{index:06d}"
        messages += [{"role": "user", "content": f"{rng.choice(OPENERS)} {ask} {name}"},
                     {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function",
                      "function": {"name": tool, "arguments": json.dumps({key: ident})}}]},
                     {"role": "tool", "tool_call_id": call_id, "content": json.dumps({key: ident, "status": status})}]
    elif shape < 0.6:                                           # the issue comes in a later customer turn
        turns = rng.randint(2, 4)
        messages += [{"role": "user", "content": rng.choice(VAGUE).format(**values)},
                     {"role": "assistant", "content": CLARIFY}]
        for _ in range(turns - 2):
            messages += [{"role": "user", "content": rng.choice(CONTEXT).format(**values)},
                         {"role": "assistant", "content": MORE}]
        messages.append({"role": "user", "content": f"{issue.format(**values)} {rng.choice(CLOSERS)} {name}"})
    else:                                                       # one customer turn
        messages.append({"role": "user", "content": body})
    messages.append({"role": "assistant", "content": _reply(rng, category, values, name)})
    record = {"id": f"T{index:06d}", "source": rng.choice(CHANNELS),
              "timestamp": (start + timedelta(minutes=37 * index)).isoformat(), "messages": messages}
    if any(m.get("tool_calls") for m in messages):
        record["tools"] = TOOLS
    return record


def generate_conversations(count: int, seed: int, id_prefix: str = "T") -> list[dict]:
    """`count` clean support conversations (OpenAI chat records), deterministic for a seed."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    records = [_conversation(rng, i, start) for i in range(count)]
    for record in records:
        record["id"] = id_prefix + record["id"][1:]
    return records


def _first_user(record: dict) -> int:
    return next(i for i, m in enumerate(record["messages"]) if m["role"] == "user")


def _last_user(record: dict) -> int:
    return max(i for i, m in enumerate(record["messages"]) if m["role"] == "user")


def _with_user_text(record: dict, change, which=_first_user) -> dict:
    messages = [dict(m) for m in record["messages"]]
    position = which(record)
    messages[position]["content"] = change(messages[position]["content"])
    return {**record, "messages": messages}


def _near_variant(rng: random.Random, record: dict) -> dict:
    def edit(text: str) -> str:
        words = text.split()
        words[rng.randrange(1, len(words) - 1)] = rng.choice(["really", "still", "again", "now"])
        return " ".join(words)
    return _with_user_text(record, edit)


def _format_variant(record: dict) -> dict:
    return _with_user_text(record, lambda text: "  " + text.upper().replace(" ", "  ") + "  ")


def _malformed(next_id: int, records: list[dict]) -> list[dict]:
    """Conversations that ingest must quarantine, one per kind a real export shows."""
    user, reply = records[0]["messages"][1], records[0]["messages"][-1]
    system = {"role": "system", "content": HOUSE_POLICY}
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "call_x", "type": "function", "function": {
        "name": "lookup_order", "arguments": "{order_id: SO-1"}}]}
    kinds = [[system, user],                                                          # ends on the customer
             [system, {"role": "customer", "content": user["content"]}, reply],       # unknown role
             [system, user, {"role": "tool", "tool_call_id": "call_404", "content": "{}"}, reply],   # no such call
             [system, user, call, {"role": "tool", "tool_call_id": "call_x", "content": "{}"}, reply],  # bad JSON
             [system, user, user, reply]]                                             # two customer turns in a row
    return [{"id": f"T{next_id + i:06d}", "source": "chat", "timestamp": "2026-03-03T09:00:00+00:00",
             "messages": messages} for i, messages in enumerate(kinds)]


def _final(record: dict, content: str) -> dict:
    return {**record, "messages": record["messages"][:-1] + [{"role": "assistant", "content": content}]}


def demo_lines(count: int, seed: int) -> list[str]:
    """JSONL lines of the training export (OpenAI chat records), with planted duplicates, bad rows and PII."""
    rng = random.Random(seed + 1)
    records = generate_conversations(count, seed)
    planted: list[dict] = []
    next_id = count
    for _ in range(max(3, count // 40)):                     # exact copies under a new id
        planted.append({**rng.choice(records), "id": f"T{next_id:06d}"}); next_id += 1
    for _ in range(max(3, count // 40)):                     # case and spacing variants
        planted.append({**_format_variant(rng.choice(records)), "id": f"T{next_id:06d}"}); next_id += 1
    for _ in range(max(3, count // 30)):                     # one-word edits
        planted.append({**_near_variant(rng, rng.choice(records)), "id": f"T{next_id:06d}"}); next_id += 1
    sample = records[0]
    invalid = [{**_final(sample, "Triage: billing"), "id": f"T{next_id:06d}", "timestamp": "yesterday"},  # contract
               {**records[1], "id": f"T{next_id + 1:06d}", "source": "fax"},
               {**_final(records[2], ""), "id": f"T{next_id + 2:06d}"}]                   # an empty final turn
    invalid += _malformed(next_id + 3, records)
    for record, pii in zip(rng.sample(records, 3),
                           ["You can reach me at dana.k@example.com.", "Call me on +1 415 555 0132.",
                            "My card 4111 1111 1111 1111 was charged twice."]):
        record.update(_with_user_text(record, lambda text, pii=pii: text + " " + pii, _last_user))
    rows = records + planted + invalid
    rng.shuffle(rows)
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    lines.insert(len(lines) // 2, '{"id": "T999999", "messages": [{"role": "user", "content": "truncated export line')
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
    records = generate_conversations(count, seed + 1000, id_prefix="E")
    records[1] = _with_user_text(records[1], lambda t: t + " Reply to me at sam.r@example.org please.", _last_user)
    records[2] = _with_user_text(records[2], lambda t: t + " The card 5500 0000 0000 0004 was billed.", _last_user)
    records[3] = _final(records[3], "")                                    # nothing to score against
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    lines.insert(count // 2, '{"id": "E999999", "messages": [{"role": "user", "content": "cut off')   # malformed
    return lines


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
