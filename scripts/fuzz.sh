#!/usr/bin/env bash
# Fuzzes the parsers of files strangers write (GGUF, safetensors and its index, PEFT adapter
# configs, chat templates, datasets in every format, run.toml, Ollama manifests) with
# `wgtune-fuzz`, each target for a set time, a few at a time. Findings (panics, hangs, runaway
# memory) are saved with their message under target/fuzz/TARGET/; each becomes a case in
# tests/engine/bad_input/ and is fixed there. Exits 1 when anything was found.
#
#   scripts/fuzz.sh [TARGET ...]     (default: every target)
#   WGTUNE_FUZZ_SECONDS=600 (each target)  WGTUNE_FUZZ_JOBS=2 (at once)
#   WGTUNE_FUZZ_PROFILE=release|debug (debug builds in a minute; release runs ~10x the cases)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${WGTUNE_FUZZ_SECONDS:-600}
jobs=${WGTUNE_FUZZ_JOBS:-2}
profile=${WGTUNE_FUZZ_PROFILE:-release}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(gguf safetensors safetensors-index peft-config chat-template dataset run-toml ollama-manifest)
fi

if [ "$profile" = release ]; then
    cargo build --locked --release --features fuzz --bin wgtune-fuzz
else
    cargo build --locked --features fuzz --bin wgtune-fuzz
fi
bin=target/$profile/wgtune-fuzz
out=target/fuzz
mkdir -p "$out"

echo "fuzzing ${targets[*]} for $seconds s each, $jobs at a time ($profile build)"
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} sh -c \
    "'$bin' {} --seconds '$seconds' --out '$out' > '$out/{}.log' 2>&1; echo \"\$?\" > '$out/{}.status'"

failed=0
for target in "${targets[@]}"; do
    status=$(cat "$out/$target.status")
    summary=$(grep -E "executions in" "$out/$target.log" ||
        echo "$target: ended early (status $status); its last case is in $out/scratch-*/$target/")
    echo "$summary"
    grep -E "^finding:" "$out/$target.log" || true
    if [ "$status" != 0 ]; then
        failed=1
    fi
done
exit $failed
