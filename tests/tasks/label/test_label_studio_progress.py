"""Label Studio push and pull say how far they are: tasks pushed in batches with the total and an ETA, bytes pulled."""

import json
import logging
from types import SimpleNamespace

from tasks.label import label_studio
from tasks.label.label_studio import ProjectRef, pull_tasks, push_tasks


class FakeProjects:
    def __init__(self):
        self.imported, self.exports = [], self

    def list(self):
        return [SimpleNamespace(id=7, title="tickets", label_config="<View/>")]

    def import_tasks(self, project_id, request):
        self.imported.append(len(request))

    def download_sync(self, project_id, download_all_tasks, export_type):
        data = json.dumps([{"id": 1, "data": {}, "annotations": []}, {"id": 2, "data": {}, "annotations": []}]).encode()
        return [data[:10], data[10:]]


def fake_client():
    return SimpleNamespace(projects=FakeProjects(), tasks=SimpleNamespace(list=lambda project: []),
                           users=SimpleNamespace(list=lambda: []))


def test_push_goes_in_batches_and_reports_each(monkeypatch, caplog):
    monkeypatch.setattr(label_studio, "PUSH_BATCH", 4)
    client = fake_client()
    tasks = [{"data": {"record_digest": f"d{i}"}} for i in range(10)]
    with caplog.at_level(logging.INFO, logger="adapterops.progress"):
        result = push_tasks(client, "http://ls", ProjectRef(url=None, id=None, title="tickets"), tasks, "<View/>")
    assert result["added"] == 10 and client.projects.imported == [4, 4, 2]
    lines = [r.getMessage() for r in caplog.records if r.name == "adapterops.progress"]
    assert lines[0].startswith("Label Studio: pushing tasks to tickets: 0/10 tasks")
    assert [line.split(": ")[2].split(" ")[0] for line in lines[1:]] == ["4/10", "8/10", "10/10"]


def test_pull_reports_what_it_received(caplog):
    with caplog.at_level(logging.INFO, logger="adapterops.progress"):
        tasks = pull_tasks(fake_client(), "http://ls", ProjectRef(url=None, id=None, title="tickets"))
    assert [t["id"] for t in tasks] == [1, 2]
    lines = [r.getMessage() for r in caplog.records if r.name == "adapterops.progress"]
    assert lines[0].startswith("Label Studio: pulling tasks of tickets: 0 bytes")
    assert lines[-1].startswith("Label Studio: pulled tasks of tickets: 2/2 tasks (100%)")
