"""What a registered adapter ships runs where AdapterOps is not installed: the shipped modules import no project
module (the built-in base is resolved by the caller, at the edge)."""

import ast

from tasks.serve.packaging import SHIPPED, pyfunc_model_args

PROJECT = ("adapterops", "cli", "flows", "tasks")


def project_imports(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        found |= {n for n in names if n.split(".")[0] in PROJECT}
    return found


def test_shipped_modules_import_nothing_of_the_project():
    assert {path.name: project_imports(path) for path in SHIPPED} == {path.name: set() for path in SHIPPED}


def test_the_logged_model_ships_those_modules_and_names_its_base_by_reference(tiny_model_dir):
    args = pyfunc_model_args("tiny-llama", str(tiny_model_dir), "sha256:abc", True, "{prompt}")
    assert [p.rsplit("/", 1)[-1] for p in args["code_paths"]] == [p.name for p in SHIPPED]
    assert args["model_config"]["serving.base_source"] == "builtin"
    assert str(tiny_model_dir) not in str(args["model_config"])          # never a machine's path
