"""PII detectors (e-mail, phone, payment card, IBAN, US SSN, IP address) and the policy a contract sets for each.

Pure detection, with no stage around it: contracts, quarantine rows and the PII stage all import it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["quarantine", "redact", "allow"]
DETECTORS = ("card", "iban", "ssn", "email", "ip_address", "phone")  # order matters: earlier spans win overlaps


class PiiPolicy(BaseModel):
    """What the contract does with each kind of PII found in its text columns."""
    model_config = ConfigDict(extra="forbid")
    columns: list[str] = Field(default_factory=lambda: ["prompt", "completion"], description="Columns scanned.")
    email: Action = "quarantine"
    phone: Action = "quarantine"
    card: Action = "quarantine"
    iban: Action = "quarantine"
    ssn: Action = "quarantine"
    ip_address: Action = "quarantine"


_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?!\w)")
_PHONE = re.compile(r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}"
                    r"(?!\w|[ .-]\d)")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.]\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def luhn_valid(digits: str) -> bool:
    """The payment-card check digit (Luhn mod 10)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616 check: country + check digits moved to the end, letters as numbers, mod 97 == 1."""
    text = candidate.replace(" ", "")
    if not 15 <= len(text) <= 34:
        return False
    rearranged = text[4:] + text[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _ipv6_valid(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _card_valid(match: str) -> bool:
    digits = _digits(match)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


# (kind, candidate pattern, check that confirms a candidate); kinds in DETECTORS order.
_RULES = [("card", _CARD, _card_valid), ("iban", _IBAN, iban_valid), ("ssn", _SSN, None), ("email", _EMAIL, None),
          ("ip_address", _IPV4, None), ("ip_address", _IPV6, _ipv6_valid),
          ("phone", _PHONE, lambda m: 9 <= len(_digits(m)) <= 15)]


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


def find_pii(text: str) -> list[Finding]:
    """Every PII span in `text`, by detector; a span claimed by an earlier detector is not reported twice."""
    if not text:
        return []
    found: list[Finding] = []
    for kind, pattern, check in _RULES:
        for match in pattern.finditer(text):
            if (check is None or check(match.group())) and \
                    not any(f.start < match.end() and match.start() < f.end for f in found):
                found.append(Finding(kind, match.start(), match.end()))
    return sorted(found, key=lambda f: f.start)


def redact(text: str, findings: list[Finding], kinds: set[str] | None = None) -> str:
    """`text` with each finding (of `kinds`, default all) replaced by a [KIND] placeholder."""
    for f in sorted(findings, key=lambda f: f.start, reverse=True):
        if kinds is None or f.kind in kinds:
            text = text[:f.start] + f"[{f.kind.upper()}]" + text[f.end:]
    return text


def mask_all(text: str) -> str:
    """`text` with every PII span replaced: for quarantine rows and reports, which leave the corpus too."""
    return redact(text, find_pii(text)) if isinstance(text, str) else text
