"""Image classification: bad images stop or are skipped before training, greyscale becomes RGB, 16-bit and float
images keep their values, a class folder with no images stops the run, hidden files are ignored, a last batch of one
image trains, and the saved model predicts on a new image file in a new process, through transformers' pipeline and
through timm alone. (The smoke run of the recipe is in the papermill suite, test_notebooks.py.) Layouts and classes
that stop the run are in the bad-input corpus, test_bad_inputs.py."""
import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import subprocess_env
from ftrecipes.data import load_data, sample_path
from ftrecipes.images import ImageTransform, check_images, image_transforms


def _ftr(cmd, *args):
    return subprocess.run([cmd, *args], capture_output=True, text=True, env=subprocess_env(threads=1))


@pytest.fixture
def shapes(tmp_path):
    "A copy of the bundled sample of shapes (one folder per class) to spoil."
    folder = tmp_path/"shapes"
    shutil.copytree(sample_path("shapes"), folder)
    return folder


def test_unreadable_images_are_skipped_and_listed_or_stop_with_their_path(shapes):
    (shapes/"circle"/"corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (shapes/"ring"/"zero.jpg").write_bytes(b"")
    (shapes/"square"/"notes.png").write_text("this is text under an image name")
    ds = load_data(str(shapes))
    clean, report = check_images(ds, "image", str(shapes), bad="skip")
    assert sum(len(d) for d in clean.values()) == 180 and len(report["skipped"]) == 3
    assert {s["where"].rsplit("/", 1)[-1] for s in report["skipped"]} == {"corrupt.png", "zero.jpg", "notes.png"}
    with pytest.raises(ValueError, match=r"corrupt\.png: not a readable image"):
        check_images(ds, "image", str(shapes), bad="stop")


def test_greyscale_and_palette_images_become_rgb_tensors():
    from timm.data import resolve_data_config
    cfg = resolve_data_config({"input_size": (3, 32, 32)}, pretrained_cfg=dict(mean=(0.5,) * 3, std=(0.5,) * 3))
    train, evaluation = image_transforms(cfg, "flip")
    grey = Image.new("L", (20, 28), 128)
    palette = Image.new("RGB", (40, 30), (200, 10, 10)).convert("P")
    for tf in (train, evaluation):
        out = ImageTransform(tf)({"image": [grey, palette], "label": [0, 1]})
        assert [tuple(x.shape) for x in out["pixel_values"]] == [(3, 32, 32)] * 2 and out["label"] == [0, 1]


GRADIENT = np.tile(np.arange(256, dtype=np.uint16), (8, 1))  # every 8-bit value, left to right


def _sixteen_bit_grey(path):
    Image.fromarray(GRADIENT * 257).save(path)  # 0..65535: mode I;16 (I in older Pillow)


def _float_grey(path):
    Image.fromarray((GRADIENT / 255).astype(np.float32)).save(path)  # a float TIFF with values in [0, 1]


@pytest.mark.parametrize("write,name", [(_sixteen_bit_grey, "grey16.png"), (_float_grey, "float.tif")])
def test_16_bit_and_float_images_reach_the_model_as_the_same_8_bit_gradient(tmp_path, write, name):
    import datasets
    write(tmp_path/name)
    decoded = datasets.Image().decode_example({"path": str(tmp_path/name), "bytes": None})  # as the dataset hands it over
    assert decoded.mode != "RGB"
    seen = ImageTransform(np.asarray)({"image": [decoded], "label": [0]})["pixel_values"][0]
    assert seen.dtype == np.uint8 and seen.shape == (8, 256, 3)
    assert (seen == GRADIENT.astype(np.uint8)[..., None]).all(), f"not the gradient: row 0 starts {seen[0, :6, 0]}"


def test_a_palette_image_with_transparency_converts_without_a_warning():
    palette = Image.new("RGBA", (6, 6), (200, 10, 10, 0)).convert("P")
    palette.info["transparency"] = bytes(256)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ImageTransform(np.asarray)({"image": [palette], "label": [0]})["pixel_values"][0]
    assert tuple(out[0, 0]) == (200, 10, 10)


def test_hidden_and_non_image_files_beside_the_images_are_ignored(shapes):
    from ftrecipes.images import check_image_folder
    (shapes/".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (shapes/"circle"/".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (shapes/"square"/"Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (shapes/"ring"/"desktop.ini").write_text("[.ShellClassInfo]")
    (shapes/"circle"/"._circle_000.png").write_bytes(b"\0\5\26\7 AppleDouble")  # macOS resource fork, not a PNG
    (shapes/"cross"/".ipynb_checkpoints").mkdir()
    shutil.copy(shapes/"cross"/"cross_000.png", shapes/"cross"/".ipynb_checkpoints"/"cross_000-checkpoint.png")
    check_image_folder(str(shapes))
    ds = load_data(str(shapes))
    clean, report = check_images(ds, "image", str(shapes), bad="stop")
    assert report["checked"] == 180 and not report["skipped"] and len(ds["train"].features["label"].names) == 6


def test_a_last_batch_of_one_image_trains_without_it(ftrecipes_cmd, tmp_path):
    # 17 training images in batches of 16: batch norm on the tiny network's 1x1 features cannot train on the 17th alone
    proc = _ftr(ftrecipes_cmd, "run", "image_classification", "-p", "preset=smoke", "-p", "max_train_samples=17",
                "-p", "batch_size=16", "-p", "epochs=1", "-p", "compare_scratch=False", "-o", str(tmp_path/"run"), "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path/"run"/"results.json").read_text())
    assert r["split_sizes"]["train"] == 16 and r["training"]["global_step"] == 1
    assert "leave a last batch of one image, which batch norm cannot train on: left out" in (tmp_path/"run"/"image_classification.ipynb").read_text()


def test_skipped_images_are_reported_and_the_saved_model_predicts_a_new_file_in_a_new_process(ftrecipes_cmd, tmp_path, shapes):
    (shapes/"circle"/"corrupt.png").write_bytes(b"not an image")
    proc = _ftr(ftrecipes_cmd, "run", "image_classification", "-p", "preset=smoke", "-p", f"data={shapes}",
                "-p", "compare_scratch=False", "-o", str(tmp_path/"run"), "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path/"run"/"results.json").read_text())
    assert r["image_check"]["skipped"] == 1 and r["image_check"]["modes"]["L"] > 0
    assert sum(r["split_sizes"].values()) == 180 and "from_scratch" not in r
    model_dir = tmp_path/"run"/"model"
    config = json.loads((model_dir/"config.json").read_text())
    assert config["architecture"] == "test_efficientnet" and config["pretrained_cfg"]["input_size"] == [3, 32, 32]
    assert sorted(config["label_names"]) == sorted(r["label_names"]) and (model_dir/"model.safetensors").exists()
    new = tmp_path/"new.jpg"
    Image.new("L", (50, 40), 90).save(new)  # a greyscale file, another size, another format
    code = ("import sys, json; from transformers import pipeline; from ftrecipes.images import timm_predict\n"
            "out = pipeline('image-classification', model=sys.argv[1])(sys.argv[2])\n"
            "print(json.dumps([out[0]['label'], timm_predict(sys.argv[1], [sys.argv[2]])[0]]))")
    child = subprocess.run([sys.executable, "-c", code, str(model_dir), str(new)], capture_output=True, text=True,
                           env=subprocess_env(threads=1))
    assert child.returncode == 0, child.stderr[-3000:]
    by_pipeline, by_timm = json.loads(child.stdout.strip().splitlines()[-1])
    assert by_pipeline == by_timm and by_pipeline in r["label_names"]


def test_freeze_backbone_trains_only_the_head_for_its_epochs(tmp_path):
    from ftrecipes.data import make_splits
    from ftrecipes.labels import encode_labels
    from ftrecipes.environment import describe_environment
    from ftrecipes.image_classification import image_trainer, load_image_classifier
    from ftrecipes.images import backbone_parameters, image_data_config, with_transforms
    from ftrecipes.image_classification import RECIPE
    from ftrecipes.parameters import Params
    ds, names = encode_labels(load_data("sample:shapes"), "label")
    splits = make_splits(ds, seed=0, stratify_by="label")
    model = load_image_classifier("tiny:efficientnet", names)
    train_tf, eval_tf = image_transforms(image_data_config(model, 32, 1.0), "none")
    data = with_transforms(splits, "image", train_tf, eval_tf)
    backbone = [q.detach().clone() for q in backbone_parameters(model)]
    head = model.timm_model.get_classifier().weight.detach().clone()
    p = Params(RECIPE.published, learning_rate=1e-2, batch_size=16, grad_accum=1, epochs=1, freeze_backbone_epochs=1)
    trainer = image_trainer(model, p, tmp_path/"ckpt", data["train"], data["validation"], names,
                            describe_environment(check_hub=False, quiet=True))
    trainer.train()
    assert all(torch.equal(a, b) for a, b in zip(backbone, backbone_parameters(trainer.model)))  # frozen all epoch
    assert not torch.equal(head, trainer.model.timm_model.get_classifier().weight)  # the head learned
    assert all(q.requires_grad for q in trainer.model.parameters())  # unfrozen at the end of the epoch
