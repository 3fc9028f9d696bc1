"""GPU training throughput of the paper's model: ViT-B/16 (224 x 80 motion images) + DistilBERT, random weights.

Self-contained: needs torch and transformers only (it uses ``modeling_motionpatch.MotionPatchModel`` when that
package imports, and otherwise builds the same architecture from transformers' ``ViTModel`` + ``DistilBertModel`` +
the reference MLP heads). No data, no download: batches are random ``motion_values`` and token ids of realistic
length (HumanML3D captions are ~12-20 tokens; 32 here).

One training step = forward of both towers (fp32, bf16 autocast, or bf16 autocast + ``torch.compile``), symmetric
contrastive loss in fp32, backward, gradient clipping, fused AdamW step. The variants run interleaved in one
process (round-robin, same batch, same initial weights); fp32, the reference's precision, is the baseline of the
ratios. Reports samples/s, model FLOPs utilisation (FLOPs of one step counted with
``torch.utils.flop_counter.FlopCounterMode``, divided by step time and the GPU's dense bf16 peak), and how long a
full HumanML3D run (23,384 training motions x 50 epochs) would take at that rate.

    python benchmarks/bench_training_gpu.py                     # GPU: batch 256, fp32 / bf16 / bf16 + compile
    python benchmarks/bench_training_gpu.py --device cpu --batch-size 4 --quick   # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable
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


VARIANTS = {  # name: (bf16 autocast, torch.compile)
    "fp32": (False, False),  # the reference's precision (TF32 matmuls allowed, as PyTorch users get on Hopper)
    "bf16": (True, False),
    "bf16-compile": (True, True),
}


def build_variant(name: str, batch: dict, device: torch.device) -> tuple[nn.Module, str, Callable[[], torch.Tensor]]:
    """A fresh model (same seed, so the same weights for every variant) and its one-step function."""
    use_amp, compile_model = VARIANTS[name]
    torch.manual_seed(0)
    model, impl = build_model()
    model = model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=device.type == "cuda")
    step_model = torch.compile(model) if compile_model else model

    def step() -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            motion, text = step_model(**batch)
        loss = clip_loss(motion, text, model.logit_scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return model, impl, step


def step_flops(model: nn.Module, batch: dict, device: torch.device) -> int:
    """FLOPs of one training step (forward + backward; the optimizer's elementwise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        motion, text = model(**batch)
        clip_loss(motion, text, model.logit_scale).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                   help="default on GPU: fp32 bf16 bf16-compile (fp32 is the baseline of the ratios); on CPU: fp32")
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each runs every variant)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5 on GPU, 1 on CPU)")
    p.add_argument("--tokens", type=int, default=32, help="caption length in tokens")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the device (for MFU)")
    p.add_argument("--quick", action="store_true", help="1 round of 2 steps")
    p.add_argument("--json", type=Path, default=None, help="write the table and raw numbers here (benchmarks/run.py)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.rounds = 2, 1
    device = torch.device(args.device)
    if args.variants is None:
        args.variants = list(VARIANTS) if device.type == "cuda" else ["fp32"]
    if args.warmup is None:
        args.warmup = 5 if device.type == "cuda" else 1
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import Report, fmt_ratio, interleaved, markdown_table, ratio

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    batch = make_batch(args.batch_size, args.tokens, device)
    steps, memory, warmup_s = {}, {}, {}
    flops_per_step = impl = None
    for name in args.variants:
        model, impl, steps[name] = build_variant(name, batch, device)
        if flops_per_step is None:
            flops_per_step = step_flops(model, batch, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        for _ in range(args.warmup):  # compiles, too
            steps[name]()
        sync()
        warmup_s[name] = round(time.perf_counter() - t0, 2)
        memory[name] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None

    def timed(name: str) -> Callable[[], float]:
        def run() -> float:
            for _ in range(args.steps):
                loss = steps[name]()
            sync()
            return float(loss.detach())

        return run

    timings = interleaved({name: timed(name) for name in args.variants}, rounds=args.rounds, warmup=0)
    peak, peak_note = peak_tflops(device, args.peak_tflops)
    base = args.variants[0]
    rows, raw = [], {}
    for name in args.variants:
        t = timings[name]
        step_s = t.median / args.steps
        sps = args.batch_size / step_s
        achieved = flops_per_step / step_s / 1e12
        raw[name] = {
            **t.summary(), "step_seconds": step_s, "samples_per_second": sps, "achieved_tflops": achieved,
            "mfu": achieved / peak if peak else None, "warmup_seconds": warmup_s[name], "max_memory_gib": memory[name],
            "humanml3d_50_epochs_hours": HUMANML3D_TRAIN * EPOCHS / sps / 3600, "final_loss": t.result,
        }
        rows.append([
            name,
            f"{sps:,.1f} ({args.batch_size * args.steps / t.max:,.1f}-{args.batch_size * args.steps / t.min:,.1f})",
            f"{step_s:.4f}",
            "baseline" if name == base else fmt_ratio(ratio(timings[base], t)),
            f"{achieved:.1f}",
            f"{100 * achieved / peak:.1f} %" if peak else "n/a",
            f"{raw[name]['humanml3d_50_epochs_hours']:.2f}",
            memory[name] if memory[name] is not None else "n/a",
            warmup_s[name],
        ])
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    params_m = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    result = {"benchmark": "bench_training_gpu", "device": device_name, "torch": torch.__version__, "model": impl,
              "params_m": params_m, "batch_size": args.batch_size, "tokens": args.tokens, "steps": args.steps,
              "rounds": args.rounds, "tflops_per_step": flops_per_step / 1e12, "peak_tflops": peak,
              "peak_note": peak_note, "variants": raw}
    print(json.dumps(result, default=float), flush=True)

    report = Report("training_gpu", quick=args.quick)
    report.raw.update(result)
    report.table(
        "step",
        f"Training step of ViT-B/16 + DistilBERT ({params_m} M parameters, random weights, {impl}) on {device_name}: "
        f"batch {args.batch_size}, {args.rounds} interleaved rounds of {args.steps} steps per variant",
        markdown_table(
            ["variant", "samples/s (rounds)", "s/step", f"vs {base}", "achieved TFLOP/s", "MFU",
             "HumanML3D 50 epochs, h", "peak memory, GiB", "warm-up s"],
            rows, align="lrrrrrrrr"),
        notes=[
            f"One step: forward of both towers, the symmetric contrastive loss in fp32, backward, gradient clipping, "
            f"{'fused ' if device.type == 'cuda' else ''}AdamW. {flops_per_step / 1e12:.3f} TFLOP per step "
            "(forward + backward, counted by FlopCounterMode).",
            (f"MFU = achieved TFLOP/s over the {peak_note} ({peak} TFLOP/s) for every row, fp32 (TF32 matmuls) too."
             if peak else f"No MFU: {peak_note}."),
            "HumanML3D 50 epochs: 23,384 training motions x 50 epochs at that row's rate.",
            f"Warm-up: {args.warmup} untimed steps per variant (includes torch.compile's compilation).",
        ],
    )
    report.write(args.json)
    return result


if __name__ == "__main__":
    main()
