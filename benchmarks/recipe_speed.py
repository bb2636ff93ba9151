"""Training speed of every recipe's default model: the plain fp32 Trainer against the recipe's own pipeline, side by side.

For each recipe's default architecture at its real size (randomly initialised from a hand-written config: there is no
Hub), on the same synthetic data, in one process, this trains N steps twice:

- baseline: the plain fp32 `transformers.Trainer` as transformers' example scripts use it: `TrainingArguments(
  output_dir, per_device_train_batch_size=B, max_steps=N, report_to="none", save_strategy="no", eval_strategy="no",
  logging_strategy="no", use_cpu=device == "cpu", dataloader_num_workers=0)`, random batches, and the padding each
  example script uses by default: run_glue and run_qa pad every text to max_seq_length, run_ner, run_summarization and
  run_translation pad each batch to its longest row (`pad_to_max_length=False` there), run_clm feeds full blocks. A
  chat recipe has no example script; its baseline pads every chat to max_length. `--baseline-padding max_length` pads
  every text recipe's baseline to the maximum length instead.
- recipe: the same model and data through `ftrecipes.training.make_trainer` with the recipe's precision
  (`ftrecipes.environment.pick_precision(device, model)`, as the recipes choose it), its collator (dynamic padding), length-grouped batches
  (images: random batches, channels-last), and what else the recipe passes to make_trainer (the seq2seq trainer with
  `predict_with_generate`, text generation's gradient checkpointing as its `'auto'` default decides, LoRA through
  `ftrecipes.causal_lm.apply_lora`). make_trainer picks the fast settings per device, and `prepare_trainer` runs the
  probes as the recipes do; `trainer.speed_settings` is printed under the recipe's row. Evaluation and checkpoints are switched off (`eval_strategy="no"`,
  `save_strategy="no"`, `load_best_model_at_end=False`); logging keeps the interval a published run would have.
  make_trainer decides torch.compile from the number of optimizer steps: it is given the published run's number
  (dataset rows / (batch x grad-accum) x epochs, listed in RECIPES) and trains N of them, so compile is on exactly
  where a real run would have it (FTRECIPES_COMPILE=1 or 0 forces it). Gradient accumulation is 1 in both runs (the
  published text-generation setup accumulates 2 batches, image classification 4): samples/s are per forward-backward.

Measured, after `--warmup` steps (compilation, autotuning, worker start-up excluded; the clock synchronises CUDA at
every step end): samples/s; for text, real (non-padding) tokens/s and the padding waste (padded positions / all
positions in the batches actually fed); peak memory (torch.cuda.max_memory_allocated on a GPU, the process's peak RSS
from resource.getrusage on a CPU, reset before every run through /proc/self/clear_refs where Linux allows it); MFU;
and the ratio recipe / baseline of samples/s.

MFU = model FLOPs of the real tokens / time / peak FLOP/s. Peak FLOP/s is measured at start: the best of several
timed 8192^3 bf16 matmuls on CUDA (2048^3 on a CPU, bf16 where it has bf16 instructions); on CUDA the MFU
against the 787 TFLOP/s bf16 ceiling measured on an H200 is printed too. Model FLOPs per token, forward and backward:
    2N (forward) + 2N (gradients to the inputs) + 2N_trainable (gradients to the weights)
where N counts the weights of every linear layer (matmul parameters: attention and MLP projections, and the output
projection over the vocabulary, tied or not; embedding lookups, norms and biases are left out). Full training gives
the familiar 6N; LoRA, whose frozen base needs no weight gradients, gives 4N_base + 6N_adapters. Self-attention adds
12 x layers x d_attn x s per token (QK^T and AV, 4 d s forward, twice that backward; s the real length of the row, not
halved for causal masks), cross-attention 12 x decoder layers x d_attn x s_source per target token. In encoder-decoder
models the encoder and the cross-attention key/value projections run per source token, the rest per target token;
BERT's pooler and sequence-classification head run once per row. Only real tokens count: padding is waste, and
recomputation under gradient checkpointing is not model FLOPs. Image models: FLOPs of one forward and backward pass
counted by torch.utils.flop_counter (convolutions, matmuls, attention). The text formula was checked against
torch.utils.flop_counter on BERT-base, t5-small, opus-mt-en-ro and a 4-layer SmolLM2 (equal; with LoRA the counter is
1% lower: the first layer needs no gradients to its inputs).

Targets (the issue's): on a GPU every recipe >= 2.5x the baseline's samples/s; text generation's text mode (full
fine-tuning of SmolLM2-360M on packed 1024-token blocks) >= 40% MFU; sentiment >= 50% of the reference MFU, where the
reference is the MFU of the plain Trainer with bf16 + torch.compile on fully used 128-token rows (1336 samples/s of
BERT-base on an H200 with the plain Trainer, against its 787 TFLOP/s), computed with the same FLOP count: the recipe, on SST-2's
short sentences, must keep at least half the hardware efficiency of that best plain setup on full-length rows.

    python benchmarks/recipe_speed.py --out bench/recipe_speed.json          # GPU: every recipe, real sizes
    python benchmarks/recipe_speed.py --recipes sentiment,text_generation   # some recipes (text_generation: both modes)
    OMP_NUM_THREADS=2 python benchmarks/recipe_speed.py --small             # CPU: tiny models, a few minutes
    python benchmarks/recipe_speed.py --recipes sentiment --steps 3 --warmup 1   # CPU: one real-size recipe

This file imports neither `datasets` nor `evaluate`, and imports ftrecipes lazily, so the baselines run on a machine
that has only torch, transformers, timm and peft; the recipe rows need ftrecipes with its dependencies (`datasets` too).
Results go to --out as JSON (default /tmp/ftrecipes-bench/recipe_speed-<device>.json, outside the repository).
"""
import argparse
import contextlib
import gc
import io
import json
import math
import re
import resource
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import transformers
from transformers import (AutoModelForCausalLM, AutoModelForImageClassification, AutoModelForQuestionAnswering,
                          AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoModelForTokenClassification,
                          BertConfig, DataCollatorForSeq2Seq, DataCollatorForTokenClassification, DataCollatorWithPadding,
                          LlamaConfig, MarianConfig, PreTrainedTokenizerFast, Seq2SeqTrainer, Seq2SeqTrainingArguments,
                          T5Config, TimmWrapperConfig, Trainer, TrainerCallback, TrainingArguments, default_data_collator)
from transformers.trainer_callback import PrinterCallback, ProgressCallback

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's ftrecipes (imported inside the functions that need it)

H200_BF16_FLOPS = 787e12  # bf16 matmul ceiling measured on an H200
SENTIMENT_REFERENCE = dict(samples_per_s=1336, tokens=128, peak_flops=H200_BF16_FLOPS)  # BERT-base bs 32, plain Trainer, bf16 + compile, H200
TARGET_RATIO, TARGET_TEXT_MFU, TARGET_SENTIMENT_SHARE = 2.5, 0.40, 0.5


# --- synthetic data: lengths of the real data sets ------------------------------------------------------------------

@dataclass(frozen=True)
class Lengths:
    "Token counts of a real data set: log-normal around `median` with spread `sigma`, clipped to [low, high]."
    median: float
    sigma: float
    low: int
    high: int

    def draw(self, rng, n: int, scale: float = 1.0) -> list:
        low, high = max(2, round(self.low * scale)), max(3, round(self.high * scale))
        raw = rng.lognormal(math.log(self.median * scale), self.sigma, n)
        return np.clip(np.round(raw), low, high).astype(int).tolist()

# Fitted by eye to the distributions of the published data sets, in the default model's word pieces with specials:
SST2 = Lengths(22, 0.45, 5, 66)            # SST-2 sentences: 5 to 66 tokens, median about 22
SQUAD_WINDOWS = Lengths(170, 0.35, 40, 384)  # question + context per window: median about 170, long contexts fill 384
CONLL = Lengths(20, 0.65, 3, 124)          # CoNLL-2003 sentences: median about 20, tail to about 120
CNNDM_ARTICLE = Lengths(800, 0.45, 60, 512)  # CNN/DailyMail articles: most are cut at 512
CNNDM_SUMMARY = Lengths(70, 0.35, 10, 128)   # their highlights: median about 70
WMT16_SENTENCE = Lengths(30, 0.5, 4, 128)    # WMT16 en-ro sentences, each side: median about 30
NO_ROBOTS_CHAT = Lengths(350, 0.7, 30, 2048)  # No Robots chats: median about 350, tail to 2048 (cut at max_length)


class Examples(torch.utils.data.Dataset):
    "A list of examples (dicts) as a map-style dataset; hands out copies, so collators cannot change the stored rows."
    def __init__(self, rows: list): self.rows = rows
    def __len__(self): return len(self.rows)
    def __getitem__(self, i): return dict(self.rows[i])


class SyntheticImages(torch.utils.data.Dataset):
    "Random 64x64 PIL images (EuroSAT's size) with labels, through `transform` per item, as the recipe's `with_transform`."
    def __init__(self, n: int, transform, classes: int = 10, seed: int = 0):
        from PIL import Image
        rng = np.random.default_rng(seed)
        self.images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]
        self.labels = rng.integers(0, classes, n).tolist()
        self.transform = transform
    def __len__(self): return len(self.images)
    def __getitem__(self, i): return {"pixel_values": self.transform(self.images[i]), "label": self.labels[i]}


def token_examples(data: str, n: int, lengths: tuple, max_lengths: tuple, vocab: int, rng, scale: float) -> list:
    "Unpadded examples of kind `data` as the recipe's preprocessing leaves them: random ids, real-data lengths, cut at `max_lengths`."
    ids = lambda k: rng.integers(5, vocab, k).tolist()
    if data == "blocks":  # packed text: every block full
        return [dict(input_ids=(x := ids(max_lengths[0])), attention_mask=[1] * len(x), labels=list(x)) for _ in range(n)]
    source = [min(k, max_lengths[0]) for k in lengths[0].draw(rng, n, scale)]
    rows = []
    for k in source:
        row = dict(input_ids=ids(k), attention_mask=[1] * k)
        if data == "classification": row["labels"] = int(rng.integers(0, 2))
        elif data == "qa":
            start = int(rng.integers(1, k)); row.update(start_positions=start, end_positions=min(k - 1, start + 3))
        elif data == "tagging":  # 9 tags; special tokens and continuation word pieces are ignored (-100)
            tags = rng.integers(0, 9, k); tags[rng.random(k) < 0.2] = -100; tags[[0, -1]] = -100
            row["labels"] = tags.tolist()
        elif data == "seq2seq":
            row["labels"] = ids(min(lengths[1].draw(rng, 1, scale)[0], max_lengths[1]))
        elif data == "chat":  # the loss on the answer only: the prompt part is -100
            cut = int(0.4 * k); row["labels"] = [-100] * cut + row["input_ids"][cut:]
        rows.append(row)
    return rows


def pad_to_max(rows: list, data: str, max_lengths: tuple) -> list:
    "`rows` padded to the maximum lengths (what `tokenizer(..., padding='max_length')` gives), for `default_data_collator`."
    def pad(x, width, value): return x + [value] * (width - len(x))
    out = []
    for row in rows:
        row = dict(row, input_ids=pad(row["input_ids"], max_lengths[0], 0), attention_mask=pad(row["attention_mask"], max_lengths[0], 0))
        if isinstance(row.get("labels"), list):
            row["labels"] = pad(row["labels"], max_lengths[1] if data == "seq2seq" else max_lengths[0], -100)
        out.append(row)
    return out


def padding_tokenizer():
    "A fast tokenizer that only pads (pad id 0): all the recipes' collators need. The real vocabularies do not change speed."
    from tokenizers import Tokenizer, models
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0, "<unk>": 1}, unk_token="<unk>")),
                                   pad_token="<pad>", unk_token="<unk>")


# --- the default models, at real size (or --small) ------------------------------------------------------------------

def bert(head, vocab: int, labels: int = 2):
    "BERT-base (bert-base-cased / -uncased config.json on the Hub: 12 layers, hidden 768, 12 heads, MLP 3072)."
    def build(small: bool):
        size = (dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, vocab_size=1000)
                if small else dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                                   vocab_size=vocab))
        return head.from_config(BertConfig(max_position_embeddings=512, type_vocab_size=2, num_labels=labels, **size))
    return build


def t5_small(small: bool):
    "t5-small (its config.json: d_model 512, d_ff 2048, 6+6 layers, 8 heads of 64, vocab 32128, relative attention, ReLU)."
    size = (dict(d_model=64, d_kv=32, d_ff=128, num_layers=2, num_heads=2, vocab_size=1000) if small else
            dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8, vocab_size=32128))
    return AutoModelForSeq2SeqLM.from_config(T5Config(relative_attention_num_buckets=32, feed_forward_proj="relu",
                                                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **size))


def opus_mt_en_ro(small: bool):
    "Helsinki-NLP/opus-mt-en-ro (its config.json: MarianMT, d_model 512, 6+6 layers, 8 heads, FFN 2048, vocab 59543, swish)."
    size = (dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                 encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=1000, pad_token_id=999, decoder_start_token_id=999)
            if small else dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8, decoder_attention_heads=8,
                               encoder_ffn_dim=2048, decoder_ffn_dim=2048, vocab_size=59543, pad_token_id=59542,
                               decoder_start_token_id=59542))
    # static sinusoidal positions are the only kind transformers' Marian has
    return AutoModelForSeq2SeqLM.from_config(MarianConfig(activation_function="swish", max_position_embeddings=512,
                                                          scale_embedding=True, eos_token_id=0, **size))


def smollm2_360m(small: bool):
    "HuggingFaceTB/SmolLM2-360M-Instruct (its config.json: Llama, hidden 960, MLP 2560, 32 layers, 15 heads, 5 KV heads, vocab 49152)."
    size = (dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 vocab_size=1000) if small else
            dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5,
                 vocab_size=49152))
    return AutoModelForCausalLM.from_config(LlamaConfig(max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                                                        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, **size))


def swin_tiny(small: bool):
    "timm swin_tiny_patch4_window7_224 through transformers' TimmWrapper, with timm's own init (as the recipe's scratch model)."
    import timm
    arch = "swin_tiny_patch4_window7_224"
    model_args = dict(img_size=56, embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2)) if small else {}
    model = AutoModelForImageClassification.from_config(TimmWrapperConfig(architecture=arch, num_labels=10, model_args=model_args))
    model.timm_model = timm.create_model(arch, num_classes=10, **model_args)
    return model


# --- the recipes ------------------------------------------------------------------------------------------------------

def with_padding(tokenizer, model, device): return DataCollatorWithPadding(tokenizer)
def token_classification(tokenizer, model, device): return DataCollatorForTokenClassification(tokenizer)
def seq2seq(tokenizer, model, device): return DataCollatorForSeq2Seq(tokenizer, model=model)
def causal_lm(tokenizer, model, device): return causal_lm_pieces()["causal_lm_collator"](tokenizer, device)


@dataclass(frozen=True)
class Recipe:
    "A recipe's default setup, from its notebook's parameters cell, and how transformers' example script would train it."
    name: str
    build: Callable            # small -> the default model, randomly initialised
    data: str                  # classification | qa | tagging | seq2seq | chat | blocks | images
    batch: int
    max_lengths: tuple         # the recipe's truncation (source[, target]); images: pixels per side
    lengths: tuple = ()        # Lengths of the real data per sequence (source[, target])
    collator: Callable = None  # (tokenizer, model, device) -> the recipe's collator; None: the default one
    example_padding: str = "max_length"  # the baseline's padding in transformers' example script: max_length | dynamic | none
    published: tuple = (0, 1, 1)  # (training rows, epochs, grad-accum) of the published run
    finetuning: str = "full"   # full | lora
    per_sequence: str = None   # regex of the linear layers that run once per row, not per token
    overrides: dict = field(default_factory=dict)  # what the recipe passes to make_trainer besides the common arguments

    def published_steps(self) -> tuple:
        "(optimizer steps per epoch, in all) of the published run."
        rows, epochs, accum = self.published
        per_epoch = math.ceil(rows / (self.batch * accum))
        return per_epoch, math.ceil(per_epoch * epochs)


SEQ2SEQ = dict(trainer_class=Seq2SeqTrainer, args_class=Seq2SeqTrainingArguments, predict_with_generate=True)

RECIPES = [  # rows: SST-2 67,349; SQuAD v1.1 88,524 windows of 384/128; CoNLL-2003 14,041; CNN/DM 287,113; WMT16 ro-en
             # 610,320; No Robots 9,500; WikiText-2 about 2.39M tokens = 2,336 blocks of 1024; EuroSAT (timm) 16,200
    Recipe("sentiment", bert(AutoModelForSequenceClassification, 28996), "classification", 32, (128,), (SST2,),
           with_padding, "max_length", (67_349, 3, 1), per_sequence=r"(^|\.)(pooler|classifier)(\.|$)"),
    Recipe("question_answering", bert(AutoModelForQuestionAnswering, 30522), "qa", 12, (384,), (SQUAD_WINDOWS,),
           with_padding, "max_length", (88_524, 2, 1)),  # nbs/11: windows are not padded; DataCollatorWithPadding pads
    Recipe("ner", bert(AutoModelForTokenClassification, 28996, labels=9), "tagging", 32, (256,), (CONLL,),
           token_classification, "dynamic", (14_041, 3, 1)),
    Recipe("summarization", t5_small, "seq2seq", 16, (512, 128), (CNNDM_ARTICLE, CNNDM_SUMMARY), seq2seq, "dynamic",
           (287_113, 1, 1), overrides=SEQ2SEQ),
    Recipe("translation", opus_mt_en_ro, "seq2seq", 16, (128, 128), (WMT16_SENTENCE, WMT16_SENTENCE), seq2seq, "dynamic",
           (610_320, 1, 1), overrides=SEQ2SEQ),
    Recipe("text_generation:instruction", smollm2_360m, "chat", 8, (1024,), (NO_ROBOTS_CHAT,), causal_lm, "max_length",
           (9_500, 1, 2), finetuning="lora"),
    Recipe("text_generation:text", smollm2_360m, "blocks", 8, (1024,), (), causal_lm, "none", (2_336, 1, 2)),
    Recipe("image_classification", swin_tiny, "images", 32, (224,), published=(16_200, 3, 4), example_padding="none",
           overrides=dict(remove_unused_columns=False)),
]


def small_version(r: Recipe) -> Recipe:
    "`r` shrunk for a CPU smoke run: a quarter of the lengths and of the batch (the model shrinks in its builder)."
    from dataclasses import replace
    size = (56,) if r.data == "images" else tuple(max(8, m // 4) for m in r.max_lengths)
    return replace(r, batch=max(2, r.batch // 4), max_lengths=size)


def causal_lm_pieces() -> dict:
    "ftrecipes.causal_lm's apply_lora, causal_lm_collator and causal_lm_arguments (it needs `datasets` installed)."
    from ftrecipes import causal_lm as lm
    return dict(apply_lora=lm.apply_lora, causal_lm_collator=lm.causal_lm_collator, causal_lm_arguments=lm.causal_lm_arguments)


# --- FLOPs ------------------------------------------------------------------------------------------------------------

def linear_weights(model, seq2seq: bool, per_sequence: str = None) -> dict:
    "Weights of the linear layers by what they run on, {group: [all, trainable]}: source / target tokens, or once per row."
    groups = {"source": [0, 0], "target": [0, 0], "sequence": [0, 0]}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear): continue
        if per_sequence and re.search(per_sequence, name): group = "sequence"
        elif not seq2seq: group = "source"
        elif re.search(r"(^|\.)encoder\.", name) or re.search(r"(EncDecAttention\.[kv]|encoder_attn\.[kv]_proj)$", name):
            group = "source"  # the encoder, and the cross-attention keys and values computed from its output
        else: group = "target"
        groups[group][0] += module.weight.numel()
        groups[group][1] += module.weight.numel() if module.weight.requires_grad else 0
    return groups


def attention_shape(config) -> dict:
    "Layers of the encoder (or the only stack) and of the decoder, and the width of attention (heads x head size)."
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "encoder_layers", None) or config.num_layers
    decoder = getattr(config, "num_decoder_layers", None) or getattr(config, "decoder_layers", None) or 0
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "encoder_attention_heads", None) or config.num_heads
    head_dim = getattr(config, "head_dim", None) or getattr(config, "d_kv", None) or config.hidden_size // heads
    return dict(source_layers=layers, target_layers=decoder if config.is_encoder_decoder else 0, width=heads * head_dim)


def training_flops(counts: dict, weights: dict, attention: dict) -> float:
    "Model FLOPs of a forward and backward pass over `counts` (real tokens): 2N + 2N + 2N_trainable per use of a weight, plus attention."
    use = lambda group, times: times * (4 * weights[group][0] + 2 * weights[group][1])
    matmuls = use("source", counts["source"]) + use("target", counts["target"]) + use("sequence", counts["samples"])
    scores = 12 * attention["width"] * (attention["source_layers"] * counts["source_sq"]
                                        + attention["target_layers"] * (counts["target_sq"] + counts["cross"]))
    return matmuls + scores


def image_flops(model, size: int) -> float:
    "FLOPs of one image's forward and backward pass, counted by torch.utils.flop_counter (attention through the math kernel, which it counts)."
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(pixel_values=torch.randn(1, 3, size, size), labels=torch.zeros(1, dtype=torch.long)).loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def ceiling_dtype(device: str):
    "bf16 on CUDA and on a CPU that multiplies bf16 in hardware (where the recipes train in it), else fp32."
    from ftrecipes.environment import cpu_bf16_instructions
    return torch.bfloat16 if device == "cuda" or (device == "cpu" and cpu_bf16_instructions()) else torch.float32


def matmul_ceiling(device: str, small: bool) -> float:
    "Peak FLOP/s measured: the best of 5 timings of back-to-back square matmuls (bf16 8192^3 on CUDA; 2048^3 on a CPU, in bf16 where it has bf16 instructions)."
    dtype = ceiling_dtype(device)
    n, reps = (8192, 20) if device == "cuda" else (1024 if small else 2048, 3)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3): a @ b
    best = 0.0
    for _ in range(5):
        sync(); start = time.perf_counter()
        for _ in range(reps): a @ b
        sync(); best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - start))
    return best


# --- measuring a run --------------------------------------------------------------------------------------------------

class StepClock(TrainerCallback):
    "Wall time of the steps after `warmup`, CUDA synchronised at every step end; also the time the warm-up took."
    def __init__(self, warmup: int): self.warmup, self.begin, self.start, self.end, self.steps = warmup, None, None, None, 0
    def on_train_begin(self, args, state, control, **kw): self.begin = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        if torch.cuda.is_available(): torch.cuda.synchronize()
        now = time.perf_counter()
        if state.global_step == self.warmup: self.start = now
        elif state.global_step > self.warmup: self.steps, self.end = self.steps + 1, now
    @property
    def timing(self) -> bool: return self.start is not None


class TokenMeter:
    "Counts what the timed steps feed the model: rows and positions on the host; real tokens (and their squares, for attention) on the device."
    SUMS = ("source", "source_sq", "target", "target_sq", "cross")

    def __init__(self, seq2seq: bool): self.seq2seq, self.sums, self.samples, self.positions = seq2seq, None, 0, 0

    def attach(self, trainer, clock: StepClock):
        "Wrap `trainer.compute_loss`: it sees every batch on the device, in the main process, whatever the data-loader workers do."
        inner = trainer.compute_loss
        def compute_loss(model, inputs, *args, **kwargs):
            if clock.timing: self.count(inputs)
            return inner(model, inputs, *args, **kwargs)
        trainer.compute_loss = compute_loss

    def count(self, inputs: dict):
        if "input_ids" not in inputs:  # images: rows only
            self.samples += inputs["pixel_values"].shape[0]; return
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        self.samples += ids.shape[0]; self.positions += ids.numel()
        source = mask.sum(1).double() if mask is not None else ids.new_full((ids.shape[0],), ids.shape[1]).double()
        if self.seq2seq:
            target = (inputs["labels"] != -100).sum(1).double(); self.positions += inputs["labels"].numel()
        else: target = torch.zeros_like(source)
        sums = torch.stack([source.sum(), (source ** 2).sum(), target.sum(), (target ** 2).sum(), (source * target).sum()])
        self.sums = sums if self.sums is None else self.sums + sums  # summed on the device: no synchronisation per step

    def totals(self) -> dict:
        values = self.sums.tolist() if self.sums is not None else [0.0] * len(self.SUMS)
        return dict(zip(self.SUMS, values), samples=self.samples, positions=self.positions)


def reset_peak_memory(device: str):
    "Start a run's peak memory afresh: CUDA's counter, or the process's peak RSS (Linux: /proc/self/clear_refs)."
    if device == "cuda": torch.cuda.reset_peak_memory_stats(); return True
    try:
        Path("/proc/self/clear_refs").write_text("5"); return True
    except OSError: return False


def peak_memory_bytes(device: str) -> int:
    if device == "cuda": return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


_TF32 = {}

def restore_global_state():
    "Undo what a run leaves behind in the process: TF32 switched on by TrainingArguments(tf32=True), compiled graphs, cached memory."
    backends = torch.backends
    if hasattr(backends, "fp32_precision"):
        _TF32.setdefault("fp32_precision", backends.fp32_precision); backends.fp32_precision = _TF32["fp32_precision"]
    else:
        _TF32.setdefault("matmul", backends.cuda.matmul.allow_tf32); _TF32.setdefault("cudnn", backends.cudnn.allow_tf32)
        backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32 = _TF32["matmul"], _TF32["cudnn"]
    enable = getattr(transformers.training_args, "enable_tf32", None)
    if hasattr(enable, "cache_clear"): enable.cache_clear()  # it is lru-cached: a second tf32=True would do nothing
    torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available(): torch.cuda.empty_cache()


# --- the two ways of training -----------------------------------------------------------------------------------------

def baseline_trainer(r: Recipe, model, rows, images, tokenizer, device, steps, out, padding: str) -> Trainer:
    "The plain fp32 Trainer of transformers' examples: random batches, padded as `padding` says."
    if r.data == "images": data, collator = images, default_data_collator
    elif padding == "max_length": data, collator = Examples(pad_to_max(rows, r.data, r.max_lengths)), default_data_collator
    else: data, collator = Examples(rows), (r.collator(tokenizer, model, device) if padding == "dynamic" else default_data_collator)
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=r.batch, report_to="none", save_strategy="no",
                             eval_strategy="no", logging_strategy="no", use_cpu=device == "cpu", max_steps=steps,
                             dataloader_num_workers=0)
    return Trainer(model=model, args=args, train_dataset=data, data_collator=collator)


def recipe_trainer(r: Recipe, model, rows, images, tokenizer, device, steps, out, checkpointing: bool,
                   requested_precision: str = "auto") -> tuple:
    "(trainer, precision, note): the recipe's own pipeline, through ftrecipes.training.make_trainer."
    from ftrecipes.environment import training_precision
    from ftrecipes.training import TrainConfig, make_trainer
    from ftrecipes.probes import prepare_trainer
    precision = training_precision(requested_precision, device, model)
    per_epoch, total = r.published_steps()
    cfg = TrainConfig(batch_size=r.batch, max_steps=total, grad_accum=1, group_by_length=r.data != "images")
    overrides = dict(r.overrides, max_steps=steps, logging_steps=max(1, per_epoch // 10), eval_strategy="no",
                     save_strategy="no", load_best_model_at_end=False)
    note = None
    if r.data in ("chat", "blocks"):
        from ftrecipes.models import choose_gradient_checkpointing
        on, note = choose_gradient_checkpointing(checkpointing, model, r.batch, r.max_lengths[0], precision, device)
        overrides.update(causal_lm_pieces()["causal_lm_arguments"](on))
        note = f"gradient checkpointing {note}"
    if r.data == "images":
        train, evaluation, kwargs = images, torch.utils.data.Subset(images, range(2 * r.batch)), {}
    else:
        train, evaluation = Examples(rows), Examples(rows[:2 * r.batch])
        kwargs = dict(processing_class=tokenizer, data_collator=r.collator(tokenizer, model, device))
    trainer = make_trainer(model, cfg, out, train, evaluation, precision=precision, device=device, **kwargs, **overrides)
    prepare_trainer(trainer)  # the recipes' probes, as each notebook runs them after make_trainer
    return trainer, precision, note


def prepare_model(r: Recipe, role: str, small: bool, device: str):
    "A fresh, identically seeded default model, made ready as `role` trains it: LoRA and 16-bit base, channels-last."
    torch.manual_seed(0)
    model = r.build(small)
    if r.finetuning == "lora":
        if role == "recipe" and device == "cuda":  # as ftrecipes.causal_lm.load_causal_lm loads a LoRA base on a GPU
            from ftrecipes.environment import pick_precision
            precision = pick_precision(device)
            model = model.to(torch.bfloat16 if precision == "bf16" else torch.float16)
        with contextlib.redirect_stdout(io.StringIO()):  # its parameter count would break the table
            model = causal_lm_pieces()["apply_lora"](model, 16, 32, 0.05, "all-linear")
    if role == "recipe" and r.data == "images": model = model.to(memory_format=torch.channels_last)
    return model


def image_data(model, size: int, n: int):
    "The synthetic images through timm's training transform for `model` at `size` pixels (what the recipe's `augment='timm'` does)."
    from timm.data import create_transform, resolve_data_config
    cfg = resolve_data_config({"input_size": (3, size, size)}, pretrained_cfg=model.timm_model.pretrained_cfg)
    return SyntheticImages(n, create_transform(**cfg, is_training=True))


def run(r: Recipe, role: str, a, device: str) -> dict:
    "Train `r` as `role` (baseline or recipe) for a.steps steps; what was measured."
    restore_global_state()
    model = prepare_model(r, role, a.small, device)
    n = max(r.batch * (a.steps + 1), 50 * r.batch)  # more than one megabatch (50 batches) of length grouping, no epoch end
    rows = images = None
    if r.data == "images": images = image_data(model, r.max_lengths[0], r.batch * (a.steps + 1))
    else: rows = token_examples(r.data, n, r.lengths, r.max_lengths, model.config.get_text_config().vocab_size,
                                np.random.default_rng(0), 0.25 if a.small else 1.0)
    per_image = image_flops(model, r.max_lengths[0]) if r.data == "images" else None
    weights = linear_weights(model, r.data == "seq2seq", r.per_sequence)
    attention = attention_shape(model.config.get_text_config()) if r.data != "images" else None
    out = tempfile.mkdtemp(prefix=f"recipe-speed-{r.name.replace(':', '-')}-{role}-")
    tokenizer, note, precision = padding_tokenizer(), None, "fp32"
    if role == "baseline":
        padding = "none" if r.example_padding == "none" else ("max_length" if a.baseline_padding == "max_length" else r.example_padding)
        trainer = baseline_trainer(r, model, rows, images, tokenizer, device, a.steps, out, padding)
    else:
        trainer, precision, note = recipe_trainer(r, model, rows, images, tokenizer, device, a.steps, out,
                                                  dict(auto="auto", on=True, off=False)[a.gradient_checkpointing], a.precision)
    clock, meter = StepClock(a.warmup), TokenMeter(r.data == "seq2seq")
    for quiet in (ProgressCallback, PrinterCallback): trainer.remove_callback(quiet)  # no progress bars or log lines in the table
    trainer.add_callback(clock)
    meter.attach(trainer, clock)
    memory_reset = reset_peak_memory(device)
    try: trainer.train()
    finally: shutil.rmtree(out, ignore_errors=True)
    seconds, counts = clock.end - clock.start, meter.totals()
    flops = per_image * counts["samples"] if per_image else training_flops(counts, weights, attention)
    real = counts["source"] + counts["target"]
    applied = {k: getattr(trainer.args, k, None) for k in ("bf16", "fp16", "tf32", "optim", "torch_compile",
               "dataloader_num_workers", "dataloader_pin_memory", "gradient_checkpointing", "train_sampling_strategy")}
    result = dict(role=role, precision=precision, timed_steps=clock.steps, seconds=seconds,
                  warmup_seconds=clock.start - clock.begin, samples_per_s=counts["samples"] / seconds,
                  real_tokens_per_s=real / seconds if r.data != "images" else None,
                  padding_waste=1 - real / counts["positions"] if counts["positions"] else None,
                  model_flops=flops, flops_per_s=flops / seconds, peak_memory_bytes=peak_memory_bytes(device),
                  peak_memory_reset=memory_reset, counts=counts, linear_weights=weights, attention=attention,
                  image_flops=per_image, training_arguments=applied, note=note,
                  speed_settings=getattr(trainer, "speed_settings", None))
    del trainer, model
    restore_global_state()
    return result


# --- report -----------------------------------------------------------------------------------------------------------

HEADER = (f"{'recipe':28s} {'run':9s} {'samples/s':>10s} {'real tok/s':>11s} {'padding':>8s} {'MFU':>7s} {'MFU@787':>8s} "
          f"{'peak GiB':>9s} {'x base':>7s} {'warm-up s':>10s}")

def row_line(name: str, res: dict, ceiling: float, device: str, ratio: float = None) -> str:
    pct = lambda x: f"{100 * x:6.1f}%" if x is not None else f"{'-':>7s}"
    tok = f"{res['real_tokens_per_s']:11,.0f}" if res["real_tokens_per_s"] is not None else f"{'-':>11s}"
    h200 = pct(res["flops_per_s"] / H200_BF16_FLOPS) if device == "cuda" else f"{'-':>7s}"
    return (f"{name:28s} {res['role']:9s} {res['samples_per_s']:10.1f} {tok} {pct(res['padding_waste']):>8s} "
            f"{pct(res['flops_per_s'] / ceiling)} {h200:>8s} {res['peak_memory_bytes'] / 2**30:9.2f} "
            f"{(f'x{ratio:.2f}' if ratio else ''):>7s} {res['warmup_seconds']:10.1f}")


def sentiment_reference_mfu(res: dict) -> float:
    "The MFU of the reference (1336 samples/s of BERT-base on full 128-token rows, H200), with this file's FLOP count."
    n, t = 1, SENTIMENT_REFERENCE["tokens"]
    counts = dict(samples=n, source=t, source_sq=t * t, target=0, target_sq=0, cross=0)
    return training_flops(counts, res["linear_weights"], res["attention"]) * SENTIMENT_REFERENCE["samples_per_s"] / SENTIMENT_REFERENCE["peak_flops"]


def targets(name: str, ratio: float, recipe: dict, ceiling: float, device: str, small: bool) -> list:
    "(what, reached or None where it does not apply here) for the issue's targets."
    gpu = device == "cuda" and not small
    mfu = recipe["flops_per_s"] / ceiling
    out = [(f"ratio x{ratio:.2f} >= x{TARGET_RATIO}", ratio >= TARGET_RATIO if gpu else None)]
    if name == "text_generation:text":
        out.append((f"MFU {100 * mfu:.1f}% >= {100 * TARGET_TEXT_MFU:.0f}%", mfu >= TARGET_TEXT_MFU if gpu else None))
    if name == "sentiment" and small:
        out.append(("MFU against the BERT-base reference: needs the real size", None))
    elif name == "sentiment":
        ref = sentiment_reference_mfu(recipe)
        out.append((f"MFU {100 * mfu:.1f}% >= {100 * TARGET_SENTIMENT_SHARE:.0f}% of the reference {100 * ref:.1f}% "
                    f"(BERT-base, 128 real tokens, 1336 samples/s on an H200 at 787 TFLOP/s)",
                    mfu >= TARGET_SENTIMENT_SHARE * ref if gpu else None))
    return out


def print_settings(res: dict):
    if res.get("note"): print(f"{'':28s}   {res['note']}")
    settings = res.get("speed_settings")
    if settings is None: print(f"{'':28s}   (make_trainer exposes no speed_settings)"); return
    for k, v in settings.items(): print(f"{'':28s}   {k}: {v}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default=",".join(r.name for r in RECIPES),
                    help="comma-separated; 'text_generation' means both of its modes")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default 40, --small 6)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 15, --small 2)")
    ap.add_argument("--small", action="store_true", help="tiny models, short sequences, small batches: a CPU smoke run")
    ap.add_argument("--baseline-padding", choices=("examples", "max_length"), default="examples",
                    help="examples: as each transformers example script pads by default; max_length: every text padded to the maximum")
    ap.add_argument("--gradient-checkpointing", choices=("auto", "on", "off"), default="auto",
                    help="the text-generation recipe's setting: auto (its default) turns it on only when training would not fit")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                    help="the recipe side's precision parameter: auto (the recipes' default) picks it per device and model")
    ap.add_argument("--out", default=None, help="JSON of all numbers (default /tmp/ftrecipes-bench/recipe_speed-<device>.json)")
    a = ap.parse_args()
    a.steps = a.steps or (6 if a.small else 40)
    a.warmup = a.warmup if a.warmup is not None else (2 if a.small else 15)
    if not 0 < a.warmup < a.steps: ap.error(f"--warmup {a.warmup} must be at least 1 and below --steps {a.steps}")
    wanted = [w.strip() for w in a.recipes.split(",") if w.strip()]
    chosen = [r for r in RECIPES if r.name in wanted or r.name.split(":")[0] in wanted]
    unknown = [w for w in wanted if not any(w in (r.name, r.name.split(":")[0]) for r in RECIPES)]
    if unknown: ap.error(f"unknown recipe(s) {', '.join(unknown)}; known: {', '.join(r.name for r in RECIPES)}")
    if a.small: chosen = [small_version(r) for r in chosen]

    transformers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' renames (gradient_checkpointing -> activation_...)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hardware = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    ceiling = matmul_ceiling(device, a.small)
    print(f"{hardware}; torch {torch.__version__}, transformers {transformers.__version__}; {a.steps} steps per run, "
          f"{a.warmup} warm-up; {'small models' if a.small else 'real sizes'}; baseline padding: {a.baseline_padding}")
    print(f"measured matmul ceiling: {ceiling / 1e12:.3g} TFLOP/s ({'8192^3' if device == 'cuda' else '2048^3'} {str(ceiling_dtype(device)).replace('torch.bfloat16', 'bf16').replace('torch.float32', 'fp32')}); "
          f"MFU is against it" + ("; MFU@787 is against the H200's 787 TFLOP/s" if device == "cuda" else ""))
    print(HEADER)
    results = {}
    out = Path(a.out or f"/tmp/ftrecipes-bench/recipe_speed-{device}{'-small' if a.small else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    def save(complete: bool):  # after every recipe too: a run stopped at a time limit keeps the recipes it finished
        tmp = out.with_suffix(".tmp")  # then renamed: a run killed while writing leaves the previous file whole
        tmp.write_text(json.dumps(dict(hardware=hardware, device=device, torch=torch.__version__, transformers=transformers.__version__,
                                       ceiling_flops=ceiling, h200_bf16_flops=H200_BF16_FLOPS, arguments=vars(a),
                                       complete=complete, recipes=results), indent=1, default=str))
        tmp.replace(out)
    for r in chosen:
        runs = {}
        for role in ("baseline", "recipe"):
            try: runs[role] = run(r, role, a, device)
            except Exception as e:
                traceback.print_exc()
                runs[role] = dict(role=role, error=f"{type(e).__name__}: {e}")
                print(f"{r.name:28s} {role:9s} FAILED: {runs[role]['error']}", flush=True)
                restore_global_state()
                continue
            ok = "error" not in runs.get("baseline", {"error": 1})
            ratio = runs[role]["samples_per_s"] / runs["baseline"]["samples_per_s"] if role == "recipe" and ok else None
            print(row_line(r.name, runs[role], ceiling, device, ratio), flush=True)
            if role == "recipe": print_settings(runs[role])
        results[r.name] = dict(runs, batch=r.batch, max_lengths=r.max_lengths, published_steps=r.published_steps()[1])
        if all("error" not in runs[k] for k in runs):
            results[r.name]["ratio"] = runs["recipe"]["samples_per_s"] / runs["baseline"]["samples_per_s"]
            checks = targets(r.name, results[r.name]["ratio"], runs["recipe"], ceiling, device, a.small)
            results[r.name]["targets"] = [dict(target=t, reached=ok) for t, ok in checks]
        save(complete=False)

    print("\nsummary (targets apply to a GPU at real sizes; n/a elsewhere):")
    for name, res in results.items():
        if "ratio" not in res: print(f"  {name:28s} failed: " + "; ".join(v["error"] for v in res.values() if isinstance(v, dict) and "error" in v)); continue
        print(f"  {name:28s} " + "; ".join(f"{c['target']}: {'yes' if c['reached'] else 'NO' if c['reached'] is not None else 'n/a'}"
                                             for c in res["targets"]))

    save(complete=True)
    print(f"numbers: {out}")


if __name__ == "__main__":
    main()
