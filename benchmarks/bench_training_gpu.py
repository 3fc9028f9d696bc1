"""GPU training throughput of the paper's model: ViT-B/16 (224 x 80 motion images) + DistilBERT, random weights.

Self-contained: needs torch and transformers only (it uses ``modeling_motionpatch.MotionPatchModel`` when that
package imports, and otherwise builds the same architecture from transformers' ``ViTModel`` + ``DistilBertModel`` +
the reference MLP heads). No data, no download: batches are random ``motion_values`` and token ids of realistic
length (HumanML3D captions are ~12-20 tokens; 32 here).

One training step = forward of both towers under bf16 autocast, symmetric contrastive loss in fp32, backward,
gradient clipping, fused AdamW step. Reports samples/s, model FLOPs utilisation (FLOPs of one step counted with
``torch.utils.flop_counter.FlopCounterMode``, divided by step time and the GPU's dense bf16 peak), and how long
a full HumanML3D run (23,384 training motions x 50 epochs) would take at that rate. Prints one JSON line.

    python benchmarks/bench_training_gpu.py                     # GPU: batch 256, bf16, ~1 minute
    python benchmarks/bench_training_gpu.py --device cpu --batch-size 4 --steps 2   # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

HUMANML3D_TRAIN = 23_384
EPOCHS = 50
#: dense bf16 tensor-core peak (TFLOP/s) by device-name fragment
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100": 989.0,
                    "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "4090": 165.0}


# ---------------------------------------------------------------------------
# model: the library's, or the same architecture from transformers alone
# ---------------------------------------------------------------------------
class _Head(nn.Module):
    def __init__(self, d_in: int, d_out: int = 256, dropout: float = 0.5):
        super().__init__()
        self.projection = nn.Linear(d_in, d_out)
        self.fc = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(d_out)

    def forward(self, x):
        p = self.projection(x)
        return self.layer_norm(self.dropout(self.fc(F.gelu(p))) + p)


class _FallbackModel(nn.Module):
    """ViT (mean-pooled patch tokens + LayerNorm) and DistilBERT ([CLS]) with the reference MLP heads."""

    def __init__(self):
        super().__init__()
        from transformers import DistilBertConfig, DistilBertModel, ViTConfig, ViTModel

        self.motion_model = ViTModel(ViTConfig(image_size=[224, 80], patch_size=16), add_pooling_layer=False)
        self.motion_model.layernorm = nn.Identity()
        self.motion_fc_norm = nn.LayerNorm(768, eps=1e-12)
        self.text_model = DistilBertModel(DistilBertConfig())
        self.motion_projection = _Head(768)
        self.text_projection = _Head(768)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)), requires_grad=False)

    def forward(self, input_ids, attention_mask, motion_values, **_):
        m = self.motion_model(pixel_values=motion_values).last_hidden_state[:, 1:].mean(1)
        t = self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        return F.normalize(self.motion_projection(self.motion_fc_norm(m)), dim=-1), F.normalize(self.text_projection(t), dim=-1)


class _LibraryModel(nn.Module):
    def __init__(self):
        super().__init__()
        from modeling_motionpatch import MotionPatchConfig, MotionPatchModel

        self.model = MotionPatchModel(MotionPatchConfig())  # ViT-B/16 over 224 x 80 + DistilBERT-base defaults
        self.logit_scale = self.model.logit_scale

    def forward(self, **batch):
        out = self.model(**batch)
        return out.motion_embeds, out.text_embeds


def build_model() -> tuple[nn.Module, str]:
    try:
        return _LibraryModel(), "modeling_motionpatch.MotionPatchModel"
    except Exception as e:  # an older transformers on the GPU machine: same architecture, built directly
        print(f"[bench] modeling_motionpatch unavailable ({type(e).__name__}: {e}); using the transformers-only "
              "equivalent", file=sys.stderr)
        return _FallbackModel(), "transformers ViTModel + DistilBertModel (equivalent architecture)"


def clip_loss(motion: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    with torch.autocast(device_type=motion.device.type, enabled=False):
        logits = logit_scale.float().exp() * motion.float() @ text.float().t()
        labels = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def make_batch(batch_size: int, tokens: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (batch_size, tokens), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    return {
        "motion_values": torch.randn(batch_size, 3, 224, 80, generator=g).to(device),
        "input_ids": ids.to(device),
        "attention_mask": torch.ones(batch_size, tokens, dtype=torch.long).to(device),
    }


def peak_tflops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if override:
        return override, "given"
    if device.type != "cuda":
        return None, "n/a on CPU"
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value, f"dense bf16 peak of {key}"
    return None, f"unknown GPU {name!r} (pass --peak-tflops)"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=30, help="timed steps (after the warm-up)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5 on GPU, 1 on CPU)")
    p.add_argument("--tokens", type=int, default=32, help="caption length in tokens")
    p.add_argument("--precision", choices=("bf16", "fp32"), default=None,
                   help="bf16 autocast (default on GPU) or fp32 (default on CPU, where bf16 is emulated and slow)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense peak of the device (for MFU)")
    p.add_argument("--quick", action="store_true", help="5 timed steps")
    p.add_argument("--json", type=Path, default=None, help="write the table and raw numbers here (benchmarks/run.py)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps = 5

    device = torch.device(args.device)
    if args.precision is None:
        args.precision = "bf16" if device.type == "cuda" else "fp32"
    if args.warmup is None:
        args.warmup = 5 if device.type == "cuda" else 1
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model, impl = build_model()
    model = model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=device.type == "cuda")
    step_model = torch.compile(model) if args.compile else model
    batch = make_batch(args.batch_size, args.tokens, device)
    use_amp = args.precision == "bf16"

    def step() -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            motion, text = step_model(**batch)
        loss = clip_loss(motion, text, model.logit_scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    # FLOPs of one training step (forward + backward; the optimizer's elementwise work is not counted)
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            motion, text = model(**batch)
        clip_loss(motion, text, model.logit_scale).backward()
    flops_per_step = counter.get_total_flops()
    optimizer.zero_grad(set_to_none=True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    elapsed = time.perf_counter() - t0
    step_s = elapsed / args.steps
    sps = args.batch_size / step_s
    peak, peak_note = peak_tflops(device, args.peak_tflops)
    achieved = flops_per_step / step_s / 1e12
    full_run_s = HUMANML3D_TRAIN * EPOCHS / sps
    result = {
        "benchmark": "bench_training_gpu",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "model": impl,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "batch_size": args.batch_size,
        "tokens": args.tokens,
        "precision": args.precision,
        "compile": args.compile,
        "steps": args.steps,
        "warmup_seconds": round(warmup_s, 2),
        "step_seconds": round(step_s, 4),
        "samples_per_second": round(sps, 3 if sps < 10 else 1),
        "tflops_per_step": round(flops_per_step / 1e12, 3),
        "achieved_tflops": round(achieved, 4 if achieved < 1 else 1),
        "peak_tflops": peak,
        "peak_note": peak_note,
        "mfu": round(achieved / peak, 4) if peak else None,
        "humanml3d_50_epochs_hours": round(full_run_s / 3600, 3),
        "max_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "final_loss": round(float(loss.detach()), 4),
    }
    print(json.dumps(result), flush=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import Report, markdown_table

    report = Report("training_gpu", quick=args.quick)
    report.raw.update(result)
    mfu = f"{100 * result['mfu']:.1f} % ({peak_note})" if result["mfu"] is not None else f"n/a ({peak_note})"
    report.table(
        "step",
        f"Training step of ViT-B/16 + DistilBERT ({result['params_m']} M parameters, random weights) on "
        f"{result['device']}: batch {args.batch_size}, {args.precision}, {args.steps} timed steps after {args.warmup}",
        markdown_table(["measure", "value"], [
            ["samples/s", result["samples_per_second"]], ["s/step", result["step_seconds"]],
            ["TFLOP per step (forward + backward, FlopCounterMode)", result["tflops_per_step"]],
            ["achieved TFLOP/s", result["achieved_tflops"]], ["MFU", mfu],
            ["a HumanML3D run (23,384 motions x 50 epochs) at this rate, hours", result["humanml3d_50_epochs_hours"]],
            ["peak GPU memory (GiB)", result["max_memory_gib"] if result["max_memory_gib"] is not None else "n/a"],
        ], align="lr"),
    )
    report.write(args.json)
    return result


if __name__ == "__main__":
    main()
