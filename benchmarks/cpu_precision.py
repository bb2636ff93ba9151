"""bf16 against fp32 on this CPU: the measurement behind `ftrecipes.environment.pick_precision`.

For each model, one process times full training steps (forward, backward, fused AdamW) in fp32 and in bf16 autocast,
alternating the two so that both see the same machine state; for a model that generates, it also times greedy
generation of 32 tokens. It prints the speed-ups of bf16 beside what `pick_precision` chooses for that model here.
A choice whose training step loses to the other precision by more than 10% is marked. Generation is shown, not
judged: it loses in bf16 at widths where training still gains, yet whole recipes, which train far longer than they
generate, follow training (nbs/00_environment.ipynb has side-by-side runs). The rows span the widths of the recipes'
real models and of the small ones their smoke and laptop runs build, since below some width bf16 stops paying. The
models are built from their configs with random weights (no download); speed does not depend on the weights.

    OMP_NUM_THREADS=2 python benchmarks/cpu_precision.py            # the table in nbs/00_environment.ipynb
    python benchmarks/cpu_precision.py --small --repeats 1          # tiny sizes: checks the script, not the CPU
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

VOCAB = 2000  # the tiny models' vocabulary size; the real-size rows use their real vocabularies


def text_models(small: bool) -> list:
    "(name, model, train loss function, generate function or None) for the text recipes' model families."
    from transformers import (BertConfig, BertForSequenceClassification, GenerationConfig, LlamaConfig, LlamaForCausalLM,
                              T5Config, T5ForConditionalGeneration)
    b, n = (8, 16) if small else (32, 32)
    ids, classes = torch.randint(5, VOCAB, (b, n)), torch.randint(0, 2, (b,))
    src, tgt = torch.randint(5, VOCAB, (b, 3 * n // 2)), torch.randint(5, VOCAB, (b, 3 * n // 2))
    greedy = GenerationConfig(max_new_tokens=8 if small else 32, min_new_tokens=8 if small else 32, do_sample=False,
                              num_beams=1, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)

    def bert(width, layers, heads, real=False):
        cfg = BertConfig() if real else BertConfig(vocab_size=VOCAB, hidden_size=width, num_hidden_layers=layers,
                                                    num_attention_heads=heads, intermediate_size=4 * width)
        return BertForSequenceClassification(cfg), lambda m: m(input_ids=ids, labels=classes).loss, None

    def t5(width, layers, heads, real=False):  # T5Config() is t5-small; the small ones are shaped as build_tiny_model's
        cfg = T5Config(decoder_start_token_id=0) if real else T5Config(
            vocab_size=VOCAB, d_model=width, d_ff=2 * width, d_kv=width // heads, num_layers=layers, num_heads=heads,
            decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        return (T5ForConditionalGeneration(cfg), lambda m: m(input_ids=src, labels=tgt).loss,
                lambda m: m.generate(input_ids=src, generation_config=greedy))

    def llama(width, layers, heads, real=False):  # real: SmolLM2-135M's shape, the text-generation recipe's model
        cfg = (LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                           num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True) if real else
               LlamaConfig(vocab_size=VOCAB, hidden_size=width, intermediate_size=int(8 * width / 3),
                           num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads))
        prompt = ids[:, : n // 2]
        return (LlamaForCausalLM(cfg), lambda m: m(input_ids=ids, labels=ids).loss,
                lambda m: m.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), generation_config=greedy))

    if small:
        specs = [("BERT", bert, 64, 2, 2, False), ("T5", t5, 64, 2, 2, False), ("Llama", llama, 64, 2, 2, False)]
    else:
        specs = [("BERT-base", bert, 768, 12, 12, True), ("BERT", bert, 128, 3, 4, False), ("BERT", bert, 64, 2, 2, False),
                 ("t5-small", t5, 512, 6, 8, True), ("T5", t5, 256, 4, 4, False), ("T5", t5, 128, 3, 4, False),
                 ("T5", t5, 64, 2, 2, False), ("SmolLM2-135M", llama, 576, 30, 9, True), ("Llama", llama, 256, 4, 4, False),
                 ("Llama", llama, 128, 3, 4, False), ("Llama", llama, 64, 2, 2, False)]
    out = []
    for family, build, width, layers, heads, real in specs:
        model, train, generate = build(width, layers, heads, real)
        name = family if real else f"{family} width {width}, {layers} layers"
        shape = f"{b} x {3 * n // 2} + {3 * n // 2}" if build is t5 else f"{b} x {n}"
        out.append((f"{name}, {shape} tokens", model, train, generate))
    return out


def image_models(small: bool) -> list:
    "(name, model, train loss function, None) for timm networks, channels-last as the image recipe trains them."
    import timm
    size, b = (32, 8) if small else (64, 32)
    x = torch.randn(b, 3, size, size).to(memory_format=torch.channels_last); y = torch.randint(0, 10, (b,))
    archs = ["resnet18", "convnext_atto", "tf_efficientnet_lite0", "mobilenetv3_small_100"]
    out = []
    for arch in archs + ([] if small else ["test_resnet", "test_vit"]):  # timm's test networks: the image smoke runs'
        model = timm.create_model(arch, num_classes=10).to(memory_format=torch.channels_last)
        out.append((f"{arch}, {b} x {size} px", model, lambda m: F.cross_entropy(m(x), y), None))
    return out


def best_seconds(run, repeats: int) -> dict:
    "{'fp32': s, 'bf16': s}: the fastest of `repeats` timed calls of `run` in each precision, after one untimed call each."
    best = {}
    for i in range(repeats + 1):
        for precision in ("fp32", "bf16"):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                run()
            if i: best[precision] = min(best.get(precision, float("inf")), time.perf_counter() - start)
    return best


def step_seconds(model, loss_fn, repeats: int) -> dict:
    "Training steps: forward, backward and a fused AdamW step."
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    def step():
        loss_fn(model).backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return best_seconds(step, repeats)


def generate_seconds(model, generate, repeats: int) -> dict:
    "Greedy generation, in eval mode without gradients, as a recipe generates to evaluate."
    model.eval()
    with torch.no_grad():
        t = best_seconds(lambda: generate(model), repeats)
    model.train()
    return t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="tiny models: a check of the script")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per precision (the fastest counts)")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    a = ap.parse_args(argv)
    from ftrecipes.environment import cpu_bf16_instructions, model_width, pick_precision
    torch.manual_seed(0)
    instructions = cpu_bf16_instructions()
    print(f"CPU: {torch.get_num_threads()} threads; bf16 instructions: {instructions or 'none (bf16 is emulated)'}; "
          f"torch {torch.__version__}")
    print(f"{'model':46} {'width':>5} {'train fp32/bf16 ms':>19} {'x':>6} {'generate fp32/bf16 ms':>22} {'x':>6}  chosen")
    rows = []
    for name, model, loss_fn, generate in text_models(a.small) + image_models(a.small):
        t = step_seconds(model.train(), loss_fn, a.repeats)
        g = generate_seconds(model, generate, a.repeats) if generate else None
        train_x = t["fp32"] / t["bf16"]
        gen_x = g["fp32"] / g["bf16"] if g else None
        chosen, width = pick_precision("cpu", model), model_width(model)
        slower = (chosen == "bf16" and train_x < 1 / 1.1) or (chosen == "fp32" and train_x > 1.1)
        rows.append(dict(model=name, width=width, fp32_s=t["fp32"], bf16_s=t["bf16"], bf16_speedup=train_x,
                         generate_fp32_s=g and g["fp32"], generate_bf16_s=g and g["bf16"], generate_bf16_speedup=gen_x,
                         chosen=chosen, chosen_is_slower=slower))
        gen = f"{1000 * g['fp32']:10.0f} /{1000 * g['bf16']:7.0f} {gen_x:5.2f}x" if g else f"{'-':>22} {'':6}"
        print(f"{name:46} {width or '?':>5} {1000 * t['fp32']:10.0f} /{1000 * t['bf16']:7.0f} {train_x:5.2f}x {gen}  {chosen}"
              + ("  (the other precision is faster here)" if slower else ""), flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(dict(bf16_instructions=instructions, threads=torch.get_num_threads(), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
