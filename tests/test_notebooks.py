"""The smoke suite: every notebook in nbs/ executed, offline, in two warm worker processes with one thread each
(tests/notebook_runner.py: the imports are paid once per worker, not once per notebook).

Recipe notebooks (nbs/1x_*.ipynb), and lessons whose parameters name a preset, run with the smoke preset: a tiny model. These runs test the
machinery; tests/test_quality.py tests learning with real weights on real data. A new notebook is picked up with no edit here."""
import json
import subprocess
import sys
import time

import pytest

from conftest import NBS, subprocess_env, RECIPE_NOTEBOOKS
from notebook_runner import run_all

NOTEBOOKS = sorted(p.name for p in NBS.glob("*.ipynb") if not p.name.startswith(("_", ".")))
RECIPES = RECIPE_NOTEBOOKS


def takes_preset(name: str) -> bool:
    "Does notebook `name` (a lesson that runs recipes, not a recipe) have a parameters cell with a `preset` and an `output_dir`?"
    cells = json.loads((NBS/name).read_text())["cells"]
    params = next(("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), "")
    return "preset =" in params and "output_dir =" in params


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    "Run every notebook once per session, two at a time (the suite's notebooks share its two cores)."
    out = tmp_path_factory.mktemp("executed")
    output_dirs = {n: out/n.removesuffix(".ipynb") for n in NOTEBOOKS}
    # notebooks that run whole recipes themselves (the experiments) take longest: they start first, the rest fill in
    order = sorted(NOTEBOOKS, key=lambda n: -(NBS/n).read_text().count("run_recipe("))
    jobs = [(str(NBS/n), str(out/n), dict(preset="smoke", output_dir=str(output_dirs[n])) if n in RECIPES or takes_preset(n) else None)
            for n in order]
    start = time.perf_counter()
    runs = dict(zip(order, run_all(jobs)))
    for n, r in runs.items(): r["output_dir"] = output_dirs[n]
    print(f"\n{len(runs)} notebooks in {time.perf_counter() - start:.1f} s wall: "
          + ", ".join(f"{n} {runs[n]['seconds']:.1f}s" for n in NOTEBOOKS))
    return runs


def test_found_the_notebooks():
    assert "00_environment.ipynb" in NOTEBOOKS and "10_sentiment.ipynb" in RECIPES
    assert {"11_question_answering.ipynb", "12_ner.ipynb", "13_summarization.ipynb", "14_translation.ipynb",
            "15_text_generation.ipynb", "16_image_classification.ipynb"} <= set(RECIPES)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(executed, name):
    run = executed[name]
    assert run["ok"], f"{name} failed:\n{run['log']}"


# Reload in a fresh process, with nothing from the notebooks: each saved folder must stand alone. A task whose pipeline
# transformers no longer ships (question answering) names the module that registers it. One process for every recipe.
RELOAD = """
import sys, json, importlib
from transformers import pipeline
for line in sys.stdin:
    r = json.loads(line)
    try:
        if r.get("pipeline_import"): importlib.import_module(r["pipeline_import"])
        out = pipeline(r["pipeline_task"], model=r["saved_model"])(r["input"])
        print(json.dumps(dict(name=r["name"], output=out), default=str), flush=True)
    except Exception as e:
        print(json.dumps(dict(name=r["name"], error=f"{type(e).__name__}: {e}")), flush=True)
"""


@pytest.fixture(scope="session")
def reloaded(executed):
    "name -> what the recipe's saved model, loaded by `pipeline` in a new process, answered (or the error)."
    jobs = []
    for name in RECIPES:
        if not executed[name]["ok"]: continue
        r = json.loads((executed[name]["output_dir"]/"results.json").read_text())
        jobs.append(dict(name=name, pipeline_task=r["pipeline_task"], pipeline_import=r.get("pipeline_import"),
                         saved_model=r["saved_model"], input=r["reload_check"]["inputs"][0]))
    proc = subprocess.run([sys.executable, "-c", RELOAD], input="\n".join(map(json.dumps, jobs)), capture_output=True,
                          text=True, env=subprocess_env())
    answers = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {a["name"]: a for a in answers} | dict(_stderr=proc.stderr[-3000:])


@pytest.mark.parametrize("name", RECIPES)
def test_smoke_recipe_saves_reloadable_model_and_metrics(executed, reloaded, name):
    run = executed[name]
    if not run["ok"]: pytest.fail(f"{name} did not execute")
    results = json.loads((run["output_dir"]/"results.json").read_text())
    for split in ("validation", "test"):
        assert results["metrics"][split], f"no {split} metrics in results.json"
    assert (run["output_dir"]/"model"/"config.json").exists()
    assert (run["output_dir"]/"model"/"README.md").exists(), "no model card"
    assert results["reload_check"]["outputs"], "the saved model was not reloaded and run"
    answer = reloaded.get(name)
    assert answer is not None, f"the reloading process never reached {name}: {reloaded['_stderr']}"
    assert "error" not in answer, answer["error"]
    assert answer["output"] is not None


def test_smoke_sentiment_learns_something_on_the_bundled_sample(executed):
    "A tiny model from scratch, seconds of training: it must beat always predicting one class."
    run = executed["10_sentiment.ipynb"]
    if not run["ok"]: pytest.fail("10_sentiment.ipynb did not execute")
    results = json.loads((run["output_dir"]/"results.json").read_text())
    majority = results["baselines"]["majority class"]["accuracy"]
    assert results["metrics"]["test"]["accuracy"] > majority, results["metrics"]


def test_smoke_ner_learns_something_on_the_bundled_sample(executed):
    "A tiny model from scratch, seconds of training: some entities found, more than the untrained model."
    run = executed["12_ner.ipynb"]
    if not run["ok"]: pytest.fail("12_ner.ipynb did not execute")
    results = json.loads((run["output_dir"]/"results.json").read_text())
    assert results["metrics"]["test"]["f1"] > results["baselines"]["before fine-tuning"]["f1"], results["metrics"]


def test_smoke_question_answering_scores_every_split(executed):
    run = executed["11_question_answering.ipynb"]
    if not run["ok"]: pytest.fail("11_question_answering.ipynb did not execute")
    results = json.loads((run["output_dir"]/"results.json").read_text())
    assert results["unanswerable_questions"], "the bundled sample has unanswerable questions: the v2 scores must run"
    for split in ("validation", "test"):
        m = results["metrics"][split]
        assert {"exact_match", "f1", "HasAns_f1", "NoAns_f1"} <= set(m) and 0 <= m["f1"] <= 100, m
    assert all(set(a) == {"answer", "score", "start", "end"} for a in results["reload_check"]["outputs"])


def test_smoke_text_generation_adapter_and_merged_model_agree_in_a_new_process(executed):
    "The LoRA adapter alone, loaded on its base with peft, predicts what the merged model loaded with AutoModelForCausalLM does."
    run = executed["15_text_generation.ipynb"]
    if not run["ok"]: pytest.fail("15_text_generation.ipynb did not execute")
    r = json.loads((run["output_dir"]/"results.json").read_text())
    assert r["finetuning"] == "lora" and r["saved_adapter"], r.get("finetuning")
    assert r["metrics"]["test"]["stopped"] >= 0 and "exact_match" in r["baselines"]["before fine-tuning"]
    code = ("import sys, torch; from transformers import AutoModelForCausalLM, AutoTokenizer; from peft import PeftModel; "
            "base, adapter, merged = sys.argv[1:4]; "
            "m = AutoModelForCausalLM.from_pretrained(merged).eval(); "
            "a = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval(); "
            "x = AutoTokenizer.from_pretrained(merged)('What day comes after Monday?', return_tensors='pt'); "
            "d = (m(**x).logits - a(**x).logits).abs().max().item(); print(d); assert d < 1e-3, d")
    proc = subprocess.run([sys.executable, "-c", code, r["model_path"], r["saved_adapter"], r["saved_model"]],
                          capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
