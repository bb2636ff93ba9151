"""Several processes without code changes: recipes under torchrun with two CPU processes on the gloo backend, the code
path several GPUs take (DistributedDataParallel, one process per device). One recipe per kind of Trainer: an encoder
classifier, a seq2seq model that generates when it evaluates, a causal LM with a LoRA adapter saved beside the merged
model. Smoke size: they test the machinery."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import subprocess_env


@pytest.mark.parametrize("task", ["sentiment", "summarization", "text_generation"])
def test_smoke_recipe_under_torchrun_with_two_cpu_processes(ftrecipes_cmd, tmp_path, task):
    "What the docs say to type, `torchrun --nproc_per_node N --no-python ftrecipes run TASK`, with N=2 CPU processes."
    out = tmp_path/"run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python",
           ftrecipes_cmd, "run", task, "-p", "preset=smoke", "-o", str(out), "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(threads=1), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # both processes wrote into the one folder the main process chose, and only it wrote the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert {"results.json", "model", f"{task}.ipynb", f"{task}.rank1.ipynb"} <= {p.name for p in out.iterdir()}
    assert proc.stdout.count("saved model:") == 1, "one summary, from the main process"
    results = json.loads((out/"results.json").read_text())
    training, p = results["training"], results["parameters"]
    assert training["processes"] == 2 and results["environment"]["processes"] == 2
    assert training["speed_settings"]["processes"].startswith("2, DistributedDataParallel over gloo")
    # every parameter these models train gets a gradient (checked before training): DDP does not search for unused
    # ones after every forward pass, and PyTorch's warning that the search was asked for in vain does not appear
    assert "every trainable parameter gets a gradient" in training["speed_settings"]["processes"]
    assert "find_unused_parameters=True was specified" not in proc.stderr
    # BERT's and T5's losses are means that ignore the item count the Trainer passes: averaged over the processes, not
    # summed; the causal LM's loss divides by the count itself
    scaling = training["speed_settings"].get("loss scaling", "")
    assert ("averaged over the 2 processes" in scaling) == (task != "text_generation"), scaling
    # each optimizer step took one batch per process: half the steps of a single process over the same data
    batches = math.ceil(results["split_sizes"]["train"] / (p["batch_size"] * 2))
    assert training["global_step"] == math.ceil(batches / p["grad_accum"]) * p["epochs"], (training["global_step"], batches)
    assert results["metrics"]["test"], "the test split was scored"
    assert results["reload_check"]["outputs"], "the saved model was reloaded and run"


UNUSED_PARAMETER_SCRIPT = '''
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding
from ftrecipes.data import load_data, make_splits
from ftrecipes.labels import encode_labels
from ftrecipes.models import load_for_task
from ftrecipes.training import TrainConfig, make_trainer, train_and_time
from ftrecipes.probes import prepare_trainer
dsd, names = encode_labels(load_data("sample:sentiment"), "label")
dsd = make_splits(dsd, stratify_by="label")
model, tok = load_for_task("tiny:bert", AutoModelForSequenceClassification, num_labels=len(names))
model.register_parameter("spare_head", torch.nn.Parameter(torch.zeros(4)))  # trained, yet never in the loss
dsd = dsd.map(lambda b: tok(b["text"], truncation=True, max_length=32), batched=True, remove_columns=["text"])
trainer = make_trainer(model, TrainConfig(batch_size=8, epochs=1, max_steps=3), sys.argv[1], dsd["train"],
                       dsd["validation"], processing_class=tok, data_collator=DataCollatorWithPadding(tok), logging_steps=1)
prepare_trainer(trainer)
stats = train_and_time(trainer)
if trainer.args.process_index == 0:
    print(json.dumps(dict(note=stats["speed_settings"]["processes"], steps=stats["global_step"],
                          find_unused=trainer.args.ddp_find_unused_parameters,
                          first_loss=trainer.state.log_history[0]["loss"])))
'''


def test_smoke_model_with_an_unused_parameter_trains_under_torchrun(tmp_path):
    "A parameter that gets no gradient is found before training, and DDP searches for it (without, the second step fails)."
    script = tmp_path/"train.py"
    script.write_text(UNUSED_PARAMETER_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path/"out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(threads=1), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["steps"] == 3 and out["find_unused"] is True, out
    assert "1 trainable parameter gets no gradient (spare_head)" in out["note"], out["note"]
    # two classes from random weights: about ln 2 = 0.69, not the 1.39 of a loss summed over the two processes
    assert out["first_loss"] < 0.9, out


# Evaluation in dataset order under several processes. Each script is run as `script CHECKPOINT OUT_JSON`, once in one
# process and once under torchrun with two: the first run saves the randomly initialised model to CHECKPOINT, so both
# evaluate the same weights, and the main process writes what it got to OUT_JSON.
ORDER_SCRIPT_HEAD = '''
import json, sys
from pathlib import Path
import torch
from datasets import DatasetDict
from ftrecipes.data import load_data
from ftrecipes.models import load_for_task
from ftrecipes.training import TrainConfig
checkpoint, result = Path(sys.argv[1]), Path(sys.argv[2])

def fixed_model(name, auto_class):
    "The model of the first run, saved to `checkpoint`: (model, tokenizer)."
    if not checkpoint.exists():
        torch.manual_seed(0)
        model, tok = load_for_task(name, auto_class)
        model.save_pretrained(checkpoint); tok.save_pretrained(checkpoint)
    return load_for_task(str(checkpoint), auto_class)

def eval_sampler(trainer, dataset):
    "The sampler inside `trainer`'s prepared prediction dataloader (under accelerate, wrapped in a shard of batches)."
    batches = trainer.get_test_dataloader(dataset).batch_sampler
    return type(getattr(batches, "batch_sampler", batches).sampler).__name__

def report(trainer, **values):
    if trainer.args.process_index == 0:
        result.write_text(json.dumps(dict(processes=trainer.args.world_size, **values)))
'''


def _run_in_one_and_two_processes(script: str, tmp_path) -> tuple:
    "`script` run in one process, then under torchrun with two CPU processes: the two JSON results."
    path = tmp_path/"script.py"
    path.write_text(script)
    results = []
    for launcher in ([], ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]):
        out = tmp_path/f"{len(results) + 1}.json"
        proc = subprocess.run([sys.executable, *launcher, str(path), str(tmp_path/"checkpoint"), str(out)],
                              capture_output=True, text=True, env=subprocess_env(threads=1), timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        results.append(json.loads(out.read_text()))
    return tuple(results)


QA_ORDER_SCRIPT = ORDER_SCRIPT_HEAD + '''
from transformers import AutoModelForQuestionAnswering, DataCollatorWithPadding
from ftrecipes.question_answering import prepare_qa_examples, evaluate_qa
from ftrecipes.extractive_qa import tokenize_qa, QA_EXTRA_COLUMNS
from ftrecipes.training import make_trainer
model, tok = fixed_model("tiny:bert", AutoModelForQuestionAnswering)
examples = prepare_qa_examples(load_data("sample:qa"))[0]["train"].select(range(24))
features = tokenize_qa(DatasetDict(train=examples), tok, max_length=64, doc_stride=16)["train"]
windows = features.remove_columns(QA_EXTRA_COLUMNS)
trainer = make_trainer(model, TrainConfig(batch_size=8, eval_batch_size=8, epochs=1), str(result.parent/"out"), windows,
                       windows, processing_class=tok, data_collator=DataCollatorWithPadding(tok))
metrics, preds = evaluate_qa(trainer, examples, features)
out = trainer.predict(windows)
report(trainer, sampler=eval_sampler(trainer, windows), lengths=[len(x) for x in windows["input_ids"]],
       batch_size=trainer.args.eval_batch_size, metrics={k: metrics[k] for k in ("exact_match", "f1")},
       predictions=[(x["id"], x["prediction_text"], x["score"]) for x in preds],
       start_logits=out.predictions[0].tolist(), start_positions=out.label_ids[0].tolist(),
       expected_start_positions=list(windows["start_positions"]))
'''



def _unsorted_lengths_with_an_uneven_last_round(run: dict) -> list:
    "The evaluated rows' lengths, checked so that a length sort would reorder them and two processes end on an uneven round."
    lengths, batch = run["lengths"], run["batch_size"]
    assert lengths != sorted(lengths) and lengths != sorted(lengths, reverse=True)
    assert len(lengths) % (2 * batch) not in (0, batch), (len(lengths), batch)
    return lengths

def test_question_answering_scores_the_same_windows_under_torchrun_with_two_cpu_processes(tmp_path):
    "Logits reach the post-processing in window order under two processes: the same scores as in one process."
    one, two = _run_in_one_and_two_processes(QA_ORDER_SCRIPT, tmp_path)
    assert (one["processes"], two["processes"]) == (1, 2)
    lengths = _unsorted_lengths_with_an_uneven_last_round(one)
    # labels and logits come back in window order, with no padding duplicates of the uneven last batch
    assert two["start_positions"] == two["expected_start_positions"] == one["start_positions"]
    assert len(two["start_logits"]) == len(lengths)
    np.testing.assert_allclose(two["start_logits"], one["start_logits"], atol=1e-5)
    # so every question gets the same answer, and the split the same scores, as in one process
    assert [p[:2] for p in two["predictions"]] == [p[:2] for p in one["predictions"]]
    np.testing.assert_allclose([p[2] for p in two["predictions"]], [p[2] for p in one["predictions"]], atol=1e-5)
    assert two["metrics"] == pytest.approx(one["metrics"])
    assert "LengthGrouped" not in two["sampler"], two["sampler"]


SEQ2SEQ_ORDER_SCRIPT = ORDER_SCRIPT_HEAD + '''
from transformers import AutoModelForSeq2SeqLM
from ftrecipes.seq2seq import RougeMetrics, tokenize_pairs, generation_config, make_seq2seq_trainer, evaluate_seq2seq
model, tok = fixed_model("tiny:t5", AutoModelForSeq2SeqLM)
rows = load_data("sample:summarization")["train"].select(range(21))
pairs = tokenize_pairs(DatasetDict(train=rows), tok, "document", "summary", 512, 32, "summarize: ")[0]["train"]
# a random T5 writes the same pad tokens for every source; with them banned and no token twice, its texts differ
generation = generation_config(model, max_new_tokens=6, no_repeat_ngram_size=1)
generation.suppress_tokens = tok.all_special_ids
trainer = make_seq2seq_trainer(model, TrainConfig(batch_size=4, eval_batch_size=4, epochs=1), str(result.parent/"out"),
                               pairs, pairs, tok, RougeMetrics, generation)
metrics, texts = evaluate_seq2seq(trainer, pairs, tok, RougeMetrics)
report(trainer, sampler=eval_sampler(trainer, pairs), lengths=[len(x) for x in pairs["input_ids"]],
       batch_size=trainer.args.eval_batch_size, texts=texts, rougeL=metrics["rougeL"])
'''


def test_seq2seq_predictions_line_up_with_their_sources_under_torchrun_with_two_cpu_processes(tmp_path):
    "Generated texts come back in row order under two processes: row by row those of one process."
    one, two = _run_in_one_and_two_processes(SEQ2SEQ_ORDER_SCRIPT, tmp_path)
    assert (one["processes"], two["processes"]) == (1, 2)
    lengths = _unsorted_lengths_with_an_uneven_last_round(one)
    assert len(set(one["texts"])) > len(lengths) // 2, "the texts differ from source to source, so an order shows"
    assert len(two["texts"]) == len(lengths), "each row once: no top-up rows of the uneven last round"
    assert two["texts"] == one["texts"]
    assert two["rougeL"] == pytest.approx(one["rougeL"])
    assert "LengthGrouped" not in two["sampler"], two["sampler"]
