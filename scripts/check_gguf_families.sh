#!/usr/bin/env bash
# Gemma 2, Gemma 3 and Phi-3 through GGUF into a real llama.cpp: for each family a tiny random
# model (scripts/make_family_models.py), a short LoRA run on it, and three GGUF exports (the
# base, the base with the adapter merged, the adapter alone) that llama.cpp must continue
# exactly as `wgtune generate` does, token for token, greedily; and the base GGUF read back by
# wgtune itself must continue as its folder does.
#
#   pip install torch transformers
#   mkdir -p /tmp/llama && (cd /tmp/llama && npm install node-llama-cpp)
#   scripts/check_gguf_families.sh
#
# WGTUNE (default target/release/wgtune) is the binary, LLAMA_DIR (default /tmp/llama) where
# node-llama-cpp is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
WGTUNE=${WGTUNE:-$root/target/release/wgtune}
LLAMA_DIR=${LLAMA_DIR:-/tmp/llama}
work=$(mktemp -d /tmp/wgtune-families.XXXXXX)
echo "work folder: $work"
python3 scripts/make_family_models.py "$work" > /dev/null

# The continuation as one JSON string, as check_gguf.mjs prints it.
as_json() { python3 -c 'import json, sys; print(json.dumps(sys.stdin.read()[:-1], ensure_ascii=False))'; }
llama() { (cd "$LLAMA_DIR" && node "$root/scripts/check_gguf.mjs" "$@" --raw --tokens 8 --context 256) | tail -n +2 | sed 's/^.* -> //'; }

failures=0
for family in gemma2 gemma3 phi3; do
  model=$work/$family
  "$WGTUNE" train --model "$model" --data tests/fixtures/data/chat.jsonl --device cpu --max-steps 4 --rank 4 \
    --lr 0.02 --lora-dropout 0 --output "$work/$family-run" --plain > /dev/null
  "$WGTUNE" export --model "$model" --gguf "$work/$family.gguf" --gguf-type f32 > /dev/null
  "$WGTUNE" export --model "$model" --trained "$work/$family-run" --gguf "$work/$family-merged.gguf" --gguf-type f32 \
    --gguf-adapter "$work/$family-lora.gguf" > /dev/null
  for prompt in "Hello there" "The cat sat on the mat" "What is the capital of France?"; do
    for trained in none run; do
      args=(--model "$model" --no-chat-template --prompt "$prompt" --max-new-tokens 8 --device cpu)
      if [[ $trained == run ]]; then args+=(--trained "$work/$family-run"); fi
      expected=$("$WGTUNE" generate "${args[@]}" | as_json)
      if [[ $trained == none ]]; then
        got=("$(llama "$work/$family.gguf" "$prompt")")
        # And back: wgtune reads the GGUF as the model it came from.
        back=$("$WGTUNE" generate --model "$work/$family.gguf" --no-chat-template --prompt "$prompt" --max-new-tokens 8 --device cpu | as_json)
        if [[ $back != "$expected" ]]; then
          echo "$family from GGUF \"$prompt\": wgtune $back, from the folder $expected  MISMATCH"
          failures=$((failures + 1))
        fi
      else
        got=("$(llama "$work/$family-merged.gguf" "$prompt")" "$(llama "$work/$family.gguf" --lora "$work/$family-lora.gguf" "$prompt")")
      fi
      for g in "${got[@]}"; do
        # The texts are compared, not the tokens: node-llama-cpp leaves out bytes that form no
        # character where wgtune writes U+FFFD, and may take one token more to finish a character
        # or stop at one it ends turns with. So the marks go, and one text must begin the other.
        if python3 -c 'import json, sys; e, g = (json.loads(a).replace("\ufffd", "") for a in sys.argv[1:]); sys.exit(not (g.startswith(e) or e.startswith(g)) or not g)' "$expected" "$g"; then
          echo "$family ($trained) \"$prompt\": $g"
        else
          echo "$family ($trained) \"$prompt\": llama.cpp $g, wgtune $expected  MISMATCH"
          failures=$((failures + 1))
        fi
      done
    done
  done
done
if (( failures > 0 )); then
  echo "check_gguf_families: $failures mismatches ($work)"
  exit 1
fi
echo "check_gguf_families: passed ($work)"
