"""Unit tests of exported helpers where the notebooks' inline tests do not reach."""
import subprocess
import sys

import pytest

from ftrecipes.recipes import recipe_parameters, recipes, recipe
from ftrecipes.runner import check_params
from ftrecipes.parameters import parse_param, resolve_preset
from ftrecipes.environment import hub_reachable, pick_precision
from conftest import subprocess_env


def test_parse_param_reads_literals_and_strings():
    assert parse_param("epochs=3") == ("epochs", 3)
    assert parse_param("learning_rate=5e-5") == ("learning_rate", 5e-5)
    assert parse_param("label_names=['neg', 'pos']") == ("label_names", ["neg", "pos"])
    assert parse_param("data=./my reviews.csv") == ("data", "./my reviews.csv")
    assert parse_param("data_config=None") == ("data_config", None)
    with pytest.raises(ValueError, match="key=value"): parse_param("epochs")


def test_the_registry_holds_the_seven_recipes_in_notebook_order():
    assert list(recipes()) == ["sentiment", "question_answering", "ner", "summarization", "translation", "text_generation",
                               "image_classification"]


def test_the_registry_reads_without_torch_or_transformers():
    "Every command and every test process reads the registry: it must not pay seconds of torch and transformers imports."
    code = ("import sys; from ftrecipes.recipes import recipes, recipe_path; recipes(); recipe_path('sentiment'); "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'pandas') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr[-2000:]


@pytest.mark.parametrize("task", list(recipes()))
def test_a_recipe_module_carries_its_notebooks_parameters_cell(task):
    "The module's record reads the PARAMETERS that nbdev exported from the notebook's parameters cell: the same values."
    record = recipe(task)
    assert (record.name, record.notebook) == (task, recipes()[task].name)
    assert record.published == {k: v["default"] for k, v in recipe_parameters(task).items() if k != "preset"}


def test_check_params_rejects_wrong_types_and_names():
    check_params("sentiment", {"epochs": 2, "learning_rate": 1e-4, "data": "x.csv", "label_names": ["a", "b"]})
    with pytest.raises(ValueError, match="expected a float"): check_params("sentiment", {"learning_rate": "fast"})
    with pytest.raises(ValueError, match="no parameter"): check_params("sentiment", {"lr": 1e-4})


def test_preset_never_overrides_what_the_user_set():
    published = dict(model="big", epochs=3)
    presets = dict(laptop=dict(model="small", epochs=1))
    class Env: device, hub = "cpu", False
    p = resolve_preset("auto", dict(model="mine", epochs=3), published, presets, Env(), quiet=True)
    assert (p.preset, p.model, p.epochs) == ("laptop", "mine", 1)


def test_offline_mode_short_circuits_the_hub_check(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False


def test_cpu_precision_follows_the_cpus_bf16_instructions(monkeypatch):
    "bf16 on a CPU only where it multiplies bf16 in hardware, never for depthwise convolutions (slower in bf16), and only"
    " for models wide enough to gain (width 128: benchmarks/cpu_precision.py)."
    import torch
    from transformers import BertConfig, T5Config
    from ftrecipes import environment
    from ftrecipes.environment import cpu_precision
    depthwise = torch.nn.Conv2d(8, 8, 3, groups=8)
    monkeypatch.setattr(environment, "cpu_bf16_instructions", lambda: "AVX512-BF16")
    assert pick_precision("cpu") == "bf16" and pick_precision("cpu", torch.nn.Linear(512, 4)) == "bf16"
    assert pick_precision("cpu", torch.nn.Linear(4, 4)) == "fp32"  # 4 inputs per output: too narrow
    assert pick_precision("cpu", depthwise) == "fp32"
    assert [pick_precision("cpu", BertConfig(hidden_size=h)) for h in (64, 128, 768)] == ["fp32", "bf16", "bf16"]
    assert [pick_precision("cpu", T5Config(d_model=h)) for h in (64, 96, 128, 512)] == ["fp32", "fp32", "bf16", "bf16"]
    assert cpu_precision(T5Config(d_model=64)) == ("fp32", "a model of width 64 is too narrow to gain from bf16 on a "
                                                    "CPU (it pays from width 128)")
    monkeypatch.setattr(environment, "cpu_bf16_instructions", lambda: "")
    assert pick_precision("cpu") == "fp32" and pick_precision("mps") == "fp32"
    assert pick_precision("cpu", BertConfig()) == "fp32"


def test_offline_models_keep_pytorchs_layers_on_a_gpu(monkeypatch, tmp_path):
    """Offline, transformers (5.25 and later) must not swap layers for Hub kernels: on a GPU it downloads them at the
    first model.train() / model.eval(), which without the Hub raises, so a Llama stopped at its first training step and
    a BERT at its first evaluation. The GPU is simulated: an H100's compute capability, and the device transformers
    would read from the model's parameters once the Trainer has moved it there."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, BertConfig, LlamaConfig
    from ftrecipes.models import safe_from_pretrained
    from ftrecipes.probes import fast_settings
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("USE_HUB_KERNELS", raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    for name, auto, cfg in [("llama", AutoModelForCausalLM, LlamaConfig(**small, num_key_value_heads=2, vocab_size=100)),
                            ("bert", AutoModelForSequenceClassification, BertConfig(**small))]:
        auto.from_config(cfg).save_pretrained(tmp_path/name)
        model = safe_from_pretrained(auto, tmp_path/name)
        assert not model.use_kernels, name
        model._kernels_device = "cuda"  # transformers re-kernelizes for this device when the mode changes
        model.train(); model.eval()  # raised "... is not available in the local cache and Hugging Face Hub is in offline mode"
        assert fast_settings(model, "cuda", "bf16")[1]["Hub kernels"].startswith("off: offline")
    from transformers.utils import import_utils
    if getattr(import_utils, "is_kernels_available", lambda: False)():  # else use_kernels=True raises: no kernels to use
        # what the user passes wins
        assert safe_from_pretrained(AutoModelForSequenceClassification, tmp_path/"bert", use_kernels=True).use_kernels


@pytest.mark.parametrize("task", list(recipes()))
def test_every_parameter_has_help_written_once(task):
    "`ftrecipes list` explains every parameter; shared help comes from COMMON_HELP, never copied into a recipe's cell."
    from ftrecipes.parameters import COMMON_HELP, read_parameters
    import json
    cell = next(c for c in json.loads(recipes()[task].read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    own = read_parameters("".join(cell["source"]))
    assert [k for k, v in recipe_parameters(task).items() if not v["help"]] == []
    assert [k for k, v in own.items() if v["help"] and v["help"] == COMMON_HELP.get(k)] == []
