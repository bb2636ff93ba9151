"""The bad-input corpus: files and parameters a learner could really give, each of which must stop the recipe *before
its first training step* with one line that says what is wrong, where (file, split, row, column or parameter) and what to
do, and must leave the outputs of an earlier run untouched.

The files are in tests/bad_inputs/<task>/ (see its README). Every case runs the recipe with its smoke preset through
`run_recipe`, the function behind `ftrecipes run`, in the smoke suite's warm worker processes (tests/notebook_runner.py):
the same parameter checks, output folder and notebook, without a kernel start per case. A few cases also go through the
real command, to check that it exits 1 with one line on stderr. Each case points its output at a folder that already
holds an earlier run; that folder must be byte for byte the same afterwards, and the numbered folder the new run got must
hold no checkpoint, model or results.

After the run, test-artifacts/bad_inputs.md lists every case with the message it produced."""
import hashlib
import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ROOT, subprocess_env
from notebook_runner import run_all, run_recipe_job

CORPUS = Path(__file__).parent/"bad_inputs"
ARTIFACTS = ROOT/"test-artifacts"


def C(task, data, expected, **params):
    "A case: recipe `task`, `data` (a corpus file, a sample, or an image folder the fixture builds), more parameters, and the text the one line must hold."
    return dict(task=task, data=data, params=params, expected=expected)


CASES = {
    # --- text classification (sentiment) ---
    "misnamed text column": C("sentiment", "sentiment/misnamed_text_column.csv",
                              "split 'train': no column 'text' (parameter text_column). Columns found: ['review', 'label']. Add the column, or pass its name with -p text_column=NAME"),
    "misnamed label column": C("sentiment", "sample:sentiment", "no column 'stars' (parameter label_column). Columns found: ['text', 'label', 'domain']. Pass the right name, e.g. -p label_column='label'", label_column="stars"),
    "empty file": C("sentiment", "sentiment/empty.csv", "empty.csv: the file is empty"),
    "header row only": C("sentiment", "sentiment/header_only.csv", "header_only.csv: has a header row but no data rows"),
    "an empty split": C("sentiment", "sentiment/empty_split", "test.csv: has a header row but no data rows"),
    "a label outside the label set": C("sentiment", "sentiment/label_outside_the_set.csv",
                                       "row 21: label 'neutral' in 'label' is not one of the classes",
                                       label_names=["negative", "positive"]),
    "float labels for classification": C("sentiment", "sentiment/float_labels.csv", "holds scores such as 0.91, not classes"),
    "a missing label": C("sentiment", "sentiment/missing_label.csv", "row 14: the label in 'label' is missing"),
    "mixed label types": C("sentiment", "sentiment/mixed_label_types.jsonl", "row 7: label 1 in 'label' mixes label types: split 'train', row 1 has 'positive'"),
    "non-UTF-8 text": C("sentiment", "sentiment/latin1.csv", "latin1.csv, line 22, column 4: byte 0xe9 is not UTF-8"),
    "a line that is not JSON": C("sentiment", "sentiment/broken.jsonl", "broken.jsonl, line 21, column 35: not valid JSON"),
    "a spreadsheet": C("sentiment", "sentiment/reviews.xlsx", "cannot read files ending in '.xlsx'"),
    "labels that differ only in case": C("sentiment", "sentiment/labels_differ_in_case.csv",
                                         "and 'Negative' (split 'train', row 10) in 'label' differ only in case"),
    "one class only": C("sentiment", "sentiment/one_class.csv", "every row has the class 'positive'; a classifier needs examples of at least two"),
    "a class seen once": C("sentiment", "sentiment/class_seen_once.csv", "class 'neutral' has only 1 row (split 'train', row 17)"),
    "a test class that train lacks": C("sentiment", "sentiment/class_only_in_test", "class 'neutral' has no training rows (test 3)",
                                       label_names=["negative", "neutral", "positive"]),
    "too few rows to split": C("sentiment", "sentiment/eight_rows.csv", "has 8 rows: too few to cut a validation split (10%) and a test split (10%)"),
    "a comma outside quotes": C("sentiment", "sentiment/unquoted_comma.csv", "unquoted_comma.csv, line 14: 3 fields, but the header has 2"),
    "a CSV separated by semicolons": C("sentiment", "sentiment/semicolons.csv", "semicolons.csv, line 1: the header 'text;label' is one column: the file looks separated by ';'"),
    "a quote never closed": C("sentiment", "sentiment/unclosed_quote.csv", "unclosed_quote.csv, line 27: the row starting here does not parse"),
    "a text column with no text": C("sentiment", "sentiment/no_texts.csv", "split 'train': every text in 'text' is empty"),
    "a path that does not exist": C("sentiment", "./no/such/reviews.csv", "No such file or folder: './no/such/reviews.csv'"),
    "a Hub dataset id while offline": C("sentiment", "someone/reviews", "looks like a Hub dataset id, but the Hub is unreachable"),
    "a real corpus misspelt": C("sentiment", "real:movie_snipets", "No real corpus named 'movie_snipets'. Real corpora: real:amazon_snippets"),
    "a Hub model id while offline": C("sentiment", "sample:sentiment", "looks like a Hub model id, but the Hub is unreachable",
                                      model="someone/bert-reviews"),
    "a model folder that does not exist": C("sentiment", "sample:sentiment", "No such model folder: './no/such/model'",
                                            model="./no/such/model"),
    "a model folder with no tokenizer": C("sentiment", "sample:sentiment", "has a model but no tokenizer files", model="<no-tokenizer>"),
    "a folder that is not a model": C("sentiment", "sample:sentiment", "no config.json, so this is not a saved model folder",
                                      model="<not-a-model>"),
    "a model saved only as a pickle": C("sentiment", "sample:sentiment", "the weights are only a PyTorch pickle (pytorch_model.bin)",
                                        model="<pickle-weights>"),
    "a model that ships its own code": C("sentiment", "sample:sentiment",
                                         "ships its own Python code (configuration_echo.py, modeling_echo.py), which would run",
                                         model="<custom-code>"),
    "trust_remote_code given as a string": C("sentiment", "sample:sentiment", "-p trust_remote_code='yes': expected a bool like False",
                                             trust_remote_code="yes"),
    "a learning rate of zero": C("sentiment", "sample:sentiment", "learning_rate=0", learning_rate=0.0),
    "a negative learning rate": C("sentiment", "sample:sentiment", "learning_rate=-2e-05", learning_rate=-2e-5),
    "a batch size of zero": C("sentiment", "sample:sentiment", "batch_size=0", batch_size=0),
    "a parameter of the wrong type": C("sentiment", "sample:sentiment", "-p batch_size='big': expected an int like 32", batch_size="big"),
    "a misspelt parameter": C("sentiment", "sample:sentiment", "sentiment has no parameter 'epoch'. Did you mean 'epochs'?", epoch=3),
    "an unknown preset": C("sentiment", "sample:sentiment", "preset='fast': use one of", preset="fast"),
    # --- extractive question answering ---
    "an answer not at answer_start": C("question_answering", "question_answering/wrong_answer_start.jsonl",
                                       "example id 'q13': answer_start 4 does not point at the answer 'Ann'"),
    "an answer not in its context": C("question_answering", "question_answering/answer_not_in_context.jsonl", "example id 'q7': answer_start 0 does not point at the answer 'Carol'"),
    "duplicate question ids": C("question_answering", "question_answering/duplicate_ids.jsonl", "example id 'q3': the id appears 2 times"),
    "no answers column": C("question_answering", "question_answering/no_answers_column.jsonl", "no column 'answers'"),
    "a SQuAD JSON file with an unanswerable question that has answers": C(
        "question_answering", "question_answering/squad_impossible_with_answer.json",
        "article 3, paragraph 2, question id 'gp018': is_impossible is true, but it has answers (['ditches'])"),
    "a missing context": C("question_answering", "question_answering/missing_context.jsonl",
                           "example id 'q5': the context is missing (an empty cell, or null)"),
    "an answer_start that is null": C("question_answering", "question_answering/answer_start_missing.jsonl",
                                      "example id 'q8': answer_start None is not a character position"),
    "SQuAD answers written into a CSV": C("question_answering", "question_answering/answers_as_text.csv",
                                          "example id 'q0': the answers are \"{'text': ['Ann'], 'answer_start': [0]}\", a dict written out as text"),
    # --- named-entity recognition ---
    "a tag outside the tag set": C("ner", "ner/tag_outside_the_set.conll", "row 11, word 1 ('Paris'): tag 'B-CITY' is not one of",
                                   label_names=["O", "B-PER", "I-PER"]),
    "tokens and tags of different lengths": C("ner", "ner/tokens_and_tags_differ.jsonl", "row 10: 6 words but 5 tags"),
    "a CoNLL file with one column": C("ner", "ner/one_column.conll", "one column only; each line needs a token and its tag"),
    "a CoNLL file with ragged columns": C("ner", "ner/ragged_columns.conll", "line 21: 2 columns"),
    "a seq2seq model for token classification": C("ner", "sample:ner", "is a bart model, which has no head for AutoModelForTokenClassification",
                                                  model="tiny:bart"),
    "plain tags without B-/I- prefixes": C("ner", "ner/plain_tags.conll", "row 1, word 1 ('Ann'): tag 'PER' has no B-/I- prefix"),
    "an empty word": C("ner", "ner/empty_word.jsonl", "row 6, word 3: the word is empty ('')"),
    "a sentence given as one string": C("ner", "ner/tokens_as_one_string.jsonl", "row 1: the words in 'tokens' are one string"),
    # --- summarization and translation ---
    "an empty summary": C("summarization", "summarization/empty_summary.jsonl", "row 13: the 'summary' text is empty"),
    "no document column": C("summarization", "summarization/no_document_column.csv", "no column 'document' (parameter source_column)"),
    "an empty translation": C("translation", "translation/empty_target.tsv", "row 13: the 'es' text is empty"),
    "a pair with a missing language": C("translation", "translation/missing_language.jsonl",
                                        "row 13: no 'es' text in 'translation' (keys: ['en', 'fr'])"),
    "a target language the data lacks": C("translation", "translation/empty_target.tsv",
                                          "no column 'translation' of language pairs and no column 'de'", target_lang="de"),
    "a missing summary": C("summarization", "summarization/missing_summary.csv", "row 9: the 'summary' text is missing (an empty cell, or null)"),
    "a summary given as a list of sentences": C("summarization", "summarization/summary_as_list.jsonl", "row 12: the 'summary' text is a list"),
    "a document as its own summary": C("summarization", "sample:summarization", "source_column and target_column are both 'document'",
                                       target_column="document"),
    "a language translated into itself": C("translation", "sample:translation", "source_lang='en' and target_lang='en' name the same language",
                                           target_lang="en"),
    "one language in two cases": C("translation", "sample:translation", "source_lang='en' and target_lang='EN' name the same language",
                                   target_lang="EN"),
    "a language code in the wrong case": C("translation", "sample:translation", "no column 'EN'. Columns found: ['id', 'en', 'es']. "
                                           "Name the columns after the language codes, or pass translation_column, source_lang and "
                                           "target_lang. Did you mean 'en'?", source_lang="EN"),
    "a source language the data lacks": C("translation", "sample:translation", "no column 'translation' of language pairs and no column 'de'",
                                          source_lang="de"),
    "a null translation": C("translation", "translation/null_target.jsonl", "row 7: the 'es' text is missing (an empty cell, or null)"),
    # --- text generation ---
    "a chat without an assistant turn": C("text_generation", "text_generation/no_assistant_turn.jsonl",
                                          "split 'train', row 2: this chat has no assistant turn"),
    "a chat with unknown roles": C("text_generation", "text_generation/unknown_role.jsonl", "row 6, message 1: {'role': 'human', 'content': 'Hi'} needs a role (system, user, assistant)"),
    "no chat or prompt columns": C("text_generation", "text_generation/no_chat_columns.jsonl", "split 'train': no column 'messages' and no 'prompt'/'response' pair"),
    "a prompt longer than the context": C("text_generation", "text_generation/long_prompt.jsonl",
                                          "the prompt alone is longer than max_seq_length=128 tokens",
                                          long_prompts="error", split_seed=0, max_train_samples=None),
    "LoRA on a layer the model lacks": C("text_generation", "sample:instructions", "c_attn is not a linear layer of this llama model",
                                         lora_target_modules="q_proj,c_attn"),
    "QLoRA without a CUDA GPU": C("text_generation", "sample:instructions", "finetuning='qlora' needs a CUDA GPU", finetuning="qlora"),
    "two user messages in a row": C("text_generation", "text_generation/roles_not_alternating.jsonl",
                                    "split 'train', row 5, message 2 (user): two user messages in a row (messages 1 and 2)"),
    "a chat that ends on the user": C("text_generation", "text_generation/ends_on_user.jsonl",
                                      "split 'train', row 4, message 3 (user): the chat ends on the user's message"),
    "a chat that starts with the assistant": C("text_generation", "text_generation/assistant_first.jsonl",
                                               "split 'train', row 3, message 1 (assistant): the chat starts with the assistant"),
    "an empty message": C("text_generation", "text_generation/empty_content.jsonl",
                          "split 'train', row 7, message 2 (assistant): no text (empty)"),
    "a message of content parts": C("text_generation", "text_generation/content_parts.jsonl",
                                    "split 'train', row 5, message 1 (user): the content is a list of parts"),
    "a message with null content": C("text_generation", "text_generation/content_null.jsonl",
                                     "split 'train', row 6, message 2 (assistant): no text (missing)"),
    "two system messages": C("text_generation", "text_generation/two_system_messages.jsonl",
                             "split 'train', row 3, message 2 (system): a second system message"),
    "a system message after the first turn": C("text_generation", "text_generation/system_not_first.jsonl",
                                               "split 'train', row 8, message 2 (system): a system message after the chat has begun"),
    "chats stored as JSON strings": C("text_generation", "text_generation/messages_as_json_strings.jsonl",
                                      "split 'train', row 1: the chat is a string"),
    "a blank response": C("text_generation", "text_generation/blank_response.jsonl", "split 'train', row 6, column 'response': no text (empty)"),
    "text mode without a 'text' column": C("text_generation", "text_generation/text_in_body_column.csv",
                                           "no column 'text' (parameter text_column). Columns found: ['title', 'body']. "
                                           "Pass the column that holds the text, e.g. -p text_column='body'", mode="text"),
    # --- image classification ---
    "a class folder with no images": C("image_classification", "<empty-class>", "hexagon: a class folder with no images"),
    "a corrupt image": C("image_classification", "<corrupt>", "cross/broken.jpg: not a readable image (OSError", bad_images="stop"),
    "a zero-byte image": C("image_classification", "<zero-bytes>", "zero_bytes.png: not a readable image", bad_images="stop"),
    "a folder with no images": C("image_classification", "<no-images>", "found no images"),
    "a misnamed image column": C("image_classification", "sample:shapes", "no column 'picture'", image_column="picture"),
    "a precision that does not exist": C("image_classification", "sample:shapes",
                                         "precision='fp8': use one of auto, fp32, bf16, fp16.", precision="fp8"),
    "a misnamed slice column": C("image_classification", "sample:shapes", "no column 'camera' (parameter slice_column)",
                                 slice_column="camera"),
    "an unknown augmentation": C("image_classification", "sample:shapes", "augment='mixup': use one of", augment="mixup"),
    "a text model for images": C("image_classification", "sample:shapes", "not a timm model", model="tiny:bert"),
    "a single class folder": C("image_classification", "<one-class>",
                               "found 1 class folder(s) in the top folder (circle/); expected one sub-folder of images per class"),
    "a folder inside a class folder": C("image_classification", "<nested>",
                                        "found the folder square/dark/ inside the class folder square/"),
    "a folder inside a class folder of a split": C("image_classification", "<split-nested>",
                                                   "found the folder train/square/dark/ inside the class folder train/square/"),
    "images beside the class folders": C("image_classification", "<loose-images>",
                                         "found 1 image(s) directly in the top folder (circle_000.png) beside the folders"),
    "a split folder beside class folders": C("image_classification", "<split-beside-classes>",
                                             "found split folders (test/) beside other folders (circle/, cross/, ring/"),
    "a capitalised split folder": C("image_classification", "<capital-split>",
                                    "found the folder Train/, but datasets' imagefolder takes only lower-case names for split folders"),
    "a class named like a split": C("image_classification", "<split-word-class>", "a split word in a file or folder name for a split "
                                    "(test_stripes/stripes_000.png), so it would leave out circle/circle_000.png"),
    "an empty split folder": C("image_classification", "<empty-split>", "found 0 class folder(s) in test/"),
    "an image test class that train lacks": C("image_classification", "<test-only-class>",
                                              "class 'hexagon' has no training rows (test 3)"),
    "a file of images of one class": C("image_classification", "<one-class-file>",
                                       "every row has the class 'circle'; a classifier needs examples of at least two"),
    "a batch of one for batch norm": C("image_classification", "sample:shapes", "batch_size=1: this model has batch-norm layers",
                                       batch_size=1),
    # --- any recipe: parameters and output folders ---
    "no training rows asked for": C("sentiment", "sample:sentiment",
                                    "-p max_train_samples=0: must be a whole number of at least 1, or None for all rows.", max_train_samples=0),
    "a negative number of evaluation rows": C("question_answering", "sample:qa",
                                              "-p max_eval_samples=-5: must be a whole number of at least 1, or None for all rows.",
                                              max_eval_samples=-5),
    "a max_length of zero": C("ner", "sample:ner", "-p max_length=0: must be a whole number of at least 1.", max_length=0),
    "zero beams": C("summarization", "sample:summarization", "-p num_beams=0: must be a whole number of at least 1.", num_beams=0),
    "a negative seed": C("sentiment", "sample:sentiment", "-p seed=-1: must be a whole number from 0 to 4294967295.", seed=-1),
    "a negative split seed": C("sentiment", "sample:sentiment", "-p split_seed=-3: must be a whole number from 0 to 4294967295.",
                               split_seed=-3),
    "zero optimizer steps": C("image_classification", "sample:shapes",
                              "max_steps=0: must be a whole number above 0, or -1 to train for `epochs`.", max_steps=0),
    "max_length beyond the model's positions": C("sentiment", "sample:sentiment", "max_length=1024 is more than", max_length=1024),
    "max_source_length beyond the model's positions": C("translation", "sample:translation",
                                                        "512 positions (config.max_position_embeddings); use at most 512.",
                                                        max_source_length=1024),
    "max_target_length beyond the model's positions": C("translation", "sample:translation", "max_target_length=1024 is more than",
                                                        max_target_length=1024),
}

# Not an error: texts far longer than the model's context are truncated, counted and reported, and the run goes on.
LONG_TEXTS = C("sentiment", "sentiment/very_long_texts.csv", "")
# Not an error either: with trust_remote_code=True the model's own code runs, and the recipe says what that means.
TRUSTED = C("sentiment", "sample:sentiment", "", model="<custom-code>", trust_remote_code=True)

# Through the real command too: exit status 1 and exactly one line on stderr.
CLI_CASES = ["misnamed text column", "a parameter of the wrong type", "tokens and tags of different lengths", "a corrupt image"]


def _image_folders(tmp: Path) -> dict:
    "Copies of the bundled shapes sample with one thing wrong each."
    from ftrecipes.data import sample_path
    shapes, out = sample_path("shapes"), {}
    for name in ("empty-class", "corrupt", "zero-bytes"):
        out[name] = tmp/name
        shutil.copytree(shapes, out[name])
    (out["empty-class"]/"hexagon").mkdir()
    shutil.copy(CORPUS/"image_classification"/"broken.jpg", out["corrupt"]/"cross")
    shutil.copy(CORPUS/"image_classification"/"zero_bytes.png", out["zero-bytes"]/"circle")
    out["no-images"] = tmp/"no-images"
    (out["no-images"]/"cats").mkdir(parents=True)
    (out["no-images"]/"cats"/"readme.txt").write_text("photos to come")
    # layouts that imagefolder would read wrongly: the shapes at the top, or under train/ (Train/ for capital-split)
    for name in ("one-class", "nested", "loose-images", "split-beside-classes", "split-word-class"):
        out[name] = tmp/name
        shutil.copytree(shapes, out[name])
    for name in ("split-nested", "capital-split", "empty-split", "test-only-class"):
        out[name] = tmp/name
        shutil.copytree(shapes, out[name]/("Train" if name == "capital-split" else "train"))
    for d in out["one-class"].iterdir():
        if d.name != "circle": shutil.rmtree(d)
    for where in (out["nested"]/"square"/"dark", out["split-nested"]/"train"/"square"/"dark"):
        where.mkdir()
        shutil.copy(shapes/"square"/"square_000.png", where)
    shutil.copy(shapes/"circle"/"circle_000.png", out["loose-images"])
    shutil.copytree(shapes/"circle", out["split-beside-classes"]/"test"/"circle")
    (out["split-word-class"]/"stripes").rename(out["split-word-class"]/"test_stripes")
    (out["empty-split"]/"test").mkdir()
    first_three = lambda folder, names: [n for n in names if n.endswith(".png") and n[-7:-4] > "002"]
    shutil.copytree(shapes, out["test-only-class"]/"test", ignore=first_three)
    shutil.copytree(shapes/"ring", out["test-only-class"]/"test"/"hexagon", ignore=first_three)
    out["one-class-file"] = tmp/"one-class-file"/"images.csv"
    out["one-class-file"].parent.mkdir()
    out["one-class-file"].write_text("image,label\n" + "".join(f"{f},circle\n" for f in sorted((shapes/"circle").glob("*.png"))))
    return out


def _model_folders(tmp: Path) -> dict:
    "Model folders with one thing wrong: no tokenizer; no config.json; pickled weights only; code of their own (which leaves a file behind when it runs)."
    import torch
    from safetensors.torch import load_file
    from ftrecipes.offline import build_tiny_model
    tiny = build_tiny_model("bert")
    out = {name: tmp/name for name in ("no-tokenizer", "not-a-model", "pickle-weights", "custom-code")}
    for folder in out.values(): folder.mkdir(parents=True)
    shutil.copy(tiny/"config.json", out["no-tokenizer"])
    for weights in tiny.glob("*.safetensors"):
        shutil.copy(weights, out["no-tokenizer"])
        shutil.copy(weights, out["not-a-model"])
    shutil.copytree(tiny, out["pickle-weights"], dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(load_file(tiny/"model.safetensors"), out["pickle-weights"]/"pytorch_model.bin")
    custom = out["custom-code"]
    shutil.copytree(tiny, custom, dirs_exist_ok=True)
    (custom/"configuration_echo.py").write_text("from transformers import BertConfig\n\nclass EchoConfig(BertConfig):\n    model_type = 'echo'\n")
    (custom/"modeling_echo.py").write_text(
        "from transformers import BertForSequenceClassification\nfrom .configuration_echo import EchoConfig\n\n"
        f"open({str(custom/'code_ran')!r}, 'w').close()\n\n"
        "class EchoForSequenceClassification(BertForSequenceClassification):\n    config_class = EchoConfig\n")
    config = json.loads((custom/"config.json").read_text())
    config.update(model_type="echo", architectures=["EchoForSequenceClassification"],
                  auto_map={"AutoConfig": "configuration_echo.EchoConfig",
                            "AutoModelForSequenceClassification": "modeling_echo.EchoForSequenceClassification"})
    (custom/"config.json").write_text(json.dumps(config))
    return out


def resolve(case: dict, folders: dict) -> dict:
    "The case's parameters for `run_recipe`: smoke preset, data and model as absolute paths."
    def fix(v):
        if isinstance(v, str) and v.startswith("<") and v.endswith(">"): return str(folders[v[1:-1]])
        if isinstance(v, str) and (CORPUS/v).exists() and "/" in v: return str(CORPUS/v)
        return v
    params = {"preset": "smoke", "data": fix(case["data"])}
    params.update({k: fix(v) for k, v in case["params"].items()})
    return params


def _earlier_run(folder: Path, task: str):
    "What an earlier, finished run left in `folder`."
    (folder/"model").mkdir(parents=True)
    (folder/"model"/"model.safetensors").write_bytes(b"earlier weights")
    (folder/"results.json").write_text(json.dumps({"task": task, "created": "earlier"}))
    (folder/f"{task}.ipynb").write_text("{}")


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus_runs(tmp_path_factory):
    "Every case, run on the warm workers: {name: (run outcome, output folder, digest before)}."
    tmp = tmp_path_factory.mktemp("bad_inputs")
    folders = {**_image_folders(tmp/"images"), **_model_folders(tmp/"models")}
    jobs, outs = [], {}
    for i, (name, case) in enumerate(CASES.items()):
        out = tmp/"runs"/f"case{i:02d}"
        _earlier_run(out, case["task"])
        outs[name] = (out, _digest(out))
        jobs.append((case["task"], resolve(case, folders), str(out), str(tmp)))
    long_out, trusted_out = tmp/"runs"/"long_texts", tmp/"runs"/"trusted"
    jobs.append(("sentiment", resolve(LONG_TEXTS, folders), str(long_out), str(tmp)))
    jobs.append(("sentiment", resolve(TRUSTED, folders), str(trusted_out), str(tmp)))
    *runs, long_run, trusted_run = run_all(jobs, job=run_recipe_job)
    results = {name: (run, *outs[name]) for name, run in zip(CASES, runs)}
    ARTIFACTS.mkdir(exist_ok=True)
    lines = ["| case | recipe | message |", "|---|---|---|"]
    for name, (run, out, _) in results.items():
        msg = run["error"].replace(str(tmp), "<tmp>").replace(str(CORPUS), "bad_inputs").replace("|", "\\|")
        lines.append(f"| {name} | {CASES[name]['task']} | {msg if not run['ok'] else '(ran to the end)'} |")
    (ARTIFACTS/"bad_inputs.md").write_text("\n".join(lines) + "\n")
    return results, folders, (long_run, long_out), (trusted_run, trusted_out)


def test_the_corpus_has_at_least_30_cases_across_the_recipes():
    tasks = {c["task"] for c in CASES.values()}
    assert len(CASES) >= 30 and len(tasks) == 7, (len(CASES), tasks)
    for case in CASES.values():
        data = case["data"]
        if data.split("/")[0] in tasks: assert (CORPUS/data).exists(), data


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_stops_before_training_with_one_clear_line(corpus_runs, name):
    results, *_ = corpus_runs
    run, out, before = results[name]
    expected = CASES[name]["expected"]
    assert not run["ok"], f"{name}: the recipe ran to the end"
    assert run["cli_error"], f"{name}: the command would print a traceback, not one line: {run['error'][-2000:]}"
    assert "\n" not in run["error"].strip(), f"{name}: the message spans lines:\n{run['error']}"
    assert expected in run["error"], f"{name}: expected {expected!r} in:\n{run['error']}"
    assert _digest(out) == before, f"{name}: the earlier run in {out} was changed"
    for sibling in out.parent.glob(f"{out.name}-*"):
        left = [m for m in ("checkpoints", "model", "results.json") if (sibling/m).exists()]
        assert not left, f"{name}: training started or saved ({left} in {sibling})"


def test_texts_longer_than_the_context_are_truncated_counted_and_reported(corpus_runs):
    *_, (run, out), _ = corpus_runs
    assert run["ok"], run["error"][-3000:]
    results = json.loads((out/"results.json").read_text())
    cut = sum(t["truncated"] for t in results["truncation"].values())
    assert cut == 4, f"4 texts of about 1,700 tokens, cut to max_length={results['parameters']['max_length']}: {results['truncation']}"
    assert "texts truncated to" in (out/"sentiment.ipynb").read_text(), "the notebook reports the count"


def test_code_shipped_with_a_model_runs_only_when_trusted_and_the_run_says_what_that_means(corpus_runs):
    results, folders, _, (run, out) = corpus_runs
    refused = results["a model that ships its own code"][0]
    assert not refused["ok"] and "trust_remote_code=True" in refused["error"]
    assert run["ok"], run["error"][-3000:]
    assert (folders["custom-code"]/"code_ran").exists(), "with trust_remote_code=True the model's own code ran"
    notebook = (out/"sentiment.ipynb").read_text()
    assert "It runs now, in this process, with your permissions" in notebook, "the recipe says what trusting means"
    saved = Path(json.loads((out/"results.json").read_text())["saved_model"])
    assert (saved/"modeling_echo.py").exists(), "the saved model keeps its code, so it reloads the same way"


def test_weights_are_saved_as_safetensors_only(corpus_runs):
    *_, (run, out) = corpus_runs
    assert run["ok"], run["error"][-3000:]
    saved = Path(json.loads((out/"results.json").read_text())["saved_model"])
    files = sorted(f.name for f in saved.iterdir())
    assert any(f.endswith(".safetensors") for f in files), files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))], f"pickled weights saved: {files}"


def test_the_command_exits_1_with_one_line(ftrecipes_cmd, corpus_runs, tmp_path):
    _, folders, *_ = corpus_runs
    def run(name):
        case = CASES[name]
        args = [a for k, v in resolve(case, folders).items() for a in ("-p", f"{k}={v!r}" if not isinstance(v, str) else f"{k}={v}")]
        return subprocess.run([ftrecipes_cmd, "run", case["task"], *args, "-o", str(tmp_path/name.replace(" ", "_")), "-q"],
                              capture_output=True, text=True, env=subprocess_env(threads=1))
    with ThreadPoolExecutor(2) as pool: procs = dict(zip(CLI_CASES, pool.map(run, CLI_CASES)))
    for name, proc in procs.items():
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert proc.returncode == 1, f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
        assert len(lines) == 1 and lines[0].startswith("ftrecipes: error: ") and CASES[name]["expected"] in lines[0], \
            f"{name}: expected one line with {CASES[name]['expected']!r}, got:\n{proc.stderr}"
