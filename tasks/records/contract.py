"""Data contracts: the owner's YAML instrument (schema, GX expectations with a severity, bounds, PII policy)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapterops.config import ScorerSpec
from adapterops.errors import AdapterOpsError
from adapterops.signing import parse_public_key
from adapterops.storage import read_yaml
from tasks.records.pii_detect import PiiPolicy

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "data_contracts"

# Columns derived from each record's conversation, which expectations may name besides the schema's columns.
DERIVED_COLUMNS = {
    "system_prompt": "the system message (null when there is none)",
    "first_user_message": "the first user message",
    "last_assistant_message": "the last assistant message (the turn a one-turn record's completion is)",
    "turns": "the number of user turns",
    "messages_count": "the number of messages, system and tool messages included",
    "tools_used": "the names of the tools the assistant called, sorted, comma-separated ('' when none)",
}


def derived_values(conversation) -> dict:
    """DERIVED_COLUMNS for one Conversation."""
    first_user = next((m.content for m in conversation.messages if m.role == "user"), None)
    last = conversation.last("assistant")
    called = sorted({call.name for m in conversation.messages for call in m.tool_calls})
    return {"system_prompt": conversation.system, "first_user_message": first_user,
            "last_assistant_message": last.content if last else None,
            "turns": sum(m.role == "user" for m in conversation.messages),
            "messages_count": len(conversation.messages), "tools_used": ",".join(called)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnSpec(_Strict):
    type: Literal["string", "integer", "number", "boolean"] = Field("string", description="Type of the values' text.")
    required: bool = Field(True, description="A null or missing value quarantines the row.")
    hint: str | None = Field(None, description="How a value must look, in words; shown to annotators next to "
                                               "the box where they correct it.")


class ExpectationSpec(_Strict):
    type: str = Field(description="A Great Expectations expectation name, e.g. expect_column_values_to_not_be_null.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="The expectation's arguments.")
    severity: Literal["quarantine", "fail"] = Field(
        "quarantine", description="quarantine: failing rows leave the corpus; fail: the version is rejected.")


class LengthBound(_Strict):
    min_median: float | None = Field(None, ge=0, description="Smallest allowed median length (characters).")
    max_median: float | None = Field(None, ge=0, description="Largest allowed median length (characters).")


class Bounds(_Strict):
    min_rows: int = Field(1, ge=0, description="Fewest rows that must pass the contract.")
    max_quarantined_fraction: float = Field(1.0, ge=0, le=1, description="Largest share of rows the contract may quarantine.")
    text_length: dict[str, LengthBound] = Field(default_factory=dict, description="Median text length per column.")
    distribution: dict[str, dict[str, tuple[float, float]]] = Field(
        default_factory=dict, description="column -> value -> [min, max] share of passing rows.")

    @field_validator("distribution")
    @classmethod
    def _fractions(cls, value):
        for column, shares in value.items():
            for label, (low, high) in shares.items():
                if not 0 <= low <= high <= 1:
                    raise ValueError(f"{column}.{label}: expected 0 <= min <= max <= 1, got [{low}, {high}]")
        return value


RETAIN_SCORERS = ("regex_match", "chrf", "rouge_l", "length_ratio", "custom")


class RetainSpec(_Strict):
    """General prompts the adapter must keep answering as the base does (tasks/evaluate/retain.py)."""
    source: str = Field(description="A JSONL file of {prompt, completion} (relative paths start from the working "
                                    "folder), or demo:retain, the demo's generated set.")
    digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$",
                               description="sha256 of the file's bytes; set: evaluation refuses a file that differs.")
    scorers: list[ScorerSpec] = Field(default_factory=lambda: [ScorerSpec(kind="chrf")],
                                      description="How retain answers are judged against the reference (text scorers: "
                                                  + ", ".join(RETAIN_SCORERS) + ").")
    kl_texts: int = Field(64, ge=0, description="Retain texts the KL divergence from the base is measured on; 0: none.")
    max_new_tokens: int | None = Field(None, ge=1, description="Most tokens per retain answer; unset: evaluation.max_new_tokens.")

    @field_validator("scorers")
    @classmethod
    def _text_scorers(cls, value):
        if not value:
            raise ValueError("evaluation.retain needs at least one scorer (e.g. {kind: chrf})")
        if wrong := [s.kind for s in value if s.kind not in RETAIN_SCORERS]:
            raise ValueError(f"retain scorers judge text answers; {wrong} cannot score a retain prompt "
                             f"(use {', '.join(RETAIN_SCORERS)})")
        return value


class ContractEvaluation(_Strict):
    scorers: list[ScorerSpec] = Field(default_factory=list, description="How answers are judged: the owner's scorers.")
    slices: list[str] = Field(default_factory=list, description="Columns or extracted fields every score is broken down by.")
    turns: Literal["all", "last"] = Field("last", description="Which assistant turns of a held-out conversation are "
                                                              "judged: every one, or the last (each given the true history).")
    retain: RetainSpec | None = Field(None, description="General prompts the adapter must not forget: retain scores, "
                                                        "agreement with the base and KL from it, gated by retain.* rules.")


class Owner(_Strict):
    name: str = Field(min_length=1, description="The owner's name, as given to `--as`.")
    public_key: str | None = Field(None, description="`ed25519:BASE64` from `adapterops keys init --as NAME`; "
                                                     "the owner's CLI decisions are verified with it.")
    form: bool = Field(False, description="Accept this owner's decisions made in the Prefect UI form (signed by "
                                          "the workspace key on the owner's behalf).")


class Contract(_Strict):
    name: str = Field(min_length=1)
    version: int = Field(ge=1)
    description: str = Field(min_length=1, description="What the dataset is, for the owners and approvers.")
    scope: str = Field(min_length=1, description="Which records belong in it.")
    owners_: list[Owner] = Field(alias="owners", min_length=1, description="The people who may approve its versions: "
                                 "a name, or {name, public_key, form}.")
    schema_: dict[str, ColumnSpec] = Field(alias="schema", min_length=1)
    expectations: list[ExpectationSpec] = Field(default_factory=list)
    bounds: Bounds = Field(default_factory=Bounds)
    pii: PiiPolicy = Field(default_factory=PiiPolicy)
    evaluation: ContractEvaluation = Field(default_factory=ContractEvaluation)
    releasers_: list[Owner] | None = Field(
        None, alias="releasers", description="Who may promote and roll back the adapters trained on its versions "
        "(signed, like approvals): an owner's name, or {name, public_key}; default: the owners who are people.")

    @field_validator("owners_", "releasers_", mode="before")
    @classmethod
    def _plain_names(cls, value):
        """A plain string is an owner with no key (older contracts, and `policy:*` approvers)."""
        return [{"name": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @property
    def owners(self) -> list[str]:
        return [o.name for o in self.owners_]

    def owner(self, name: str) -> Owner | None:
        return next((o for o in self.owners_ if o.name == name), None)

    @property
    def releasers(self) -> list[Owner]:
        """Who may move production: `releasers` (a bare name takes that owner's key), else the human owners."""
        if self.releasers_ is None:
            return [o for o in self.owners_ if not o.name.startswith("policy:")]
        return [o if o.public_key or self.owner(o.name) is None else self.owner(o.name) for o in self.releasers_]

    def releaser(self, name: str) -> Owner | None:
        return next((o for o in self.releasers if o.name == name), None)


def contract_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        return candidate
    root = Path(os.environ.get("ADAPTEROPS_CONTRACTS", CONTRACTS_DIR))
    return root / f"{name_or_path}.yaml"


def _describe_contract_error(error: dict, origin: Path) -> str:
    loc = [p for p in error["loc"] if p not in ("schema_", "owners_", "releasers_")]
    if len(loc) > 2 and loc[0] == "expectations" and isinstance(loc[1], int):
        return f"{origin}: expectation {loc[1] + 1}: field '{'.'.join(map(str, loc[2:]))}': {error['msg']}."
    where = ".".join(str(p) for p in loc) or "(top level)"
    if error["type"] == "missing":
        hint = " (list at least one person who may approve versions)" if where == "owners" else ""
        return f"{origin}: missing field '{where}'{hint}."
    if error["type"] == "extra_forbidden":
        return f"{origin}: unknown field '{where}'; check its spelling against data_contracts/support_tickets.yaml."
    if where == "owners" and error["type"] == "too_short":
        return f"{origin}: field 'owners' is empty; list at least one person who may approve versions."
    return f"{origin}: field '{where}': {error['msg']}."


def contract_problems(data: Any, origin: Path) -> list[str]:
    """Every problem of a parsed contract file, one line each (empty when it is valid)."""
    if not isinstance(data, dict):
        return [f"{origin}: expected a mapping of contract fields at the top level."]
    problems = []
    try:
        Contract.model_validate(data)
    except ValidationError as error:
        problems += [_describe_contract_error(e, origin) for e in error.errors()]
    owners = data.get("owners") if isinstance(data.get("owners"), list) else []
    for number, owner in enumerate(owners, start=1):
        if isinstance(owner, dict) and isinstance(owner.get("public_key"), str):
            try:
                parse_public_key(owner["public_key"], f"{origin}: owner {number} ({owner.get('name')})")
            except AdapterOpsError as error:
                problems.append(str(error))
    schema = data.get("schema") if isinstance(data.get("schema"), dict) else {}
    expectations = data.get("expectations") if isinstance(data.get("expectations"), list) else []
    for number, item in enumerate(expectations, start=1):
        try:
            spec = ExpectationSpec.model_validate(item)
        except ValidationError:
            continue  # already reported above with its field path
        try:
            expectation = build_expectation(spec, f"{origin}: expectation {number}")
        except AdapterOpsError as error:
            problems.append(str(error))
        else:
            if spec.severity == "quarantine" and not _row_level(expectation):
                problems.append(f"{origin}: expectation {number} ({spec.type}) judges the whole dataset, so it has no "
                                f"rows to quarantine; give it severity fail.")
        column = spec.kwargs.get("column")
        if schema and column is not None and column not in schema and column not in DERIVED_COLUMNS:
            problems.append(f"{origin}: expectation {number} ({spec.type}) names column {column!r}, which is not in "
                            f"the schema nor a derived column ({', '.join(DERIVED_COLUMNS)}); add it to `schema` or "
                            f"fix the name.")
    return problems


def load_contract(name_or_path: str) -> Contract:
    """Load and check a contract; the first problem is raised as one line naming the file and the field."""
    path = contract_path(name_or_path)
    data = read_yaml(path, f"Contract {name_or_path!r} not found at {path}; add data_contracts/{name_or_path}.yaml or pass a path.")
    problems = contract_problems(data, path)
    if problems:
        more = f" ({len(problems) - 1} more: run `adapterops contract check {path}`)" if len(problems) > 1 else ""
        raise AdapterOpsError(problems[0] + more)
    return Contract.model_validate(data)


def build_expectation(spec: ExpectationSpec, origin: str):
    """The GX expectation object for one contract entry; an unknown name or a bad argument is one clear line."""
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        cls = get_expectation_impl(spec.type)
    except Exception:
        raise AdapterOpsError(f"{origin}: unknown expectation type {spec.type!r}; use a Great Expectations name "
                              f"such as expect_column_values_to_not_be_null.") from None
    try:
        return cls(**spec.kwargs)
    except Exception as error:
        detail = _first_line(error)
        raise AdapterOpsError(f"{origin}: {spec.type}: bad arguments {spec.kwargs} ({detail}); see the expectation's "
                              f"arguments at https://greatexpectations.io/expectations/.") from None


def _row_level(expectation) -> bool:
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    return isinstance(expectation, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation))


def _first_line(error: Exception) -> str:
    if callable(getattr(error, "errors", None)):  # pydantic (v1 inside GX, or v2) validation error
        first = error.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'arguments'}: {first['msg']}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
