"""The project's modules import one way (ground ← tasks ← flows ← CLI): no import circle, counted from the source,
package faces included (importing any module of a stage runs that stage's `__init__`)."""

from tests.project_imports import module_imports


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_circles_are_found_when_they_exist():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_a_circle_through_a_stage_face_is_found(tmp_path):
    """x.run imports y.util, whose package face imports y.api, which imports x.run: a circle at run time."""
    for path, text in {"tasks/__init__.py": "", "tasks/x/__init__.py": "", "tasks/x/run.py": "from tasks.y.util import f\n",
                       "tasks/y/__init__.py": "from tasks.y.api import g\n", "tasks/y/util.py": "def f(): pass\n",
                       "tasks/y/api.py": "from tasks.x.run import h\n"}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert circles(module_imports(tmp_path)) == [["tasks.x.run", "tasks.y", "tasks.y.api"]]


def test_the_project_has_no_import_circle():
    assert circles(module_imports()) == []
