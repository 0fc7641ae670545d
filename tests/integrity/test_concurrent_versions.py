"""Curations of one pipeline published at once by separate processes all survive, numbered
distinctly and intact; identical content published at once is one version."""

import json
import time

from tests.integrity.procs_approval import finish, python

PROCESSES, EACH = 3, 2

CHILD = """
import json, time
from pathlib import Path
from tests.integrity.procs_approval import publish
import tasks.corpus.versions  # imports done before the start line, so the processes race on publishing itself
who, start, folder = {who!r}, Path({start!r}), Path({folder!r})
while not start.exists():
    time.sleep(0.005)
out = []
for i in range({each}):
    for tag in (f"{{who}}-{{i}}", f"shared-{{i}}"):
        r = publish("race", folder / who, tag)
        out.append([tag, r.version, r.digest, r.new])
print("RESULT " + json.dumps(out))
"""


def test_parallel_publishers_keep_every_version_intact(tmp_path):
    from adapterops.tracking import corpus_experiment, ensure_experiment
    from tasks.corpus.versions import list_versions, verified_digest

    ensure_experiment(corpus_experiment("race"))      # the store exists before the children race
    start = tmp_path / "start"
    children = [python(CHILD.format(who=f"p{n}", start=str(start), folder=str(tmp_path), each=EACH))
                for n in range(PROCESSES)]
    time.sleep(1)
    start.touch()
    published = []
    for child in children:
        code, output = finish(child, timeout=300)
        assert code == 0, output[-3000:]
        published += json.loads(output.split("RESULT ", 1)[1])

    by_tag = {}
    for tag, version, digest, _ in published:
        by_tag.setdefault(tag, set()).add((version, digest))
    assert all(len(seen) == 1 for seen in by_tag.values()), by_tag    # identical content: one version for all
    versions = list_versions("race")
    numbers = [int(r.data.tags["corpus.version"]) for r in versions]
    assert sorted(numbers) == list(range(1, PROCESSES * EACH + EACH + 1))     # distinct, none lost
    assert len({r.data.tags["corpus.digest"] for r in versions}) == len(versions)
    assert {v for seen in by_tag.values() for v, _ in seen} == set(numbers)
    for run in versions:
        assert verified_digest(run) == run.data.tags["corpus.digest"]           # every folder holds its own bytes
        assert run.info.status == "FINISHED"
    shared_new = [new for tag, _, _, new in published if tag.startswith("shared-")]
    assert shared_new.count(True) == EACH                                       # one writer per shared content
