"""The release gate: rules per score over paired intervals; every matching rule must pass.

A rule reads the lower bound of the candidate's improvement interval (direction-adjusted), so a
loss that improves cannot outvote a task score that fails: each failing check holds the release.
The base is the floor: `max_regression_vs_base` reads the upper bound against the base, so a score
clearly worse than the un-fine-tuned model holds the release unless the owner waives it by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from adapterops.config import RETAIN_PREFIX as RETAIN
from adapterops.config import GateRule, Waiver
from adapterops.errors import AdapterOpsError


def comparison(bound: str, against: str) -> str:
    """How a check's figure must compare with its threshold: a KL at most, a base rule's lower bound strictly above,
    everything else at least."""
    return "<=" if bound == "kl" else ">" if against == "base" and bound == "lower" else ">="


@dataclass(frozen=True)
class Check:
    rule: str
    score: str
    scope: str           # "overall" or "slice COLUMN=VALUE"
    against: str         # "base" or "production"
    lower: float         # lower bound of the improvement interval
    threshold: float     # it must be > threshold (base) or >= threshold (production)
    passed: bool
    bound: str = "lower"   # which bound of the interval `lower` holds: "upper" for the base floor
    waived: str = ""       # the owner's reason, when a failing floor check is waived (then passed is True)

    @property
    def op(self) -> str:
        return comparison(self.bound, self.against)

    def line(self) -> str:
        verdict = "waived" if self.waived else "pass" if self.passed else "FAIL"
        if self.bound in ("share", "kl"):
            return f"{verdict}: {self.brief()} [{self.rule}]"
        why = f" (waived: {self.waived})" if self.waived else ""
        return (f"{verdict}: {self.score} ({self.scope}) vs {self.against}: improvement {self.bound} bound "
                f"{self.lower:+.4f} {self.op} {self.threshold:+.4f} [{self.rule}]{why}")


    def brief(self) -> str:
        if self.bound == "share":    # a gating judge must have scored enough examples (the rest unscored)
            return f"{self.score}: {self.lower:.0%} of examples scored by the judge, needs >= {self.threshold:.0%}"
        if self.bound == "kl":       # the candidate's mean KL divergence from the base on the retain texts
            return f"{self.score}: mean KL divergence from the base {self.lower:.4f} needs {self.op} {self.threshold:.4f}"
        return f"{self.score} ({self.scope}) vs {self.against}: {self.bound} bound {self.lower:+.4f} needs " \
               f"{self.op} {self.threshold:+.4f}"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    checks: list[Check]
    notes: list[str]
    ignored: tuple[str, ...] = ()     # judges whose scores do not gate, each with the reason (also in notes)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def reason(self) -> str:
        if self.failed:
            worst = "; ".join(c.brief() for c in self.failed[:4])
            more = f" and {len(self.failed) - 4} more" if len(self.failed) > 4 else ""
            return f"held: {len(self.failed)} of {len(self.checks)} checks failed: {worst}{more}" + self._waived() \
                + "".join(f"; {line}" for line in self.ignored)
        return f"all {len(self.checks)} checks passed" + (f" ({'; '.join(self.notes)})" if self.notes else "") \
            + self._waived()

    def _waived(self) -> str:
        waived = [c for c in self.checks if c.waived]
        return ("; waived by the owner: " + "; ".join(f"{c.score} worse than the base ({c.lower:+.4f}): {c.waived}"
                                                       for c in waived)) if waived else ""

    def as_dict(self) -> dict:
        return {"promote": self.promote, "reason": self.reason(), "notes": self.notes, "ignored": list(self.ignored),
                "checks": [c.__dict__ | {"line": c.line()} for c in self.checks]}


def rule_text(rule: GateRule) -> str:
    parts = [f"{k}={v:g}" for k, v in (("must_beat_base", rule.must_beat_base), ("max_regression", rule.max_regression),
                                       ("slice_max_regression", rule.slice_max_regression),
                                       ("max_regression_vs_base", rule.max_regression_vs_base),
                                       ("max_kl", rule.max_kl)) if v is not None]
    return f"{rule.score}: " + ", ".join(parts)


def matching_scores(rule: GateRule, names: list[str]) -> list[str]:
    """The scores a rule names; retain scores only for rules that name retain.* (a `*` rule is about the workload)."""
    matched = [n for n in names if fnmatchcase(n, rule.score) and (not n.startswith(RETAIN) or rule.score.startswith(RETAIN))]
    if not matched and rule.required and not any(ch in rule.score for ch in "*?["):
        raise AdapterOpsError(f"Release gate rule names score {rule.score!r}, which no scorer produces "
                              f"(scores: {', '.join(names)}); fix release.gate in the config.")
    return matched


def waivers_by_score(waivers: list[Waiver], names: list[str]) -> dict[str, str]:
    """score -> the owner's reason; a waiver naming no score the evaluation produced is an error (a typo waives nothing)."""
    unknown = [w.score for w in waivers if w.score not in names]
    if unknown:
        raise AdapterOpsError(f"release.waivers names score(s) {unknown} that no scorer produces (scores: "
                              f"{', '.join(names)}); fix the waiver's score name in the config.")
    return {w.score: w.reason for w in waivers}


def bound_of(interval: dict | None, key: str) -> float:
    """An interval's bound; an empty one (no example scored for both models, NaN or null once stored) is NaN, which
    no rule passes."""
    value = (interval or {}).get(key)
    return float("nan") if value is None else float(value)


def floor_check(text: str, name: str, interval: dict, margin: float, waived: str | None,
                scope: str = "overall") -> Check:
    """The base floor: the improvement interval's upper bound vs base must be >= -margin, unless waived."""
    high = bound_of(interval, "high")
    passed = high >= -margin
    return Check(text, name, scope, "base", high, -margin, passed or waived is not None, "upper",
                 waived if (waived and not passed) else "")


def decide(rules: list[GateRule], evaluation: dict, waivers: list[Waiver] = ()) -> GateDecision:
    """Apply every rule to the evaluation's intervals (see tasks.evaluate.run.summarise for the layout);
    waivers: scores the owner lets be worse than the base (the floor check shows the waiver and passes)."""
    retain = evaluation.get("retain") or {}
    names = list(evaluation["directions"]) + list(retain.get("directions") or {})
    waived = waivers_by_score(list(waivers), names)
    checks: list[Check] = []
    notes: list[str] = []
    vs_base = evaluation["vs_base"] | (retain.get("vs_base") or {})
    production = evaluation.get("vs_production")
    if production is not None:
        production = production | (retain.get("vs_production") or {})
    floored: set[str] = set()
    judges = evaluation.get("judges") or {}
    ignored = [f"judge {name} ignored by the gate: {judge['reason']}" for name, judge in judges.items() if not judge["gates"]]
    for rule in rules:
        text = rule_text(rule)
        for name in matching_scores(rule, names):
            if name in judges and not judges[name]["gates"]:
                continue
            scope = "retain" if name.startswith(RETAIN) else "overall"
            has_base = judges.get(name, {}).get("against") != "production"   # a pairwise judge: one comparison only
            if rule.must_beat_base is not None and has_base:
                low = bound_of(vs_base[name], "low")
                checks.append(Check(text, name, scope, "base", low, rule.must_beat_base, low > rule.must_beat_base))
            if rule.max_regression_vs_base is not None and name not in floored and has_base:
                floored.add(name)     # one floor per score: the first rule naming it (rules run in order)
                checks.append(floor_check(text, name, vs_base[name], rule.max_regression_vs_base, waived.get(name),
                                          scope))
            if rule.max_kl is not None and name == RETAIN + "kl":
                floored.add(name)     # max_kl is the KL's floor: a later retain.* floor does not bound it twice
                kl = float(retain["means"]["candidate"][name])
                checks.append(Check(text, name, scope, "base", kl, rule.max_kl, kl <= rule.max_kl, "kl"))
            if rule.max_regression is not None and production is not None:
                low = bound_of(production[name], "low")
                checks.append(Check(text, name, scope, "production", low, -rule.max_regression,
                                    low >= -rule.max_regression))
            if rule.slice_max_regression is not None and production is not None and scope == "overall":
                for scope, part in evaluation["slices"].items():
                    if part["judged"] and part.get("vs_production"):
                        low = bound_of(part["vs_production"][name], "low")
                        checks.append(Check(text, name, f"slice {scope}", "production", low, -rule.slice_max_regression,
                                            low >= -rule.slice_max_regression))
    for name, judge in judges.items():
        if judge["gates"] and any(c.score == name for c in checks):
            share, least = judge["scored_share"], judge["min_scored"]
            checks.append(Check(f"{name}: evaluation.judge.min_scored={least:g}", name, "overall", "scored", share, least,
                                share >= least, "share"))
    if production is None:
        notes.append("no production version yet: production rules skipped")
    notes += ignored
    used = {c.score for c in checks if c.waived}
    notes += [f"waiver for {name} not needed: not worse than the base" for name in waived if name not in used]
    if not checks:
        raise AdapterOpsError("The release gate checked nothing: release.gate has no rule that matches a declared "
                              "score; a release needs at least one.")
    return GateDecision(all(c.passed for c in checks), checks, notes, tuple(ignored))
