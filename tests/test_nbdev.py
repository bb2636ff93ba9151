"""The nbdev side: inline tests pass, the exported package and cleaned notebooks match what is committed,
and the papermill parameters survive nbdev-clean."""
import ast
import json
import subprocess

import pytest

from conftest import ROOT, NBS, subprocess_env, tracked_copy, RECIPE_NOTEBOOKS


def test_nbdev_test_runs_inline_tests():
    "nbdev-test over every notebook (recipes are skipped there: papermill runs them with their smoke preset)."
    proc = subprocess.run(["nbdev-test", "--n-workers", "2", "--timing"], cwd=ROOT, capture_output=True, text=True,
                          env=subprocess_env(threads=1))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]


def test_export_and_clean_change_nothing(tmp_path):
    "nbdev-export and nbdev-clean on a copy of the tracked files reproduce them byte for byte."
    files = tracked_copy(tmp_path)
    for cmd in ("nbdev-export", "nbdev-clean"):
        proc = subprocess.run([cmd], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    changed = [f for f in files if f.startswith(("ftrecipes/", "nbs/")) and (ROOT/f).is_file()
               and (tmp_path/f).read_bytes() != (ROOT/f).read_bytes()]
    new = [str(p.relative_to(tmp_path)) for p in (tmp_path/"ftrecipes").rglob("*.py")
           if str(p.relative_to(tmp_path)) not in files]
    assert not changed and not new, f"run nbdev-export and nbdev-clean, then commit: changed {changed}, new {new}"


@pytest.mark.parametrize("nb", RECIPE_NOTEBOOKS)
def test_recipe_has_one_parameters_cell_that_survives_clean(nb):
    cells = json.loads((NBS/nb).read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb}: expected one cell tagged `parameters`, found {len(tagged)}"
    src = "".join(tagged[0]["source"])
    tree = ast.parse(src)
    assert all(isinstance(n, ast.Assign) and isinstance(n.value, (ast.Constant, ast.UnaryOp)) for n in tree.body), \
        f"{nb}: the parameters cell must hold plain literals only"
    names = [n.targets[0].id for n in tree.body]
    assert names[0] == "preset" and "output_dir" in names


def test_no_module_over_400_lines():
    "One job per module keeps each one readable: none of the exported modules runs over 400 lines."
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT/"ftrecipes").glob("*.py") if p.name != "_modidx.py"}
    assert {name: n for name, n in sizes.items() if n > 400} == {}


def imported_modules(tree) -> set:
    "The ftrecipes modules a module's code imports, in any form: `from .x`, `from ftrecipes.x`, `from ftrecipes import x`, `import ftrecipes.x`, `import_module('ftrecipes.x')`."
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in (None, "ftrecipes") and (node.level or node.module):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.level or node.module.startswith("ftrecipes.")):
            found.add(node.module.removeprefix("ftrecipes."))
        elif isinstance(node, ast.Import): found |= {a.name.removeprefix("ftrecipes.") for a in node.names if a.name.startswith("ftrecipes.")}
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("ftrecipes.")):
            found.add(node.args[0].value.removeprefix("ftrecipes."))
    return found


def test_imported_modules_sees_every_form_of_import():
    code = ("from .data import x\nfrom ftrecipes.metrics import y\nfrom ftrecipes import experiments\n"
            "import ftrecipes.saving\nimport importlib\nimportlib.import_module('ftrecipes.deployment')\nimport json")
    assert imported_modules(ast.parse(code)) == {"data", "metrics", "experiments", "saving", "deployment"}


def test_modules_import_only_below_them_and_no_task_imports_another():
    "The layers of CONTRIBUTING.md: a module imports only modules of its notebook's number or lower; no task imports a task."
    number = {}
    for nb in NBS.glob("*.ipynb"):
        exp = next((l.split()[-1] for c in json.loads(nb.read_text())["cells"] for l in "".join(c["source"]).splitlines()
                    if l.startswith("#| default_exp ")), None)
        if exp: number[exp] = int(nb.name.split("_")[0])
    wrong = []
    for mod, n in number.items():
        for dep in imported_modules(ast.parse((ROOT/"ftrecipes"/f"{mod}.py").read_text())):
            if dep in number and (number[dep] > n or (10 <= n < 20 and 10 <= number[dep] < 20 and dep != mod)):
                wrong.append(f"{mod} ({n:02d}) imports {dep} ({number[dep]:02d})")
    assert wrong == []
