"""The release gate: rules per score over paired intervals; every matching rule must pass.

A rule reads the lower bound of the candidate's improvement interval (direction-adjusted), so a
loss that improves cannot outvote a task score that fails: each failing check holds the release.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from adapterops.config import GateRule
from adapterops.errors import AdapterOpsError


@dataclass(frozen=True)
class Check:
    rule: str
    score: str
    scope: str           # "overall" or "slice COLUMN=VALUE"
    against: str         # "base" or "production"
    lower: float         # lower bound of the improvement interval
    threshold: float     # it must be > threshold (base) or >= threshold (production)
    passed: bool

    def line(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        op = ">" if self.against == "base" else ">="
        return (f"{verdict}: {self.score} ({self.scope}) vs {self.against}: improvement lower bound "
                f"{self.lower:+.4f} {op} {self.threshold:+.4f} [{self.rule}]")


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    checks: list[Check]
    notes: list[str]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def reason(self) -> str:
        if self.failed:
            worst = "; ".join(f"{c.score} ({c.scope}) vs {c.against}: {c.lower:+.4f} needs "
                              f"{'>' if c.against == 'base' else '>='} {c.threshold:+.4f}" for c in self.failed[:4])
            more = f" and {len(self.failed) - 4} more" if len(self.failed) > 4 else ""
            return f"held: {len(self.failed)} of {len(self.checks)} checks failed: {worst}{more}"
        return f"all {len(self.checks)} checks passed" + (f" ({'; '.join(self.notes)})" if self.notes else "")

    def as_dict(self) -> dict:
        return {"promote": self.promote, "reason": self.reason(), "notes": self.notes,
                "checks": [c.__dict__ | {"line": c.line()} for c in self.checks]}


def rule_text(rule: GateRule) -> str:
    parts = [f"{k}={v:g}" for k, v in (("must_beat_base", rule.must_beat_base), ("max_regression", rule.max_regression),
                                       ("slice_max_regression", rule.slice_max_regression)) if v is not None]
    return f"{rule.score}: " + ", ".join(parts)


def matching_scores(rule: GateRule, names: list[str]) -> list[str]:
    matched = [n for n in names if fnmatchcase(n, rule.score)]
    if not matched and rule.required and not any(ch in rule.score for ch in "*?["):
        raise AdapterOpsError(f"Release gate rule names score {rule.score!r}, which no scorer produces "
                              f"(scores: {', '.join(names)}); fix release.gate in the config.")
    return matched


def decide(rules: list[GateRule], evaluation: dict) -> GateDecision:
    """Apply every rule to the evaluation's intervals (see tasks.evaluate.run.summarise for the layout)."""
    names = list(evaluation["directions"])
    checks: list[Check] = []
    notes: list[str] = []
    production = evaluation.get("vs_production")
    for rule in rules:
        text = rule_text(rule)
        for name in matching_scores(rule, names):
            if rule.must_beat_base is not None:
                low = evaluation["vs_base"][name]["low"]
                checks.append(Check(text, name, "overall", "base", low, rule.must_beat_base, low > rule.must_beat_base))
            if rule.max_regression is not None and production is not None:
                low = production[name]["low"]
                checks.append(Check(text, name, "overall", "production", low, -rule.max_regression,
                                    low >= -rule.max_regression))
            if rule.slice_max_regression is not None and production is not None:
                for scope, part in evaluation["slices"].items():
                    if part["judged"] and part.get("vs_production"):
                        low = part["vs_production"][name]["low"]
                        checks.append(Check(text, name, f"slice {scope}", "production", low, -rule.slice_max_regression,
                                            low >= -rule.slice_max_regression))
    if production is None:
        notes.append("no production version yet: production rules skipped")
    if not checks:
        raise AdapterOpsError("The release gate checked nothing: release.gate has no rule that matches a declared "
                              "score; a release needs at least one.")
    return GateDecision(all(c.passed for c in checks), checks, notes)
