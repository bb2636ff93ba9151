"""Repositories for the stand-in of the Hub (`tests/hub_standin.py`), under the ids the recipes' published setups name.

Each model repository holds its family's config at a tiny size (2 layers, hidden 32), random weights in safetensors
and a tokenizer of the real kind trained on the bundled samples; each dataset repository holds parquet files with
the real schema, features, configuration and splits, and a README whose YAML declares them, with a few dozen rows
from the bundled samples. `build_hub(root)` writes them all (seconds); nothing of it is kept in the repository.
"""
import json
import tempfile
from pathlib import Path

import numpy as np
import timm
import torch
import yaml
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Translation, Value
from PIL import Image as PILImage
from safetensors.torch import save_file
from transformers import BertConfig, BertForMaskedLM

from ftrecipes.data import load_data
from ftrecipes.offline import _default_corpus, build_tiny_model, train_wordpiece_tokenizer
from hub_standin import write_commit

TINY = dict(hidden=32, layers=2, heads=2, vocab_size=500)
CONLL_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
EUROSAT = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake"]
SWIN = "swin_tiny_patch4_window7_224"
SWIN_TINY_ARGS = dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))  # the real one: 96, (2, 2, 6, 2), (3, 6, 12, 24)


def folder_files(folder: Path) -> dict:
    "Path in the folder -> bytes of every file under `folder`."
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def set_architectures(files: dict, **config) -> dict:
    "`files` with config.json updated by `config` (the real repository's architectures and name)."
    files["config.json"] = json.dumps({**json.loads(files["config.json"]), **config}, indent=2).encode()
    return files


def tiny_family_model(arch: str, texts: list, out: Path, max_len: int = 512, **config) -> dict:
    "The files of a tiny `arch` model from `build_tiny_model` (`max_len` positions, as the real one), with `config` set in its config.json."
    return set_architectures(folder_files(build_tiny_model(arch, texts, out_dir=str(out), max_len=max_len, **TINY)), **config)


def tiny_bert(texts: list, out: Path, lowercase: bool) -> dict:
    "The files of a tiny BERT with a masked-LM head (as bert-base-*), its WordPiece vocabulary cased or not."
    tok = train_wordpiece_tokenizer(texts, TINY["vocab_size"], lowercase=lowercase)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=TINY["hidden"], num_hidden_layers=TINY["layers"],
                                       num_attention_heads=TINY["heads"], intermediate_size=4 * TINY["hidden"]))
    model.save_pretrained(out); tok.save_pretrained(out)
    return folder_files(out)


def tiny_swin(out: Path) -> dict:
    "The files of a tiny Swin in the layout timm publishes (config.json with pretrained_cfg and model_args, model.safetensors)."
    torch.manual_seed(0)
    model = timm.create_model(SWIN, pretrained=False, **SWIN_TINY_ARGS)
    cfg = {k: v for k, v in model.pretrained_cfg.items() if k not in ("url", "file", "source", "hf_hub_id")}
    config = dict(architecture=SWIN, num_classes=model.num_classes, num_features=model.num_features, global_pool="avg",
                  model_args=SWIN_TINY_ARGS, pretrained_cfg=dict(cfg, tag="ms_in1k", hf_hub_id="timm/" + SWIN + ".ms_in1k"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out/"model.safetensors")
    return {"config.json": json.dumps(config, indent=2).encode(), "model.safetensors": (out/"model.safetensors").read_bytes()}


def dataset_files(splits: dict, config_name: str, folder: str, default: bool = False) -> dict:
    "Parquet files and the README of a Hub dataset of one configuration: `splits` is split name -> Dataset."
    files = {}
    with tempfile.TemporaryDirectory() as d:
        for split, ds in splits.items():
            ds.to_parquet(f"{d}/{split}.parquet")
            files[f"{folder}/{split}-00000-of-00001.parquet"] = Path(f"{d}/{split}.parquet").read_bytes()
    first = next(iter(splits.values()))
    card = dict(configs=[dict(config_name=config_name, data_files=[dict(split=s, path=f"{folder}/{s}-*") for s in splits],
                              **(dict(default=True) if default else {}))],
                dataset_info=dict(config_name=config_name, features=first.features._to_yaml_list(),
                                  splits=[dict(name=s, num_bytes=ds.data.nbytes, num_examples=len(ds)) for s, ds in splits.items()]))
    files["README.md"] = f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n".encode()
    return files


def sample(name: str, n: int, skip: int = 0) -> Dataset:
    "Rows `skip` to `skip + n` of the bundled sample `name`."
    return load_data(f"sample:{name}")["train"].select(range(skip, skip + n))


def glue_sst2(n_train: int = 48) -> dict:
    "nyu-mll/glue, configuration sst2: train, validation, and a test split whose labels are all -1 (hidden)."
    feats = Features(sentence=Value("string"), label=ClassLabel(names=["negative", "positive"]), idx=Value("int32"))
    def rows(ds, hidden=False):
        return Dataset.from_dict(dict(sentence=ds["text"], idx=list(range(len(ds))),
                                      label=[-1 if hidden else int(lab == "positive") for lab in ds["label"]]), features=feats)
    return dataset_files(dict(train=rows(sample("sentiment", n_train)), validation=rows(sample("sentiment", 24, 200)),
                              test=rows(sample("sentiment", 30, 300), hidden=True)), "sst2", "sst2")


def squad() -> dict:
    "rajpurkar/squad (configuration plain_text, the default): train and validation, no test split, every question answered."
    feats = Features(id=Value("string"), title=Value("string"), context=Value("string"), question=Value("string"),
                     answers={"text": List(Value("string")), "answer_start": List(Value("int32"))})
    answered = load_data("sample:qa")["train"].filter(lambda r: len(r["answers"]["text"]) > 0)  # SQuAD 1.1: all answerable
    def rows(ds): return Dataset.from_dict(ds.to_dict(), features=feats)
    return dataset_files(dict(train=rows(answered.select(range(40))), validation=rows(answered.select(range(190, 214)))),
                         "plain_text", "plain_text", default=True)


def conll2003() -> dict:
    "lhoestq/conll2003: tokens and CoNLL-2003's tag ids (pos and chunk tags as zeros) in train, validation and test."
    feats = Features(id=Value("string"), tokens=List(Value("string")), pos_tags=List(Value("int32")),
                     chunk_tags=List(Value("int32")), ner_tags=List(ClassLabel(names=CONLL_TAGS)))
    def rows(ds):
        return Dataset.from_dict(dict(id=[str(i) for i in range(len(ds))], tokens=ds["tokens"],
                                      pos_tags=[[0] * len(t) for t in ds["tokens"]], chunk_tags=[[0] * len(t) for t in ds["tokens"]],
                                      ner_tags=[[CONLL_TAGS.index(t) for t in tags] for tags in ds["ner_tags"]]), features=feats)
    return dataset_files(dict(train=rows(sample("ner", 48)), validation=rows(sample("ner", 20, 200)),
                              test=rows(sample("ner", 24, 250))), "default", "data", default=True)


def cnn_dailymail() -> dict:
    "abisee/cnn_dailymail, configuration 3.0.0: article, highlights, id in train, validation and test."
    feats = Features(article=Value("string"), highlights=Value("string"), id=Value("string"))
    def rows(ds): return Dataset.from_dict(dict(article=ds["document"], highlights=ds["summary"], id=ds["id"]), features=feats)
    return dataset_files(dict(train=rows(sample("summarization", 32)), validation=rows(sample("summarization", 12, 150)),
                              test=rows(sample("summarization", 6, 180))), "3.0.0", "3.0.0")


def wmt16_ro_en() -> dict:
    "wmt/wmt16, configuration ro-en: translation dicts in train, validation and test (the sample's Spanish in the 'ro' slot)."
    feats = Features(translation=Translation(languages=["ro", "en"]))
    def rows(ds): return Dataset.from_dict(dict(translation=[dict(ro=r["es"], en=r["en"]) for r in ds]), features=feats)
    return dataset_files(dict(train=rows(sample("translation", 40)), validation=rows(sample("translation", 6, 300)),
                              test=rows(sample("translation", 12, 350))), "ro-en", "ro-en")


def no_robots() -> dict:
    "HuggingFaceH4/no_robots: prompt, prompt_id, messages, category in train and test (no validation split)."
    feats = Features(prompt=Value("string"), prompt_id=Value("string"),
                     messages=List({"content": Value("string"), "role": Value("string")}), category=Value("string"))
    def rows(ds):
        msgs = [[dict(content=m["content"], role=m["role"]) for m in c] for c in ds["messages"]]
        return Dataset.from_dict(dict(prompt=[next(m["content"] for m in c if m["role"] == "user") for c in msgs],
                                      prompt_id=ds["id"], messages=msgs, category=["Open QA"] * len(ds)), features=feats)
    return dataset_files(dict(train=rows(sample("instructions", 40)), test=rows(sample("instructions", 6, 300))),
                         "default", "data", default=True)


def eurosat(per_class: int = 4) -> dict:
    "timm/eurosat-rgb: 64x64 RGB images (one colour per class, with noise), EuroSAT's 10 class names, three splits."
    feats = Features(image=Image(), label=ClassLabel(names=EUROSAT), image_id=Value("string"))
    rng = np.random.default_rng(0)
    def rows(split, n):
        images, labels = [], []
        for c in range(len(EUROSAT)):
            for _ in range(n):
                base = np.array([(37 * c) % 256, (91 * c) % 256, (153 * c) % 256], dtype=np.int16)
                pixels = np.clip(base + rng.integers(-20, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
                images.append(PILImage.fromarray(pixels)); labels.append(c)
        return Dataset.from_dict(dict(image=images, label=labels, image_id=[f"{split}_{i}" for i in range(len(labels))]),
                                 features=feats)
    return dataset_files(dict(train=rows("train", per_class), validation=rows("validation", 1), test=rows("test", 2)),
                         "default", "data", default=True)


def build_hub(root: Path) -> dict:
    "Write every repository the published setups name under `root`; return {(kind, id): sha of main}."
    root, texts, shas = Path(root), _default_corpus(), {}  # the bundled samples' text trains the tokenizers
    work = Path(tempfile.mkdtemp(dir=root.parent))
    models = {
        "bert-base-cased": tiny_bert(texts, work/"cased", lowercase=False),
        "bert-base-uncased": tiny_bert(texts, work/"uncased", lowercase=True),
        "t5-small": tiny_family_model("t5", texts, work/"t5", architectures=["T5ForConditionalGeneration"]),
        "Helsinki-NLP/opus-mt-en-ro": tiny_family_model("marian", texts, work/"marian", architectures=["MarianMTModel"]),
        "HuggingFaceTB/SmolLM2-360M-Instruct": tiny_family_model("llama", texts, work/"llama", max_len=8192,
                                                                 architectures=["LlamaForCausalLM"]),
        "timm/swin_tiny_patch4_window7_224.ms_in1k": tiny_swin(work),
    }
    datasets = {"nyu-mll/glue": glue_sst2(), "rajpurkar/squad": squad(), "lhoestq/conll2003": conll2003(),
                "abisee/cnn_dailymail": cnn_dailymail(), "wmt/wmt16": wmt16_ro_en(), "HuggingFaceH4/no_robots": no_robots(),
                "timm/eurosat-rgb": eurosat()}
    for repo_id, files in models.items(): shas["models", repo_id] = write_commit(root, "models", repo_id, files)
    for repo_id, files in datasets.items(): shas["datasets", repo_id] = write_commit(root, "datasets", repo_id, files)
    return shas
