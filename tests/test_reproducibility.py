"""Same seed, same data, same device: the same numbers.

Each recipe runs twice with its smoke preset, on the smoke suite's two warm worker processes (tests/notebook_runner.py,
one thread each). The two runs of a recipe are submitted one after the other, so they normally run side by side in the
two processes; each starts from a fresh IPython shell and seeds everything itself. The training loss, the number of
steps and every test metric must be equal to the last bit: any difference means some randomness escapes the seed (data
order, dropout, initialisation of a new head, sampling in evaluation). These are smoke runs on tiny models: they test
the machinery that makes runs repeatable, not the quality of a model."""
import json

import pytest

from conftest import NBS, RECIPE_NOTEBOOKS
from notebook_runner import run_all

RECIPES = RECIPE_NOTEBOOKS


def numbers(results: dict) -> dict:
    "What must repeat: every numeric test metric, the training loss and the optimizer steps."
    test = {f"test {k}": v for k, v in results["metrics"]["test"].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {**test, "train_loss": results["training"]["train_loss"], "global_step": results["training"]["global_step"]}


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    "Each recipe's smoke run, twice: {notebook: (first results, second results)}."
    out = tmp_path_factory.mktemp("twice")
    jobs = [(str(NBS/nb), str(out/f"{nb}.{i}.ipynb"), dict(preset="smoke", output_dir=str(out/f"{nb}.{i}")))
            for nb in RECIPES for i in (1, 2)]
    runs = run_all(jobs)
    for (nb, *_), run in zip(jobs, runs): assert run["ok"], f"{nb} failed:\n{run['log']}"
    return {nb: tuple(json.loads((out/f"{nb}.{i}"/"results.json").read_text()) for i in (1, 2)) for nb in RECIPES}


@pytest.mark.parametrize("nb", RECIPES)
def test_same_seed_gives_same_metrics(twice, nb):
    a, b = (numbers(r) for r in twice[nb])
    differ = {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    assert not differ, f"{nb}: two runs with the same seed on the same data and device differ: {differ}"
