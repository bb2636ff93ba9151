"""The command line: list, run, errors. Bad input stops before training with one clear line."""
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import subprocess_env


def _ftr(cmd, *args, threads=1):
    return subprocess.run([cmd, *args], capture_output=True, text=True, env=subprocess_env(threads))


def test_list_shows_recipes_and_parameters(ftrecipes_cmd):
    proc = _ftr(ftrecipes_cmd, "list")
    assert proc.returncode == 0, proc.stderr
    assert "sentiment" in proc.stdout and "learning_rate" in proc.stdout and "bert-base-cased" in proc.stdout


def test_run_smoke_then_reload_in_a_new_process(ftrecipes_cmd, tmp_path):
    out = tmp_path/"run"
    proc = _ftr(ftrecipes_cmd, "run", "sentiment", "-p", "preset=smoke", "-o", str(out), "-q", threads=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test: accuracy" in proc.stdout and "saved model:" in proc.stdout
    results = json.loads((out/"results.json").read_text())
    assert (out/"sentiment.ipynb").exists(), "the executed notebook is kept next to the results"
    code = ("import sys; from transformers import pipeline; "
            "print(pipeline('text-classification', model=sys.argv[1])(['Loved it.', 'Awful.']))")
    check = subprocess.run([sys.executable, "-c", code, results["saved_model"]], capture_output=True, text=True,
                           env=subprocess_env())
    assert check.returncode == 0 and ("positive" in check.stdout or "negative" in check.stdout), check.stderr[-2000:]
    # The same folder again: the finished run is kept, the new one is numbered.
    again = _ftr(ftrecipes_cmd, "run", "sentiment", "-p", "preset=smoke", "-p", "epochs=1", "-o", str(out), "-q", threads=2)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out/"results.json").read_text())["created"] == results["created"]
    assert (tmp_path/"run-2"/"results.json").exists()


def test_unknown_parameter_and_wrong_type_fail_before_the_kernel(ftrecipes_cmd):
    proc = _ftr(ftrecipes_cmd, "run", "sentiment", "-p", "epoch=3")
    assert proc.returncode == 1 and "no parameter 'epoch'" in proc.stderr, proc.stderr
    proc = _ftr(ftrecipes_cmd, "run", "sentiment", "-p", "batch_size='big'")
    assert proc.returncode == 1 and "expected a int" in proc.stderr, proc.stderr


def _bad_inputs(tmp_path):
    no_text = tmp_path/"no_text.csv"
    no_text.write_text("review,label\nGreat film,positive\nDull film,negative\n" * 10)
    empty_split = tmp_path/"empty_split"
    empty_split.mkdir()
    (empty_split/"train.csv").write_text("text,label\nGreat film,positive\nDull film,negative\n" * 10)
    (empty_split/"test.csv").write_text("text,label\n")
    bad_label = tmp_path/"bad_label.csv"
    bad_label.write_text("text,label\n" + "Great film,positive\nDull film,negative\n" * 10 + "Odd film,neutral\n")
    smoke = ["-p", "preset=smoke"]
    return {
        "csv without a text column": (smoke + ["-p", f"data={no_text}"], "no column 'text' (parameter text_column)"),
        "an empty split": (smoke + ["-p", f"data={empty_split}"], "no data rows"),
        "a label outside the label set": (smoke + ["-p", f"data={bad_label}", "-p", "label_names=['negative', 'positive']"],
                                          "row 21: label 'neutral' in 'label' is not one of the classes"),
        "a Hub id while offline": (["-p", "preset=published", "-p", "model=tiny:bert"],
                                   "looks like a Hub dataset id, but the Hub is unreachable"),
        "a Hub model id while offline": (["-p", "preset=published", "-p", "data=sample:sentiment", "-p", "text_column=text"],
                                         "looks like a Hub model id, but the Hub is unreachable"),
        "a path that does not exist": (smoke + ["-p", "data=./no/such/reviews.csv"], "No such file or folder"),
        "a model folder that does not exist": (smoke + ["-p", "model=./no/such/model"], "No such model folder"),
    }


def test_bad_input_stops_before_training_with_one_clear_line(ftrecipes_cmd, tmp_path):
    cases = _bad_inputs(tmp_path)
    def run(item):
        i, (name, (args, expected)) = item
        out = tmp_path/f"out{i}"
        return name, expected, out, _ftr(ftrecipes_cmd, "run", "sentiment", *args, "-o", str(out), "-q")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, enumerate(cases.items())))
    for name, expected, out, proc in results:
        assert proc.returncode == 1, f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and expected in lines[0], f"{name}: expected one line with {expected!r}, got:\n{proc.stderr}"
        assert not (out/"checkpoints").exists() and not (out/"results.json").exists(), f"{name}: training started"


def test_token_level_bad_input_names_the_example_before_training(ftrecipes_cmd, tmp_path):
    "A wrong answer_start names the question's id; a tag outside the label set names the sentence and word."
    qa = tmp_path/"qa.jsonl"
    rows = [dict(id=f"q{i}", question="Who met Bob?", context="Ann met Bob in Paris.",
                 answers=dict(text=["Ann"], answer_start=[0])) for i in range(20)]
    rows[13]["answers"]["answer_start"] = [4]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ner = tmp_path/"ner.conll"
    ner.write_text("Ann B-PER\nmet O\nBob B-PER\n\n" * 10 + "Paris B-CITY\n\n")
    cases = [("question_answering", qa, "example id 'q13': answer_start 4 does not point at the answer 'Ann'"),
             ("ner", ner, "row 11, word 1 ('Paris'): tag 'B-CITY' is not one of"),]
    for task, data, expected in cases:
        out = tmp_path/f"out-{task}"
        proc = _ftr(ftrecipes_cmd, "run", task, "-p", "preset=smoke", "-p", f"data={data}", "-p",
                    "label_names=['O', 'B-PER', 'I-PER']" if task == "ner" else "seed=1", "-o", str(out), "-q")
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert proc.returncode == 1 and len(lines) == 1 and expected in lines[0], f"{task}: {proc.stderr[-2000:]}"
        assert not (out/"checkpoints").exists(), f"{task}: training started"


def test_seq2seq_bad_input_names_the_row_before_training(ftrecipes_cmd, tmp_path):
    "An empty target, a missing language key, a missing language column: one line each, before training."
    empty = tmp_path/"empty.tsv"
    empty.write_text("en\tes\n" + "Good morning.\tBuenos días.\n" * 12 + "Thank you.\t \n")
    no_key = tmp_path/"no_key.jsonl"
    no_key.write_text("".join(json.dumps({"translation": {"en": "Hello.", "es": "Hola."}}) + "\n" for _ in range(12))
                      + json.dumps({"translation": {"en": "Bye.", "fr": "Au revoir."}}) + "\n")
    no_summary = tmp_path/"docs.jsonl"
    no_summary.write_text("".join(json.dumps({"document": "A long text. It goes on.", "summary": "Short."}) + "\n" for _ in range(12))
                          + json.dumps({"document": "Another text.", "summary": ""}) + "\n")
    cases = [("translation", empty, [], "row 13: the 'es' text is empty"),
             ("translation", no_key, [], "row 13: no 'es' text in 'translation' (keys: ['en', 'fr'])"),
             ("translation", empty, ["-p", "target_lang=de"], "no column 'translation' of language pairs and no column 'de'"),
             ("summarization", no_summary, [], "row 13: the 'summary' text is empty")]
    for i, (task, data, extra, expected) in enumerate(cases):
        out = tmp_path/f"out{i}"
        proc = _ftr(ftrecipes_cmd, "run", task, "-p", "preset=smoke", "-p", f"data={data}", *extra, "-o", str(out), "-q")
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert proc.returncode == 1 and len(lines) == 1 and expected in lines[0], f"{task} {data.name}: {proc.stderr[-2000:]}"
        assert not (out/"checkpoints").exists(), f"{task}: training started"


def test_a_loss_that_becomes_nan_stops_the_run_at_once_with_the_step_and_the_cause(ftrecipes_cmd, tmp_path):
    "A learning rate of 1e30 overflows the weights within steps: the run stops there, not after every epoch trained on NaN."
    out = tmp_path/"run"
    proc = _ftr(ftrecipes_cmd, "run", "sentiment", "-p", "preset=smoke", "-p", "learning_rate=1e30", "-o", str(out), "-q")
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    found = re.search(r"NonFiniteLossError: step (\d+): the training loss is (nan|inf)", line)
    assert found and "learning rate too high" in line, line
    assert int(found.group(1)) <= 8, f"stopped at step {found.group(1)} of 80 (logged every 2; warm-up first)"
    assert not (out/"results.json").exists() and not (out/"model").exists()
