"""What a step did, shown in the Prefect UI as an artifact (and in logs when run outside a flow)."""

from __future__ import annotations

import logging

from adapterops.escaping import md_text, plain_text

log = logging.getLogger("adapterops")


def _in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def publish_table(key: str, title: str, rows: list[dict]) -> None:
    from prefect.artifacts import create_table_artifact

    if not _in_prefect_run():
        log.info("%s: %s", title, rows)
        return
    create_table_artifact(key=key, table=rows, description=title)


def publish_markdown(key: str, title: str, markdown: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    if not _in_prefect_run():
        log.info("%s\n%s", title, markdown)
        return
    # the title may name a pipeline or a model; the body is built by its caller with adapterops.escaping
    create_markdown_artifact(key=key, markdown=f"## {md_text(title)}\n\n{markdown}", description=plain_text(title))


def counts_rows(counts: dict) -> list[dict]:
    return [{"what": name, "records": value} for name, value in counts.items()]
