"""Imports go down the layers only: the ground (adapterops/) imports no task, flow or command; a task imports no
flow or command; a flow imports no command. Flows and commands reach a stage through its face (`tasks.<stage>`)."""

from tests.project_imports import ROOT, imported_names, module_files

LAYERS = {"adapterops": 0, "tasks": 1, "flows": 2, "cli": 3}
NAMES = {0: "ground", 1: "tasks", 2: "flows", 3: "command line"}


def layer(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def wrong_way_imports(root=ROOT) -> list[str]:
    """`module (layer) imports target (layer)` for every import of a higher layer."""
    files = module_files(root)
    found = set()
    for name, path in files.items():
        for target in imported_names(path):
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and layer(target) > layer(name):
                found.add(f"{name} ({NAMES[layer(name)]}) imports {target} ({NAMES[layer(target)]})")
    return sorted(found)


def stage_internals_imported(root=ROOT) -> list[str]:
    """Imports of a stage's inner module (`tasks.evaluate.run`) by a flow or a command, instead of its face."""
    files = module_files(root)
    found = set()
    for name, path in files.items():
        if layer(name) < 2:
            continue
        for target in imported_names(path):
            parts = target.split(".")
            if parts[0] == "tasks" and len(parts) > 2 and ".".join(parts[:3]) in files:
                found.add(f"{name} imports {'.'.join(parts[:3])}; import it from {'.'.join(parts[:2])}")
    return sorted(found)


def _project(tmp_path, files: dict[str, str]):
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


def test_a_wrong_way_import_is_found_late_imports_included(tmp_path):
    root = _project(tmp_path, {"adapterops/__init__.py": "", "adapterops/config.py": "def load():\n    import tasks.x\n",
                               "tasks/__init__.py": "", "tasks/x.py": "from flows.f import run\n",
                               "flows/__init__.py": "", "flows/f.py": "from cli.main import app\n",
                               "cli/__init__.py": "", "cli/main.py": "import tasks.x\n"})
    assert wrong_way_imports(root) == ["adapterops.config (ground) imports tasks.x (tasks)",
                                       "flows.f (flows) imports cli.main (command line)",
                                       "tasks.x (tasks) imports flows.f (flows)"]


def test_a_flow_importing_a_stage_internal_is_found(tmp_path):
    root = _project(tmp_path, {"tasks/__init__.py": "", "tasks/s/__init__.py": "from tasks.s.m import f\n",
                               "tasks/s/m.py": "def f(): pass\n", "flows/__init__.py": "",
                               "flows/ok.py": "from tasks.s import f\n", "flows/bad.py": "from tasks.s.m import f\n"})
    assert stage_internals_imported(root) == ["flows.bad imports tasks.s.m; import it from tasks.s"]


def test_the_project_imports_down_the_layers():
    assert wrong_way_imports() == []


def test_flows_and_commands_use_stage_faces():
    assert stage_internals_imported() == []


def test_no_module_sits_directly_under_tasks():
    assert sorted(p.name for p in (ROOT / "tasks").glob("*.py")) == ["__init__.py"]
