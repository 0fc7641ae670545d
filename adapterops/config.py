"""One typed config for a run: loaded from YAML, every field defaulted and described."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapterops.errors import AdapterOpsError
from adapterops.storage import read_yaml

BUILTIN_TINY_MODEL = "builtin:tiny-llama"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


INPUT_FORMATS = ("auto", "openai", "sharegpt", "alpaca", "prompt_completion")
DEFAULT_SPLITS = {"train": "train", "test": "eval", "validation": "eval"}


class Columns(Section):
    id: str = Field("id", description="Input column holding the record's unique id, or `hash` (a digest of the "
                                      "record's content; used when no row has the default `id` column).")
    prompt: str = Field("prompt", description="Input column holding the prompt text.")
    completion: str = Field("completion", description="Input column holding the target completion.")
    source: str = Field("source", description="Input column naming where the record came from.")
    timestamp: str = Field("timestamp", description="Input column with the record's ISO-8601 time.")


class InputsConfig(Section):
    format: Literal["auto", "openai", "sharegpt", "alpaca", "prompt_completion"] = Field(
        "auto", description="Record format of every source: auto (detected per file), openai (chat `messages`; also "
                            "TRL conversational), sharegpt, alpaca, or prompt_completion (the `columns.*` mapping).")
    splits: dict[str, Literal["train", "eval", "skip"]] = Field(
        default_factory=lambda: dict(DEFAULT_SPLITS),
        description="A Hugging Face DatasetDict source's splits: train (the corpus), eval (the evaluation set) or "
                    "skip; splits not named are skipped.")


class DedupConfig(Section):
    threshold: float = Field(0.8, gt=0, lt=1, description="Jaccard at or above which two records are near-duplicates.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations per signature.")
    ngram: int = Field(5, ge=1, le=16, description="n-gram size of the shingles, in words (or characters with shingle: char).")
    shingle: Literal["word", "char"] = Field("word", description="Shingles of words, or of characters for short texts.")
    keep: Literal["longest", "earliest", "first", "source_priority"] = Field(
        "longest", description="Record a duplicate cluster keeps: longest, earliest (timestamp), first (input order), or by source_priority.")
    source_priority: list[str] = Field(
        default_factory=list, description="Sources, most preferred first, for keep: source_priority; unlisted ones rank last, ties go to the longest.")
    seed: int = Field(1, description="Seed of the MinHash permutations.")
    workers: int = Field(1, ge=1, description="Shards sketched in parallel Prefect tasks; 1: one in-process task. Same result either way.")
    dask_address: str | None = Field(
        None, description="Dask scheduler (tcp://host:8786) or 'local' (a LocalCluster) that runs the shards; unset: threads.")

    # How the work is spread, not what is kept: left out of the corpus digest.
    RUNTIME_FIELDS: ClassVar[frozenset[str]] = frozenset({"workers", "dask_address"})

    @field_validator("dask_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and value != "local" and "://" not in value:
            raise ValueError("use 'local' or a scheduler address such as tcp://scheduler:8786")
        return value

    @model_validator(mode="after")
    def _priority_named(self) -> "DedupConfig":
        if self.keep == "source_priority" and not self.source_priority:
            raise ValueError("keep: source_priority needs the sources listed in dedup.source_priority, most preferred first")
        return self

    def settings(self) -> dict:
        """The fields that decide which records are kept (they enter the corpus digest)."""
        settings = self.model_dump(exclude=set(self.RUNTIME_FIELDS))
        if self.keep != "source_priority":   # unused: leave digests of configs without it unchanged
            settings.pop("source_priority")
        return settings


class SplitConfig(Section):
    heldout_fraction: float = Field(0.1, ge=0, lt=0.5, description="Fraction of the corpus held out from training.")
    seed: int = Field(7, description="Seed of the train/held-out assignment.")


class LoraConfig(Section):
    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: int = Field(16, ge=1, description="LoRA alpha (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names to adapt, or 'all-linear'.")
    qlora: bool = Field(False, description="Load the base in 4 bits (QLoRA); needs CUDA and bitsandbytes.")


class TrainConfig(Section):
    max_steps: int = Field(60, ge=1, description="Optimizer steps to train.")
    batch_size: int = Field(8, ge=1, description="Examples per optimizer step.")
    learning_rate: float = Field(3e-3, gt=0, description="Peak learning rate (linear decay, short warm-up).")
    warmup_steps: int = Field(5, ge=0, description="Linear warm-up steps.")
    max_length: int = Field(1024, ge=16, description="Tokens per example; longer examples are truncated or quarantined (train.overlong) and counted.")
    overlong: Literal["truncate", "quarantine"] = Field(
        "truncate", description="An example over max_length: truncate (train on what fits) or quarantine (leave it out, listed with its id in the run's preflight).")
    chat_template: str | None = Field(
        None, description="Chat template (Jinja text, or the path of a .jinja file) that replaces the base tokenizer's; unset: the tokenizer's own.")
    tool_call_syntax: Literal["auto", "hermes", "none"] = Field(
        "auto", description="How the model writes tool calls (read back by evaluation and the pyfunc); auto: from the chat template's family (hermes for <tool_call> templates).")
    seed: int = Field(42, description="Seed set before the LoRA layers are created.")
    log_every: int = Field(5, ge=1, description="Steps between logged metrics.")
    prompt_template: str = Field("### Ticket\n{prompt}\n### Response\n",
                                 description="Template that renders a prompt when the tokenizer has no chat template.")
    packing: bool = Field(True, description="Pack examples into rows without padding (positions restart per example); off: padded batches.")
    pack_length: int = Field(0, ge=0, description="Most tokens per packed row; 0: the whole step's examples in one row.")
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto", description="Attention kernel; 'auto': flash_attention_2 on CUDA when installed, else sdpa.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass to save memory.")
    checkpoint_every: int = Field(50, ge=0, description="Steps between resumable checkpoints; 0: none.")
    keep_checkpoints: int = Field(2, ge=1, description="Most recent checkpoints kept on disk.")
    retries: int = Field(1, ge=0, description="Retries of the training task, and re-submissions of a train flow run that crashed on its work pool; each resumes from the last checkpoint.")
    system_metrics: bool = Field(True, description="Log CPU, memory and GPU use to MLflow while training.")
    work_pool: str | None = Field(None, description="Prefect work pool that trains (deployment train/POOL); unset: in process.")
    replay_share: float = Field(0.0, ge=0, lt=0.9, description="Share of training examples drawn from train.replay_source, so the adapter keeps the base's general behaviour (docs/evaluation.md#the-retain-set); 0: none.")
    replay_source: str = Field("demo:general", description="General examples replayed in training: a JSONL file of {prompt, completion} (e.g. the base's own answers to general prompts), or demo:general, the general corpus the built-in base was pretrained on (outside support, apart from the retain set's seed).")

    # How a run is watched, kept and scheduled, not the adapter's bytes: left out of the training key.
    RUNTIME_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"log_every", "checkpoint_every", "keep_checkpoints", "retries", "system_metrics", "work_pool"})
    REPLAY_FIELDS: ClassVar[frozenset[str]] = frozenset({"replay_share", "replay_source"})


SCORER_KINDS = ("regex_match", "field_match", "chrf", "rouge_l", "length_ratio", "pii_leak", "loss", "custom",
                "llm_judge", "tool_name", "tool_arguments_json", "tool_arguments")


class ScorerSpec(Section):
    """One scorer the data owner declares (data contract `evaluation.scorers`, or config `evaluation.scorers`)."""
    kind: Literal["regex_match", "field_match", "chrf", "rouge_l", "length_ratio", "pii_leak", "loss", "custom",
                  "llm_judge", "tool_name", "tool_arguments_json", "tool_arguments"] = Field(description="What it measures: " + ", ".join(SCORER_KINDS) + ".")
    name: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$",
                             description="Score name in tables and metrics; default: the kind.")
    pattern: str | None = Field(None, description="regex_match: the answer must match it; field_match: named groups extract the fields.")
    fields: list[str] = Field(default_factory=list, description="field_match: the named groups scored (default: all).")
    function: str | None = Field(None, description="custom: `module:function(prompt, answer, reference) -> float`.")
    higher_is_better: bool = Field(True, description="custom: the score's direction.")
    judge: Literal["guidelines", "correctness", "pairwise"] | None = Field(
        None, description="llm_judge: guidelines (does the answer follow them), correctness (against the reference) or "
                          "pairwise (is the candidate's answer better than production's, else the base's).")
    guidelines: str | None = Field(None, description="llm_judge guidelines: what a good answer does (pairwise: what better means).")

    @model_validator(mode="after")
    def _needs(self) -> "ScorerSpec":
        needs = {"regex_match": "pattern", "field_match": "pattern", "custom": "function", "llm_judge": "judge"}
        if (field := needs.get(self.kind)) and getattr(self, field) is None:
            raise ValueError(f"a {self.kind} scorer needs '{field}'")
        if self.kind == "llm_judge" and self.judge == "guidelines" and not self.guidelines:
            raise ValueError("an llm_judge with judge: guidelines needs 'guidelines'")
        return self

    @property
    def label(self) -> str:
        return self.name or self.kind


RETAIN_PREFIX = "retain."   # retain-set scores are named retain.<score> and gated only by rules naming retain.*
# The default forgetting budget (calibrated on the demo: see docs/evaluation.md#the-retain-set)
RETAIN_MAX_KL = 0.5
RETAIN_MAX_DISAGREEMENT = 0.5
RETAIN_MAX_REGRESSION = 0.10


class GateRule(Section):
    """A release rule for the scores whose names match `score` (a name or a glob such as field.*)."""
    score: str = Field(description="Score name or glob pattern (fnmatch), e.g. field.* or *.")
    must_beat_base: float | None = Field(
        None, description="The candidate - base interval's lower bound must exceed this margin (in the score's units).")
    max_regression: float | None = Field(
        None, ge=0, description="The candidate - production interval's worst case may lose at most this much.")
    slice_max_regression: float | None = Field(
        None, ge=0, description="The same against production in every slice large enough to judge.")
    max_regression_vs_base: float | None = Field(
        None, ge=0, description="The base is the floor: the candidate - base interval's best case may lose at most this much.")
    max_kl: float | None = Field(
        None, gt=0, description="For retain.kl: the candidate's mean KL divergence from the base on the retain texts may be at most this.")
    required: bool = Field(True, description="A rule whose score no scorer produces is an error; false: it is skipped.")

    @model_validator(mode="after")
    def _kl_names_retain_kl(self) -> "GateRule":
        if self.max_kl is not None and not fnmatchcase("retain.kl", self.score):
            raise ValueError(f"max_kl bounds the retain set's KL divergence from the base: the rule's score must be "
                             f"retain.kl, not {self.score!r}")
        return self


def _default_gate() -> list[GateRule]:
    """Sensible for the demo contract: decisions and format must beat the base clearly and not regress; what the
    contract's retain set measures may drift from the base only within a budget (retain scores are gated only by
    rules naming retain.*)."""
    rules = [dict(score="field.*", must_beat_base=0.10, max_regression=0.03, slice_max_regression=0.15),
             dict(score="format", must_beat_base=0.10, max_regression=0.03),
             dict(score="pii_leak", max_regression=0.0),
             dict(score="loss", must_beat_base=0.0),
             dict(score="retain.kl", max_kl=RETAIN_MAX_KL),
             dict(score="retain.agreement", max_regression_vs_base=RETAIN_MAX_DISAGREEMENT),
             dict(score="retain.*", max_regression_vs_base=RETAIN_MAX_REGRESSION),
             dict(score="*", max_regression=0.05, max_regression_vs_base=0.0)]
    return [GateRule(**rule, required=False) for rule in rules]


class Waiver(Section):
    """The owner's waiver of the base floor (max_regression_vs_base) for one score, with the reason."""
    score: str = Field(description="Score name the waiver covers (exact, as the evaluation names it, e.g. length_ratio).")
    reason: str = Field(description="Why this score may be worse than the base; shown in the release decision.")

    @field_validator("reason")
    @classmethod
    def _reason_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a waiver needs a reason the release decision can show")
        return value.strip()


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class JudgeConfig(Section):
    """The LLM judge of llm_judge scorers: any OpenAI-compatible chat-completions endpoint, its key read from the environment."""
    base_url: str | None = Field(None, description="OpenAI-compatible API base URL (e.g. https://api.openai.com/v1, http://localhost:8000/v1); unset: llm_judge scorers are skipped.")
    model: str | None = Field(None, description="Model name the endpoint serves (e.g. gpt-4o-mini).")
    api_key_env: str = Field("OPENAI_API_KEY", description="Name of the environment variable holding the endpoint's key (sent as a Bearer token); never the key itself.")
    timeout_seconds: float = Field(30.0, gt=0, le=600, description="Seconds one judge call may take before it counts as a timeout.")
    retries: int = Field(2, ge=0, le=10, description="Retries of a call that timed out, failed to connect or got a 429/5xx.")
    max_calls: int = Field(2000, ge=1, description="Most HTTP calls (retries included) one evaluation makes to the judge; examples beyond it are unscored (over_budget).")
    concurrency: int = Field(4, ge=1, le=64, description="Judge calls in flight at once.")
    min_kappa: float = Field(0.6, ge=-1, le=1, description="Least Cohen's kappa with the owner's labels for a judge's score to gate the release.")
    min_labels: int = Field(20, ge=2, description="Least labelled examples the kappa is measured on; fewer: not measured, the judge does not gate.")
    min_scored: float = Field(0.9, ge=0, le=1, description="Least share of eval examples a gating judge must score (the rest unscored); below it its score holds the release.")

    @model_validator(mode="before")
    @classmethod
    def _no_key_in_config(cls, data):
        if isinstance(data, dict) and (given := [k for k in ("api_key", "key", "token", "api_token") if k in data]):
            raise ValueError(f"'{given[0]}' is not read from a config: keys do not belong in files. Put the key in an "
                             "environment variable and name it in evaluation.judge.api_key_env")
        return data

    @field_validator("api_key_env")
    @classmethod
    def _an_env_name(cls, value: str) -> str:
        looks_like_key = (re.search(r"[a-z]", value) and re.search(r"\d", value) and len(value) >= 20) or \
            value.lower().startswith(("sk-", "sk_", "bearer "))
        if looks_like_key or not re.match(ENV_NAME, value):
            raise ValueError("api_key_env is the NAME of an environment variable (e.g. OPENAI_API_KEY), and this looks "
                             "like a key or is not a variable name; remove the key from the config, export it as a "
                             "variable and name that variable here")
        return value

    @model_validator(mode="after")
    def _model_named(self) -> "JudgeConfig":
        if self.base_url and not self.model:
            raise ValueError("evaluation.judge.base_url needs evaluation.judge.model: the model name the endpoint serves")
        return self


class EvaluationConfig(Section):
    scorers: list[ScorerSpec] = Field(default_factory=list,
                                      description="Scorers; empty: the data contract's evaluation.scorers.")
    slices: list[str] | None = Field(None, description="Slice by these columns or extracted fields; unset: the contract's.")
    min_slice_size: int = Field(10, ge=1, description="Slices with fewer examples are reported as too small to judge.")
    max_new_tokens: int = Field(96, ge=1, description="Most tokens generated per answer (greedy, stops at EOS).")
    batch_size: int = Field(32, ge=1, description="Prompts generated together (left-padded, with the KV cache).")
    resamples: int = Field(2000, ge=1000, description="Paired bootstrap resamples per interval.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Two-sided confidence level of the intervals.")
    seed: int = Field(0, description="Seed of the bootstrap.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="The LLM judge behind llm_judge scorers.")

    @model_validator(mode="before")
    @classmethod
    def _judge_model_moved(cls, data):
        if isinstance(data, dict) and "judge_model" in data:
            raise ValueError("evaluation.judge_model is replaced by evaluation.judge: {base_url, model, api_key_env}; "
                             "see docs/evaluation.md#llm-judges")
        return data


class ReleaseConfig(Section):
    model_name: str = Field("support-triage-adapter", description="Registered model name in the MLflow registry.")
    gate: list[GateRule] = Field(default_factory=_default_gate,
                                 description="Release rules per score; every matching rule must pass.")
    waivers: list[Waiver] = Field(default_factory=list,
                                  description="Scores allowed to be worse than the base (each with a reason), shown in the decision.")
    staging: bool = Field(True, description="Serve a candidate that passes the gate at alias staging and run the "
                                            "smoke suite over HTTP before production moves (serve.smoke_*).")


class RecordConfig(Section):
    """`adapterops serve` recording what production sees (serve.record): sampled, PII-redacted, append-only Parquet."""
    enabled: bool = Field(True, description="Record sampled requests and answers (conversation, answer, adapter name, version and alias, latency, tokens, the key's name) for `adapterops watch`.")
    sample_rate: float = Field(1.0, ge=0, le=1, description="Share of answered requests recorded (systematic: every 1/rate-th request, so the share is exact); 0: none.")
    folder: str = Field("", description="Folder of the traffic store (records/ and feedback/ by day); empty: ADAPTEROPS_HOME/traffic.")
    queue_size: int = Field(10000, ge=1, description="Records waiting for the background writer; beyond it records are dropped and counted (a request never waits for the store).")
    flush_seconds: float = Field(2.0, gt=0, le=3600, description="Seconds between writes of the waiting records to a new Parquet file (files rotate at every write).")
    flush_records: int = Field(5000, ge=1, description="Most records in one Parquet file; more waiting are written to the next.")
    retention_days: float = Field(30.0, gt=0, description="Traffic and feedback files older than this many days are deleted (checked at start and hourly).")


class ServeConfig(Section):
    """`adapterops serve` and the staging smoke suite: one process, one base model, many adapters."""
    host: str = Field("127.0.0.1", description="Address the server listens on (0.0.0.0: every interface).")
    port: int = Field(8000, ge=0, le=65535, description="Port the server listens on; 0: a free port.")
    poll_seconds: float = Field(2.0, gt=0, le=300, description="Seconds between registry polls; a moved alias is swapped in at the next poll.")
    max_batch: int = Field(16, ge=1, description="Most requests generated together in one (mixed-adapter) batch.")
    max_queue: int = Field(64, ge=1, description="Requests waiting beyond this answer 429.")
    max_new_tokens: int = Field(128, ge=1, description="Tokens generated when a request does not say (max_tokens).")
    max_tokens_limit: int = Field(512, ge=1, description="Most tokens a request may ask for (max_tokens).")
    max_prompt_tokens: int = Field(1024, ge=1, description="Longer prompts answer 400.")
    batch_wait_ms: float = Field(10.0, ge=0, le=1000, description="Milliseconds an idle server waits for more requests so their prompts are read in one pass (0: start at once).")
    max_n: int = Field(4, ge=1, le=64, description="Most choices one request may ask for (n).")
    default_temperature: float = Field(0.0, ge=0, le=2, description="Temperature of a request that sends none; 0: greedy (OpenAI's own default is 1).")
    tool_call_parser: Literal["auto", "hermes", "none"] = Field("auto", description="How tool calls are read back from generated text (like vLLM's --tool-call-parser): hermes, <tool_call>{...}</tool_call> of ChatML templates; none: never; auto: hermes when the chat template writes <tool_call>, else none.")
    max_loaded: int = Field(8, ge=1, description="Most adapter versions attached to the base at once; the least recently used one is retired (after its requests finish) to load another.")
    max_body_bytes: int = Field(4_000_000, ge=1024, description="Larger request bodies answer 413 before they are read.")
    max_json_depth: int = Field(64, ge=2, le=1000, description="Request bodies nesting deeper answer 400.")
    api_keys_file: str = Field("", description="File of hashed API keys (`adapterops keys api create`); empty: ADAPTEROPS_HOME/keys/api-keys.json. Keys also come from ADAPTEROPS_API_KEYS.")
    log_prompts: bool = Field(False, description="Put the prompt text in the access log line of each request (off: counts only).")
    grace_seconds: float = Field(20.0, ge=0, le=3600, description="On SIGTERM or SIGINT: seconds requests in flight get to finish before the server exits.")
    cpu_threads: int = Field(1, ge=0, description="Torch CPU threads of the server; 1 avoids thread contention on shared or small machines (measured 40x faster under load here); 0: torch's default.")
    smoke_prompts: int = Field(16, ge=1, description="Staging: eval prompts sent to the candidate over HTTP.")
    smoke_format_min: float = Field(0.5, ge=0, le=1, description="Staging: least share of answers matching the contract's regex_match scorers.")
    smoke_p95_seconds: float = Field(10.0, gt=0, description="Staging: most p95 latency of one smoke request, in seconds.")
    smoke_startup_seconds: float = Field(180.0, gt=0, description="Staging: most seconds the staging server may take to answer /health.")
    record: RecordConfig = Field(default_factory=RecordConfig, description="Recording of production traffic for `adapterops watch`.")


class WatchConfig(Section):
    """`adapterops watch`: a window of recorded traffic against the corpus and the release-time evaluation."""
    window_days: float = Field(7.0, gt=0, description="Days of recorded traffic one watch run reads, ending now.")
    alias: str = Field("production", description="Alias whose recorded traffic is watched (the adapter version it names now).")
    novelty_threshold: float = Field(0.2, gt=0, lt=1, description="MinHash Jaccard of a conversation's customer side (user and tool turns) with the nearest approved corpus record's below which it is novel.")
    ngram: int = Field(3, ge=1, le=16, description="Word n-gram size of the shingles novelty compares (shorter than dedup's: two tickets about one issue share few 5-grams).")
    cluster_threshold: float = Field(0.3, gt=0, lt=1, description="Jaccard at which two novel conversations join one cluster.")
    novelty_alert: float = Field(0.15, ge=0, le=1, description="Alert when the novel share of traffic exceeds the held-out set's own share (the baseline) by more than this.")
    score_drop_alert: float = Field(0.1, ge=0, le=1, description="Alert when a reference-free score on production answers is this much worse than at release.")
    bad_feedback_alert: float = Field(0.2, ge=0, le=1, description="Alert when the share of feedback rated bad exceeds this.")
    min_conversations: int = Field(20, ge=1, description="Fewer recorded conversations in the window: reported, never alerted on.")
    clusters_shown: int = Field(5, ge=1, le=50, description="Largest novel clusters shown, each with examples.")
    examples_per_cluster: int = Field(3, ge=1, le=20, description="Examples shown per novel cluster.")
    label_limit: int = Field(100, ge=0, description="Most conversations a watch run writes to candidates.jsonl for the next corpus version (badly rated, then novel, then low-scored); 0: none.")
    candidate_source: str = Field("production", description="The `source` of those conversations in candidates.jsonl; the data contract must allow it (the demo contract's sources are email, chat and web-form).")


class FitCheckConfig(Section):
    """`adapterops fit-check` and the approval review's fit section: is a fine-tune the right tool for this corpus?"""
    volatile_max: float = Field(0.2, ge=0, le=1, description="Share of target turns quoting volatile facts (prices, dates, versions, SKUs, order or account numbers, URLs) above which the verdict says: serve those from retrieval.")
    conflict_max: float = Field(0.05, ge=0, le=1, description="Share of near-duplicate prompts whose answers disagree above which the verdict flags conflicting targets.")
    prompt_threshold: float = Field(0.8, gt=0, lt=1, description="Jaccard at which two prompts are near-duplicates (for disagreeing answers).")
    examples: int = Field(3, ge=0, le=20, description="Examples shown per finding.")


class LabelingConfig(Section):
    """How several annotators' decisions on one task settle, and where the team's Label Studio runs."""
    policy: Literal["latest", "majority", "owner_wins", "unanimous"] = Field(
        "latest", description="What settles a task with several annotations: latest (the last updated), majority "
                              "(more than half agree), owner_wins (the reviewer's, else all must agree) or unanimous; "
                              "an unsettled task is disputed and not applied.")
    reviewer: str | None = Field(None, description="owner_wins: the reviewer (Label Studio e-mail or username) whose "
                                                   "decision settles a task.")
    label_studio_url: str | None = Field(None, description="Label Studio server for `label push` / `label pull`; "
                                                           "LABEL_STUDIO_URL overrides it. The API token is read "
                                                           "from LABEL_STUDIO_API_KEY only, never from a file.")

    @model_validator(mode="after")
    def _reviewer_named(self) -> "LabelingConfig":
        if self.policy == "owner_wins" and not self.reviewer:
            raise ValueError("policy owner_wins needs labeling.reviewer: the annotator whose decision settles a task")
        return self


class Recipe(Section):
    """What decides an adapter besides its corpus: the base model, LoRA and training settings (`config.recipe`)."""
    base_model: str = Field(BUILTIN_TINY_MODEL, description="Hub id or local path of the base model, or the built-in tiny model.")
    base_model_revision: str | None = Field(None, description="Revision (commit) of the base model to pin.")
    trust_remote_code: bool = Field(False, description="Allow the base model's own code to run.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapter settings.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training settings.")

    def settings(self) -> dict:
        """The settings that enter the training key: base model, LoRA and training (runtime fields left out)."""
        left_out = set(self.train.RUNTIME_FIELDS) | (set(self.train.REPLAY_FIELDS) if not self.train.replay_share else set())
        return {"base_model": self.base_model, "lora": self.lora.model_dump(mode="json"),
                "train": self.train.model_dump(mode="json", exclude=left_out)}   # no replay: keys as before it existed


class Config(Section):
    name: str = Field("demo", description="Name of the pipeline; prefixes experiments.")
    sources: list[str] = Field(default_factory=lambda: ["demo:train"], description="Input files, globs or folders: JSON Lines (.jsonl, .json), CSV, TSV, Parquet or a Hugging Face save_to_disk folder (chat, ShareGPT, Alpaca or prompt/completion records); or 'demo:train' for the generated demo corpus.")
    eval_source: str = Field("demo:eval", description="Held-out evaluation set from the real workload (a file, glob or folder in any format sources read), or 'demo:eval' (left at 'demo:eval', a DatasetDict source's eval splits take its place).")
    labels: list[str] = Field(default_factory=list, description="Annotated exports of `adapterops label export` or files of `label pull` (Label Studio .json or .jsonl) whose decisions curation applies under labeling.policy.")
    contract: str = Field("support_tickets", description="Data contract name (data_contracts/NAME.yaml) or a path to one.")
    labeling: LabelingConfig = Field(default_factory=LabelingConfig, description="Label decisions: policy, reviewer, Label Studio.")
    columns: Columns = Field(default_factory=Columns, description="Mapping of input columns.")
    inputs: InputsConfig = Field(default_factory=InputsConfig, description="Record formats of the sources and DatasetDict splits.")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Duplicate removal settings.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train/held-out split settings.")
    approval: Literal["auto", "owner"] = Field("owner", description="'auto' approves as policy:auto; 'owner' waits for a contract owner.")
    approval_timeout_hours: float = Field(72.0, gt=0, description="How long a run under a Prefect server waits for the owner's decision.")
    base_model: str = Field(BUILTIN_TINY_MODEL, description="Hub id or local path of the base model, or the built-in tiny model.")
    base_model_revision: str | None = Field(None, description="Revision (commit) of the base model to pin.")
    trust_remote_code: bool = Field(False, description="Allow the base model's own code to run.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapter settings.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training settings.")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig, description="Held-out evaluation settings.")
    release: ReleaseConfig = Field(default_factory=ReleaseConfig, description="Promotion gate and registry settings.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="Serving (adapterops serve) and staging smoke settings.")
    watch: WatchConfig = Field(default_factory=WatchConfig, description="Production watch (adapterops watch): novelty, quality, feedback, alerts.")
    fit_check: FitCheckConfig = Field(default_factory=FitCheckConfig, description="Fit check (adapterops fit-check, approval review): volatile facts and conflicting answers.")
    demo_records: int = Field(1200, ge=50, description="Records the demo generator writes (demo sources only).")
    demo_seed: int = Field(2026, description="Seed of the demo generator.")
    mlflow_tracking_uri: str | None = Field(None, description="MLflow server; default: SQLite in the workspace.")
    prefect_api_url: str | None = Field(None, description="Prefect server; default: Prefect's local server in the workspace.")
    mlflow_ui_url: str = Field("http://127.0.0.1:5000", description="MLflow UI that review pages and notifications link to.")
    prefect_ui_url: str = Field("http://127.0.0.1:4200", description="Prefect UI that review pages and notifications link to.")
    review_sample: int = Field(5, ge=0, le=100, description="Added and changed records shown (before → after) to the owner who decides a version.")

    @property
    def recipe(self) -> Recipe:
        """The sections training and evaluation render and load with."""
        return Recipe(base_model=self.base_model, base_model_revision=self.base_model_revision,
                      trust_remote_code=self.trust_remote_code, lora=self.lora, train=self.train)


def _describe(error: ValidationError, origin: str) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{origin}: unknown field '{field}'; check its spelling against `adapterops config-fields`."
    return f"{origin}: field '{field}': {first['msg']}."


def parse_config(data: dict | None, origin: str = "config") -> Config:
    """Validate a mapping into a Config; the error names the field and where it came from."""
    if data is not None and not isinstance(data, dict):
        raise AdapterOpsError(f"{origin}: expected a mapping of fields at the top level, got {type(data).__name__}.")
    try:
        return Config.model_validate(data or {})
    except ValidationError as error:
        raise AdapterOpsError(_describe(error, origin)) from None


def from_options(model: type[Section], values: dict, options: dict[str, str]):
    """A config section from command-line options, validated by the section itself (one place for
    defaults and bounds); the error names the option, e.g. `--threshold: Input should be less than 1`."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        where = options.get(name, name) if name else " / ".join(options.values())   # a rule across fields: all of them
        raise AdapterOpsError(f"{where}: {message}.") from None


def load_config(path: str | Path) -> Config:
    """Read a YAML config file into a Config."""
    data = read_yaml(Path(path), f"Config file {path} does not exist; pass the path of a YAML config such as configs/demo.yaml.")
    return parse_config(data, str(path))


def field_docs(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(field, default, description) for every field, nested sections flattened."""
    rows = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, Section):
            rows.extend(field_docs(annotation, f"{prefix}{name}."))
            continue
        default = info.default_factory() if info.default_factory else info.default
        rows.append((f"{prefix}{name}", repr(default), info.description or ""))
    return rows
