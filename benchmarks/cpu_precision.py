"""bf16 against fp32 on this CPU: the measurement behind `ftrecipes.environment.pick_precision`.

For each model, one process times full training steps (forward, backward, fused AdamW) in fp32 and in bf16 autocast,
alternating the two so that both see the same machine state, and prints the speed-up of bf16 beside what
`pick_precision` chooses for that model here. A choice that loses to the other precision by more than 10% is marked.
The models are built from their configs with random weights (no download); speed does not depend on the weights.

    OMP_NUM_THREADS=2 python benchmarks/cpu_precision.py            # the table in nbs/00_environment.ipynb
    python benchmarks/cpu_precision.py --small --repeats 1          # tiny sizes: checks the script, not the CPU
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def text_models(small: bool) -> list:
    "(name, model, batch, loss function) for the transformers encoders and encoder-decoders of the text recipes."
    from transformers import BertConfig, BertForSequenceClassification, T5Config, T5ForConditionalGeneration
    bert = (BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
            if small else BertConfig())
    t5 = (T5Config(vocab_size=1000, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, decoder_start_token_id=0)
          if small else T5Config(decoder_start_token_id=0))  # T5Config() is t5-small
    b = 32
    ids = torch.randint(5, 1000, (b, 32)); labels = torch.randint(0, 2, (b,))
    src, tgt = torch.randint(5, 1000, (b, 48)), torch.randint(5, 1000, (b, 48))
    return [(f"BERT-{'tiny' if small else 'base'}, {b} x 32 tokens", BertForSequenceClassification(bert),
             lambda m: m(input_ids=ids, labels=labels).loss),
            (f"T5-{'tiny' if small else 'small'}, {b} x 48 + 48 tokens", T5ForConditionalGeneration(t5),
             lambda m: m(input_ids=src, labels=tgt).loss)]


def image_models(small: bool) -> list:
    "(name, model, batch, loss function) for timm networks, channels-last as the image recipe trains them."
    import timm
    size, b = (32, 8) if small else (64, 32)
    x = torch.randn(b, 3, size, size).to(memory_format=torch.channels_last); y = torch.randint(0, 10, (b,))
    out = []
    for arch in ("resnet18", "convnext_atto", "tf_efficientnet_lite0", "mobilenetv3_small_100"):
        model = timm.create_model(arch, num_classes=10).to(memory_format=torch.channels_last)
        out.append((f"{arch}, {b} x {size} px", model, lambda m: F.cross_entropy(m(x), y)))
    return out


def step_seconds(model, loss_fn, repeats: int) -> dict:
    "{'fp32': s, 'bf16': s}: the fastest of `repeats` timed training steps each, after one untimed step each."
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    best = {}
    for i in range(repeats + 1):
        for precision in ("fp32", "bf16"):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = loss_fn(model)
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
            if i: best[precision] = min(best.get(precision, float("inf")), time.perf_counter() - start)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="tiny models: a check of the script")
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per precision (the fastest counts)")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    a = ap.parse_args(argv)
    from ftrecipes.environment import cpu_bf16_instructions, pick_precision
    torch.manual_seed(0)
    instructions = cpu_bf16_instructions()
    print(f"CPU: {torch.get_num_threads()} threads; bf16 instructions: {instructions or 'none (bf16 is emulated)'}; "
          f"torch {torch.__version__}")
    print(f"{'model':44} {'fp32 ms':>8} {'bf16 ms':>8} {'bf16 speed-up':>14}  chosen")
    rows = []
    for name, model, loss_fn in text_models(a.small) + image_models(a.small):
        t = step_seconds(model.train(), loss_fn, a.repeats)
        speedup, chosen = t["fp32"] / t["bf16"], pick_precision("cpu", model)
        slower = (chosen == "bf16" and speedup < 1 / 1.1) or (chosen == "fp32" and speedup > 1.1)
        rows.append(dict(model=name, fp32_s=t["fp32"], bf16_s=t["bf16"], bf16_speedup=speedup, chosen=chosen,
                         chosen_is_slower=slower))
        print(f"{name:44} {1000 * t['fp32']:8.0f} {1000 * t['bf16']:8.0f} {speedup:13.2f}x  {chosen}"
              + ("  (the other precision is faster here)" if slower else ""), flush=True)
    if a.out:
        with open(a.out, "w") as f: json.dump(dict(bf16_instructions=instructions, threads=torch.get_num_threads(), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
