"""Unit tests of the question-answering pieces: windows over long contexts, labels, post-processing, metrics, checks."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, DatasetDict

from ftrecipes.data import DataError, load_data
from ftrecipes.models import load_for_task
from ftrecipes.offline import build_tiny_model
from ftrecipes.extractive_qa import (flatten_squad, prepare_qa_features, postprocess_qa_predictions, squad_scores,
                                     normalize_answer, tokenize_qa, QADataCollator, QA_EXTRA_COLUMNS, ExtractiveQAPipeline)
from ftrecipes.question_answering import RECIPE, prepare_qa_examples, qa_splits, evaluate_qa
from ftrecipes.parameters import Params
from ftrecipes.training import TrainConfig, make_trainer
from transformers import AutoModelForQuestionAnswering, AutoTokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(build_tiny_model("bert"))


def _batch(context, question, answer, start=None):
    start = context.index(answer) if start is None and answer else start
    answers = dict(text=[answer], answer_start=[start]) if answer else dict(text=[], answer_start=[])
    return dict(id=["q"], question=[question], context=[context], answers=[answers])


def _labelled_span(tokenizer, feats, i):
    return tokenizer.decode(feats["input_ids"][i][feats["start_positions"][i]:feats["end_positions"][i] + 1])


def _logits_for(feats, i, n):
    "Logits that point at the labelled span of feature i and at [CLS] (weakly) elsewhere."
    start, end = np.full((n, 200), -10.0), np.full((n, 200), -10.0)
    for k in range(n): start[k, 0] = end[k, 0] = 0.0
    start[i, feats["start_positions"][i]] = end[i, feats["end_positions"][i]] = 10.0
    return start, end


def test_long_context_answer_in_second_window(tokenizer):
    filler = " ".join(f"Sentence number {i} talks about nothing much." for i in range(12))
    context = filler + " The treasure was buried under the old oak tree by Captain Morgan."
    batch = _batch(context, "Who buried the treasure?", "Captain Morgan")
    feats = prepare_qa_features(batch, tokenizer, max_length=64, doc_stride=16)
    n = len(feats["input_ids"])
    assert n >= 2, "the context should need several windows"
    holding = [i for i in range(n) if feats["start_positions"][i] != 0]
    assert holding and holding[0] >= 1, "the answer is only in a later window"
    assert all(feats["start_positions"][i] == feats["end_positions"][i] == 0 for i in range(n) if i not in holding)
    i = holding[0]
    assert _labelled_span(tokenizer, feats, i) == "Captain Morgan"
    start, end = _logits_for(feats, i, n)
    pred = postprocess_qa_predictions([dict(id="q", context=context)], feats, start, end)[0]
    assert pred["prediction_text"] == "Captain Morgan"
    assert context[pred["answer_start"]:].startswith("Captain Morgan")


def test_answer_at_the_very_end_of_the_context(tokenizer):
    context = "The museum opened in 1961 and its first curator was Eleanor Vance"
    batch = _batch(context, "Who was the first curator?", "Eleanor Vance")
    feats = prepare_qa_features(batch, tokenizer, max_length=64, doc_stride=16)
    assert len(feats["input_ids"]) == 1
    assert _labelled_span(tokenizer, feats, 0) == "Eleanor Vance"
    start, end = _logits_for(feats, 0, 1)
    assert postprocess_qa_predictions([dict(id="q", context=context)], feats, start, end)[0]["prediction_text"] == "Eleanor Vance"


def test_answer_cut_by_a_window_boundary_is_labelled_cls_in_that_window(tokenizer):
    context = " ".join(f"word{i}" for i in range(60))
    answer = "word30 word31 word32"
    feats = prepare_qa_features(_batch(context, "Which words?", answer), tokenizer, max_length=48, doc_stride=20)
    for i in range(len(feats["input_ids"])):
        offs = [o for o in feats["offset_mapping"][i] if o is not None]
        whole = offs[0][0] <= context.index(answer) and offs[-1][1] >= context.index(answer) + len(answer)
        assert (feats["start_positions"][i] != 0) == whole


def test_unanswerable_questions_and_the_null_threshold(tokenizer):
    context = "The ferry leaves the harbour at noon every day."
    feats = prepare_qa_features(_batch(context, "How much is a ticket?", ""), tokenizer, max_length=64, doc_stride=16)
    assert feats["start_positions"] == [0] and feats["end_positions"] == [0], "no answer is labelled at [CLS]"
    n = len(feats["input_ids"][0])
    start, end = np.full((1, n), -5.0), np.full((1, n), -5.0)
    ctx = [k for k, o in enumerate(feats["offset_mapping"][0]) if o is not None]
    start[0, ctx[0]], end[0, ctx[1]] = 2.0, 2.0      # best span scores 4
    start[0, 0], end[0, 0] = 3.0, 3.0                # no-answer scores 6
    ex = [dict(id="q", context=context)]
    assert postprocess_qa_predictions(ex, feats, start, end, null_threshold=0.0)[0]["prediction_text"] == ""
    assert postprocess_qa_predictions(ex, feats, start, end, null_threshold=3.0)[0]["prediction_text"] != ""
    assert postprocess_qa_predictions(ex, feats, start, end, null_threshold=None)[0]["prediction_text"] != "", \
        "SQuAD v1 mode always answers"


def test_n_best_and_max_answer_length_limit_the_spans():
    context = "alpha beta gamma delta"
    feats = dict(example_id=["q"], offset_mapping=[[None, (0, 5), (6, 10), (11, 16), (17, 22), None]])
    start = np.array([[0, 9, 0, 0, 0, 0.]]); end = np.array([[0, 0, 0, 0, 9, 0.]])
    ex = [dict(id="q", context=context)]
    assert postprocess_qa_predictions(ex, feats, start, end)[0]["prediction_text"] == context
    short = postprocess_qa_predictions(ex, feats, start, end, max_answer_length=2)[0]["prediction_text"]
    assert len(short.split()) <= 2


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert squad_scores("eiffel tower", ["The Eiffel Tower"]) == (1.0, 1.0)
    em, f1 = squad_scores("the tall Eiffel Tower", ["Eiffel Tower", "Paris"])
    assert em == 0.0 and f1 == pytest.approx(0.8)
    assert squad_scores("", []) == (1.0, 1.0) and squad_scores("Paris", []) == (0.0, 0.0)


def _dsd(**cols):
    return DatasetDict(train=Dataset.from_dict(cols))


def test_wrong_answer_start_names_the_example_and_the_right_offset():
    dsd = _dsd(id=["a1", "a2"], question=["Who?", "Where?"], context=["Ann met Bob.", "In Paris, Ann met Bob."],
               answers=[dict(text=["Bob"], answer_start=[8]), dict(text=["Paris"], answer_start=[0])])
    with pytest.raises(DataError, match=r"example id 'a2'.*answer_start 0 does not point at the answer 'Paris'.*occurs at \[3\]"):
        prepare_qa_examples(dsd, source="data.jsonl")


def test_plain_answer_text_is_located_and_empty_means_unanswerable():
    dsd = _dsd(question=["Who?", "Why?"], context=["Ann met Bob.", "Ann met Bob."], answers=["Bob", ""])
    out, unanswerable = prepare_qa_examples(dsd)
    assert unanswerable
    assert out["train"][0]["answers"] == dict(text=["Bob"], answer_start=[8])
    assert out["train"][0]["id"] == "train-1"
    with pytest.raises(DataError, match="does not occur in its context"):
        prepare_qa_examples(_dsd(question=["Who?"], context=["Ann met Bob."], answers=["Carl"]))


def test_duplicate_ids_are_refused():
    dsd = _dsd(id=["x", "x"], question=["Q?", "R?"], context=["Ann.", "Bob."], answers=["Ann", "Bob"])
    with pytest.raises(DataError, match="appears 2 times"): prepare_qa_examples(dsd)


def test_bundled_sample_is_valid_squad_with_unanswerable_questions():
    out, unanswerable = prepare_qa_examples(load_data("sample:qa"), source="sample:qa")
    assert len(out["train"]) >= 200 and unanswerable


def _squad_shaped(n_titles=30, contexts_per_title=3, questions_per_context=2):
    "Data shaped like SQuAD v1.1: train and validation, several contexts per article (title), several questions per context."
    def rows(split, n_titles):
        cols = dict(id=[], title=[], context=[], question=[], answers=[])
        for t in range(n_titles):
            for c in range(contexts_per_title):
                context = f"Paragraph {c} of article {t} ({split}): Ann met Bob in Paris."
                for q in range(questions_per_context):
                    cols["id"].append(f"{split}-{t}-{c}-{q}"); cols["title"].append(f"{split} article {t}")
                    cols["context"].append(context); cols["question"].append(f"Who did Ann meet? ({q})")
                    cols["answers"].append(dict(text=["Bob"], answer_start=[context.index("Bob")]))
        return Dataset.from_dict(cols)
    return DatasetDict(train=rows("train", n_titles), validation=rows("dev", 4))


def test_squad_splits_score_the_official_validation_split_and_keep_articles_whole():
    "On the published data the test split is SQuAD's own validation split, whole; selection is cut from train by article."
    raw = _squad_shaped()
    examples, _ = prepare_qa_examples(raw)
    splits = qa_splits(examples, Params(RECIPE.published))
    assert splits["test"]["id"] == raw["validation"]["id"], "test must be the official validation split, whole"
    assert set(splits["validation"]["id"]) <= set(raw["train"]["id"]) and len(splits["validation"]), \
        "the split that picks the epoch must be cut from train"
    where = {}
    for name, split in splits.items():
        for title in split["title"]: where.setdefault(title, set()).add(name)
    assert len(where) == 34 and all(len(s) == 1 for s in where.values()), \
        {t: s for t, s in where.items() if len(s) > 1}


def test_other_data_cuts_test_from_train_by_article_and_keeps_its_validation_split():
    raw = _squad_shaped()
    splits = qa_splits(prepare_qa_examples(raw)[0], Params({**RECIPE.published, "data": "my_squad_copy.json"}))
    assert splits["validation"]["id"] == raw["validation"]["id"]
    assert not set(splits["train"]["title"]) & set(splits["test"]["title"])


def _xlnet_like(tokenizer):
    "A copy of `tokenizer` that puts [CLS] last, as XLNet's does: question [SEP] context [SEP] [CLS]."
    from tokenizers.processors import TemplateProcessing
    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    special = [(t, tok.convert_tokens_to_ids(t)) for t in ("[SEP]", "[CLS]")]
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single="$A [SEP] [CLS]", pair="$A [SEP] $B:1 [SEP]:1 [CLS]:1", special_tokens=special)
    return tok


def test_no_answer_is_labelled_and_scored_at_the_cls_token_wherever_it_is(tokenizer):
    tok = _xlnet_like(tokenizer)
    context = "The ferry leaves the harbour at noon every day."
    feats = prepare_qa_features(_batch(context, "How much is a ticket?", ""), tok, max_length=64, doc_stride=16)
    last = len(feats["input_ids"][0]) - 1
    assert tok.convert_ids_to_tokens(feats["input_ids"][0][last]) == "[CLS]"
    assert feats["start_positions"] == [last] and feats["end_positions"] == [last], "no answer is labelled at [CLS]"
    start, end = np.full((1, last + 1), -5.0), np.full((1, last + 1), -5.0)
    ctx = [k for k, o in enumerate(feats["offset_mapping"][0]) if o is not None]
    start[0, ctx[0]] = end[0, ctx[1]] = 2.0        # the best span scores 4
    start[0, last] = end[0, last] = 3.0            # no answer, at [CLS], scores 6; position 0 (the question) scores -10
    pred = postprocess_qa_predictions([dict(id="q", context=context)], feats, start, end, null_threshold=0.0)[0]
    assert pred["prediction_text"] == "" and pred["null_score"] == 6.0


LONG = " ".join(f"Sentence {i} says little." for i in range(15))
QA_EXAMPLES = [  # contexts of different lengths, some longer than one window: batches need padding
    ("Who buried the treasure?", LONG + " The treasure was buried under the old oak by Captain Morgan."),
    ("Where did Ann meet Bob?", "Ann met Bob in Paris."),
    ("When did the bakery open?", "The bakery on Quill Street opened in 1987 and still sells rye bread every morning."),
    ("Who runs the museum?", "Today the lighthouse houses a museum run by volunteers. " + LONG),
    ("What colour is the door?", "The door is green."),
]


@pytest.fixture(scope="module")
def fixed_qa_model():
    import torch
    torch.manual_seed(0)
    model, tok = load_for_task("tiny:bert", AutoModelForQuestionAnswering)
    return model.eval(), tok


def _evaluate(model, tok, tmp_path):
    "Answers of `model` through the recipe's path: windows, the Trainer with the recipe's collator, post-processing."
    rows = dict(id=[f"q{i}" for i in range(len(QA_EXAMPLES))], question=[q for q, _ in QA_EXAMPLES],
                context=[c for _, c in QA_EXAMPLES], answers=[dict(text=[], answer_start=[])] * len(QA_EXAMPLES))
    examples = Dataset.from_dict(rows)
    feats = tokenize_qa(DatasetDict(train=examples), tok, max_length=48, doc_stride=16)["train"]
    assert len(set(map(len, feats["input_ids"]))) > 2, "windows of several lengths, so that batches are padded"
    trainer = make_trainer(model, TrainConfig(batch_size=4, eval_batch_size=4, epochs=1), tmp_path,
                           feats.remove_columns(QA_EXTRA_COLUMNS), feats.remove_columns(QA_EXTRA_COLUMNS),
                           processing_class=tok, data_collator=QADataCollator(tok))
    return feats, evaluate_qa(trainer, examples, feats)[1]


def test_a_left_padding_tokenizer_gives_the_same_windows_and_answers(fixed_qa_model, tmp_path):
    "The same weights answer the same through a tokenizer that pads on the left: windows, padding and logits line up."
    model, right = fixed_qa_model
    left = AutoTokenizer.from_pretrained(right.name_or_path, padding_side="left")
    assert right.padding_side == "right" and left.padding_side == "left"
    feats_r, preds_r = _evaluate(model, right, tmp_path/"right")
    feats_l, preds_l = _evaluate(model, left, tmp_path/"left")
    assert feats_l["input_ids"] == feats_r["input_ids"] and feats_l["offset_mapping"] == feats_r["offset_mapping"]
    answers = lambda preds: [(p["prediction_text"], p["answer_start"]) for p in preds]
    assert answers(preds_l) == answers(preds_r)
    assert np.allclose([p["score"] for p in preds_l], [p["score"] for p in preds_r], atol=1e-4)


def test_the_pipeline_answers_as_evaluate_qa_does_with_a_left_padding_tokenizer(fixed_qa_model, tmp_path):
    model, right = fixed_qa_model
    left = AutoTokenizer.from_pretrained(right.name_or_path, padding_side="left")
    _, preds = _evaluate(model, left, tmp_path)
    pipe = ExtractiveQAPipeline(model=model, tokenizer=left)
    for (question, context), pred in zip(QA_EXAMPLES, preds):
        out = pipe(question=question, context=context, max_length=48, doc_stride=16)
        assert (out["answer"], out["start"]) == (pred["prediction_text"], pred["answer_start"]), (question, out, pred)
        assert out["score"] == pytest.approx(pred["probability"], rel=1e-3)


NESTED = Path(__file__).parent/"bad_inputs"/"question_answering"/"squad_v2_nested.json"


def test_squads_own_nested_json_is_read_one_row_per_question_as_the_dataset_script_reads_it(capsys):
    "train-v1.1.json / dev-v2.0.json: articles -> paragraphs -> qas, flattened; v2's unanswerable questions keep no answer."
    raw = load_data(str(NESTED))
    nested = json.loads(NESTED.read_text())
    qas = [(a["title"], p["context"], q) for a in nested["data"] for p in a["paragraphs"] for q in p["qas"]]
    examples, unanswerable = prepare_qa_examples(flatten_squad(raw, "dev-v2.0.json"), source="dev-v2.0.json")
    rows = examples["train"]
    assert "dev-v2.0.json, split 'train': SQuAD's nested JSON, version 'v2.0', (articles: 6, paragraphs: 12)" in capsys.readouterr().out
    assert rows["id"] == [q["id"] for _, _, q in qas] and rows["title"] == [t for t, _, _ in qas]
    assert rows["context"] == [c for _, c, _ in qas], "contexts untouched: answer_start counts their characters"
    assert rows["answers"] == [dict(text=[a["text"] for a in q["answers"]], answer_start=[a["answer_start"] for a in q["answers"]])
                               for _, _, q in qas], "every answer kept, in order; plausible_answers are no answers"
    impossible = [q["id"] for _, _, q in qas if q["is_impossible"]]
    assert unanswerable and impossible and all(not a["text"] for i, a in zip(rows["id"], rows["answers"]) if i in impossible)
    splits = qa_splits(examples, Params({**RECIPE.published, "data": str(NESTED)}))
    assert sum(map(len, splits.values())) == len(qas), "every question lands in one split, articles kept whole"


def test_nested_squad_with_an_unanswerable_question_that_has_answers_is_refused():
    nested = json.loads(NESTED.read_text())
    q = nested["data"][0]["paragraphs"][0]["qas"][2]
    q["answers"] = q["plausible_answers"]
    dsd = DatasetDict(train=Dataset.from_list([nested]))
    with pytest.raises(DataError, match=r"article 1, paragraph 1, question id 'gp003': is_impossible is true, but it has answers"):
        flatten_squad(dsd, "x.json")


def test_other_data_passes_flatten_squad_untouched():
    dsd = _dsd(question=["Who?"], context=["Ann met Bob."], answers=["Bob"])
    assert flatten_squad(dsd)["train"] is dsd["train"]


def test_answers_in_the_shapes_users_write_them(tmp_path):
    "A JSON lines file mixing answer shapes, read as datasets reads it."
    c = "Ann met Bob in Paris in 1999."
    answers = [{"text": "Bob", "answer_start": 8},          # one answer, not in lists
               [{"text": "Paris", "answer_start": 15}],     # a list of answer dicts, as in SQuAD's JSON
               {"text": ["1999"], "answer_start": ["24"]},  # answer_start written as text
               "Ann"]                                       # the answer text alone
    path = tmp_path/"mixed.jsonl"
    path.write_text("\n".join(json.dumps(dict(id=f"q{i}", question="Which?", context=c, answers=a)) for i, a in enumerate(answers)))
    out = prepare_qa_examples(load_data(str(path)))[0]["train"]["answers"]
    assert out == [dict(text=["Bob"], answer_start=[8]), dict(text=["Paris"], answer_start=[15]),
                   dict(text=["1999"], answer_start=[24]), dict(text=["Ann"], answer_start=[0])]


@pytest.mark.parametrize("answers,message", [
    ("{'text': ['Bob'], 'answer_start': [8]}", "a dict written out as text"),           # what a CSV file stores
    ({"text": ["Bob"], "answer_start": [None]}, "answer_start None is not a character position"),
    ({"text": ["Bob"], "answer_start": ["eight"]}, "answer_start 'eight' is not a character position"),
    ({"text": [""], "answer_start": [0]}, "the answer text is empty"),
    ({"answer": "Bob"}, "give {'text': [...], 'answer_start': [...]}"),
])
def test_answers_that_cannot_be_read_name_the_example(answers, message):
    dsd = DatasetDict(train=Dataset.from_list([dict(id="q1", question="Who?", context="Ann met Bob.", answers=answers)]))
    with pytest.raises(DataError, match=re.escape(f"x.jsonl, split 'train', example id 'q1': ") + ".*" + re.escape(message)):
        prepare_qa_examples(dsd, source="x.jsonl")


@pytest.mark.parametrize("context,message", [(None, "the context is missing (an empty cell, or null)"),
                                             ("", "the context is empty ('')"), ("  ", "the context is empty (only whitespace, '  ')")])
def test_missing_empty_and_blank_contexts_get_their_own_message(context, message):
    dsd = DatasetDict(train=Dataset.from_list([dict(id="q1", question="Who?", context=context, answers="")]))
    with pytest.raises(DataError, match=re.escape(f"example id 'q1': {message}")):
        prepare_qa_examples(dsd)


def test_a_number_is_a_context_or_a_question_not_an_empty_one(tmp_path, capsys):
    "JSON readers hand numbers over as numbers: they are texts, not empty ones."
    rows = [dict(id="q1", question=1984, context="Ann met Bob in 1984.", answers="Ann"),
            dict(id="q2", question="Which number?", context=42, answers="42")]
    path = tmp_path/"numbers.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    out, _ = prepare_qa_examples(load_data(str(path)))
    assert out["train"]["question"] == ["1984", "Which number?"] and out["train"]["context"][1] == "42"
    assert out["train"][1]["answers"] == dict(text=["42"], answer_start=[0])
    assert "1 of 2 contexts are numbers" in capsys.readouterr().out


def test_importing_the_recipe_registers_the_pipeline_its_model_card_names():
    "A saved model's card says `import ftrecipes.question_answering`: that import alone gives pipeline('question-answering')."
    code = ("import ftrecipes.question_answering, transformers.pipelines as tp; "
            "print(tp.PIPELINE_REGISTRY.check_task('question-answering')[1]['impl'].__name__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] in ("ExtractiveQAPipeline", "QuestionAnsweringPipeline")
