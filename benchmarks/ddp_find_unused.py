"""DistributedDataParallel with and without the search for unused parameters: the measurement behind
`ftrecipes.probes.choose_find_unused`.

Told `find_unused_parameters=True` (the Trainer's default for a transformers model), DDP walks the autograd graph
at the end of every forward pass to find parameters that will get no gradient, and PyTorch warns that this costs
speed when it finds none. `prepare_trainer` checks the model once instead and turns the search off when every trainable
parameter gets a gradient. This script times training steps (forward, backward with DDP's gradient averaging, fused
AdamW) of the recipes' model families both ways, side by side in the same processes: two copies of the model with
the same weights, one wrapped each way, taking turns. It prints the median step time of each, their ratio, and the
median forward time of each, which holds the search. `--narrow` keeps each model's depth (the graph the search
walks) at width 64, so that the search is a larger share of a short step. The models are built from their configs
with random weights.

It starts its own processes (torch.distributed.run): one per GPU over NCCL where there are two or more GPUs,
otherwise `--processes` CPU processes over gloo with one thread each.

    python benchmarks/ddp_find_unused.py                 # real sizes: BERT-base, t5-small, SmolLM2-135M (+ LoRA)
    python benchmarks/ddp_find_unused.py --narrow --steps 5 --rounds 6   # their depths at width 64
    python benchmarks/ddp_find_unused.py --small         # tiny sizes: checks the script, not the machine
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

VOCAB = 2000  # the tiny models' vocabulary size


def models(small: bool, b: int, n: int, device, narrow: bool = False):
    "(name, build() -> model, loss function) for the families of the recipes' default models; `narrow`: their real depth at width 64."
    import torch
    from transformers import (BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM, T5Config,
                              T5ForConditionalGeneration)
    g = torch.Generator().manual_seed(int(os.environ.get("RANK", 0)))  # every process gets its own batch, as under DDP
    vocab = VOCAB if small or narrow else 30000
    ids = torch.randint(5, vocab, (b, n), generator=g).to(device)
    classes = torch.randint(0, 2, (b,), generator=g).to(device)
    targets = ids[:, : n // 2].contiguous()
    # the tiny and narrow models share one shape per family; their depth is 2 layers, or the real model's if narrow
    depth = dict(bert=12, t5=6, llama=30) if narrow else dict(bert=2, t5=2, llama=2)
    tiny = small or narrow
    bert = BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=depth["bert"], num_attention_heads=2,
                      intermediate_size=256) if tiny else BertConfig()
    t5 = (T5Config(vocab_size=VOCAB, d_model=64, d_ff=128, d_kv=32, num_layers=depth["t5"], num_heads=2,
                   decoder_start_token_id=0) if tiny else T5Config(decoder_start_token_id=0))
    llama = (LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=170, num_hidden_layers=depth["llama"],
                         num_attention_heads=2, num_key_value_heads=2) if tiny else
             LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True))  # SmolLM2-135M's shape
    if narrow:
        names = ["BERT-base's 12 layers, width 64", "t5-small's 6+6 layers, width 64", "SmolLM2's 30 layers, width 64",
                 "SmolLM2's 30 layers, width 64 + LoRA"]
    else:
        names = (["BERT, tiny", "T5, tiny", "Llama, tiny", "Llama, tiny + LoRA"] if small else
                 ["BERT-base classifier", "t5-small", "SmolLM2-135M", "SmolLM2-135M + LoRA r=16"])

    def lora(model):
        from peft import LoraConfig, get_peft_model
        return get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))

    return list(zip(names, [lambda: BertForSequenceClassification(bert), lambda: T5ForConditionalGeneration(t5),
                            lambda: LlamaForCausalLM(llama), lambda: lora(LlamaForCausalLM(llama))],
                    [lambda m: m(input_ids=ids, labels=classes).loss, lambda m: m(input_ids=ids, labels=targets).loss,
                     lambda m: m(input_ids=ids, labels=ids).loss, lambda m: m(input_ids=ids, labels=ids).loss]))


def worker(a):
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    cuda = torch.cuda.device_count() >= 2
    dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    if cuda: torch.cuda.set_device(device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows = []
    if rank == 0:
        print(f"{dist.get_world_size()} processes over {dist.get_backend()}, batch {a.batch} x {a.length} tokens each; "
              f"torch {torch.__version__}")
        print(f"{'':38} {'step, ms':^27} {'forward, ms':^28}")
        print(f"{'model':38} {'search':>9} {'none':>9} {'x':>8} {'search':>9} {'none':>9} {'search':>8}")
    for name, build, loss_fn in models(a.small, a.batch, a.length, device, a.narrow):
        wrapped = {}
        for search in (True, False):
            torch.manual_seed(0)
            model = build().to(device).train()
            trainable = [q for q in model.parameters() if q.requires_grad]
            wrapped[search] = (DDP(model, device_ids=[device.index] if cuda else None, find_unused_parameters=search),
                               torch.optim.AdamW(trainable, lr=1e-5, fused=True))
        times, forwards = {True: [], False: []}, {True: [], False: []}
        for r in range(a.rounds + 1):  # round 0 warms up both
            for search in ((True, False) if r % 2 else (False, True)):
                ddp, opt = wrapped[search]
                for _ in range(a.steps):
                    sync(); start = time.perf_counter()
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                        loss = loss_fn(ddp)  # the search runs at the end of DDP's forward
                    sync(); forward = time.perf_counter() - start
                    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
                    sync()
                    if r:
                        times[search].append(time.perf_counter() - start); forwards[search].append(forward)
        # every process must agree on the numbers: report the slowest process's median, as it sets the pace
        med = torch.tensor([statistics.median(x[k]) for x in (times, forwards) for k in (True, False)], dtype=torch.float64)
        dist.all_reduce(med, op=dist.ReduceOp.MAX)
        search_s, plain_s, search_fwd, plain_fwd = med.tolist()
        rows.append(dict(model=name, search_s=search_s, no_search_s=plain_s, speedup=search_s / plain_s,
                         forward_search_s=search_fwd, forward_no_search_s=plain_fwd))
        if rank == 0:
            print(f"{name:38} {1000 * search_s:9.1f} {1000 * plain_s:9.1f} {search_s / plain_s:7.3f}x "
                  f"{1000 * search_fwd:9.1f} {1000 * plain_fwd:9.1f} {1000 * (search_fwd - plain_fwd):+8.1f}", flush=True)
        del wrapped
    if rank == 0 and a.out:
        with open(a.out, "w") as f:
            json.dump(dict(processes=dist.get_world_size(), backend=dist.get_backend(), rows=rows), f, indent=1)
    dist.destroy_process_group()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="tiny models: a check of the script")
    ap.add_argument("--narrow", action="store_true",
                    help="the real models' depth at width 64: the same autograd graph to search, little arithmetic")
    ap.add_argument("--processes", type=int, default=2, help="CPU processes when there are not two GPUs")
    ap.add_argument("--batch", type=int, default=8, help="examples per process and step")
    ap.add_argument("--length", type=int, default=64, help="tokens per example")
    ap.add_argument("--steps", type=int, default=3, help="steps in a row each way, per round")
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds (each way once per round, in turns)")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    a = ap.parse_args(argv)
    if "RANK" in os.environ: return worker(a)
    import torch
    n = torch.cuda.device_count() if torch.cuda.device_count() >= 2 else a.processes
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), __file__,
           *(argv if argv is not None else sys.argv[1:])]
    sys.exit(subprocess.run(cmd, env=env).returncode)


if __name__ == "__main__":
    main()
