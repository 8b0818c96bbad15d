#!/usr/bin/env bash
# The hardware-GPU rows of BENCHMARKS.md in one call of the workplace's `device` tool: a lent
# NVIDIA machine that has PyTorch, transformers and PEFT but can download nothing. wgtune runs on
# Vulkan (wgpu) with its kernels in either shape (`--kernel-shape`: hardware, FlashAttention-2's;
# software, lavapipe's) and with Burn's generic operations, PyTorch + PEFT on CUDA, same shapes
# (SmolLM2-135M and a 1B Llama, random weights), LoRA r16, f32 and f16.
#
# Prepare here, once (the GUI is left out to keep the binary small; .gpu/ is git-ignored):
#   cargo build --release --no-default-features
#   mkdir -p .gpu && echo /.gpu/ >> .git/info/exclude
#   xz -T0 -c target/release/wgtune > .gpu/wgtune.xz
#   (cd .gpu && apt-get download libvulkan1)
# Then: run(command="bash scripts/gpu_bench.sh", carry=[".gpu"], timeout_s=580).
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
    local name=$1 limit=$2
    shift 2
    echo "=== wgtune $name"
    timeout "$limit" /tmp/wgtune bench --device wgpu --warmup 2 --steps 5 --json "/tmp/$name.json" "$@" && record "/tmp/$name.json"
}
torch_bench() {
    local limit=$1
    shift
    echo "=== torch $*"
    timeout "$limit" python3 scripts/torch_reference.py --device cuda --warmup 2 --steps 5 "$@" > /tmp/torch.json \
        && cat /tmp/torch.json && record /tmp/torch.json
}

# Most wanted first: every row lands in results.jsonl as it finishes, so a run cut short by the
# call's limit still leaves what came before. LoRA r16 throughout unless --method full.
small=(--shape smollm2-135m --batch-size 4 --seq-len 512)
wgtune_bench smollm2-4x512-f32-hardware 60 "${small[@]}" --kernel-shape hardware
wgtune_bench smollm2-4x512-f32-software 60 "${small[@]}" --kernel-shape software
wgtune_bench smollm2-4x512-f32-generic 60 "${small[@]}" --kernels generic
torch_bench 60 "${small[@]}"
wgtune_bench smollm2-4x512-f16-hardware 60 "${small[@]}" --precision f16 --kernel-shape hardware
wgtune_bench smollm2-4x512-f16-generic 60 "${small[@]}" --precision f16 --kernels generic
torch_bench 60 "${small[@]}" --precision f16
wgtune_bench smollm2-4x512-f32-hardware-profiled 60 "${small[@]}" --kernel-shape hardware --steps 2 --profile-kernels
wgtune_bench smollm2-4x512-f32-software-profiled 60 "${small[@]}" --kernel-shape software --steps 2 --profile-kernels
wgtune_bench smollm2-4x512-f32-hardware-separate 60 "${small[@]}" --kernel-shape hardware --projections separate
wgtune_bench smollm2-4x512-f32-hardware-separate-profiled 60 "${small[@]}" --kernel-shape hardware --projections separate --steps 2 --profile-kernels

large=(--shape llama-1b --batch-size 8 --seq-len 1024)
wgtune_bench llama1b-8x1024-f16-hardware 90 "${large[@]}" --precision f16 --kernel-shape hardware --warmup 1 --steps 3
wgtune_bench llama1b-8x1024-f16-generic 90 "${large[@]}" --precision f16 --kernels generic --warmup 1 --steps 3
torch_bench 90 "${large[@]}" --precision f16 --warmup 1 --steps 3
wgtune_bench llama1b-8x1024-f32-hardware 90 "${large[@]}" --kernel-shape hardware --warmup 1 --steps 3
torch_bench 90 "${large[@]}" --warmup 1 --steps 3
wgtune_bench smollm2-8x1024-f16-hardware 60 --shape smollm2-135m --batch-size 8 --seq-len 1024 --precision f16 --kernel-shape hardware
torch_bench 60 --shape smollm2-135m --batch-size 8 --seq-len 1024 --precision f16
wgtune_bench smollm2-4x512-full-f32-hardware 60 "${small[@]}" --method full --kernel-shape hardware
torch_bench 60 "${small[@]}" --method full
# `wgtune train`'s default LoRA dropout (0.05): the fused dropout, and on wgpu no kept copies.
wgtune_bench smollm2-4x512-f32-hardware-dropout 60 "${small[@]}" --kernel-shape hardware --lora-dropout 0.05
torch_bench 60 "${small[@]}" --lora-dropout 0.05
