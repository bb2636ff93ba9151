"""Every notebook in nbs/, executed by papermill, offline, two at a time with one thread each.

Recipe notebooks (nbs/1x_*.ipynb) run with their smoke preset: a tiny model on the bundled sample. These
runs test the machinery; tests/test_quality.py tests learning with real weights on real data.
A new notebook is picked up with no edit here."""
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import NBS, subprocess_env

NOTEBOOKS = sorted(p.name for p in NBS.glob("*.ipynb") if not p.name.startswith(("_", ".")))
RECIPES = [n for n in NOTEBOOKS if n[0] == "1"]


def _run(name, out_dir):
    cmd = [sys.executable, "-m", "papermill", str(NBS/name), str(out_dir/name), "--cwd", str(NBS), "--no-progress-bar"]
    if name in RECIPES:
        cmd += ["-p", "preset", "smoke", "-p", "output_dir", str(out_dir/name.removesuffix(".ipynb"))]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(threads=1))
    return dict(ok=proc.returncode == 0, log=proc.stderr[-4000:], seconds=time.perf_counter() - start,
                output_dir=out_dir/name.removesuffix(".ipynb"))


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    "Run every notebook once per session, two at a time (the suite's notebooks share its two cores)."
    out = tmp_path_factory.mktemp("executed")
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(NOTEBOOKS, pool.map(lambda n: _run(n, out), NOTEBOOKS)))
    print(f"\n{len(runs)} notebooks in {time.perf_counter() - start:.1f} s wall: "
          + ", ".join(f"{n} {r['seconds']:.1f}s" for n, r in runs.items()))
    return runs


def test_found_the_notebooks():
    assert "00_environment.ipynb" in NOTEBOOKS and "10_sentiment.ipynb" in RECIPES
    assert {"11_question_answering.ipynb", "12_ner.ipynb", "13_summarization.ipynb", "14_translation.ipynb",
            "15_text_generation.ipynb", "16_image_classification.ipynb"} <= set(RECIPES)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(executed, name):
    run = executed[name]
    assert run["ok"], f"{name} failed under papermill:\n{run['log']}"


@pytest.mark.parametrize("name", RECIPES)
def test_smoke_recipe_saves_reloadable_model_and_metrics(executed, name):
    run = executed[name]
    if not run["ok"]: pytest.fail(f"{name} did not execute")
    results = json.loads((run["output_dir"]/"results.json").read_text())
    for split in ("validation", "test"):
        assert results["metrics"][split], f"no {split} metrics in results.json"
    assert (run["output_dir"]/"model"/"config.json").exists()
    assert (run["output_dir"]/"model"/"README.md").exists(), "no model card"
    assert results["reload_check"]["outputs"], "the saved model was not reloaded and run"
    # Reload in a fresh process, with nothing from the notebook: the saved folder must stand alone. A task whose
    # pipeline transformers no longer ships (question answering) names the module that registers it.
    code = ("import sys, json, importlib; from transformers import pipeline; "
            "r = json.loads(sys.argv[1]); r.get('pipeline_import') and importlib.import_module(r['pipeline_import']); "
            "p = pipeline(r['pipeline_task'], model=r['saved_model']); print(json.dumps(p(r['input']), default=str))")
    args = dict(pipeline_task=results["pipeline_task"], pipeline_import=results.get("pipeline_import"),
                saved_model=results["saved_model"], input=results["reload_check"]["inputs"][0])
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) is not None


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
