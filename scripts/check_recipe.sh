#!/usr/bin/env bash
# The cluster path end to end, on this machine's CPU: a laptop run in wgtune, its TRL recipe
# (`wgtune export --recipe trl`), a real 2-process data-parallel training from that recipe
# (torchrun, gloo), and the adapter it produced back in wgtune: evaluated against the base,
# exported merged and as GGUF, and the merged folder loaded by transformers.
#
#   pip install torch transformers peft trl accelerate datasets
#   ../shared/tools/smollm2.sh            # SmolLM2-135M-Instruct, the default model
#   scripts/check_recipe.sh [MODEL_DIR] [TRAIN.jsonl VALIDATION.jsonl]
#
# WGTUNE (default target/release/wgtune) is the binary; the work folder is kept and printed.
set -euo pipefail
cd "$(dirname "$0")/.."
WGTUNE=${WGTUNE:-$PWD/target/release/wgtune}
model=$(realpath "${1:-$HOME/.cache/wgtune-models/smollm2-135m-instruct-f32}")
train=$(realpath "${2:-assets/zorbia/train.jsonl}")
validation=$(realpath "${3:-assets/zorbia/validation.jsonl}")
work=$(mktemp -d /tmp/wgtune-recipe.XXXXXX)
echo "work folder: $work"

# 1. A short laptop run: the settings the recipe carries (20 records, 4 a step: 5 steps an epoch).
"$WGTUNE" train --model "$model" --data "$train" --validation "$validation" --device cpu \
  --rank 8 --alpha 16 --lora-dropout 0 --lr 1e-3 --batch-size 4 --epochs 1 --warmup-steps 2 \
  --seed 7 --save-every 0 --output "$work/laptop" --plain > "$work/laptop.log"
tail -n 2 "$work/laptop.log"

# 2. The recipe, for 2 processes, training 12 epochs instead of the laptop's 1.
"$WGTUNE" export --run "$work/laptop" --recipe trl "$work/recipe" --world-size 2
sed -i 's/^num_train_epochs: .*/num_train_epochs: 12/' "$work/recipe/trl.yaml"

# 3. Two processes on the CPU (gloo), in f32: the cluster run, minus the GPUs.
start=$(date +%s)
(cd "$work/recipe" && ./launch.sh --use_cpu true --ddp_backend gloo --bf16 false --dtype float32) \
  > "$work/trl.log" 2>&1 || { tail -n 40 "$work/trl.log"; exit 1; }
echo "TRL on 2 processes: $(( $(date +%s) - start )) s"
grep -o "'train_loss': '[0-9.]*'" "$work/trl.log" | tail -n 1
python3 - "$work/recipe/output" <<'EOF'
import json, sys, pathlib
states = sorted(pathlib.Path(sys.argv[1]).glob("**/trainer_state.json"))
log = json.loads(states[-1].read_text())["log_history"] if states else []
losses = [round(e["loss"], 4) for e in log if "loss" in e]
print(f"TRL losses by logged step: first {losses[:3]}, last {losses[-3:]} ({len(losses)} logged)")
EOF
test -f "$work/recipe/output/adapter_model.safetensors"

# 4. Back in wgtune: evaluated against the base, exported merged and as GGUF.
"$WGTUNE" eval --model "$model" --trained "$work/recipe/output" --data "$validation" --device cpu --compare --show 2 | tee "$work/eval.log"
"$WGTUNE" generate --model "$model" --trained "$work/recipe/output" --device cpu --prompt "What is the capital of Zorbia?" --max-new-tokens 16
"$WGTUNE" export --model "$model" --trained "$work/recipe/output" --merged "$work/merged" --gguf "$work/model.gguf"
"$WGTUNE" generate --model "$work/model.gguf" --device cpu --prompt "What is the capital of Zorbia?" --max-new-tokens 16
python3 scripts/check_export.py --base "$model" --merged "$work/merged" --adapter "$work/recipe/output" \
  --prompt "What is the capital of Zorbia?" --expect Quellton
echo "check_recipe: passed ($work)"
