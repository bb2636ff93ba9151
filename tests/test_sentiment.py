"""The sentiment recipe's split step: on GLUE SST-2 the test split is the published (validation) split, never seen by model selection."""
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from ftrecipes.parameters import Params
from ftrecipes.sentiment import RECIPE, PUBLISHED_RESULT, sentiment_splits


def _rows(name, labels):
    feats = Features(sentence=Value("string"), label=ClassLabel(names=["negative", "positive"]), idx=Value("int32"))
    return Dataset.from_dict({"sentence": [f"{name} {i}" for i in range(len(labels))], "label": labels,
                              "idx": list(range(len(labels)))}, features=feats)


def _sst2_shaped():
    "Train, a labelled validation split, and a test split whose labels are all -1, as GLUE ships SST-2."
    return DatasetDict(train=_rows("train", [0, 1, 1] * 40), validation=_rows("dev", [1, 0, 0, 1, 1, 1]),
                       test=_rows("test", [-1] * 6))


def test_published_data_is_scored_on_the_published_split_and_selected_on_a_cut_of_train():
    p = Params(RECIPE.published)
    assert PUBLISHED_RESULT["data_split"] == "validation"
    splits, names = sentiment_splits(_sst2_shaped(), p)
    assert names == ["negative", "positive"]
    assert splits["test"]["sentence"] == [f"dev {i}" for i in range(6)]  # the official validation rows, all of them
    assert splits["test"]["label"] == [1, 0, 0, 1, 1, 1]
    val = splits["validation"]["sentence"]
    assert val and all(s.startswith("train ") for s in val), "selection split cut from train"
    assert not set(val) & set(splits["train"]["sentence"]), "cut from train, not shared with it"
    assert len(splits["train"]) + len(val) == 120 and len(val) == 6, "as many selection rows as the published split has"
    assert splits["validation"]["label"].count(1) == 2 * splits["validation"]["label"].count(0), "stratified by class"


def test_other_data_keeps_the_old_split_path():
    splits, _ = sentiment_splits(_sst2_shaped(), Params(RECIPE.published, data="my_sst2_copy.csv"))
    assert splits["validation"]["sentence"] == [f"dev {i}" for i in range(6)]
    assert all(s.startswith("train ") for s in splits["test"]["sentence"])


def test_max_train_samples_limits_train_only():
    splits, _ = sentiment_splits(_sst2_shaped(), Params(RECIPE.published, max_train_samples=30))
    assert len(splits["train"]) == 30 and len(splits["test"]) == 6


def test_rows_without_text_are_dropped_and_spaces_around_labels_removed_with_notes(capsys):
    "A file from a spreadsheet: two empty texts (one only spaces) and two labels with a stray space."
    from pathlib import Path
    from ftrecipes.data import load_data
    data = str(Path(__file__).parent/"bad_inputs"/"sentiment"/"empty_texts_and_spaced_labels.csv")
    splits, names = sentiment_splits(load_data(data), Params(RECIPE.published, data=data, text_column="text", label_column="label"))
    assert names == ["negative", "positive"], "'positive ' and ' positive' are the class 'positive', not new classes"
    texts = [t for s in splits.values() for t in s["text"]]
    assert len(texts) == 38 and all(t and t.strip() for t in texts), "the two rows without text are gone"
    out = capsys.readouterr().out
    assert "dropped 2 of 40 rows of split 'train' with no text in 'text' (rows 4, 21)" in out
    assert "removed the spaces around 2 labels in 'label'" in out
