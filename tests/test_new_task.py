"""Adding a task touches only its own files: a toy task's notebook, dropped into a copy of the repository and exported,
is a recipe everywhere the package looks (the command line, a run, the experiments, the results table, the site)."""
import json
import shutil
import subprocess
import sys

from conftest import ROOT, subprocess_env, tracked_copy

# the whole of the toy task: one notebook (its module is exported from it), numbered outside the recipes' 1x range
TOY = ROOT/"tests"/"data"/"30_topic.ipynb"


def _python(repo, code: str, timeout: int = 600) -> str:
    "Run `code` with the copy's package first on the path; return its stdout (or fail with its stderr)."
    env = dict(subprocess_env(threads=1), PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def test_an_eighth_task_needs_only_its_own_notebook(tmp_path):
    repo = tmp_path/"repo"
    files = tracked_copy(repo)
    shutil.copy(TOY, repo/"nbs"/TOY.name)
    proc = subprocess.run(["nbdev-export"], cwd=repo, capture_output=True, text=True, env=dict(subprocess_env(), PYTHONPATH=str(repo)))
    assert proc.returncode == 0, proc.stderr[-4000:]
    changed = [f for f in files if (repo/f).is_file() and (ROOT/f).is_file() and (repo/f).read_bytes() != (ROOT/f).read_bytes()]
    assert changed == ["ftrecipes/_modidx.py"], f"adding a task changed files beyond its own (and nbdev's index): {changed}"
    assert (repo/"ftrecipes"/"topic.py").exists()

    listed = _python(repo, "from ftrecipes.cli import list_recipes; print(list_recipes())")
    assert "\ntopic\n" in listed and "label_column" in listed.split("\ntopic\n")[1]

    out = tmp_path/"run"
    _python(repo, f"import sys; from ftrecipes.cli import main; sys.exit(main(['run', 'topic', '-p', 'preset=smoke', '-o', {str(out)!r}, '-q']))")
    results = json.loads((out/"results.json").read_text())
    assert results["task"] == "topic" and 0 <= results["metrics"]["test"]["accuracy"] <= 100
    assert results["reload_check"]["outputs"], "the saved model reloads through its pipeline"

    found = _python(repo, "from ftrecipes.experiments import headline; from ftrecipes.recipes import results_table, recipes\n"
                          f"print(headline('topic')); print(list(recipes())[-1]); print(results_table({str(out)!r}).iloc[0]['task'])\n"
                          "import sys; sys.path.insert(0, 'tools'); import build_site\n"
                          "print(dict(build_site.sidebar_entries({n: 1 for n in build_site.RECIPE_NOTEBOOKS}))['Recipes'][-1])")
    assert found.split("\n")[:4] == ["('accuracy', 'maximize')", "topic", "topic", "30_topic.ipynb"], found
