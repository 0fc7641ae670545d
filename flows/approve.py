"""approve: bind an approval to the corpus digest, automatically or by a contract owner."""

from typing import Literal

from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.settings import get_current_settings

from adapterops.config import Config
from adapterops.errors import AdapterOpsError
from adapterops.escaping import md_code, md_text
from adapterops.reporting import publish_markdown
from tasks.approval import AUTO_APPROVER, VIA_FORM, current_decision, record_decision
from tasks.corpus import diff_against_last_approved, find_version


POLL_SECONDS = 10


class CorpusDecision(RunInput):
    """The form a contract owner fills in the Prefect UI to decide a corpus version."""

    approver: str
    decision: Literal["approve", "reject"]
    note: str = ""


def _served() -> bool:
    """True under a Prefect server someone can open; the embedded one ends with this process."""
    return bool(get_current_settings().api.url)


def _wait_for_owner(config: Config, corpus: dict, review: str) -> dict:
    from tasks.contract import load_contract

    if not any(owner.form for owner in load_contract(corpus["contract"]).owners_):   # no form answer could count
        raise AdapterOpsError(f"Contract {corpus['contract']} accepts no decisions from the Prefect form (no owner has "
                              f"`form: true`); approve with `adapterops corpus approve {corpus['version']} --name "
                              f"{corpus['pipeline']} --as NAME` (signed with your key) and run again.")
    form = CorpusDecision.with_initial_data(
        description=f"## Corpus {md_text(corpus['pipeline'])} v{corpus['version']}\n\nDigest {md_code(corpus['digest'])}. "
                    f"Owners: {md_text(', '.join(corpus['owners']))}.\n\n{review}")   # review: escaped markdown
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=max(1, round(config.approval_timeout_hours * 3600)),
                                poll_interval=POLL_SECONDS)
    except FlowPauseTimeout:
        raise AdapterOpsError(f"No decision on corpus version {corpus['version']} within {config.approval_timeout_hours:g} h; "
                              f"it stays pending. Decide with `adapterops corpus approve {corpus['version']} --as NAME` "
                              "and run again.") from None
    decision = "approved" if answer.decision == "approve" else "rejected"
    # The person in the form holds no key: the workspace key signs on their behalf (via prefect-form), and
    # the gates accept that only for owners the contract marks `form: true`.
    return record_decision(corpus["pipeline"], corpus["digest"], answer.approver, decision, answer.note,
                           approval=config.approval, via=VIA_FORM, announce=False)


@flow(name="approve")
def approve(config: Config, corpus: dict) -> dict:
    """Approve as policy:auto when configured; else wait for an owner's form under a server, or stop."""
    version_run = find_version(corpus["pipeline"], digest=corpus["digest"])
    decided = current_decision(version_run)      # a shortcut only: training verifies the signature itself
    if decided and decided.get("decision") == "approved" and decided.get("digest") == corpus["digest"]:
        return {"approver": decided.get("approver"), "digest": corpus["digest"], "decision": "approved"}
    if decided is not None:
        raise AdapterOpsError(f"Corpus version {corpus['version']} is {decided.get('decision', 'decided')} "
                              f"({decided.get('note', '')}); training will not run on it. Fix the data and re-curate.")
    review = diff_against_last_approved(corpus["pipeline"], version_run)
    publish_markdown("corpus-review", f"Corpus v{corpus['version']} for review", review)
    if config.approval == "auto":
        record = record_decision(corpus["pipeline"], corpus["digest"], AUTO_APPROVER, "approved",
                                 "approved by the pipeline's automatic policy", approval=config.approval, announce=False)
    elif _served():
        get_run_logger().info("Corpus v%s awaits an owner's decision in the Prefect UI (owners: %s)",
                              corpus["version"], ", ".join(corpus["owners"]))
        record = _wait_for_owner(config, corpus, review)
    else:
        raise AdapterOpsError(
            f"Corpus version {corpus['version']} ({corpus['digest'][:19]}) awaits approval by an owner of contract "
            f"{corpus['contract']} ({', '.join(corpus['owners'])}). Review it with `adapterops corpus show "
            f"{corpus['version']} --name {corpus['pipeline']}`, approve with `adapterops corpus approve "
            f"{corpus['version']} --name {corpus['pipeline']} --as NAME`, then run again.")
    publish_markdown("approval", f"Corpus v{corpus['version']} {record['decision']}",
                     f"By {md_code(record['approver'])} at {record['time']}, digest {md_code(corpus['digest'])}. "
                     f"{md_text(record['note'])}")
    if record["decision"] != "approved":
        raise AdapterOpsError(f"Corpus version {corpus['version']} was rejected by {record['approver']}: "
                              f"{record['note'] or 'no note'}. Fix the data and re-curate.")
    return record
