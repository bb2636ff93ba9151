"""Several processes without code changes: recipes under torchrun with two CPU processes on the gloo backend, the code
path several GPUs take (DistributedDataParallel, one process per device). One recipe per kind of Trainer: an encoder
classifier, a seq2seq model that generates when it evaluates, a causal LM with a LoRA adapter saved beside the merged
model. Smoke size: they test the machinery."""
import json
import math
import subprocess
import sys

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
from ftrecipes.data import load_data, encode_labels, make_splits
from ftrecipes.models import load_for_task
from ftrecipes.training import TrainConfig, make_trainer, train_and_time
dsd, names = encode_labels(load_data("sample:sentiment"), "label")
dsd = make_splits(dsd, stratify_by="label")
model, tok = load_for_task("tiny:bert", AutoModelForSequenceClassification, num_labels=len(names))
model.register_parameter("spare_head", torch.nn.Parameter(torch.zeros(4)))  # trained, yet never in the loss
dsd = dsd.map(lambda b: tok(b["text"], truncation=True, max_length=32), batched=True, remove_columns=["text"])
trainer = make_trainer(model, TrainConfig(batch_size=8, epochs=1, max_steps=3), sys.argv[1], dsd["train"],
                       dsd["validation"], processing_class=tok, data_collator=DataCollatorWithPadding(tok), logging_steps=1)
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
