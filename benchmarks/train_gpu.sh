#!/usr/bin/env bash
# Run with: bash benchmarks/train_gpu.sh        (on a CUDA machine; about 3-5 minutes on one H100/H200)
# The training benchmark on a GPU: a random-init ~0.5B-parameter Llama-shaped model (hidden 896,
# 32 layers, MLP 4864, 14 heads / 2 KV heads, vocab 32000, tied embeddings) in bf16, LoRA r=8 on all
# attention and MLP projections, 30 steps x 16 examples of 64-2048 tokens (log-normal lengths).
# Prints real and computed tokens/s, padding ratio, peak GPU memory and model FLOPs utilisation
# (LoRA FLOPs: 4 x matmul parameters + causal attention, per real token; peak 989 TFLOPS bf16 dense
# for H100/H200 SXM — pass --peak-tflops for another accelerator). Installs nothing: needs a CUDA
# build of torch 2.13 in .venv; flash-attn is used for packing when installed, else sdpa_packed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device visible to torch")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c 'import torch, importlib.util as u; print("torch", torch.__version__, "cuda", torch.version.cuda, "flash_attn", bool(u.find_spec("flash_attn")))'
exec "$PYTHON" benchmarks/train.py --gpu --steps "${STEPS:-30}" --batch-size "${BATCH:-16}" --max-length "${MAX_LENGTH:-2048}" "$@"
