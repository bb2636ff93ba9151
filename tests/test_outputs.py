"""The committed notebook outputs (what the site and GitHub show) hold the lesson, not log noise.

Reads the committed notebooks, runs nothing: no stderr stream (warnings, library logs), no transformers load report, no
progress bar (a tqdm line such as `Map:  0%|   | 0/10`, or a Jupyter progress widget, whose state is not stored, so it
shows frozen at 0%). The Trainer's own progress table (HTML) and printed summaries are fine."""
import json
import re
import tempfile
from pathlib import Path

import pytest

from conftest import NBS

TQDM_LINE = re.compile(r"\d+%\|.*\|\s*\d+/\d+")  # `Map:   0%|          | 0/180 [00:00<?, ?it/s]`
WIDGET = "application/vnd.jupyter.widget-view+json"


def output_text(out) -> str:
    "The text an output shows: a stream's text, an error's traceback, every text/* representation."
    text = "".join(out.get("text", "")) + "\n".join(out.get("traceback", []))
    return text + "".join("".join(v) for m, v in out.get("data", {}).items() if m.startswith("text/"))


def noise(nb_path) -> list:
    "`cell id: what` for each noisy output of the notebook."
    found = []
    for cell in json.loads(nb_path.read_text())["cells"]:
        for out in cell.get("outputs", []):
            where, text = cell.get("id", "?"), output_text(out)
            if out["output_type"] == "stream" and out["name"] == "stderr":
                found.append(f"{where}: stderr {text.strip()[:120]!r}")
            if "LOAD REPORT" in text: found.append(f"{where}: a transformers load report")
            if WIDGET in out.get("data", {}): found.append(f"{where}: a progress widget ({text.strip()[:60]!r})")
            elif TQDM_LINE.search(text): found.append(f"{where}: a progress bar {TQDM_LINE.search(text)[0][:60]!r}")
    return found


def test_noise_finder_sees_each_kind():
    "The checks above match what a noisy run stores (so that the test below can fail)."
    cells = [{"id": "a", "outputs": [{"output_type": "stream", "name": "stderr", "text": "UserWarning: x\n"}]},
             {"id": "b", "outputs": [{"output_type": "stream", "name": "stdout",
                                      "text": "[transformers] BertModel LOAD REPORT from: x\n"}]},
             {"id": "c", "outputs": [{"output_type": "display_data", "metadata": {}, "data": {
                 WIDGET: {"model_id": "1"}, "text/plain": "Map:   0%|          | 0/10 [00:00<?, ?it/s]"}}]},
             {"id": "d", "outputs": [{"output_type": "stream", "name": "stdout",
                                      "text": "Filter: 100%|##########| 10/10 [00:00<00:00, 99.0 examples/s]\n"}]},
             {"id": "e", "outputs": [{"output_type": "stream", "name": "stdout", "text": "accuracy 90%| macro-F1\n"}]}]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)/"nb.ipynb"
        p.write_text(json.dumps({"cells": cells}))
        assert [n.split(":")[0] for n in noise(p)] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("nb", sorted(p.name for p in NBS.glob("*.ipynb")))
def test_committed_outputs_hold_no_log_noise(nb):
    found = noise(NBS/nb)
    assert not found, (f"{nb}: rerun it with tools/run_notebooks.py (quiet library logs), or fix the cause:\n"
                       + "\n".join(found))
