"""The path Colab users take: every recipe's published setup (Hub ids for model and data) against a local stand-in of
the Hub (tests/hub_standin.py, repositories from tests/hub_repos.py), end to end, and the Hub's failures as a user meets them.

The stand-in starts on 127.0.0.1 and the runs reach it through `HF_ENDPOINT`, with their own `HF_HOME`; the offline
switches the rest of the suite sets are off for these runs only. The runs go to two warm worker processes (one thread
each), which import huggingface_hub after `HF_ENDPOINT` is set, as a Colab kernel does."""
import json
import os
from pathlib import Path
from unittest.mock import patch

import pytest

from hub_repos import build_hub, glue_sst2
from hub_standin import serve, write_commit
from notebook_runner import run_all, run_recipe_job
from ftrecipes.environment import OFFLINE_VARS, hub_reachable

# Each recipe's published setup with only its size limits lowered: the models and data are tiny, so are the counts.
PUBLISHED = {
    "sentiment": dict(max_train_samples=24),
    "question_answering": dict(max_train_samples=24, max_eval_samples=16),
    "ner": dict(max_train_samples=24),
    "summarization": dict(max_train_samples=16, max_eval_samples=8),
    "translation": dict(max_train_samples=16, max_eval_samples=8),
    "text_generation": dict(max_train_samples=16, max_eval_samples=8, max_steps=2),
    "image_classification": dict(max_steps=2),  # 4 images per class to train on: every class must keep some
}
# the rows of the split each published number is on (the recipe's PUBLISHED_RESULT), after the limits: the stand-in's
# other splits have other sizes, so a run that scores the wrong split shows it here
PUBLISHED_TEST_ROWS = {"sentiment": 24, "question_answering": 16, "ner": 24, "summarization": 6, "translation": 6,
                       "text_generation": 6, "image_classification": 20}
GATED_MODEL, GATED_DATA = "acme-corp/gated-encoder", "acme-corp/gated-reviews"
MISSING_MODEL, MISSING_DATA = "nobody/no-such-model", "nobody/no-such-data"
BAD_REVISION = "0" * 40


def hub_job(kind: str, *args) -> dict:
    "One job for a worker: a recipe run (`run_recipe_job`), or loading data at a revision (row counts per split, or the error)."
    if kind == "run": return run_recipe_job(*args)
    from ftrecipes.data import load_data
    try: return dict(ok=True, rows={k: len(v) for k, v in load_data(*args).items()})
    except Exception as e: return dict(ok=False, error=str(e))


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    "The stand-in, serving every repository the published setups name, plus an older SST-2 commit and gated repositories."
    root = tmp_path_factory.mktemp("hub")/"repos"
    shas = build_hub(root)
    shas["old sst2"] = shas["datasets", "nyu-mll/glue"]
    shas["datasets", "nyu-mll/glue"] = write_commit(root, "datasets", "nyu-mll/glue", glue_sst2(n_train=60))
    write_commit(root, "models", GATED_MODEL, {"config.json": b'{"model_type": "bert"}'}, gated=True)
    write_commit(root, "datasets", GATED_DATA, {"README.md": b"gated"}, gated=True)
    write_commit(root, "models", "acme-corp/big-file", {"weights.bin": os.urandom(300_000)})
    server, state, url = serve(root)
    yield dict(state=state, url=url, shas=shas, home=root.parent/"home")
    server.shutdown()


@pytest.fixture(scope="session")
def runs(hub, tmp_path_factory):
    "Every job, run once on two warm workers against the stand-in: name -> its outcome (and results.json for recipe runs)."
    out = tmp_path_factory.mktemp("runs")
    jobs = {task: ("run", task, dict(params, preset="published"), str(out/task), str(out)) for task, params in PUBLISHED.items()}
    jobs |= {
        "old revision": ("data", "nyu-mll/glue", "sst2", hub["shas"]["old sst2"]),
        "main revision": ("data", "nyu-mll/glue", "sst2", None),
        "bad revision": ("run", "sentiment", dict(preset="published", data_revision=BAD_REVISION), str(out/"bad"), str(out)),
        "gated model": ("run", "sentiment", dict(preset="published", model=GATED_MODEL), str(out/"gated-model"), str(out)),
        "gated data": ("run", "sentiment", dict(preset="published", data=GATED_DATA, data_config=None), str(out/"gated-data"), str(out)),
        "missing model": ("run", "sentiment", dict(preset="published", model=MISSING_MODEL), str(out/"missing-model"), str(out)),
        "missing data": ("run", "sentiment", dict(preset="published", data=MISSING_DATA, data_config=None), str(out/"missing-data"), str(out)),
    }
    online = dict(HF_ENDPOINT=hub["url"], HF_HOME=str(hub["home"]), HF_HUB_CACHE=str(hub["home"]/"hub"),
                  HF_DATASETS_CACHE=str(hub["home"]/"datasets"))
    with patch.dict(os.environ, online):
        for var in (*OFFLINE_VARS, "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"): os.environ.pop(var, None)  # a token would open the gated ones
        outcomes = run_all(list(jobs.values()), workers=2, job=hub_job)
    done = dict(zip(jobs, outcomes))
    for task in PUBLISHED:
        results = out/task/"results.json"
        if results.exists(): done[task]["results"] = json.loads(results.read_text())
    return done


@pytest.mark.parametrize("task", PUBLISHED)
def test_published_setup_runs_end_to_end_through_the_hub(runs, hub, task):
    "Download, train, score on the published split, save and reload, with the published model and data ids."
    from ftrecipes.recipes import recipe
    job = runs[task]
    assert job["ok"], job["error"]
    r, published = job["results"], recipe(task).published
    assert (r["preset"], r["data"], r["base_model"]) == ("published", published["data"], published["model"])
    assert r["split_sizes"]["test"] == PUBLISHED_TEST_ROWS[task], "scored on the published split, all its served rows"
    assert r["metrics"]["test"], "test scores"
    assert Path(r["saved_model"], "config.json").exists() and r["reload_check"], "saved, and the saved folder reloaded"
    downloaded = {path for method, path, _ in hub["state"].requests if method == "GET" and "/resolve/" in path}
    assert any(published["model"] in p for p in downloaded) and any(published["data"] in p for p in downloaded)


def test_sst2_hidden_test_labels_are_never_scored(runs):
    "GLUE's test labels are all -1: the recipe scores the validation split (the published one) and cuts selection from train."
    r = runs["sentiment"]["results"]
    assert r["split_sizes"]["test"] == 24 and r["split_sizes"]["train"] == 24 and 0 < r["split_sizes"]["validation"] < 24
    assert r["label_names"] == ["negative", "positive"]
    assert r["metrics"]["test"]["accuracy"] >= 0, "scored against real labels: -1 would fail the metric"


def test_squad_has_no_test_split_so_its_validation_split_is_scored(runs):
    "SQuAD ships train and validation only: test is the validation split (the published one), selection is cut from train."
    r = runs["question_answering"]["results"]
    assert r["split_sizes"]["test"] == 16 and 0 < r["split_sizes"]["validation"] < 16
    assert r["metrics"]["test"]["total"] == 16 and "NoAns_total" not in r["metrics"]["test"], "SQuAD 1.1: every question has an answer"


def test_data_revision_pins_a_commit_the_hub_serves(runs):
    assert runs["main revision"]["rows"]["train"] == 60
    assert runs["old revision"]["rows"] == {"train": 48, "validation": 24, "test": 30}


def test_a_wrong_revision_fails_naming_it(runs):
    job = runs["bad revision"]
    assert not job["ok"] and BAD_REVISION in job["error"] and "data_revision" in job["error"]


@pytest.mark.parametrize("case", ["gated model", "gated data", "missing model", "missing data"])
def test_gated_or_missing_repositories_tell_the_user_about_hf_token(runs, hub, case):
    job = runs[case]
    assert not job["ok"] and "HF_TOKEN" in job["error"], job["error"]
    repo = {"gated model": GATED_MODEL, "gated data": f"datasets/{GATED_DATA}"}.get(case)
    if repo: assert f"{hub['url']}/{repo}" in job["error"], "the page to ask for access, on the Hub HF_ENDPOINT names"


def test_an_interrupted_download_resumes(hub, tmp_path, monkeypatch):
    "The connection breaks after 100 kB: huggingface_hub asks for the rest with a Range request, and the file is whole."
    import huggingface_hub
    from huggingface_hub import hf_hub_download
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 50_000)  # written in 50 kB pieces (10 MB ones by default)
    hub["state"].cut_once["acme-corp/big-file/weights.bin"] = 100_000
    path = hf_hub_download("acme-corp/big-file", "weights.bin", endpoint=hub["url"], cache_dir=tmp_path)
    served = next(hub["state"].root.glob("models/acme-corp/big-file/*/weights.bin"))
    assert Path(path).read_bytes() == served.read_bytes()
    resumed = [r for r in hub["state"].requests if r[1].endswith("/weights.bin") and r[2] == "bytes=100000-"]
    assert [method for method, _, _ in resumed] == ["GET"], "one request for the rest of the file"


def test_hub_reachable_asks_the_endpoint_huggingface_hub_uses(hub, monkeypatch):
    "With HF_ENDPOINT set (a mirror, or this stand-in), the Hub is reachable when that host answers, whatever huggingface.co does."
    for var in OFFLINE_VARS: monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub["url"])
    assert hub_reachable(timeout=1)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert not hub_reachable(timeout=1)
