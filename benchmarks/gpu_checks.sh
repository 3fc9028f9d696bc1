#!/usr/bin/env bash
# The GPU checks, as one script: training throughput/MFU of ViT-B/16 + DistilBERT at batch 256 in fp32 (the
# reference's precision) and bf16 (eager and torch.compile), inference throughput of both towers, and the ONNX export
# with onnxruntime's CUDA provider when onnxruntime-gpu is installed.
# Usage on a GPU machine, from the repository root: bash benchmarks/gpu_checks.sh [OUTPUT_DIR]
# Needs torch and transformers>=5 importable (PYTHONPATH may point at wheels unpacked elsewhere).
set -uo pipefail
out=${1:-gpu_results}
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$out/gpu.txt"
# fp32 / bf16 / bf16 + torch.compile, interleaved in one process (what `benchmarks/run.py --only training_gpu` runs)
python3 benchmarks/bench_training_gpu.py --json "$out/training_gpu.json" | tee "$out/train.json"
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
# ONNX export timed with onnxruntime's CUDA provider (only when onnxruntime-gpu is installed)
if python3 -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
python3 - <<'PY' | tee "$out/onnx_cuda.json"
import json, tempfile, time, numpy as np, torch
from transformers import BertTokenizerFast
from modeling_motionpatch import MotionPatchConfig, MotionPatchFeatureExtractor, MotionPatchModel, MotionPatchProcessor
from modeling_motionpatch.apps.modeling_onnx import MotionPatchOnnxModel
from modeling_motionpatch.apps.onnx_export import export_onnx
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(1000)]
tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
config = MotionPatchConfig(text_config=dict(model_type="distilbert", vocab_size=len(vocab)))
model = MotionPatchModel(config).eval()  # ViT-B/16 + DistilBERT-base, random weights
folder = export_onnx(model, MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d"), tok), tempfile.mkdtemp())
onnx_model = MotionPatchOnnxModel.from_pretrained(folder, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
res = {"providers": onnx_model.motion_session.get_providers()}
values = np.random.randn(256, 3, 224, 80).astype(np.float32)
ids = np.random.randint(5, len(vocab), (256, 32)); mask = np.ones_like(ids)
for name, fn in (("motions_per_s", lambda: onnx_model.get_motion_features(values)),
                 ("texts_per_s", lambda: onnx_model.get_text_features(ids, mask))):
    fn(); fn()
    t = time.perf_counter()
    for _ in range(5):
        fn()
    res[f"onnx_fp32_{name}"] = round(5 * 256 / (time.perf_counter() - t), 1)
print(json.dumps({"batch": 256, **res}))
PY
else
echo '{"onnx_cuda": "skipped: onnxruntime-gpu (CUDAExecutionProvider) is not installed"}' | tee "$out/onnx_cuda.json"
fi
