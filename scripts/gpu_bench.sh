#!/usr/bin/env bash
# The hardware-GPU rows of BENCHMARKS.md in one call of the workplace's `device` tool: a lent
# NVIDIA machine that has PyTorch, transformers and PEFT but can download nothing. wgtune runs on
# Vulkan (wgpu), PyTorch + PEFT on CUDA, same shape (SmolLM2-135M, random weights), same settings
# as the lavapipe and CPU tables.
#
# Prepare here, once (the GUI is left out to keep the binary small; .gpu/ is git-ignored):
#   cargo build --release --no-default-features
#   mkdir -p .gpu && echo /.gpu/ >> .git/info/exclude
#   xz -T0 -c target/release/wgtune > .gpu/wgtune.xz
#   (cd .gpu && apt-get download libvulkan1)
# Then: run(command="bash scripts/gpu_bench.sh", carry=[".gpu"], timeout_s=540).
# Every report lands, one JSON object per line, in $OUT/results.jsonl; the console in $OUT/log.txt.
set -uo pipefail
out=${OUT:-/tmp/gpu-bench}
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1

for deb in .gpu/*.deb; do dpkg -x "$deb" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
xz -dc .gpu/wgtune.xz > /tmp/wgtune && chmod +x /tmp/wgtune
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv

record() { python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$1" >> "$out/results.jsonl"; }

wgtune_bench() {
    local name=$1
    shift
    echo "=== wgtune $name"
    timeout 150 /tmp/wgtune bench --shape smollm2-135m --device wgpu --batch-size 4 --warmup 2 --steps 5 \
        --json "/tmp/$name.json" "$@" && record "/tmp/$name.json"
}
wgtune_bench lora-fused-256 --seq-len 256
wgtune_bench lora-generic-256 --seq-len 256 --kernels generic
wgtune_bench lora-fused-512 --seq-len 512
wgtune_bench lora-generic-512 --seq-len 512 --kernels generic
wgtune_bench full-fused-256 --seq-len 256 --method full
wgtune_bench lora-fused-256-profiled --seq-len 256 --steps 2 --profile-kernels

torch_bench() {
    echo "=== torch $*"
    timeout 150 python3 scripts/torch_reference.py --shape smollm2-135m --device cuda --batch-size 4 --warmup 2 --steps 5 "$@" \
        > /tmp/torch.json && cat /tmp/torch.json && record /tmp/torch.json
}
torch_bench --method lora --seq-len 256
torch_bench --method lora --seq-len 512
torch_bench --method full --seq-len 256
