"""Label Studio through its official SDK: push a version's tasks into a project, pull every annotation back.

Push creates the project (with the labeling interface) or updates its interface, and adds only tasks whose
record digest the project does not hold yet: a second push adds nothing, a changed record is a new task.
Pull fetches every task, unlabeled ones included, in Label Studio's JSON export shape, with each
annotation's `completed_by` resolved to the annotator's e-mail (or username) through the API's users, so
the file reads like an export and curation applies it as one.

The server's URL comes from the project URL, LABEL_STUDIO_URL or the config; the API token only from
LABEL_STUDIO_API_KEY: neither is ever written into a labels file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from adapterops.errors import AdapterOpsError
from adapterops.progress import Progress

URL_ENV = "LABEL_STUDIO_URL"
TOKEN_ENV = "LABEL_STUDIO_API_KEY"
PUSH_BATCH = 500      # tasks per import request: progress per batch, no request of a whole large corpus
_PROJECT_URL = re.compile(r"^(?P<base>https?://[^/]+(?:/.*?)?)/projects/(?P<id>\d+)(?:/.*)?$")


@dataclass(frozen=True)
class ProjectRef:
    url: str | None        # the server, when the reference names it
    id: int | None         # an existing project
    title: str | None      # a project found, or created, by its title


def parse_project(value: str) -> ProjectRef:
    """`--project`: a project id (12), a project URL (http://host:8080/projects/12/...) or a title."""
    value = value.strip()
    if not value:
        raise AdapterOpsError("--project is empty; pass a project id, its URL, or a title for a new project.")
    if value.isdigit():
        return ProjectRef(None, int(value), None)
    if match := _PROJECT_URL.match(value):
        return ProjectRef(match["base"].rstrip("/"), int(match["id"]), None)
    if urlsplit(value).scheme in ("http", "https"):
        raise AdapterOpsError(f"--project {value!r} is a URL but not a project's: use http://HOST/projects/ID.")
    return ProjectRef(None, None, value)


def server(ref: ProjectRef, configured: str | None, environ=os.environ) -> tuple[str, str]:
    """(server URL, API token): the URL from the project URL, LABEL_STUDIO_URL or the config; the token from the environment."""
    url = ref.url or environ.get(URL_ENV) or configured
    if not url:
        raise AdapterOpsError(f"No Label Studio server: pass --project as its URL (http://HOST/projects/ID), set "
                              f"{URL_ENV}, or set labeling.label_studio_url in the config.")
    token = environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise AdapterOpsError(f"Set {TOKEN_ENV} to your Label Studio access token (Account & Settings → "
                              "Access Token); it is read from the environment only.")
    return url.rstrip("/"), token


def new_tasks(tasks: list[dict], held_digests: set[str]) -> list[dict]:
    """The tasks whose record digest the project does not hold yet (each digest once)."""
    seen, fresh = set(held_digests), []
    for task in tasks:
        digest = task["data"]["record_digest"]
        if digest not in seen:
            seen.add(digest)
            fresh.append(task)
    return fresh


def user_names(users: list[dict]) -> dict[int, str]:
    """user id → e-mail, else username, as Label Studio's users list gives them."""
    return {int(u["id"]): str(u.get("email") or u.get("username") or u["id"]) for u in users if u.get("id") is not None}


def resolve_annotators(tasks: list[dict], names: dict[int, str]) -> list[dict]:
    """The export with each annotation's `completed_by` as {id, email}; a numeric id stays only when no user matches."""
    resolved = []
    for task in tasks:
        annotations = []
        for annotation in task.get("annotations") or []:
            who = annotation.get("completed_by")
            user_id = who.get("id") if isinstance(who, dict) else who
            if isinstance(user_id, int) and user_id in names:
                annotation = annotation | {"completed_by": {"id": user_id, "email": names[user_id]}}
            annotations.append(annotation)
        resolved.append(task | {"annotations": annotations})
    return resolved


# --- wrappers: talk to the server --------------------------------------------------------------------

def connect(url: str, token: str):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=url, api_key=token)


def _call(what: str, url: str, function, *args, **kwargs):
    """One API call; a failure names the server and what to check, without a traceback."""
    from label_studio_sdk.core.api_error import ApiError

    try:
        return function(*args, **kwargs)
    except ApiError as error:
        hint = {401: f"check {TOKEN_ENV}", 403: "the token's user may not do this", 404: "check --project"}
        raise AdapterOpsError(f"Label Studio at {url}: {what} failed ({error.status_code}: "
                              f"{str(error.body)[:200]}); {hint.get(error.status_code, 'check the server')}.") from None
    except (httpx.TransportError, OSError) as error:
        raise AdapterOpsError(f"Label Studio at {url} did not answer ({error}); check the URL and that it runs.") from None


def find_project(client, url: str, ref: ProjectRef):
    """The project the reference names, or None when a title names none."""
    if ref.id is not None:
        return _call(f"reading project {ref.id}", url, client.projects.get, id=ref.id)
    matches = [p for p in _call("listing projects", url, lambda: list(client.projects.list())) if p.title == ref.title]
    if len(matches) > 1:
        raise AdapterOpsError(f"{len(matches)} Label Studio projects are titled {ref.title!r}; pass --project as an id.")
    return matches[0] if matches else None


def push_tasks(client, url: str, ref: ProjectRef, tasks: list[dict], interface: str) -> dict:
    """Create the project (or update its interface) and add the tasks it does not hold yet."""
    project = find_project(client, url, ref)
    created = project is None
    if created:
        project = _call("creating the project", url, client.projects.create, title=ref.title, label_config=interface)
    elif project.label_config != interface:
        _call("updating the labeling interface", url, client.projects.update, id=project.id, label_config=interface)
    held = {str((t.data or {}).get("record_digest")) for t in
            _call("listing tasks", url, lambda: list(client.tasks.list(project=project.id)))}
    fresh = new_tasks(tasks, held)
    progress = Progress(f"Label Studio: pushing tasks to {ref.title or project.title}", len(fresh), "tasks",
                        every_seconds=0)
    progress.update(0, f"{len(tasks) - len(fresh)} held already")
    for start in range(0, len(fresh), PUSH_BATCH):     # in batches: a long import reports as it goes
        part = fresh[start:start + PUSH_BATCH]
        _call("importing tasks", url, client.projects.import_tasks, project.id, request=part)
        progress.advance(len(part))
    return {"project": project.id, "title": project.title, "url": f"{url}/projects/{project.id}",
            "created": created, "added": len(fresh), "held": len(tasks) - len(fresh)}


def pull_tasks(client, url: str, ref: ProjectRef) -> list[dict]:
    """Every task of the project, unlabeled ones included, with every annotation and its annotator resolved."""
    project = find_project(client, url, ref)
    if project is None:
        raise AdapterOpsError(f"No Label Studio project titled {ref.title!r} at {url}; pass --project as an id or URL.")
    pulled = Progress(f"Label Studio: pulling tasks of {project.title}", None, "bytes", every_seconds=5)

    def chunks():
        for chunk in client.projects.exports.download_sync(project.id, download_all_tasks=True, export_type="JSON"):
            pulled.advance(len(chunk))
            yield chunk

    pulled.update(0)
    raw = _call("exporting the tasks", url, lambda: b"".join(chunks()))
    tasks = json.loads(raw)
    Progress(f"Label Studio: pulled tasks of {project.title}", len(tasks), "tasks").update(len(tasks))
    users = _call("listing users", url, client.users.list)
    names = user_names([{"id": u.id, "email": u.email, "username": u.username} for u in users])
    return sorted(resolve_annotators(tasks, names), key=lambda t: t.get("id") or 0)
