"""Training speed, side by side on the same data: this recipe vs a plain transformers.Trainer + peft.

Run with: .venv/bin/python benchmarks/train.py            (CPU, tiny model, 2 threads)
     or:  .venv/bin/python benchmarks/train.py --interleaved (recipe variants alternating step by step)
     or:  bash benchmarks/train_gpu.sh                     (GPU, ~0.5B Llama-shaped random init, bf16)

Each variant runs in its own process (so its peak RSS is its own) on the same batches: the recipe's
seeded order, handed to the Trainer as a sequential dataset. Reported: real (non-pad) tokens/s,
computed tokens/s (every position the model processed, padding included), padding ratio and peak RSS.
Targets on 2 CPU cores: recipe padded >= 1.0x the reference, recipe packed >= 1.4x (real tokens/s).
Real tokens per CPU-second is printed too: on a shared machine it moves less with other load.
The loss column is the recipe's final step loss and the Trainer's mean training loss.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("reference", "recipe-padded", "recipe-packed", "recipe-packed-rows")


def variable_records(count: int, seed: int) -> list[dict]:
    """Demo tickets with prompts and completions cut to widely spread lengths, like real support data."""
    from adapterops.demo_data import generate_records

    rng = random.Random(seed)
    records = []
    for record in generate_records(count, seed):
        prompt = (record["prompt"] + " ") * rng.choice([1, 1, 2, 3])
        records.append({"prompt": prompt[:int(rng.lognormvariate(5.0, 0.7)) + 20],
                        "completion": record["completion"][:rng.randint(20, len(record["completion"]))]})
    return records


def batches_of(examples, train) -> list[list]:
    """The batches the recipe trains on, in order (same seed, same queue)."""
    import torch

    from tasks.train.sft_data import next_batch

    order, queue = torch.Generator().manual_seed(train.seed), []
    return [next_batch(examples, queue, order, train.batch_size) for _ in range(train.max_steps)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_recipe_variant(model, tokenizer, examples, train) -> dict:
    from tasks.train.recipe import train_lora
    from tasks.train.sft_data import model_inputs

    computed = sum(model_inputs(b, tokenizer.pad_token_id, train)[0]["input_ids"].numel() for b in batches_of(examples, train))
    started, cpu = time.perf_counter(), time.process_time()
    history = train_lora(model, tokenizer, examples, train)
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "computed_tokens": computed, "final_loss": history[-1]["loss"]}


def run_reference(model, tokenizer, examples, train, bf16: bool) -> dict:
    """transformers.Trainer + peft with the usual pad-to-longest collator, on the recipe's batches."""
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    ordered = [e for batch in batches_of(examples, train) for e in batch]
    dataset = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels, "attention_mask": [1] * len(e.input_ids)}
                                 for e in ordered])
    pad = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100)
    computed = {"tokens": 0}

    def collate(features):
        batch = pad(features)
        computed["tokens"] += batch["input_ids"].numel()
        return batch

    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=train.batch_size,
                             max_steps=train.max_steps, learning_rate=train.learning_rate, warmup_steps=train.warmup_steps,
                             lr_scheduler_type="linear", weight_decay=0.0, max_grad_norm=1.0, logging_steps=10**6,
                             save_strategy="no", report_to=[], seed=train.seed, dataloader_num_workers=0,
                             train_sampling_strategy="sequential", remove_unused_columns=False, bf16=bf16,
                             disable_tqdm=True, use_cpu=not bf16)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate)
    started, cpu = time.perf_counter(), time.process_time()
    result = trainer.train()
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "computed_tokens": computed["tokens"],
            "final_loss": result.training_loss}


def gpu_model_and_tokenizer(dims: str, packing: bool):
    """A random-init Llama-shaped model in bf16 (~0.5B parameters by default) and the byte tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from adapterops.tiny_model import build_tokenizer

    hidden, layers, inter, heads, kv, vocab = (int(x) for x in dims.split(","))
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=4096,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    from tasks.model.attention import attention_implementation

    config._attn_implementation = attention_implementation("auto", "cuda", packing)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    return model, build_tokenizer()


def synthetic_examples(count: int, vocab: int, seed: int, low: int, high: int):
    """Random token sequences of spread lengths; the loss is on the second half of each."""
    from tasks.train.sft_data import IGNORE, Example

    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        n = int(min(high, max(low, rng.lognormvariate(6.0, 0.6))))
        ids = [rng.randrange(3, vocab) for _ in range(n)]
        examples.append(Example(ids, [IGNORE] * (n // 2) + ids[n // 2:]))
    return examples


def model_flops_per_token(model, examples) -> float:
    """LoRA training FLOPs per real token: 4 x frozen matmul params (forward + input gradients; the base
    gets no weight gradients) plus causal attention, 12 x layers x hidden x mean attended length."""
    config = model.config
    matmul_params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n and "norm" not in n)
    if config.tie_word_embeddings:
        matmul_params += config.vocab_size * config.hidden_size
    tokens = sum(len(e.input_ids) for e in examples)
    attended = sum(len(e.input_ids) * (len(e.input_ids) + 1) / 2 for e in examples) / tokens
    return 4 * matmul_params + 12 * config.num_hidden_layers * config.hidden_size * attended


def measure(variant: str, args) -> dict:
    """One variant in this process; prints one JSON line."""
    import torch

    from adapterops.config import LoraConfig, TrainConfig
    from adapterops.refs import BaseModelRef
    from tasks.model.base_model import load_base_model
    from tasks.train.recipe import wrap_with_lora
    from tasks.train.sft_data import tokenize_examples

    torch.set_num_threads(args.threads)
    packing = variant.startswith("recipe-packed")
    train = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length, warmup_steps=2,
                      learning_rate=1e-3, packing=packing, pack_length=args.max_length if variant.endswith("rows") else 0,
                      checkpoint_every=0)
    lora = LoraConfig(r=8, alpha=16)
    if args.gpu:
        model, tokenizer = gpu_model_and_tokenizer(args.dims, packing)
        examples = synthetic_examples(args.steps * args.batch_size, model.config.vocab_size, 1, 64, args.max_length)
    else:
        from adapterops.tiny_model import ensure_tiny_model

        path = ensure_tiny_model(Path(args.models_dir))
        model, tokenizer = load_base_model(BaseModelRef("tiny-llama", str(path), "local"), packing=packing)
        records = variable_records(args.records, 3) if args.data == "variable" else _demo_records(args.records)
        examples, _ = tokenize_examples(records, tokenizer, train.prompt_template, train.max_length)
    total_params = sum(p.numel() for p in model.parameters())
    model = wrap_with_lora(model, lora, seed=train.seed, gradient_checkpointing=args.gradient_checkpointing)
    if args.gpu:
        torch.cuda.reset_peak_memory_stats()
    result = (run_reference(model, tokenizer, examples, train, bf16=args.gpu) if variant == "reference"
              else run_recipe_variant(model, tokenizer, examples, train))
    real = sum(len(e.input_ids) for batch in batches_of(examples, train) for e in batch)
    row = {"variant": variant, "real_tokens_per_s": real / result["seconds"],
           "real_tokens_per_cpu_s": real / result["cpu_seconds"],
           "computed_tokens_per_s": result["computed_tokens"] / result["seconds"],
           "padding_ratio": 1 - real / result["computed_tokens"], "peak_rss_mb": peak_rss_mb(),
           "seconds": result["seconds"], "final_loss": result["final_loss"], "parameters": total_params,
           "attention": model.config._attn_implementation}
    if args.gpu:
        flops = model_flops_per_token(model.get_base_model(), [e for b in batches_of(examples, train) for e in b])
        row |= {"peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20,
                "mfu": flops * row["real_tokens_per_s"] / (args.peak_tflops * 1e12)}
    return row


def interleaved(args) -> None:
    """Recipe padded vs packed (per-example sdpa) vs packed (block-diagonal mask), one process, steps
    alternating on the same batches: forward + backward time only, robust to load from other processes."""
    import torch

    from adapterops.config import LoraConfig, TrainConfig
    from adapterops.refs import BaseModelRef
    from adapterops.tiny_model import ensure_tiny_model
    from tasks.model.base_model import load_base_model
    from tasks.train.recipe import wrap_with_lora
    from tasks.train.sft_data import model_inputs, tokenize_examples

    torch.set_num_threads(args.threads)
    path, models = ensure_tiny_model(Path(args.models_dir)), {}
    for name, attention, packing in (("padded", "sdpa", False), ("packed", "auto", True), ("packed-mask", "sdpa", True)):
        model, tokenizer = load_base_model(BaseModelRef("tiny-llama", str(path), "local"), attention=attention, packing=packing)
        train = TrainConfig(packing=packing, max_length=args.max_length, batch_size=args.batch_size, max_steps=args.steps)
        models[name] = (wrap_with_lora(model, LoraConfig(r=8, alpha=16), seed=train.seed), train)
    examples, _ = tokenize_examples(variable_records(args.records, 3), tokenizer, TrainConfig().prompt_template, args.max_length)
    seconds, real = dict.fromkeys(models, 0.0), 0
    for batch in batches_of(examples, models["padded"][1]):
        real += sum(len(e.input_ids) for e in batch)
        for name, (model, train) in models.items():
            inputs, _ = model_inputs(batch, tokenizer.pad_token_id, train, model.config._attn_implementation)
            started = time.perf_counter()
            model(**inputs, use_cache=False).loss.backward()
            seconds[name] += time.perf_counter() - started
            model.zero_grad()
    print(f"interleaved, CPU, {args.threads} threads, {args.steps} steps x {args.batch_size}: forward+backward real tokens/s")
    for name, (model, _) in models.items():
        print(f"{name:12} {real / seconds[name]:7.0f}  {seconds['padded'] / seconds[name]:5.2f}x padded  "
              f"({model.config._attn_implementation})")


def _demo_records(count: int) -> list[dict]:
    from adapterops.demo_data import generate_records

    return [{"prompt": r["prompt"], "completion": r["completion"]} for r in generate_records(count, 3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=VARIANTS, help="Run one variant here (used by the side-by-side run).")
    parser.add_argument("--gpu", action="store_true", help="Random-init Llama-shaped model in bf16 on CUDA.")
    parser.add_argument("--dims", default="896,32,4864,14,2,32000",
                        help="GPU model: hidden,layers,intermediate,heads,kv_heads,vocab (default ~0.5B parameters).")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="Accelerator bf16 dense peak (H100/H200: 989).")
    parser.add_argument("--data", choices=("variable", "demo"), default="variable")
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="Rounds over the variants; each one's best is reported.")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--models-dir", default=str(Path(tempfile.gettempdir()) / "adapterops-bench-models"))
    parser.add_argument("--interleaved", action="store_true", help="Recipe variants step by step in one process.")
    args = parser.parse_args()
    if args.interleaved:
        interleaved(args)
        return
    if args.variant:
        print(json.dumps(measure(args.variant, args)))
        return
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for _ in range(args.repeats):  # rounds interleave the variants, so a burst of load hits them alike
        for variant in VARIANTS:
            done = subprocess.run([sys.executable, __file__, "--variant", variant, *sys.argv[1:]], capture_output=True,
                                  text=True, cwd=ROOT)
            if done.returncode != 0:
                raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
            runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
    report([max(runs[v], key=lambda r: r["real_tokens_per_s"]) for v in VARIANTS], args)


def report(rows: list[dict], args) -> None:
    reference, reference_cpu = rows[0]["real_tokens_per_s"], rows[0]["real_tokens_per_cpu_s"]
    where = f"GPU, dims {args.dims}" if args.gpu else f"CPU, {args.threads} threads, tiny model, {args.data} data"
    print(f"{where}; {args.steps} steps x {args.batch_size} examples, max_length {args.max_length}\n")
    header = (f"{'variant':20} {'attention':12} {'real tok/s':>11} {'computed tok/s':>15} {'padding':>8} {'peak RSS MB':>12} {'vs ref':>7} "
              f"{'tok/CPU-s':>10} {'vs ref':>7} {'loss':>7}")
    if args.gpu:
        header += f" {'MFU':>6} {'GPU MB':>8}"
    print(header)
    for row in rows:
        line = (f"{row['variant']:20} {row['attention']:12} {row['real_tokens_per_s']:11.0f} {row['computed_tokens_per_s']:15.0f} "
                f"{row['padding_ratio']:8.1%} {row['peak_rss_mb']:12.0f} {row['real_tokens_per_s'] / reference:6.2f}x "
                f"{row['real_tokens_per_cpu_s']:10.0f} {row['real_tokens_per_cpu_s'] / reference_cpu:6.2f}x "
                f"{row['final_loss']:7.3f}")
        if args.gpu:
            line += f" {row['mfu']:6.1%} {row['peak_gpu_mb']:8.0f}"
        print(line)
    if not args.gpu:
        padded, packed = (next(r for r in rows if r["variant"] == v)["real_tokens_per_s"] / reference
                          for v in ("recipe-padded", "recipe-packed"))
        print(f"\ntargets: padded >= 1.0x ({'met' if padded >= 1.0 else 'MISSED'}: {padded:.2f}x), "
              f"packed >= 1.4x ({'met' if packed >= 1.4 else 'MISSED'}: {packed:.2f}x)")


if __name__ == "__main__":
    main()
