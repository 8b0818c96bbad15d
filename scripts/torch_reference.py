#!/usr/bin/env python3
"""The PyTorch + PEFT side of BENCHMARKS.md: the same training step `wgtune bench` times.

    pip install torch transformers peft
    python3 scripts/torch_reference.py --model ~/.cache/wgtune-models/smollm2-135m-instruct-f32 \
        --method lora --batch-size 4 --seq-len 256
    python3 scripts/torch_reference.py --shape smollm2-135m ...   # random weights, no download

Random tokens, every position a target, AdamW, LoRA r16 / alpha 32 on the seven projections (or
full fine-tuning); prints tokens/s after warm-up and the peak resident memory, as JSON.
"""

import argparse
import json
import resource
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# The shapes `wgtune bench --shape` knows (src/bench.rs), for runs where no model folder can be had.
SHAPES = {
    "smollm2-135m": dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, rms_norm_eps=1e-5, rope_theta=100000.0,
        max_position_embeddings=8192, tie_word_embeddings=True,
    ),
    "llama-1b": dict(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, rms_norm_eps=1e-5, rope_theta=500000.0,
        max_position_embeddings=131072, tie_word_embeddings=True,
        rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=8192),
    ),
}


def main():
    p = argparse.ArgumentParser()
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="a Hugging Face model folder")
    what.add_argument("--shape", choices=sorted(SHAPES), help="a named shape with random weights")
    p.add_argument("--method", choices=["lora", "full"], default="lora")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--lora-dropout", type=float, default=0.0, help="LoRA dropout (wgtune train's default: 0.05)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=["f32", "f16"], default="f32",
                   help="f16: matmuls under autocast; LoRA's frozen base stored in f16 (PEFT keeps the adapter in f32)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute each decoder layer in the backward pass")
    args = p.parse_args()

    torch.manual_seed(0)
    # As wgtune: in f16 LoRA's frozen base is stored in half precision, a full fine-tune keeps f32 weights.
    dtype = torch.float16 if args.precision == "f16" and args.method == "lora" else torch.float32
    if args.model:
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_config(LlamaConfig(**SHAPES[args.shape]), dtype=dtype)
    model = model.to(args.device)
    if args.gradient_checkpointing:
        # Per decoder layer, as wgtune's; non-reentrant so that LoRA's frozen inputs work.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if args.method == "lora":
        config = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=args.lora_dropout, target_modules=TARGETS, task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-5)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (args.batch_size, args.seq_len), device=args.device)

    autocast = torch.autocast(device_type=args.device, dtype=torch.float16, enabled=args.precision == "f16")

    def step():
        with autocast:
            loss = model(ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if args.device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    report = {
        "framework": f"torch {torch.__version__}",
        "device": args.device if args.device != "cuda" else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "method": args.method,
        "precision": args.precision,
        "gradient_checkpointing": args.gradient_checkpointing,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "tokens_per_second": args.batch_size * args.seq_len * args.steps / elapsed,
        "ms_per_step": 1000 * elapsed / args.steps,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if args.device == "cuda":
        report["peak_device_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
