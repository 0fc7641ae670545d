"""approve: bind an approval to the corpus digest, automatically or by a contract owner."""

from __future__ import annotations

from prefect import flow

from adapterops.config import Config
from adapterops.errors import AdapterOpsError
from adapterops.reporting import publish_markdown
from tasks.approval import AUTO_APPROVER, record_decision
from tasks.corpus import find_version


@flow(name="approve")
def approve(config: Config, corpus: dict) -> dict:
    """Approve as policy:auto when configured; otherwise stop: the version awaits its owner."""
    run = find_version(corpus["pipeline"], digest=corpus["digest"])
    tags = run.data.tags if run else {}
    if tags.get("corpus.status") == "approved" and tags.get("approval.digest") == corpus["digest"]:
        return {"approver": tags.get("approval.approver"), "digest": corpus["digest"], "already": True}
    if config.approval == "auto":
        record = record_decision(corpus["pipeline"], corpus["digest"], AUTO_APPROVER, "approved",
                                 "approved by the pipeline's automatic policy", owners=corpus["owners"])
        publish_markdown("approval", f"Corpus v{corpus['version']} approved",
                         f"Approver `{AUTO_APPROVER}`, digest `{corpus['digest']}`.")
        return record
    raise AdapterOpsError(
        f"Corpus version {corpus['version']} ({corpus['digest'][:19]}) awaits approval by an owner of contract "
        f"{corpus['contract']} ({', '.join(corpus['owners'])}). Review it with `adapterops corpus show "
        f"{corpus['version']}`, approve with `adapterops corpus approve {corpus['version']} --as NAME`, then run again.")
