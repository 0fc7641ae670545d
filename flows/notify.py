"""Events people are told about (waiting corpus, release, a watch alert) and the automations in
deployments/automations.yaml."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID, uuid5

from adapterops.refs import CorpusRef, ReleaseDecision, WatchResult
from adapterops.storage import read_yaml

AUTOMATIONS_FILE = Path(__file__).resolve().parents[1] / "deployments" / "automations.yaml"
WEBHOOK_BLOCK = "adapterops-webhook"
_EVENT_IDS = UUID("6f1c7f5e-2b7e-4b43-9d0c-0c3a51f1e2a4")   # namespace: a re-emitted event keeps its id


def emit_waiting(corpus: CorpusRef, flow_run_url: str, mlflow_url: str, owners: list[str], key: str) -> None:
    """`adapterops.corpus.waiting`: a version waits for one of `owners`; one event per run and form (`key`)."""
    from prefect.events import emit_event

    command = f"adapterops corpus approve {corpus.version} --name {corpus.pipeline} --as NAME --yes"
    emit_event(event="adapterops.corpus.waiting", id=uuid5(_EVENT_IDS, key),
               resource={"prefect.resource.id": f"adapterops.corpus.{corpus.pipeline}.v{corpus.version}",
                         "prefect.resource.name": f"{corpus.pipeline} corpus v{corpus.version}"},
               payload={"pipeline": corpus.pipeline, "version": corpus.version, "digest": corpus.digest,
                        "owners": ", ".join(owners), "prefect_url": flow_run_url, "mlflow_url": mlflow_url,
                        "command": command})


def emit_release(decision: ReleaseDecision, corpus: CorpusRef, mlflow_ui_url: str) -> None:
    """`adapterops.adapter.promoted` or `.held`, with the gate's reason."""
    from prefect.events import emit_event

    verdict = "promoted" if decision.promoted else "held"
    emit_event(event=f"adapterops.adapter.{verdict}",
               resource={"prefect.resource.id": f"adapterops.adapter.{decision.model_name}.v{decision.version}",
                         "prefect.resource.name": f"{decision.model_name} v{decision.version}"},
               payload={"model_name": decision.model_name, "version": str(decision.version),
                        "verdict": "promoted to production" if decision.promoted else "held at candidate",
                        "reason": decision.reason, "pipeline": corpus.pipeline,
                        "corpus_version": corpus.version,
                        "mlflow_url": f"{mlflow_ui_url.rstrip('/')}/#/models/{decision.model_name}/versions/"
                                      f"{decision.version}"})


def emit_watch_alert(result: WatchResult, mlflow_ui_url: str) -> None:
    """`adapterops.watch.alert`: a watch window tripped a threshold; the message names what and by how much."""
    from prefect.events import emit_event

    emit_event(event="adapterops.watch.alert",
               resource={"prefect.resource.id": f"adapterops.adapter.{result.model_name}.v{result.version}",
                         "prefect.resource.name": f"{result.model_name} v{result.version}"},
               payload={"model_name": result.model_name, "version": result.version, "pipeline": result.pipeline,
                        "message": result.message, "window_start": result.window_start,
                        "window_end": result.window_end, "conversations": str(result.conversations),
                        "mlflow_url": f"{mlflow_ui_url.rstrip('/')}/#/experiments?searchFilter="
                                      f"tags.stage%3D%27watch%27&runId={result.run_id or ''}"})


def declared_automations(block_document_id: UUID, path: Path = AUTOMATIONS_FILE) -> list:
    """The automations of the YAML file, each sending its notification through the given block."""
    from prefect.automations import Automation, EventTrigger, SendNotification

    declared = read_yaml(path, f"{path} does not exist; it ships with AdapterOps in deployments/.")["automations"]
    return [Automation(name=a["name"], description=a["description"],
                       trigger=EventTrigger(expect=set(a["events"]), match={"prefect.resource.id": a["resource"]},
                                            posture="Reactive", threshold=1),
                       actions=[SendNotification(block_document_id=block_document_id, subject=a["subject"],
                                                 body=a["body"])])
            for a in declared]


def setup_notifications(webhook_url: str, path: Path = AUTOMATIONS_FILE) -> list[str]:
    """Save the webhook block and create the declared automations, replacing those of the same name."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client

    block = CustomWebhookNotificationBlock(name="AdapterOps", url=webhook_url,
                                           json_data={"subject": "{{subject}}", "body": "{{body}}", "name": "{{name}}"})
    block_id = block.save(WEBHOOK_BLOCK, overwrite=True)
    automations = declared_automations(block_id, path)
    with get_client(sync_client=True) as client:
        for automation in automations:
            for existing in client.read_automations_by_name(automation.name):
                client.delete_automation(existing.id)
            automation.create()
    return [a.name for a in automations]
