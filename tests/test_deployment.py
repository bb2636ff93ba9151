"""Evaluating a saved question-answering, entity-tagging, summarization, translation or instruction-tuning run: its
own test rows give back exactly the recorded test scores (the recipe's metric and intervals), bundled rows score as a
direct computation through the pipeline does, and missing columns, unknown tags, other tasks and a test split that
cannot be rebuilt fail in one line before any model loads."""
from pathlib import Path

import numpy as np
import pytest
import sacrebleu

from ftrecipes import evaluation
from ftrecipes.data import DataError, load_data, make_splits, limit_rows
from ftrecipes.evaluation import evaluate_saved, evaluation_report, gate, generated_texts, pair_rows, qa_rows
from ftrecipes.saved_runs import DeploymentError, SavedRun, run_pipeline, saved_run
from ftrecipes.chats import stop_token_ids, to_chats, tokenize_chats
from ftrecipes.extractive_qa import flatten_squad, squad_scores
from ftrecipes.ner import encode_tags
from ftrecipes.question_answering import prepare_qa_examples, qa_splits
from ftrecipes.recipes import recipe, recipe_splits
from ftrecipes.runner import run_recipe
from ftrecipes.seq2seq import check_pairs
from ftrecipes.translation import translation_pairs


def smoke(tmp_path_factory, task: str, **params) -> SavedRun:
    "A smoke run of `task` (seconds), saved in a fresh folder."
    out = tmp_path_factory.mktemp(task)/"run"
    run_recipe(task, dict(preset="smoke", **params), out, in_process=True)
    return saved_run(out)


@pytest.fixture(scope="module")
def qa(tmp_path_factory):  # a high null threshold: the tiny model always answers, so there are spans to reproduce
    return smoke(tmp_path_factory, "question_answering", null_score_threshold=100.0)


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    return smoke(tmp_path_factory, "ner")


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    return smoke(tmp_path_factory, "text_generation")


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
    return smoke(tmp_path_factory, "summarization")


@pytest.fixture(scope="module")
def translations(tmp_path_factory):  # barely trained T5: some words out, where the smoke Marian writes nothing
    return smoke(tmp_path_factory, "translation", model="tiny:t5", epochs=1, learning_rate=1e-5)


def own_test_file(run: SavedRun, folder) -> str:
    "The run's test split as its recipe notebook cuts it, written to a jsonl file in the data's own columns."
    p, raw = run.params, load_data(run.params.data)
    if run.task == "question_answering":
        test = qa_splits(prepare_qa_examples(flatten_squad(raw))[0], p)["test"]
    elif run.task == "ner":
        sentences, names = encode_tags(raw, p.tokens_column, p.tags_column, p.label_names)
        test = limit_rows(make_splits(sentences, seed=p.split_seed), p.max_train_samples, seed=p.split_seed)["test"]
        test = test.map(lambda r: {p.tags_column: [names[i] for i in r["tags"]]}, remove_columns="tags")
    elif run.task == "text_generation":  # the held-out prompts: the first num_eval_prompts chats of the tokenized test split
        tok = run_pipeline(run).tokenizer
        chats, _ = tokenize_chats(to_chats(raw, p.messages_column, p.prompt_column, p.response_column), tok, p.max_seq_length,
                                  p.long_prompts, stop_token_ids(tok))
        test = limit_rows(make_splits(chats, seed=p.split_seed), p.max_train_samples, p.max_eval_samples, p.split_seed)["test"]
        test = test.select(range(p.num_eval_prompts)).select_columns(["messages"])
    elif run.task == "summarization":
        test = limit_rows(make_splits(check_pairs(raw, p.source_column, p.target_column), seed=p.split_seed),
                          p.max_train_samples, p.max_eval_samples, p.split_seed)["test"]
    else:
        test = recipe_splits(translation_pairs(raw, p.source_lang, p.target_lang, p.translation_column), p, recipe(run.task))["test"]
        test = test.rename_columns({"source": p.source_lang, "target": p.target_lang})
    path = folder/f"{run.task}_test.jsonl"
    test.to_json(str(path))
    return str(path)


@pytest.mark.parametrize("name,keys", [("qa", ("f1", "f1_ci95", "exact_match", "HasAns_f1")),
                                       ("tagger", ("f1", "f1_ci95", "precision", "recall", "accuracy")),
                                       ("chat", ("exact_match", "exact_match_ci95", "rougeL", "rougeL_ci95", "stopped", "new_tokens")),
                                       ("summaries", ("t5_rougeLsum", "t5_rougeLsum_ci95", "rouge1", "rougeLsum")),
                                       ("translations", ("bleu", "bleu_ci95", "chrf", "chrf_ci95"))])
def test_the_run_own_test_rows_give_back_the_recorded_score(name, keys, request, tmp_path):
    "The saved model on its run's own test rows: every recorded test score and interval, exactly; change 0, within noise."
    run = request.getfixturevalue(name)
    ev = evaluate_saved(run, own_test_file(run, tmp_path))
    recorded = run.results["metrics"]["test"]
    assert ev["headline"] == evaluation.evaluation_headline(run) and ev["examples"] == ev["recorded"]["examples"]
    for k in keys: assert ev["scores"][k] == pytest.approx(recorded[k], abs=1e-9), k
    assert (ev["change"]["change"], ev["change"]["verdict"], ev["slices"]) == (0.0, "within noise", {})
    assert gate(ev, "recorded") == "" and gate(ev, 101).startswith(ev["headline"] + " ")
    assert f"recorded test {ev['headline']} " in evaluation_report(ev)


def test_the_headline_is_not_vacuous(qa, tagger, chat, summaries, translations):
    "The smoke models answer, tag and write something, so the reproduction above compares real outputs, not empty ones."
    assert qa.results["metrics"]["test"]["f1"] > 0 and tagger.results["metrics"]["test"]["f1"] > 0
    assert chat.results["metrics"]["test"]["rougeL"] > 0
    assert summaries.results["metrics"]["test"]["t5_rougeLsum"] > 0
    assert translations.results["metrics"]["test"]["chrf"] > 0


def sample_rows(source: str, n: int, folder) -> str:
    "The first `n` rows of bundled sample `source`, as a jsonl file."
    path = folder/"sample.jsonl"
    load_data(source)["train"].select(range(n)).to_json(str(path))
    return str(path)


def test_qa_on_bundled_sample_rows_matches_the_pipeline_one_question_at_a_time(qa, tmp_path):
    "Batched windows score as the question-answering pipeline's answers, question by question, scored with SQuAD's F1."
    data = sample_rows("sample:qa", 60, tmp_path)
    ev = evaluate_saved(qa, data, batch_size=7)
    rows, p = qa_rows(qa, data), qa.params
    pipe = run_pipeline(qa)
    answers = [pipe(question=q, context=c, max_length=p.max_length, doc_stride=p.doc_stride, n_best=p.n_best,
                    max_answer_length=p.max_answer_length, null_threshold=p.null_score_threshold)["answer"]
               for q, c in zip(rows["question"], rows["context"])]
    f1 = 100 * np.mean([squad_scores(a, g["text"])[1] for a, g in zip(answers, rows["answers"])])
    assert ev["examples"] == len(rows) == 60 and ev["scores"]["f1"] == pytest.approx(f1, abs=1e-9)


def test_seq2seq_on_bundled_sample_rows_matches_sacrebleu_directly(translations, tmp_path):
    "BLEU and chrF on bundled pairs equal sacrebleu's corpus scores of the pipeline's translations."
    data = sample_rows("sample:translation", 80, tmp_path)
    ev = evaluate_saved(translations, data)
    pairs = pair_rows(translations, data)
    outputs = generated_texts(translations, list(pairs["source"]))
    refs = [list(pairs["target"])]
    assert ev["scores"]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(outputs, refs).score, abs=1e-9)
    assert ev["scores"]["chrf"] == pytest.approx(sacrebleu.corpus_chrf(outputs, refs).score, abs=1e-9)


@pytest.mark.parametrize("name,data,columns,message", [
    ("qa", "sample:qa", dict(context_column="passage"), "no column 'passage' (parameter context_column)"),
    ("tagger", "sample:ner", dict(tags_column="labels"), "no column 'labels' (parameter tags_column)"),
    ("chat", "sample:instructions", dict(messages_column="turns"), "no column 'turns'"),
    ("summaries", "sample:summarization", dict(source_column="article"), "no column 'article' (parameter source_column)"),
    ("translations", "sample:translation", dict(target_lang="ro"), "no column 'ro'"),
])
def test_missing_columns_fail_in_one_line_before_the_model_loads(name, data, columns, message, request, monkeypatch):
    run = request.getfixturevalue(name)
    monkeypatch.setattr(evaluation, "run_pipeline", lambda *a, **k: pytest.fail("the model loaded before the data was checked"))
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        evaluate_saved(run, data, **columns)
    assert "\n" not in str(e.value)


def test_a_split_the_data_lacks_is_named(qa):
    with pytest.raises(DeploymentError, match="sample:qa has no 'validation' split; it has train"):
        evaluate_saved(qa, "sample:qa", split="validation")


def test_evaluation_report_names_the_score_it_compares(chat, tmp_path):
    "For generated answers the score compared is exact match (the recorded headline, perplexity, is on the run's own chats)."
    ev = evaluate_saved(chat, own_test_file(chat, tmp_path))
    assert evaluation_report(ev).splitlines()[0].startswith("text_generation on ") and " exact_match " in evaluation_report(ev)


def test_without_data_a_recipe_without_splits_asks_for_test_rows(summaries):
    with pytest.raises(DeploymentError, match="does not declare how it splits its data.*pass its test rows"):
        evaluate_saved(summaries)


def test_tags_the_model_does_not_know_fail_before_the_model_loads(tagger, tmp_path, monkeypatch):
    data = tmp_path/"odd.jsonl"
    data.write_text('{"tokens": ["Ada", "codes"], "ner_tags": ["B-HERO", "O"]}\n')
    monkeypatch.setattr(evaluation, "run_pipeline", lambda *a, **k: pytest.fail("the model loaded before the data was checked"))
    with pytest.raises(DataError, match="tag 'B-HERO' is not one of"):
        evaluate_saved(tagger, str(data))


def test_tasks_evaluate_does_not_score_are_refused_before_loading():
    text = SavedRun(Path("."), dict(task="text_generation", pipeline_task="text-generation", parameters=dict(mode="text")))
    with pytest.raises(DeploymentError, match="in text mode, scored by perplexity"):
        evaluate_saved(text, "sample:summarization")
    other = SavedRun(Path("."), dict(task="fill", pipeline_task="fill-mask", parameters={}))
    with pytest.raises(DeploymentError, match=r"this run is fill \(fill-mask\).*ftrecipes predict"):
        evaluate_saved(other, "sample:summarization")
