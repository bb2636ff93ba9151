"""Unit tests of the NER pieces: label alignment by name, entity extraction, metrics, input checks, CoNLL files."""
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from ftrecipes.data import DataError, load_data
from ftrecipes.metrics import load_metric
from ftrecipes.offline import build_tiny_model
from ftrecipes.ner import (EntityMetrics, align_labels_with_tokens, encode_tags, entity_spans, evaluate_ner, lookup_baseline,
                           order_tag_names, tokenize_and_align)
from transformers import AutoTokenizer
from transformers.trainer_utils import PredictionOutput

# B- and I- ids deliberately not adjacent: alignment must look tags up by name, not by id + 1
NAMES = ["O", "B-PER", "B-LOC", "I-PER", "I-LOC", "B-MISC"]


def test_a_word_split_into_three_subwords_labels_its_first_piece_only():
    tok = AutoTokenizer.from_pretrained(build_tiny_model("bert"))
    words = ["Thorvaldsdottir", "visited", "Oslo"]
    enc = tok(words, is_split_into_words=True)
    wids = enc.word_ids()
    pieces = [i for i, w in enumerate(wids) if w == 0]
    assert len(pieces) >= 3, tok.convert_ids_to_tokens(enc["input_ids"])
    labels = align_labels_with_tokens(wids, [1, 0, 2], NAMES)
    assert labels[pieces[0]] == 1 and all(labels[i] == -100 for i in pieces[1:])
    assert labels[0] == labels[-1] == -100, "special tokens are ignored"
    assert [l for l in labels if l != -100] == [1, 0, 2], "one label per word"


def test_continuation_subwords_turn_b_into_i_by_name():
    wids = [None, 0, 0, 0, 1, 1, 2, None]
    labels = align_labels_with_tokens(wids, [1, 4, 5], NAMES, label_all_subwords=True)
    assert labels == [-100, 1, 3, 3, 4, 4, 5, -100]
    assert labels[1:4] == [NAMES.index("B-PER"), NAMES.index("I-PER"), NAMES.index("I-PER")]
    # B-MISC has no I-MISC in this tag set: its continuations are ignored rather than mislabelled
    assert align_labels_with_tokens([0, 0], [5], NAMES, label_all_subwords=True) == [5, -100]


@pytest.mark.parametrize("tags,spans", [
    (["B-PER", "I-PER", "O", "B-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 3, 4)]),
    (["B-PER", "B-PER"], [("PER", 0, 0), ("PER", 1, 1)]),
    (["I-PER", "I-PER", "O"], [("PER", 0, 1)]),                 # IOB1: an entity may start with I-
    (["B-PER", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 1)]),       # a type switch ends one entity, starts another
    (["O", "O"], []),
    (["S-PER", "B-LOC", "E-LOC"], [("PER", 0, 0), ("LOC", 1, 2)]),  # IOBES
])
def test_entity_spans_follow_conlleval(tags, spans):
    assert entity_spans(tags) == spans


def test_entity_metrics_match_seqeval_where_installed():
    preds = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"], ["O", "B-MISC", "I-PER"]]
    refs = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "O"], ["O", "B-MISC", "I-MISC"]]
    res = load_metric(EntityMetrics).compute(predictions=preds, references=refs)
    # by hand: 5 predicted entities, 4 gold, 2 correct (PER, the second ORG)
    assert res["precision"] == pytest.approx(100 * 2 / 5) and res["recall"] == pytest.approx(100 * 2 / 4)  # percentages
    assert res["accuracy"] == pytest.approx(100 * 8 / 10)
    if importlib.util.find_spec("seqeval") is None: return
    from seqeval.metrics import f1_score, precision_score, recall_score  # seqeval: 0 to 1, conlleval and ftrecipes: 0 to 100
    assert res["f1"] == pytest.approx(100 * f1_score(refs, preds)) and res["precision"] == pytest.approx(100 * precision_score(refs, preds))
    assert res["recall"] == pytest.approx(100 * recall_score(refs, preds))


def _dsd(tokens, tags, features=None):
    return DatasetDict(train=Dataset.from_dict(dict(tokens=tokens, ner_tags=tags), features=features))


def test_tags_outside_the_label_set_name_the_row_and_word():
    dsd = _dsd([["Ann", "met", "Bob"], ["Paris"]], [["B-PER", "O", "B-PER"], ["B-CITY"]])
    with pytest.raises(DataError, match=r"row 2, word 1 \('Paris'\): tag 'B-CITY' is not one of"):
        encode_tags(dsd, label_names=["O", "B-PER", "I-PER"], source="x.jsonl")


def test_tokens_and_tags_of_different_lengths_name_the_row():
    dsd = _dsd([["Ann", "met", "Bob"], ["Ann", "met"]], [["B-PER", "O", "B-PER"], ["B-PER"]])
    with pytest.raises(DataError, match=r"x.jsonl, split 'train', row 2: 2 words but 1 tags"):
        encode_tags(dsd, source="x.jsonl")


def test_ids_with_names_strings_and_bare_ids():
    feats = Features(dict(tokens=Sequence(Value("string")), ner_tags=Sequence(ClassLabel(names=["O", "B-PER", "I-PER"]))))
    out, names = encode_tags(_dsd([["Ann", "Lee"]], [[1, 2]], feats))
    assert names == ["O", "B-PER", "I-PER"] and out["train"][0]["tags"] == [1, 2]
    out, names = encode_tags(_dsd([["Ann", "in", "Rome"]], [["B-PER", "O", "B-LOC"]]))
    assert names == ["O", "B-LOC", "B-PER"] and out["train"][0]["tags"] == [2, 0, 1]
    with pytest.raises(DataError, match="numbers without names"): encode_tags(_dsd([["Ann"]], [[1]]))
    assert order_tag_names({"I-PER", "O", "B-PER", "B-LOC"}) == ["O", "B-LOC", "B-PER", "I-PER"]


def test_bundled_conll_sample_loads_and_checks():
    dsd = load_data("sample:ner")
    out, names = encode_tags(dsd, source="sample:ner")
    assert len(out["train"]) >= 300 and names[0] == "O" and {"B-PER", "I-ORG", "B-MISC"} <= set(names)


def test_lookup_baseline_repairs_continuations():
    names = ["O", "B-PER", "I-PER"]
    preds = lookup_baseline([["Ann", "Lee", "met"]], [[1, 2, 0]], [["Lee", "met", "Ann"]], names)
    assert preds == [["B-PER", "O", "B-PER"]]


class _SeesOnlyWhatFits:
    "A stand-in trainer whose model tags every sub-word it is given correctly (its gold label on first sub-words)."
    def __init__(self, n_tags): self.n_tags = n_tags

    def predict(self, ds):
        width = max(len(ids) for ids in ds["input_ids"])
        labels = np.full((len(ds), width), -100)
        for i, row in enumerate(ds["labels"]): labels[i, :len(row)] = row
        logits = np.eye(self.n_tags)[np.where(labels < 0, 0, labels)]
        return PredictionOutput(predictions=logits, label_ids=labels, metrics={"test_loss": 0.0})


def test_a_sentence_longer_than_max_length_is_scored_whole():
    names = ["O", "B-PER", "I-PER", "B-LOC"]
    words = ["Ann", "met", "Bob", "in", "Oslo", "and", "Ada", "Lee", "in", "Rome"]
    tags = [1, 0, 1, 0, 3, 0, 1, 2, 0, 3]
    feats = Features(dict(tokens=Sequence(Value("string")), tags=Sequence(ClassLabel(names=names))))
    splits = DatasetDict(test=Dataset.from_dict(dict(tokens=[words, ["Ann", "met", "Bob"]], tags=[tags, [1, 0, 1]]), features=feats))
    tok = AutoTokenizer.from_pretrained(build_tiny_model("bert"))
    tokenized, cut = tokenize_and_align(splits, tok, names, max_length=8)
    seen = max(tokenized["test"][0]["word_ids"]) + 1  # words of the long sentence inside the window
    assert 2 <= seen <= 5, tok.convert_ids_to_tokens(tokenized["test"][0]["input_ids"])
    assert cut["test"] == dict(truncated=1, rows=2, words_truncated=len(words) - seen, words=len(words) + 3)

    metrics, preds, refs = evaluate_ner(_SeesOnlyWhatFits(len(names)), tokenized["test"], names)
    assert refs == [[names[t] for t in tags], ["B-PER", "O", "B-PER"]], "references are the full sentences"
    assert [len(p) for p in preds] == [len(r) for r in refs]
    assert preds[0][seen:] == ["O"] * (len(words) - seen), "words past the cut are tagged O"
    found = len(entity_spans([names[t] for t in tags[:seen]]))
    gold = len(entity_spans(refs[0])) + 2
    assert metrics["precision"] == 100.0  # scores are percentages
    assert metrics["recall"] == pytest.approx(100 * (found + 2) / gold), "entities past the cut count as missed"
    # the lookup baseline tags every word: it can be scored against the same references (lengths must match)
    lookup = load_metric(EntityMetrics).compute(predictions=lookup_baseline(
        splits["test"]["tokens"], splits["test"]["tags"], splits["test"]["tokens"], names), references=refs)
    assert lookup["recall"] == 100.0


CORPUS = Path(__file__).parent/"bad_inputs"/"ner"


def test_plain_tags_without_prefixes_are_refused_before_training():
    "'PER', 'LOC' (IO tags, or another column's tags) mark no entity: the run trained, then scored nothing and failed."
    with pytest.raises(DataError, match=r"plain_tags.conll, split 'train', row 1, word 1 \('Ann'\): tag 'PER' has no B-/I- prefix"):
        encode_tags(load_data(str(CORPUS/"plain_tags.conll")), source="plain_tags.conll")
    with pytest.raises(DataError, match=r"row 1, word 2 \('met'\): tag '0' has no B-/I- prefix.*'O' outside names"):
        encode_tags(_dsd([["Ann", "met"]], [["B-PER", "0"]]))
    feats = Features(dict(tokens=Sequence(Value("string")), ner_tags=Sequence(ClassLabel(names=["O", "PER"]))))
    with pytest.raises(DataError, match="tag 'PER' has no B-/I- prefix"): encode_tags(_dsd([["Ann"]], [[1]], feats))


def test_iobes_and_iob1_tags_are_rewritten_as_iob2_with_a_note(capsys):
    dsd = _dsd([["Ann", "Lee", "met", "Bo", "."], ["Ada", "Ray", "in", "Oslo"]],
               [["B-PER", "E-PER", "O", "S-PER", "O"], ["I-PER", "I-PER", "O", "I-LOC"]])
    out, names = encode_tags(dsd, source="x.jsonl")
    assert names == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]  # I-LOC stays: a longer place name would need it
    assert [[names[t] for t in row] for row in out["train"]["tags"]] == [
        ["B-PER", "I-PER", "O", "B-PER", "O"], ["B-PER", "I-PER", "O", "B-LOC"]]
    note = capsys.readouterr().out
    assert "Note: 4 tags are not IOB2 (first: x.jsonl, split 'train', row 1, word 2 ('Lee'): 'E-PER')" in note
    for raw, ids in zip(dsd["train"]["ner_tags"], out["train"]["tags"]):  # the same entities, as seqeval reads them
        assert entity_spans(raw) == entity_spans([names[t] for t in ids])
    encode_tags(_dsd([["Ann", "met"]], [["B-PER", "O"]]))
    assert "not IOB2" not in capsys.readouterr().out, "IOB2 tags pass without a note"


@pytest.mark.parametrize("tokens,tags,message", [
    ([["Ann", "", "met"]], [["B-PER", "O", "O"]], "row 1, word 2: the word is empty ('')"),
    ([["Ann", "  ", "met"]], [["B-PER", "O", "O"]], "row 1, word 2: the word is empty (only whitespace, '  ')"),
    ([["Ann", None, "met"]], [["B-PER", "O", "O"]], "row 1, word 2: the word is missing"),
    (["Ann met Bob"], [["B-PER", "O", "B-PER"]], "row 1: the words in 'tokens' are one string ('Ann met Bob'), not a list"),
    ([["Ann", "met", "Bob"]], ["B-PER O B-PER"], "row 1: the tags in 'ner_tags' are one string ('B-PER O B-PER'), not a list"),
])
def test_empty_words_and_sentences_given_as_one_string_are_refused(tokens, tags, message):
    with pytest.raises(DataError, match=re.escape(f"x.jsonl, split 'train', {message}")):
        encode_tags(_dsd(tokens, tags), label_names=["O", "B-PER", "I-PER"], source="x.jsonl")
