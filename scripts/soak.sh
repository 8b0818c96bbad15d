#!/usr/bin/env bash
# The long soak: LoRA on the demo model for 2,000 steps with a checkpoint every 25, killed with
# SIGKILL at 20 random moments and resumed each time with `train --resume`, against the same run
# left alone: the final adapters must be the same bit for bit. Takes about ten minutes on two
# cores (release build).
#
#   scripts/soak.sh        SOAK_STEPS=2000 SOAK_KILLS=20 SOAK_SEED=1 WGTUNE_BIN=target/release/wgtune
set -euo pipefail
cd "$(dirname "$0")/.."

steps=${SOAK_STEPS:-2000}
kills=${SOAK_KILLS:-20}
RANDOM=${SOAK_SEED:-1}
bin=${WGTUNE_BIN:-target/release/wgtune}
if [ ! -x "$bin" ]; then
    cargo build --locked --release
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The binary itself, not a shell function, goes to the background: `$!` must be its pid.
run=(train --model assets/demo-model --data assets/demo/train.jsonl --device cpu --plain
    --max-steps "$steps" --save-every 25 --keep-checkpoints 2 --seed 7 --rank 8 --lora-dropout 0.1)

echo "the run left alone ($steps steps)"
started=$(date +%s)
"$bin" "${run[@]}" --output "$work/alone" > "$work/alone.log" 2>&1
echo "  $(( $(date +%s) - started )) s"

echo "the same run killed $kills times"
"$bin" "${run[@]}" --output "$work/killed" > "$work/killed.log" 2>&1 &
pid=$!
done_kills=0
while [ "$done_kills" -lt "$kills" ]; do
    # A random moment 3 to 15 s in: past the start-up and, on average, a checkpoint or more,
    # often enough that all the kills land before the run ends.
    sleep $(( 3 + RANDOM % 13 )).$(( RANDOM % 10 ))
    if ! kill -0 "$pid" 2> /dev/null; then
        break # it finished first
    fi
    kill -9 "$pid"
    wait "$pid" 2> /dev/null || true
    done_kills=$((done_kills + 1))
    last=$(find "$work/killed" -maxdepth 1 -name "checkpoint-*" | sort | tail -1)
    echo "  kill $done_kills: newest checkpoint ${last##*/}"
    "$bin" train --resume "$work/killed" --plain >> "$work/killed.log" 2>&1 &
    pid=$!
done
if ! wait "$pid"; then
    echo "FAILED: the last run ended with an error:"
    tail -5 "$work/killed.log"
    exit 1
fi
echo "  killed $done_kills times; finished"

for file in adapter_model.safetensors adapter_config.json; do
    if ! cmp "$work/alone/final/$file" "$work/killed/final/$file"; then
        echo "FAILED: final/$file differs between the run left alone and the killed one"
        exit 1
    fi
done
echo "the final adapters are the same, bit for bit, after $done_kills kills"
