"""Build the real-text evaluation sets of the quality tier from ../shared/data (nothing from there is copied
into the project; the sets are written to a temporary folder at test time).

- Question answering: hand-written questions over passages of *Botchan* (tests/data/botchan_qa.jsonl), the
  contexts rebuilt from the public-domain text by line range. Passages are split whole between train,
  validation and test; training adds the bundled sample (questions written for this project).
- NER: World English Bible verses (public domain) tagged PER/LOC by exact matching of a hand-checked list
  of unambiguous names (tests/data/bible_entities.json): "silver" labels, as good as the list. A third of the
  names appear only in the test verses, so the test scores names the model has never seen.
- Image classification: Fashion-MNIST (Zalando Research, MIT), read from its IDX files and written as parquet
  files with an image column, the layout of image datasets on the Hub.
"""
import csv
import gzip
import json
import random
import re
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOTCHAN_QA = HERE/"data"/"botchan_qa.jsonl"
BIBLE_NAMES = HERE/"data"/"bible_entities.json"


def botchan_context(lines: list, start: int, end: int) -> str:
    "The context rule of tests/data/README.md: 1-based inclusive lines, blanks dropped, joined by spaces."
    return " ".join(l.strip() for l in lines[start - 1:end] if l.strip())


def botchan_squad(botchan_txt: Path) -> list:
    "The Botchan questions as SQuAD rows (id, title, context, question, answers)."
    lines = Path(botchan_txt).read_text(encoding="utf-8").splitlines()
    rows = []
    for line in BOTCHAN_QA.read_text().splitlines():
        q = json.loads(line)
        context = botchan_context(lines, q["start"], q["end"])
        starts = [m.start() for m in re.finditer(re.escape(q["answer"]), context)]
        start = starts[q.get("occurrence", 0)]
        rows.append(dict(id=q["id"], title=f"Botchan {q['start']}-{q['end']}", context=context, question=q["question"],
                         answers=dict(text=[q["answer"]], answer_start=[start])))
    return rows


def write_jsonl(path: Path, rows: list):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def build_qa_folder(botchan_txt: Path, sample_jsonl: Path, out: Path) -> dict:
    "train.jsonl (bundled sample + half the Botchan passages), validation.jsonl and test.jsonl (other passages)."
    rows = botchan_squad(botchan_txt)
    passages = list(dict.fromkeys(r["title"] for r in rows))
    test = set(passages[1::2])
    validation = set(passages[0::2][::4])
    split = {"train": [], "validation": [], "test": []}
    for r in rows:
        split["test" if r["title"] in test else "validation" if r["title"] in validation else "train"].append(r)
    sample = [json.loads(l) for l in Path(sample_jsonl).read_text().splitlines()]
    split["train"] = sample + split["train"]
    out.mkdir(parents=True, exist_ok=True)
    for name, part in split.items(): write_jsonl(out/f"{name}.jsonl", part)
    return {k: len(v) for k, v in split.items()}


WORD = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")


def name_index(names: dict) -> dict:
    "First word -> [(name words, type)], longest names first."
    index = {}
    for typ, ns in names.items():
        for n in ns: index.setdefault(n.split()[0], []).append((n.split(), typ))
    return {w: sorted(c, key=lambda x: -len(x[0])) for w, c in index.items()}


def tag_verse(words: list, index: dict) -> list:
    "IOB2 tags for `words` (`index` from `name_index`): longest exact match of a listed name wins."
    tags, i = ["O"] * len(words), 0
    while i < len(words):
        for name, typ in index.get(words[i], ()):
            if words[i:i + len(name)] == name:
                tags[i:i + len(name)] = [f"B-{typ}"] + [f"I-{typ}"] * (len(name) - 1)
                i += len(name)
                break
        else: i += 1
    return tags


def build_ner_folder(bible_tsv: Path, out: Path, max_chars: int = 400, sizes: dict = None, seed: int = 0) -> dict:
    """train/validation/test .jsonl of {tokens, ner_tags}. The names are split in two: training and validation verses
    mention only the first set, test verses only the second, so the test measures names never seen in training
    (a model that memorised names scores nothing there; so does the lookup baseline)."""
    sizes = sizes or dict(train=1500, validation=200, test=600)
    names = json.loads(BIBLE_NAMES.read_text())
    held_out = {t: set(sorted(ns)[1::3]) for t, ns in names.items()}
    verses = []
    with open(bible_tsv, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if len(row["en"]) <= max_chars: verses.append(WORD.findall(row["en"]))
    seen, unseen, plain = [], [], []
    index = name_index(names)
    for words in verses:
        tags = tag_verse(words, index)
        found = [(t, " ".join(words[s:e + 1])) for t, s, e in _spans(tags)]
        if not found: plain.append((words, tags))
        elif all(n in held_out[t] for t, n in found): unseen.append((words, tags))
        elif not any(n in held_out[t] for t, n in found): seen.append((words, tags))
    rng = random.Random(seed)
    for part in (seen, unseen, plain): rng.shuffle(part)
    n_tr, n_va, n_te = sizes["train"], sizes["validation"], sizes["test"]
    split = {"train": seen[:n_tr] + plain[:n_tr // 5],
             "validation": seen[n_tr:n_tr + n_va] + plain[n_tr // 5:n_tr // 5 + n_va // 5],
             "test": unseen[:n_te] + plain[-(n_te // 5):]}
    out.mkdir(parents=True, exist_ok=True)
    for name, part in split.items():
        rng.shuffle(part)
        write_jsonl(out/f"{name}.jsonl", [dict(tokens=w, ner_tags=t) for w, t in part])
    return {k: len(v) for k, v in split.items()}


def _spans(tags):
    "(type, first, last) of IOB2 tags."
    spans = []
    for i, t in enumerate(tags):
        if t.startswith("B-"): spans.append([t[2:], i, i])
        elif t.startswith("I-"): spans[-1][2] = i
    return spans


def build_translation_folder(bible_tsv: Path, out: Path, max_words: int = 24, sizes: dict = None, seed: int = 0) -> dict:
    "train/validation/test .tsv with columns en, es: World English Bible / Reina-Valera 1909 verses of at most `max_words`."
    sizes = sizes or dict(train=8000, validation=200, test=300)
    with open(bible_tsv, encoding="utf-8") as f:
        rows = [(r["en"], r["es"]) for r in csv.DictReader(f, delimiter="\t")
                if 0 < len(r["en"].split()) <= max_words and r["es"].strip()]
    random.Random(seed).shuffle(rows)
    n_tr, n_va, n_te = sizes["train"], sizes["validation"], sizes["test"]
    split = {"train": rows[:n_tr], "validation": rows[n_tr:n_tr + n_va], "test": rows[n_tr + n_va:n_tr + n_va + n_te]}
    out.mkdir(parents=True, exist_ok=True)
    for name, part in split.items():
        with open(out/f"{name}.tsv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
            w.writerow(["en", "es"]); w.writerows(part)
    return {k: len(v) for k, v in split.items()}


BOTCHAN_SUMMARIES = HERE/"data"/"botchan_summaries.jsonl"


def build_summarization_folder(botchan_txt: Path, out: Path) -> dict:
    "train/validation/test .jsonl of {document, summary}: Botchan passages (rebuilt by line range) and hand-written summaries."
    lines = Path(botchan_txt).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(l) for l in BOTCHAN_SUMMARIES.read_text().splitlines()]
    split = {"train": [], "validation": [], "test": []}
    for i, r in enumerate(rows):
        name = "test" if i % 5 == 2 else "validation" if i % 10 == 5 else "train"
        split[name].append(dict(id=r["id"], document=botchan_context(lines, r["start"], r["end"]), summary=r["summary"]))
    out.mkdir(parents=True, exist_ok=True)
    for name, part in split.items(): write_jsonl(out/f"{name}.jsonl", part)
    return {k: len(v) for k, v in split.items()}


FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path: Path):
    "A NumPy array from an IDX file (the MNIST format: magic, dimensions, then unsigned bytes), gzipped."
    import numpy as np
    with gzip.open(path) as f:
        zero, dtype, ndim = struct.unpack(">HBB", f.read(4))
        assert zero == 0 and dtype == 0x08, f"{path}: not an IDX file of unsigned bytes"
        dims = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


def build_fashion_mnist_folder(src: Path, out: Path, n_train: int = 9600, n_validation: int = 500, n_test: int = 2000,
                               seed: int = 0) -> dict:
    "train/validation/test parquet files (image, label) from Fashion-MNIST: random training and validation rows, the first test rows."
    import numpy as np
    from datasets import ClassLabel, Dataset, Features, Image
    x, y = read_idx(src/"train-images-idx3-ubyte.gz"), read_idx(src/"train-labels-idx1-ubyte.gz")
    xt, yt = read_idx(src/"t10k-images-idx3-ubyte.gz"), read_idx(src/"t10k-labels-idx1-ubyte.gz")
    order = np.random.default_rng(seed).permutation(len(x))
    parts = dict(train=order[:n_train], validation=order[n_train:n_train + n_validation])
    features = Features({"image": Image(), "label": ClassLabel(names=FASHION_MNIST_CLASSES)})
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for split, (images, labels) in dict(train=(x[parts["train"]], y[parts["train"]]),
                                        validation=(x[parts["validation"]], y[parts["validation"]]),
                                        test=(xt[:n_test], yt[:n_test])).items():
        ds = Dataset.from_dict({"image": list(images), "label": labels.tolist()}, features=features)
        ds.to_parquet(str(out/f"{split}.parquet"))
        sizes[split] = len(ds)
    return sizes
