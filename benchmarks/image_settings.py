"""Image classification: the plain fp32 Trainer against the recipe's settings, side by side, in one process.

The recipe trains timm models through transformers' `TimmWrapperForImageClassification` with mixed precision
(bf16 where the GPU has it), the channels-last memory layout, and background data-loader workers that decode and
augment images while the GPU trains. This measures what each of those buys, on the same synthetic images (random
64x64 PIL images, resized and augmented to the model's input by timm's transforms, as the recipe does), random
weights (no Hub needed), the same number of steps. Prints images/s after warm-up, peak GPU memory and the ratio to
the baseline.

    python benchmarks/image_settings.py                      # GPU: EfficientNet-Lite0 and Swin-T at 224 px
    python benchmarks/image_settings.py --workers-everywhere   # GPU: precision and memory layout alone
    python benchmarks/image_settings.py --size 64 --steps 20 --models tf_efficientnet_lite0   # a quick CPU run
"""
import argparse
import os
import time

import numpy as np
import torch
import timm
from PIL import Image
from timm.data import create_transform, resolve_data_config
from transformers import (AutoModelForImageClassification, TimmWrapperConfig, Trainer, TrainerCallback,
                          TrainingArguments)


class SyntheticImages(torch.utils.data.Dataset):
    "Random PIL images with labels, through `transform` (what `with_transform` does in the recipe, per item)."
    def __init__(self, n: int, transform, classes: int = 10, side: int = 64, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.images = [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(n)]
        self.labels = rng.integers(0, classes, n).tolist()
        self.transform = transform
    def __len__(self): return len(self.images)
    def __getitem__(self, i): return {"pixel_values": self.transform(self.images[i]), "labels": self.labels[i]}


class StepClock(TrainerCallback):
    "Wall time of the steps after `warmup` (compilation, cuDNN autotuning and worker start-up excluded)."
    def __init__(self, warmup: int): self.warmup, self.start, self.steps = warmup, None, 0
    def on_step_end(self, args, state, control, **kw):
        if torch.cuda.is_available(): torch.cuda.synchronize()
        if state.global_step == self.warmup: self.start = time.perf_counter()
        elif state.global_step > self.warmup: self.steps += 1
    def seconds(self): return time.perf_counter() - self.start


def model_for(arch: str, classes: int = 10):
    config = TimmWrapperConfig(architecture=arch, num_labels=classes, model_args={})
    model = AutoModelForImageClassification.from_config(config)
    model.timm_model = timm.create_model(arch, num_classes=classes)  # timm's own init, as the recipe's scratch model
    return model


def run(arch: str, setting: dict, size: int, batch: int, steps: int, warmup: int, out: str) -> dict:
    torch.manual_seed(0)
    model = model_for(arch)
    cfg = resolve_data_config({"input_size": (3, size, size)}, pretrained_cfg=model.timm_model.pretrained_cfg)
    data = SyntheticImages(batch * (steps + 2), create_transform(**cfg, is_training=True))
    if setting["channels_last"]: model = model.to(memory_format=torch.channels_last)
    cuda = torch.cuda.is_available()
    args = TrainingArguments(out, per_device_train_batch_size=batch, max_steps=steps, learning_rate=1e-3,
                             bf16=setting["bf16"], use_cpu=not cuda, dataloader_num_workers=setting["workers"],
                             dataloader_persistent_workers=setting["workers"] > 0, dataloader_pin_memory=cuda,
                             save_strategy="no", eval_strategy="no", logging_strategy="no", report_to="none",
                             remove_unused_columns=False, disable_tqdm=True)
    clock = StepClock(warmup)
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[clock])
    if cuda: torch.cuda.reset_peak_memory_stats()
    trainer.train()
    seconds = clock.seconds()
    return dict(images_per_s=clock.steps * batch / seconds,
                peak_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tf_efficientnet_lite0,swin_tiny_patch4_window7_224")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--workers", type=int, default=min(4, max(1, (os.cpu_count() or 2) - 1)))
    ap.add_argument("--workers-everywhere", action="store_true",
                    help="give every setting the data-loader workers, to see what precision and layout do on their own")
    a = ap.parse_args()
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    settings = {
        "plain fp32 Trainer (baseline)": dict(bf16=False, channels_last=False, workers=0),
        "+ bf16": dict(bf16=bf16, channels_last=False, workers=0),
        "+ bf16 + channels-last": dict(bf16=bf16, channels_last=True, workers=0),
        "recipe: bf16 + channels-last + workers": dict(bf16=bf16, channels_last=True, workers=a.workers if cuda else 0),
    }
    if a.workers_everywhere:
        settings = {k.replace("(baseline)", "+ workers (baseline)"): dict(s, workers=a.workers) for k, s in list(settings.items())[:3]}
    device = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{device}; torch {torch.__version__}, timm {timm.__version__}; {a.size} px, batch {a.batch}, "
          f"{a.steps} steps ({a.warmup} warm-up)")
    for arch in a.models.split(","):
        base = None
        for name, s in settings.items():
            r = run(arch, s, a.size, a.batch, a.steps, a.warmup, "/tmp/image-settings-bench")
            base = base or r["images_per_s"]
            print(f"{arch:32s} {name:42s} {r['images_per_s']:8.1f} img/s  x{r['images_per_s'] / base:4.2f}  "
                  f"peak {r['peak_gib']:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
