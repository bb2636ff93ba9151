"""Every results.json has the shape `ftrecipes.saving.RunResults` declares: its common keys, then the recipe's own.

A recipe names its own keys where it calls `run_results`; nothing else in its notebook adds to, or builds, the
results. The committed summaries (nbs/results/) read only declared keys, and one smoke run writes exactly the
declared keys, in the declared order.
"""
import ast
import inspect
import json
from dataclasses import fields

import pytest

from ftrecipes.recipes import SUMMARY_KEYS, ENVIRONMENT_KEYS, recipes, recipe
from ftrecipes.runner import run_recipe
from ftrecipes.saving import RunResults, run_results
from conftest import NBS

COMMON = [f.name for f in fields(RunResults) if f.name not in ("extra", "started")]
BUILDER_ARGS = [k for k, v in inspect.signature(run_results).parameters.items() if v.kind != v.VAR_KEYWORD]


def results_keys(own: list) -> list:
    "The keys of a finished run's results.json, in order, for a recipe whose own keys are `own`."
    i = [f.name for f in fields(RunResults) if f.name != "started"].index("extra")
    return COMMON[:i] + own + COMMON[i:]


def _code(nb_path) -> ast.Module:
    "The notebook's code cells as one module (a line of shell or magic read as `pass`)."
    cells = [c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code"]
    keep = lambda src: "\n".join(l[:len(l) - len(l.lstrip())] + "pass" if l.lstrip().startswith(("%", "!")) else l
                                 for l in src.splitlines())
    return ast.Module(body=[n for c in cells for n in ast.parse(keep("".join(c["source"]))).body], type_ignores=[])


def _dict_keys(node, assigned: dict) -> list:
    "Keys of a `dict(k=...)` call or `{'k': ...}` literal (either branch of `a if c else b`, or a name assigned one)."
    if isinstance(node, ast.IfExp): return _dict_keys(node.body, assigned) + _dict_keys(node.orelse, assigned)
    if isinstance(node, ast.Name) and node.id in assigned: return _dict_keys(assigned[node.id], assigned)
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict": return [k.arg for k in node.keywords]
    if isinstance(node, ast.Dict): return [k.value for k in node.keys if isinstance(k, ast.Constant)]
    raise AssertionError(f"run_results(**{ast.unparse(node)}): its keys cannot be read; name them as keywords")


def own_keys(tree: ast.Module) -> list:
    "The recipe's own results keys: the keywords of its one `run_results` call beyond the builder's, then `apart`'s."
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "run_results"]
    assert len(calls) == 1, f"{len(calls)} calls of run_results: a recipe builds its results once, with run_results"
    assigned = {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    own, apart = [], []
    for k in calls[0].keywords:
        if k.arg is None: own += _dict_keys(k.value, assigned)
        elif k.arg == "apart": apart = [e.value for e in k.value.elts]  # scores moved out of the metrics to keys of their own
        elif k.arg not in BUILDER_ARGS: own.append(k.arg)
    return own + apart


def _outside_functions(tree: ast.Module):
    "The nodes of the notebook's own statements, not those inside the functions and classes it defines."
    todo = list(tree.body)
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)): continue
        yield n
        todo += ast.iter_child_nodes(n)


def writes_beside_the_builder(tree: ast.Module) -> list:
    "The notebook's lines that build or change `results` other than through `run_results`, `save_run` and `done`."
    is_results = lambda n: isinstance(n, ast.Name) and n.id == "results"
    calls = lambda n, name: isinstance(n, ast.Call) and getattr(n.func, "id", None) == name
    bad = []
    for n in _outside_functions(tree):
        targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, ast.AugAssign) else []
        if any(is_results(t) for t in targets) and not calls(n.value, "run_results"): bad.append(n)    # results = dict(...)
        if any(isinstance(t, ast.Subscript) and is_results(t.value) for t in targets): bad.append(n)  # results["k"] = ...
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and is_results(n.func.value) \
                and n.func.attr in ("update", "setdefault", "pop", "__setitem__"): bad.append(n)
        if calls(n, "write_results"): bad.append(n)
    return [ast.unparse(n)[:120] for n in bad]


def baseline_names(tree: ast.Module) -> set:
    "The rows of the baselines the notebook passes to `run_results`: a dict literal, or a name assigned one and `name[key] = ...`."
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "run_results")
    arg = next((k.value for k in call.keywords if k.arg == "baselines"), None) or call.args[BUILDER_ARGS.index("baselines")]
    if isinstance(arg, ast.Dict): return {k.value for k in arg.keys}
    names = set()
    for n in ast.walk(tree):
        for t in n.targets if isinstance(n, ast.Assign) else []:
            if isinstance(t, ast.Name) and t.id == arg.id and isinstance(n.value, ast.Dict):
                names |= {k.value for k in n.value.keys if isinstance(k, ast.Constant)}
            if isinstance(t, ast.Subscript) and getattr(t.value, "id", None) == arg.id and isinstance(t.slice, ast.Constant):
                names.add(t.slice.value)
    return names


MODEL_ROW = "fine-tuned model"  # the classifiers show the model's own test scores in the same table


@pytest.mark.parametrize("task", list(recipes()))
def test_results_carry_the_baselines_the_record_declares(task):
    declared, found = set(recipe(task).baselines), baseline_names(_code(recipes()[task]))
    assert declared <= found, f"{task}: its record declares baselines its results lack: {declared - found}"
    assert found - declared <= {MODEL_ROW}, f"{task}: its results hold baselines its record does not declare: {found - declared}"


@pytest.mark.parametrize("task", list(recipes()))
def test_recipe_names_its_metric_class_once(task):
    "The metric class appears in the record only; the notebook loads it as `RECIPE.metric`."
    metric = recipe(task).metric
    if metric is None: return  # its score comes from the loss
    uses = [n for n in ast.walk(_code(recipes()[task])) if isinstance(n, ast.Name) and n.id == metric.__name__]
    assert len(uses) == 1, f"{task} names {metric.__name__} {len(uses)} times: use RECIPE.metric beside its record"


@pytest.mark.parametrize("task", list(recipes()))
def test_recipe_builds_its_results_with_the_one_builder(task):
    tree = _code(recipes()[task])
    own = own_keys(tree)
    assert not set(own) & set(COMMON), f"{task} passes common keys as its own: {set(own) & set(COMMON)}"
    assert len(own) == len(set(own)), f"{task} names an own key twice: {own}"
    assert not writes_beside_the_builder(tree), f"{task} changes its results beside run_results: {writes_beside_the_builder(tree)}"


def test_the_checks_catch_a_hand_built_or_extended_results():
    hand_built = ast.parse("results = dict(task='x', metrics={})\nwrite_results(out, results)")
    extended = ast.parse("results = run_results('x', 'y', p, env, s, t, m, b, pub, started, extra_key=1)\nresults['more'] = 2")
    with pytest.raises(AssertionError, match="0 calls of run_results"): own_keys(hand_built)
    assert len(writes_beside_the_builder(hand_built)) == 2
    assert own_keys(extended) == ["extra_key"] and writes_beside_the_builder(extended) == ["results['more'] = 2"]


@pytest.mark.parametrize("summary", sorted((NBS/"results").glob("*.json")), ids=lambda p: p.stem)
def test_committed_summaries_read_only_declared_keys(summary):
    assert set(SUMMARY_KEYS) <= set(COMMON), f"results_summary reads undeclared keys: {set(SUMMARY_KEYS) - set(COMMON)}"
    r = json.loads(summary.read_text())
    assert r["task"] in recipes(), f"{summary.name}: no recipe {r['task']!r}"
    assert list(r) == [*SUMMARY_KEYS, "environment", "metrics", "baselines", "training_wall_time_s"], f"{summary.name}: {list(r)}"
    assert set(r["environment"]) <= set(ENVIRONMENT_KEYS) and r["metrics"]["test"], summary.name


def test_a_smoke_run_writes_exactly_the_declared_keys(tmp_path):
    task = "sentiment"
    run_recipe(task, dict(preset="smoke"), tmp_path/"run", in_process=True)
    written = json.loads((tmp_path/"run"/"results.json").read_text())
    assert list(written) == results_keys(own_keys(_code(recipes()[task])))
    assert written["task"] == task and written["preset"] == "smoke" and written["reload_check"]["outputs"]
    assert set(recipe(task).baselines) <= set(written["baselines"]), written["baselines"]
    assert written["wall_time_s"] >= written["training"]["wall_time_s"]


@pytest.mark.parametrize("task", sorted(recipes()))
def test_the_committed_run_is_a_laptop_fine_tune_clear_of_every_baseline(task):
    "The committed run of every recipe (what the site shows) beats each baseline on each score with an interval, the 95% intervals apart."
    from ftrecipes.reading import MODEL_ROW, versus
    from ftrecipes.training import greater_is_better
    r = json.loads((NBS/"results"/f"{task}.json").read_text())
    assert r["preset"] == "laptop", f"{task}: the committed run is preset {r['preset']!r}"
    test = r["metrics"]["test"]
    verdicts = {(name, k[:-5]): versus(test, base, k[:-5], greater_is_better(k[:-5]))
                for name, base in r["baselines"].items() if name != MODEL_ROW
                for k in test if k.endswith("_ci95") and k in base}
    assert set(recipe(task).baselines) & {name for name, _ in verdicts}, f"{task}: no baseline scored with an interval: {r['baselines']}"
    behind = {k: v for k, v in verdicts.items() if not v.startswith("ahead, and")}
    assert not behind, f"{task}: not clear of a baseline: {behind}"
