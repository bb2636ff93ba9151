"""The after-deployment commands: `ftrecipes evaluate`, `predict`, `drift` and `feedback` on a saved smoke run, and their errors.

The run is the sentiment recipe's smoke preset (a tiny BERT on the bundled sample): these tests check machinery, not
learning. The commands run in this process (`cli.main`), so the libraries load once; one test runs the real `ftrecipes`
script to check the exit status a deployment pipeline reads."""
import json
import subprocess

import pytest

from conftest import subprocess_env
from ftrecipes.cli import main


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    "A sentiment smoke run's folder, made once for the module."
    from ftrecipes.runner import run_recipe
    out = tmp_path_factory.mktemp("deployed")/"sentiment"
    run_recipe("sentiment", dict(preset="smoke"), out, in_process=True)
    return out


def _cli(capsys, *args) -> tuple:
    "(exit status, stdout, stderr) of `ftrecipes ARGS` run in this process."
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_reproduces_the_recorded_test_score_and_writes_beside_the_run(smoke_run, capsys):
    code, out, err = _cli(capsys, "evaluate", smoke_run)
    assert code == 0, err
    recorded = json.loads((smoke_run/"results.json").read_text())["metrics"]["test"]["accuracy"]
    report = json.loads((smoke_run/"evaluation.json").read_text())
    assert report["scores"]["accuracy"] == pytest.approx(recorded)  # the saved model is the one that was measured
    assert "within noise of the recorded score" in out and "evaluation.json" in out
    code, out, err = _cli(capsys, "evaluate", smoke_run, "-p", "data=sample:sentiment")
    assert code == 0 and (smoke_run/"evaluation-2.json").is_file(), err  # never over the earlier report


def test_evaluate_gate_fails_below_a_score_with_status_3(smoke_run, capsys):
    code, out, err = _cli(capsys, "evaluate", smoke_run, "--fail-below", "101", "-o", smoke_run.parent/"gate.json")
    assert code == 3 and "below 101.00" in err, (out, err)
    code, out, err = _cli(capsys, "evaluate", smoke_run, "--fail-below", "recorded", "-o", smoke_run.parent/"gate2.json")
    assert code == 0, err


@pytest.mark.parametrize("args, message", [
    (["--fail-below", "high"], "score out of 100"),
    (["-p", "data=sample:sentiment", "-p", "text_column=body"], "no column 'body'"),
    (["-p", "data=nowhere.csv"], "No such file"),
    (["-p", "learning_rate=1e-3"], "not taken here"),
])
def test_evaluate_errors_are_one_line_before_any_scoring(smoke_run, capsys, args, message):
    code, out, err = _cli(capsys, "evaluate", smoke_run, *args)
    assert code == 1 and message in err and err.startswith("ftrecipes: error:"), (out, err)


def test_evaluate_rejects_a_folder_that_is_no_run_and_labels_the_model_never_saw(smoke_run, tmp_path, capsys):
    code, _, err = _cli(capsys, "evaluate", tmp_path)
    assert code == 1 and "neither a run folder" in err
    bad = tmp_path/"new.csv"
    bad.write_text("text,label\nGreat.,positive\nMeh.,neutral\n")
    code, _, err = _cli(capsys, "evaluate", smoke_run, "-p", f"data={bad}")
    assert code == 1 and "'neutral'" in err and "knows only the classes" in err, err


def test_predict_writes_one_line_per_input_and_never_overwrites(smoke_run, tmp_path, capsys):
    lines = tmp_path/"reviews.txt"
    lines.write_text("Loved it.\n\nThe screen cracked in a week.\n")
    code, out, err = _cli(capsys, "predict", smoke_run/"model", lines)
    assert code == 0, err
    rows = [json.loads(l) for l in (tmp_path/"reviews-predictions.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 3] and all(r["label"] in ("negative", "positive") for r in rows)
    code, _, err = _cli(capsys, "predict", smoke_run, lines, "-o", tmp_path/"reviews-predictions.jsonl")
    assert code == 1 and "exists" in err
    code, _, err = _cli(capsys, "predict", smoke_run, tmp_path/"missing.csv")
    assert code == 1 and "no such file" in err


def test_drift_flags_another_domain_and_not_the_same_one(smoke_run, capsys):
    code, out, err = _cli(capsys, "drift", smoke_run, "-p", "data=real:amazon_snippets")
    assert code == 0, err
    assert "large shift" in out and "differs from what the model was tested on" in out
    report = json.loads((smoke_run/"drift.json").read_text())
    assert {c["check"] for c in report["checks"]} >= {"length (tokens)", "predicted class", "confidence"}
    code, out, err = _cli(capsys, "drift", smoke_run, "-p", "data=sample:sentiment")
    assert code == 0 and "fair guide" in out, err
    code, _, err = _cli(capsys, "drift", smoke_run)
    assert code == 1 and "data=FILE" in err


def test_feedback_fine_tunes_from_the_saved_model_and_scores_both_test_sets(smoke_run, tmp_path, capsys):
    out_dir = tmp_path/"feedback"
    code, out, err = _cli(capsys, "feedback", smoke_run, "-p", "data=real:amazon_snippets", "-p", "label_column=valence",
                          "-p", "label_threshold=0", "-p", "epochs=1", "-p", "max_train_samples=200", "--replay", "0.5",
                          "-o", out_dir)
    assert code == 0, err
    report = json.loads((out_dir/"feedback.json").read_text())
    assert set(report["scores"]) == {"old test (sample:sentiment)", "new test (real:amazon_snippets)"}
    assert json.loads((out_dir/"run"/"results.json").read_text())["parameters"]["model"] == report["model_before"]
    assert "accuracy" in out and "->" in out
    code, _, err = _cli(capsys, "feedback", smoke_run, "-p", "data=real:amazon_snippets", "--replay", "1")
    assert code == 1 and "--replay 1.0" in err


def test_the_script_exits_3_when_the_gate_fails(ftrecipes_cmd, smoke_run, tmp_path):
    proc = subprocess.run([ftrecipes_cmd, "evaluate", str(smoke_run), "--fail-below", "101", "-o", str(tmp_path/"e.json")],
                          capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 3 and "below 101.00" in proc.stderr, proc.stderr[-2000:]
