#!/usr/bin/env bash
# The GPU checks, as one script: training throughput/MFU of ViT-B/16 + DistilBERT at batch 256 in fp32 (the
# reference's precision) and bf16 (eager and torch.compile), and inference throughput of both towers.
# Usage on a GPU machine, from the repository root: bash benchmarks/gpu_checks.sh [OUTPUT_DIR]
# Needs torch and transformers>=5 importable (PYTHONPATH may point at wheels unpacked elsewhere).
set -uo pipefail
out=${1:-gpu_results}
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$out/gpu.txt"
python3 benchmarks/bench_training_gpu.py --precision fp32 --steps 10 | tee "$out/train_fp32.json"
python3 benchmarks/bench_training_gpu.py --precision bf16 --steps 30 | tee "$out/train_bf16.json"
python3 benchmarks/bench_training_gpu.py --precision bf16 --steps 30 --compile | tee "$out/train_bf16_compile.json"
python3 - <<'PY' | tee "$out/inference.json"
import json, time, torch
from modeling_motionpatch import MotionPatchConfig, MotionPatchModel
model = MotionPatchModel(MotionPatchConfig()).cuda().eval()
res = {}
for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
    values = torch.randn(512, 3, 224, 80, device="cuda")
    ids = torch.randint(1000, 20000, (512, 32), device="cuda")
    mask = torch.ones_like(ids)
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        for name, fn in (("motions_per_s", lambda: model.get_motion_features(values)),
                         ("texts_per_s", lambda: model.get_text_features(ids, mask))):
            for _ in range(3):
                fn()
            torch.cuda.synchronize(); t = time.perf_counter()
            for _ in range(10):
                fn()
            torch.cuda.synchronize()
            res[f"{precision}_{name}"] = round(5120 / (time.perf_counter() - t), 1)
print(json.dumps({"batch": 512, **res}))
PY
