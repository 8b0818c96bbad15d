#!/usr/bin/env python3
"""Tiny random Gemma 2, Gemma 3 and Phi-3 models laid out as llama.cpp computes them, for
scripts/check_gguf_families.sh.

    python3 scripts/make_family_models.py OUT_DIR

Each is the test fixture of its family (tests/fixtures/tiny-*: its config, tokenizer and chat
template) with what llama.cpp fixes in code rather than reads from a GGUF set to llama.cpp's
values: Gemma's attention scaled by 1/sqrt(head_dim) (query_pre_attn_scalar = head_dim), Gemma 3's
sliding-window layers five in six (six layers), Phi-3's pretrained context (LongRoPE's short
factors) as long as llama.cpp's smallest context. Weights are drawn at a scale where greedy
decoding is decisive (std 0.3; norms 0.2 around their identity), so two implementations that
agree to float rounding pick the same tokens.
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def build(family: str, out: Path) -> None:
    source = FIXTURES / f"tiny-{family}"
    config = json.loads((source / "config.json").read_text())
    if family.startswith("gemma"):
        config["query_pre_attn_scalar"] = config["head_dim"]
    if family == "gemma3":
        config["num_hidden_layers"] = 6
        config["layer_types"] = ["sliding_attention"] * 5 + ["full_attention"]
    if family == "phi3":
        # llama.cpp pads its context to 256 tokens and takes LongRoPE's long factors whenever
        # that is past the pretrained context; transformers by the sequence's own length.
        config["original_max_position_embeddings"] = 256
        config["rope_parameters"]["original_max_position_embeddings"] = 256
        config["max_position_embeddings"] = 1024
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(out), dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                # Gemma multiplies by 1 + w, the others by w: around the identity either way.
                base = 0.0 if family.startswith("gemma") else 1.0
                p.copy_(base + 0.2 * torch.randn_like(p))
            elif "embed" in name and family.startswith("gemma"):
                # Gemma scales the embeddings by sqrt(hidden): at the others' scale they would
                # drown the layers, and the tied head would echo the last token.
                p.copy_(0.3 / config["hidden_size"] ** 0.5 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
        # The special tokens (0-2) are never the likeliest: llama.cpp ends generation at any it
        # takes for an end of turn, wgtune at the configured end-of-sequence alone.
        model.get_output_embeddings().weight[:3] = 0.0
    model.save_pretrained(out)
    for name in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"]:
        if (source / name).exists():
            shutil.copy(source / name, out / name)


def main() -> None:
    out = Path(sys.argv[1])
    for family in ["gemma2", "gemma3", "phi3"]:
        build(family, out / family)
        print(f"{out / family}")


if __name__ == "__main__":
    main()
