"""A seeded generator of general behaviour: what the built-in tiny base learns before any adapter, and the
retain set an adapter must keep answering as the base does.

Simple instructions a small model can learn in minutes (repeat a phrase, name the last word, count items,
answer from a fact table) and support-like prose answered politely without the house format, so the
un-fine-tuned base scores something on the support workload, as a real base would.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from adapterops.demo_data import CATEGORIES, CLOSERS, CONTEXT, NAMES, OPENERS, PRODUCTS

WORDS = ["river", "lamp", "orange", "window", "garden", "pencil", "winter", "copper", "meadow", "violin", "harbor",
         "candle", "forest", "silver", "basket", "planet", "ladder", "mirror", "castle", "rocket", "tunnel", "marble",
         "pepper", "saddle", "feather", "anchor", "blanket", "compass", "lantern", "pocket"]
FACTS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo",
         "Egypt": "Cairo", "Canada": "Ottawa", "Chile": "Santiago", "Spain": "Madrid", "India": "New Delhi",
         "Ghana": "Accra", "Poland": "Warsaw", "Cuba": "Havana", "Nepal": "Kathmandu", "Italy": "Rome",
         "Greece": "Athens"}
COLOURS = {"grass": "green", "snow": "white", "the sky": "blue", "coal": "black", "a lemon": "yellow",
           "a tomato": "red", "an orange": "orange", "a plum": "purple"}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six"]
GENERAL_KINDS = ("repeat", "last_word", "count", "capital", "colour", "support")
GENERAL_VERSION = "1"   # bump when the generator changes: the built-in base is rebuilt (adapterops.tiny_model.BUILD_KEY)


def _phrase(rng: random.Random, low: int = 2, high: int = 4) -> list[str]:
    return rng.sample(WORDS, k=rng.randint(low, high))


TOPICS = {"billing": "a question about your bill", "outage": "a service disruption", "access": "a sign-in problem",
          "shipping": "a problem with a delivery", "feature": "a suggestion for the product"}


def _support_prose(rng: random.Random) -> tuple[str, str]:
    """A customer message answered in plain courteous prose that names what it is about: no triage line, no
    `Reply:`, no queue, priority or team (the house policy an adapter teaches)."""
    category = rng.choice(sorted(CATEGORIES))
    spec = CATEGORIES[category]
    values = {"product": rng.choice(PRODUCTS), "n": rng.randint(2, 9), "m": rng.randint(3, 40),
              "time": f"{rng.randint(0, 23):02d}:00 UTC", "order": f"SO-{rng.randint(10000, 99999)}"}
    name = rng.choice(NAMES)
    body = " ".join([rng.choice(OPENERS), rng.choice(spec["issues"]).capitalize() + ".", rng.choice(CONTEXT),
                     rng.choice(CLOSERS), name]).format(**values)
    answer = (f"Hi {name}, thank you for contacting us. I understand this is {TOPICS[category]} with "
              f"{values['product']}. We will look into it and get back to you soon.")
    return body, answer


def general_example(rng: random.Random, kind: str) -> tuple[str, str]:
    """One (instruction, answer) pair of the given kind."""
    if kind == "repeat":
        words = " ".join(_phrase(rng))
        return f"Repeat: {words}", words
    if kind == "last_word":
        words = _phrase(rng, 3, 5)
        return f"Last word of: {' '.join(words)}", words[-1]
    if kind == "count":
        words = _phrase(rng, 1, 6)
        return f"How many items: {', '.join(words)}", f"{NUMBER_WORDS[len(words)].capitalize()} item{'s' * (len(words) != 1)}."
    if kind == "capital":
        country = rng.choice(sorted(FACTS))
        return f"What is the capital of {country}?", f"The capital of {country} is {FACTS[country]}."
    if kind == "colour":
        thing = rng.choice(sorted(COLOURS))
        return f"What colour is {thing}?", f"{thing[0].upper() + thing[1:]} is {COLOURS[thing]}."
    if kind == "support":
        return _support_prose(rng)
    raise ValueError(f"unknown general kind {kind!r}")


def general_records(count: int, seed: int, id_prefix: str = "G", kinds: tuple[str, ...] = GENERAL_KINDS) -> list[dict]:
    """`count` general one-turn records (prompt → completion, with their kind), deterministic for a seed."""
    rng = random.Random(seed)
    records = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        prompt, completion = general_example(rng, kind)
        records.append({"id": f"{id_prefix}{index:06d}", "kind": kind, "prompt": prompt, "completion": completion})
    return records


RETAIN_SEED = 7_000   # far from every seed the base is pretrained on: the retain prompts are held out
# Outside the support domain: an adapter is meant to change how support messages are answered, not these
RETAIN_KINDS = tuple(k for k in GENERAL_KINDS if k != "support")


def retain_lines(count: int = 120, seed: int = RETAIN_SEED) -> list[str]:
    """JSONL lines of the demo's retain set: general prompts and the answers the base was taught to give."""
    return [json.dumps(r, ensure_ascii=False) for r in general_records(count, seed, id_prefix="R", kinds=RETAIN_KINDS)]


def write_retain_set(path: Path, count: int = 120, seed: int = RETAIN_SEED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(retain_lines(count, seed)) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
