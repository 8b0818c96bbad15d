#!/usr/bin/env python3
"""Loads what `wgtune export` wrote with the reference libraries and generates from it.

    pip install torch transformers peft safetensors
    python3 scripts/check_export.py --base BASE_DIR --merged MERGED_DIR --adapter ADAPTER_DIR \
        --prompt "What is the capital of Zorbia?" --expect Quellton

The merged folder is loaded by transformers as is; the adapter by PEFT's
PeftModel.from_pretrained on top of the base model. Both answer the prompt greedily through the
chat template; the script fails unless both answers contain the expected text.
"""

import argparse
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer


def answer(model, tokenizer, prompt: str) -> str:
    messages = [{"role": "user", "content": prompt}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=32, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--merged", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--prompt", action="append", required=True)
    p.add_argument("--expect", action="append", required=True)
    args = p.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.merged)
    merged = AutoModelForCausalLM.from_pretrained(args.merged).eval()
    base = AutoModelForCausalLM.from_pretrained(args.base).eval()
    before = {p: answer(base, tokenizer, p) for p in args.prompt}
    adapted = PeftModel.from_pretrained(base, args.adapter).eval()
    print(f"merged dtype: {next(merged.parameters()).dtype}")
    ok = True
    for prompt, expect in zip(args.prompt, args.expect):
        m, a = answer(merged, tokenizer, prompt), answer(adapted, tokenizer, prompt)
        print(f"{prompt}\n  base:                {before[prompt]}\n  merged (transformers): {m}\n  adapter (PEFT):        {a}")
        ok &= expect in m and expect in a
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(main())
