"""Summarization and translation: sentences as nltk splits them, ROUGE as the published numbers computed it, the
checkpoint's generation settings kept, every row of a comparison scored against whole references, and the
translation recipe scoring the split its published BLEU is on; and the text pairs checked before any of it (missing,
empty, numbers, a language into itself)."""
import json
import re

import numpy as np
import pytest
from datasets import Dataset, DatasetDict
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig
from transformers.trainer_utils import PredictionOutput

from ftrecipes.data import DataError, load_data
from ftrecipes.metrics import load_metric
from ftrecipes.offline import build_tiny_model
from ftrecipes.seq2seq import (RougeMetrics, check_pairs, evaluate_seq2seq, generation_config, prepare_for_saving, seq2seq_compute_metrics,
                               split_sentences)
from ftrecipes.translation import translation_pairs

ABBREVIATIONS = "The U.S. Army said Mr. Smith left at 5 p.m. on Friday. He returned."


def test_abbreviations_do_not_end_sentences():
    "'U.S.', 'Mr.' and 'p.m.' end no sentence: two sentences, as nltk.sent_tokenize splits them (a regex made five)."
    assert split_sentences(ABBREVIATIONS).split("\n") == [
        "The U.S. Army said Mr. Smith left at 5 p.m. on Friday.", "He returned."]


def test_the_shipped_punkt_parameters_reproduce_nltks_documented_example():
    "nltk's Punkt documentation example (a title, an initial, a lower-case start) splits as documented in punkt.py."
    text = ("Punkt knows that the periods in Mr. Smith and Johann S. Bach do not mark sentence boundaries.  And "
            "sometimes sentences can start with non-capitalized words.  i is a good variable name.")
    assert split_sentences(text).split("\n") == [
        "Punkt knows that the periods in Mr. Smith and Johann S. Bach do not mark sentence boundaries.",
        "And sometimes sentences can start with non-capitalized words.", "i is a good variable name."]


def test_lead_3_takes_whole_sentences():
    "The lead-3 baseline keeps 'U.S.' and 'Mr.' inside their sentence."
    from ftrecipes.summarization import lead_sentences
    assert lead_sentences(ABBREVIATIONS + " Nobody saw him. He slept.", 3) == ABBREVIATIONS + " Nobody saw him."


def test_t5_variant_is_unstemmed_and_puts_sentences_on_lines_at_space_period_space():
    "t5_*: T5's metric code (no stemmer, lines at ' . '); the plain keys: run_summarization's (Porter stemmer)."
    rouge = load_metric(RougeMetrics)
    r = rouge.compute(predictions=["the cats were sitting"], references=["the cat was sitting"])
    assert r["rouge1"] == pytest.approx(75) and r["t5_rouge1"] == pytest.approx(50)  # cats~cat, sitting: stemmed
    # two sentences in the other order: one line, the longest common subsequence is one of them; on lines, both
    r = rouge.compute(predictions=["b b b . a a a ."], references=["a a a . b b b ."])
    assert r["rougeL"] == pytest.approx(50) and r["t5_rougeLsum"] == pytest.approx(100)


@pytest.fixture(scope="module")
def tiny_marian(tmp_path_factory):
    "A tiny Marian checkpoint whose generation_config.json carries settings that model.config no longer has."
    model = AutoModelForSeq2SeqLM.from_pretrained(build_tiny_model("marian"))
    pad = model.config.pad_token_id
    model.generation_config.update(bad_words_ids=[[pad]], forced_bos_token_id=5, num_beams=4, max_length=512)
    path = tmp_path_factory.mktemp("marian")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(build_tiny_model("marian")).save_pretrained(path)
    return path, pad


def test_generation_config_keeps_the_checkpoints_own_settings_through_a_save(tiny_marian, tmp_path):
    "opus-mt's bad_words_ids and mBART's forced_bos_token_id survive generation_config() and the saved model."
    path, pad = tiny_marian
    model = AutoModelForSeq2SeqLM.from_pretrained(path)
    gen = generation_config(model, num_beams=2, max_new_tokens=8, no_repeat_ngram_size=3)
    assert (gen.bad_words_ids, gen.forced_bos_token_id) == ([[pad]], 5)
    assert (gen.num_beams, gen.max_new_tokens, gen.no_repeat_ngram_size) == (2, 8, 3)  # what the recipe sets
    assert model.generation_config.num_beams == 4, "the model's own config is copied, not changed"
    prepare_for_saving(model, gen, "", 64).save_pretrained(tmp_path)
    saved = GenerationConfig.from_pretrained(tmp_path)
    assert (saved.bad_words_ids, saved.forced_bos_token_id, saved.num_beams, saved.max_new_tokens) == ([[pad]], 5, 2, 8)


@pytest.fixture(scope="module")
def long_reference():
    "A t5 tokenizer, a reference, its label ids cut at 8 tokens and its whole ids (what a perfect model would write)."
    tok = AutoTokenizer.from_pretrained(build_tiny_model("t5"))
    ref = "The council voted on Tuesday to reopen the old bridge next spring, after two years of repairs to its arches."
    whole = tok(text_target=[ref])["input_ids"]
    cut = tok(text_target=[ref], max_length=8, truncation=True)["input_ids"]
    assert len(whole[0]) > 8
    return tok, ref, np.array(whole), np.array(cut)


def _scores(predictions, references):
    return load_metric(RougeMetrics).compute(predictions=predictions, references=references)


def test_per_epoch_metrics_score_a_long_reference_whole(long_reference):
    "compute_metrics scores against the validation texts, not the labels cut at max_target_length."
    tok, ref, whole, cut = long_reference
    text = tok.batch_decode(whole, skip_special_tokens=True)[0].strip()
    got = seq2seq_compute_metrics(tok, RougeMetrics, references=[ref])((whole, cut))
    assert got["rouge1"] == pytest.approx(_scores([text], [ref])["rouge1"])
    cut_ref = tok.batch_decode(cut, skip_special_tokens=True)[0].strip()
    assert got["rouge1"] != pytest.approx(_scores([text], [cut_ref])["rouge1"])
    with pytest.raises(ValueError, match="1 predictions but 2 references"):
        seq2seq_compute_metrics(tok, RougeMetrics, references=[ref, ref])((whole, cut))


class _FakeTrainer:
    "What evaluate_seq2seq needs of a Seq2SeqTrainer: predict() with generated ids and the (cut) label ids."
    def __init__(self, generated, labels):
        self.generated, self.labels = generated, labels
        self.compute_metrics = lambda eval_pred: pytest.fail("predict must not score with the validation references")

    def predict(self, dataset):
        if self.compute_metrics is not None: self.compute_metrics(None)
        return PredictionOutput(predictions=self.generated, label_ids=self.labels, metrics={"test_loss": 1.5})


def test_evaluate_seq2seq_scores_a_long_reference_whole(long_reference):
    "The model's row of a comparison is scored against the same whole references as the baselines' rows."
    tok, ref, whole, cut = long_reference
    metrics, texts = evaluate_seq2seq(_FakeTrainer(whole, cut), None, tok, RougeMetrics, references=[ref])
    assert metrics["rouge1"] == pytest.approx(_scores(texts, [ref])["rouge1"])
    assert metrics["loss"] == 1.5



def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return str(path)


def test_a_number_is_a_summary_not_an_empty_one(tmp_path, capsys):
    "JSON and CSV readers hand '12345' over as a number; it is used as its text, with a note, never called empty."
    doc = "Sales rose to 12345 units in May."
    path = _write_jsonl(tmp_path/"s.jsonl", [{"document": doc, "summary": "Sales rose."}, {"document": doc, "summary": 12345}])
    pairs = check_pairs(load_data(path), "document", "summary", "s.jsonl")
    assert pairs["train"]["summary"] == ["Sales rose.", "12345"]
    assert "1 of 2 'summary' texts are numbers" in capsys.readouterr().out
    csv = tmp_path/"n.csv"
    csv.write_text(f"document,summary\n{doc},12345\n{doc},678\n")  # every summary a number: an int64 column
    assert check_pairs(load_data(str(csv)), "document", "summary")["train"]["summary"] == ["12345", "678"]


@pytest.mark.parametrize("value,message", [
    (None, "row 2: the 'summary' text is missing (an empty cell, or null)"),
    ("", "row 2: the 'summary' text is empty ('')"),
    ("  ", "row 2: the 'summary' text is empty (only whitespace, '  ')"),
    (["Sales rose.", "Costs fell."], "row 2: the 'summary' text is a list (['Sales rose.', 'Costs fell.']), not a text"),
])
def test_missing_empty_blank_and_non_text_summaries_each_get_their_message(tmp_path, value, message):
    path = _write_jsonl(tmp_path/"s.jsonl", [{"document": "A.", "summary": "B."}, {"document": "A.", "summary": value}])
    with pytest.raises(DataError, match=re.escape(f"s.jsonl, split 'train', {message}")):
        check_pairs(load_data(path), "document", "summary", "s.jsonl")


def test_summarizing_a_column_into_itself_is_refused():
    with pytest.raises(ValueError, match="both 'document'"):
        check_pairs(load_data("sample:summarization"), "document", "document")


@pytest.mark.parametrize("source_lang,target_lang", [("en", "en"), ("en", "EN"), ("Es", "es")])
def test_translating_a_language_into_itself_is_refused(source_lang, target_lang):
    "Copying the source scores BLEU 100: a run from a language into itself measures nothing."
    with pytest.raises(ValueError, match=re.escape(f"source_lang={source_lang!r} and target_lang={target_lang!r} name the same language")):
        translation_pairs(load_data("sample:translation"), source_lang, target_lang)


def test_a_language_code_the_data_lacks_names_the_side_and_suggests_the_case():
    data = load_data("sample:translation")
    with pytest.raises(DataError, match="no column 'de'"): translation_pairs(data, "de", "es")
    with pytest.raises(DataError, match="no column 'EN'.*Did you mean 'en'"): translation_pairs(data, "EN", "es")
    wmt = DatasetDict(train=Dataset.from_dict({"translation": [{"en": "Hi.", "es": "Hola."}]}))
    with pytest.raises(DataError, match=r"row 1: no 'ES' text in 'translation' \(keys: \['en', 'es'\]\).*Did you mean 'es'"):
        translation_pairs(wmt, "en", "ES")


def test_numbers_are_translations_too(tmp_path, capsys):
    path = _write_jsonl(tmp_path/"t.jsonl", [{"en": "Room twelve.", "es": "Habitación doce."}, {"en": "2024", "es": 2024}])
    pairs = translation_pairs(load_data(path), "en", "es", source="t.jsonl")
    assert pairs["train"]["target"] == ["Habitación doce.", "2024"]
    assert "1 of 2 'es' texts are numbers" in capsys.readouterr().out
    with pytest.raises(DataError, match=r"row 2: the 'es' text is missing \(an empty cell, or null\)"):
        translation_pairs(load_data(_write_jsonl(tmp_path/"n.jsonl", [{"en": "Hi.", "es": "Hola."}, {"en": "Bye.", "es": None}])), "en", "es")


@pytest.mark.parametrize("task", ["summarization", "translation"])
def test_a_decoder_only_model_fine_tunes_through_the_recipe_and_reloads(task, tmp_path):
    "The branch the laptop preset takes (a chat model, source in the prompt, target as the answer), with a tiny Llama: machinery only."
    from ftrecipes.runner import run_recipe
    r = run_recipe(task, dict(preset="smoke", model="tiny:llama", no_repeat_ngram_size=0), tmp_path/"run", in_process=True)
    config = json.loads((tmp_path/"run"/"model"/"config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["ftrecipes_prefix"].startswith(("Summarize", "Translate"))
    assert np.isfinite(r["metrics"]["test"]["loss"]) and r["metrics"]["test"]["gen_len"] > 0
    assert r["training"]["global_step"] > 0 and r["reload_check"]
