"""Training speed, side by side on the same data: this recipe vs a plain transformers.Trainer + peft, and vs
TRL's SFTTrainer on multi-turn conversations.

Run with: .venv/bin/python benchmarks/train.py            (CPU, tiny model, 2 threads)
     or:  .venv/bin/python benchmarks/train.py --interleaved (recipe variants alternating step by step)
     or:  .venv/bin/python benchmarks/train.py --trl         (conversations: recipe vs TRL SFTTrainer; needs .[bench])
     or:  bash benchmarks/train_gpu.sh                     (GPU, ~0.5B Llama-shaped random init, bf16)

--trl: the same multi-turn support conversations (system prompt, 1-3 customer turns, a share with a tool call
and its result) and the same LoRA settings and tiny model, trained by the recipe (packed, labels from the chat
template rendered prefix by prefix) and by TRL's SFTTrainer (conversational data, assistant_only_loss with the
tiny template rewritten with {% generation %} markers, packing). Reported: real tokens/s of each and their
ratio (goal: recipe >= 1.5x TRL), and the labels compared token for token (equal where both apply: TRL adds
no BOS, the recipe drops what follows the last trained turn).

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


# --- conversations: the recipe vs TRL's SFTTrainer ------------------------------------------------------------

TRL_VARIANTS = ("trl-sft", "recipe-conv-packed")
POLICY = "You are the support desk of Acme. House policy: refunds over 100 EUR need a manager; be brief."
LOOKUP = {"type": "function", "function": {"name": "lookup_order", "description": "Find an order by id",
                                           "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                                                          "required": ["order_id"]}}}


def conversation_rows(count: int, seed: int) -> list[dict]:
    """OpenAI-style chat rows: a system prompt, 1-3 customer turns with agent replies, a third with a tool call."""
    from adapterops.demo_data import generate_records

    rng, tickets, rows = random.Random(seed), generate_records(count * 3, seed), []
    for i in range(count):
        messages = [{"role": "system", "content": POLICY}]
        tools = rng.random() < 0.33
        for turn in range(rng.choice([1, 2, 3])):
            ticket = tickets[(i * 3 + turn) % len(tickets)]
            messages.append({"role": "user", "content": ticket["prompt"]})
            if tools and turn == 0:
                order = f"A-{rng.randrange(1000, 9999)}"
                messages.append({"role": "assistant", "content": None, "tool_calls": [
                    {"id": f"call_{i}", "type": "function",
                     "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": order})}}]})
                messages.append({"role": "tool", "tool_call_id": f"call_{i}",
                                 "content": json.dumps({"order_id": order, "status": rng.choice(["shipped", "lost"])})})
            messages.append({"role": "assistant", "content": ticket["completion"]})
        rows.append({"messages": messages, "tools": [LOOKUP] if tools else None})
    return rows


def generation_template(template: str) -> str:
    """The tiny model's template with TRL's {% generation %} markers around each assistant turn (content, tool calls
    and end-of-turn token): the same text, plus the markers assistant_only_loss needs."""
    head = "{{ '### Response\\n' + (message['content'] or '') }}"
    tail = "{%- endfor %}{{ eos_token + '\\n' }}"
    assert head in template and tail in template, "the tiny template changed: update generation_template"
    return template.replace(head, "{{ '### Response\\n' }}{% generation %}{{ message['content'] or '' }}").replace(
        tail, "{%- endfor %}{{ eos_token }}{% endgeneration %}{{ '\\n' }}")


def recipe_conversation_examples(rows: list[dict], tokenizer, max_length: int):
    from adapterops.config import TrainConfig
    from tasks.train.sft_data import prepare_examples

    records = [{"id": str(i), "prompt": None, "messages": json.dumps(r["messages"]),
                "tools": json.dumps(r["tools"]) if r["tools"] else None} for i, r in enumerate(rows)]
    examples, _ = prepare_examples(records, tokenizer, TrainConfig(max_length=max_length))
    return examples


def trl_trainer(model, tokenizer, rows: list[dict], train, lora, packing: bool = True, rows_per_step: int | None = None):
    """TRL's SFTTrainer on the conversations: assistant_only_loss with generation markers, packing, same LoRA.

    rows_per_step: packed rows of train.max_length per step (default train.batch_size); the comparison sets it so
    a TRL step holds about as many tokens as a recipe step."""
    from datasets import Dataset
    from peft import LoraConfig as PeftLoraConfig
    from trl import SFTConfig, SFTTrainer

    tokenizer.chat_template = generation_template(tokenizer.chat_template)
    from tasks.model.prompts import canonical_messages, canonical_tools

    # the canonical form the recipe renders (sorted tool keys, arguments as objects): the same text on both sides
    dataset = Dataset.from_list([{"messages": canonical_messages(r["messages"]),
                                  "tools": json.dumps(canonical_tools(r["tools"])) if r["tools"] else None} for r in rows])
    args = SFTConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=rows_per_step or train.batch_size,
                     max_steps=train.max_steps, learning_rate=train.learning_rate, warmup_steps=train.warmup_steps,
                     lr_scheduler_type="linear", weight_decay=0.0, max_grad_norm=1.0, logging_steps=10**6,
                     save_strategy="no", report_to=[], seed=train.seed, dataloader_num_workers=0, disable_tqdm=True,
                     use_cpu=True, bf16=False, assistant_only_loss=True, packing=packing, max_length=train.max_length)
    peft_config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 target_modules=lora.target_modules, task_type="CAUSAL_LM")
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config)


def compare_labels(args) -> dict:
    """The recipe's labels vs TRL's assistant masks, conversation by conversation (TRL unpacked, same template)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapterops.config import LoraConfig, TrainConfig
    from adapterops.tiny_model import ensure_tiny_model
    from tasks.model.masks import IGNORE

    path = ensure_tiny_model(Path(args.models_dir))
    rows = conversation_rows(args.records, 5)
    ours = recipe_conversation_examples(rows, AutoTokenizer.from_pretrained(path), args.max_length)
    tokenizer = AutoTokenizer.from_pretrained(path)
    trainer = trl_trainer(AutoModelForCausalLM.from_pretrained(path), tokenizer, rows,
                          TrainConfig(max_steps=1, batch_size=1, max_length=args.max_length), LoraConfig(), packing=False)
    theirs = trainer.train_dataset
    equal_ids = equal_labels = compared = 0
    first_difference = None
    for i, (mine, row) in enumerate(zip(ours, theirs)):
        ids, trained = mine.input_ids[1:], [label != IGNORE for label in mine.labels[1:]]   # TRL adds no BOS
        n = len(ids)   # the recipe stops after the last trained turn; TRL keeps the trailing newline
        their_ids = list(row["input_ids"][:n])
        their_mask = ([bool(m) for m in row["assistant_masks"][:n]] if "assistant_masks" in row   # older TRL
                      else [label != IGNORE for label in row["labels"][:n]])
        compared += 1
        equal_ids += ids == their_ids
        equal_labels += ids == their_ids and trained == their_mask
        if first_difference is None and (ids != their_ids or trained != their_mask):
            at = next(j for j in range(n) if j >= len(their_ids) or ids[j] != their_ids[j] or trained[j] != their_mask[j])
            first_difference = f"conversation {i}, token {at}"
    return {"conversations": compared, "equal_ids": equal_ids, "equal_labels": equal_labels,
            "trained_tokens": sum(sum(label != IGNORE for label in e.labels) for e in ours),
            "first_difference": first_difference}


def measure_conversations(variant: str, args) -> dict:
    """One side of --trl in this process; prints one JSON line."""
    import torch

    from adapterops.config import LoraConfig, TrainConfig
    from adapterops.refs import BaseModelRef
    from adapterops.tiny_model import ensure_tiny_model
    from tasks.model.base_model import load_base_model
    from tasks.train.recipe import train_lora, wrap_with_lora

    torch.set_num_threads(args.threads)
    path = ensure_tiny_model(Path(args.models_dir))
    train = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length, warmup_steps=2,
                        learning_rate=1e-3, packing=True, checkpoint_every=0)
    lora = LoraConfig(r=8, alpha=16)
    model, tokenizer = load_base_model(BaseModelRef("tiny-llama", str(path), "local"), packing=True)
    rows = conversation_rows(args.records, 5)
    if variant == "trl-sft":
        from transformers import AutoTokenizer

        lengths = [len(e.input_ids) for e in recipe_conversation_examples(rows, AutoTokenizer.from_pretrained(path),
                                                                            train.max_length)]
        per_step = max(1, round(train.batch_size * (sum(lengths) / len(lengths)) / train.max_length))
        trainer = trl_trainer(model, tokenizer, rows, train, lora, rows_per_step=per_step)
        seen = {"tokens": 0, "trained": 0}
        collate = trainer.data_collator

        def counting(features):
            batch = collate(features)
            seen["tokens"] += sum(len(f["input_ids"]) for f in features)
            seen["trained"] += int((batch["labels"] != -100).sum())
            return batch

        trainer.data_collator = counting
        started, cpu = time.perf_counter(), time.process_time()
        result = trainer.train()
        seconds, loss, real, trained = time.perf_counter() - started, result.training_loss, seen["tokens"], seen["trained"]
    else:
        examples = recipe_conversation_examples(rows, tokenizer, train.max_length)
        model = wrap_with_lora(model, lora, seed=train.seed)
        started, cpu = time.perf_counter(), time.process_time()
        history = train_lora(model, tokenizer, examples, train)
        seconds, loss = time.perf_counter() - started, history[-1]["loss"]
        batches = batches_of(examples, train)
        real = sum(len(e.input_ids) for b in batches for e in b)
        trained = sum(sum(label != -100 for label in e.labels[1:]) for b in batches for e in b)
    return {"variant": variant, "real_tokens_per_s": real / seconds, "real_tokens_per_cpu_s": real / (time.process_time() - cpu),
            "real_tokens": real, "trained_tokens": trained, "seconds": seconds, "final_loss": loss,
            "peak_rss_mb": peak_rss_mb()}


def run_trl_comparison(args) -> None:
    """Each side in its own process, rounds alternating; the best round of each is reported, then the labels."""
    runs: dict[str, list[dict]] = {variant: [] for variant in TRL_VARIANTS}
    for _ in range(args.repeats):
        for variant in TRL_VARIANTS:
            done = subprocess.run([sys.executable, __file__, "--conversation-variant", variant, *sys.argv[1:]],
                                  capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
            runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[variant][-1]), flush=True)   # each round as it ends: a long run shows progress
    best = {v: max(runs[v], key=lambda r: r["real_tokens_per_s"]) for v in TRL_VARIANTS}
    print(f"conversations, CPU, {args.threads} threads, tiny model; {args.records} conversations, {args.steps} steps "
          f"x {args.batch_size} (TRL: packed rows of max_length holding as many tokens), max_length "
          f"{args.max_length}, LoRA r=8 alpha=16, both packed\n")
    print(f"{'variant':20} {'real tok/s':>11} {'tok/CPU-s':>10} {'trained tok':>12} {'peak RSS MB':>12} {'loss':>7}")
    for variant, row in best.items():
        print(f"{variant:20} {row['real_tokens_per_s']:11.0f} {row['real_tokens_per_cpu_s']:10.0f} "
              f"{row['trained_tokens']:12d} {row['peak_rss_mb']:12.0f} {row['final_loss']:7.3f}")
    ratio = best["recipe-conv-packed"]["real_tokens_per_s"] / best["trl-sft"]["real_tokens_per_s"]
    cpu_ratio = best["recipe-conv-packed"]["real_tokens_per_cpu_s"] / best["trl-sft"]["real_tokens_per_cpu_s"]
    print(f"\nrecipe / TRL: {ratio:.2f}x real tokens/s ({cpu_ratio:.2f}x per CPU-second); goal >= 1.5x: "
          f"{'met' if ratio >= 1.5 else 'MISSED'}")
    labels = compare_labels(args)
    print(f"labels: {labels['equal_labels']} of {labels['conversations']} conversations equal token for token "
          f"(ids equal in {labels['equal_ids']}); {labels['trained_tokens']} trained tokens; "
          f"first difference: {labels['first_difference'] or 'none'}")


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
    parser.add_argument("--trl", action="store_true", help="Conversations: the recipe vs TRL's SFTTrainer, and labels.")
    parser.add_argument("--conversation-variant", choices=TRL_VARIANTS, help="Run one side of --trl here.")
    parser.add_argument("--labels-only", action="store_true", help="With --trl: only compare the labels.")
    args = parser.parse_args()
    if args.conversation_variant:
        print(json.dumps(measure_conversations(args.conversation_variant, args)))
        return
    if args.trl and args.labels_only:
        print(json.dumps(compare_labels(args)))  # noqa
        return
    if args.trl:
        run_trl_comparison(args)
        return
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
