"""The dependency picture: each package imports only from the layers below it.

    paths, atomic, argtypes  <-  data  <-  models, eval  <-  engine  <-  results, claims, viz, report, html_edition  <-  cli

(eval reads and scores detection files and needs only data; engine writes those files.)
No module imports upwards, engine does not import the command line, and no command module
(one with `add_arguments`) lives in models/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lsts_lib

PACKAGE = Path(lsts_lib.__file__).parent
LAYERS = {"paths": 0, "atomic": 0, "argtypes": 0, "data": 1, "models": 2, "eval": 2,
          "engine": 3, "results": 4, "claims": 4, "viz": 4, "report": 4, "html_edition": 4, "cli": 5, "__main__": 5,
          "__init__": 5}


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[1]]


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative: within the module's own package
                continue
            # `from lsts_lib import a, b` imports the modules a and b: check every name (and
            # the module itself, for `from lsts_lib.x import y`).
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            out += [n for n in names if n.startswith("lsts_lib.")]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("lsts_lib.")]
    return out


def test_every_imported_name_is_checked(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("from lsts_lib import paths, cli\nfrom lsts_lib.engine import rundir, plan\n")
    found = _imports(src)
    assert "lsts_lib.cli" in found and "lsts_lib.engine.plan" in found
    assert max(_layer(t) for t in found) == LAYERS["cli"]


def test_no_module_imports_a_higher_layer() -> None:
    back_edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts)
        if module == "lsts_lib.__init__" or module.count(".") == 0:
            continue
        for target in _imports(path):
            if target.count(".") >= 1 and target.split(".")[1] in LAYERS \
                    and _layer(target) > _layer(module):
                back_edges.append(f"{module} -> {target}")
    assert back_edges == []


def test_no_command_modules_in_models() -> None:
    commands = [p.name for p in (PACKAGE / "models").glob("*.py")
                if "def add_arguments(" in p.read_text()]
    assert commands == []
