"""The "How to use" snippet of every MotionPatch model card (trained and converted models alike).

It needs no ``motionpatch`` install: everything loads from the model folder with ``trust_remote_code=True``
(the folder carries the model, processor and pipeline code). The tests run it, as rendered, against saved
folders with and without the package importable.
"""

from __future__ import annotations

from string import Template

USAGE_TEMPLATE = '''\
import numpy as np
import torch
from transformers import AutoModel, AutoProcessor, pipeline

model_id = "${model_id}"
# one motion: (frames, ${num_joints}, 3) joint positions of the `${skeleton}` skeleton in metres, Y up, ${fps} fps, or a
# path to a .npy / .bvh file (a BVH is mapped onto the skeleton by joint name). A random array stands in for it here:
# it is no body, so the processor's skeleton check is skipped for it (check_skeleton=False); drop that for real data
joints = np.random.default_rng(0).normal(scale=0.1, size=(60, ${num_joints}, 3)).astype(np.float32)

classify = pipeline("zero-shot-motion-classification", model=model_id, trust_remote_code=True)
print(classify(joints, candidate_labels=["walk forward", "jump", "wave a hand"], check_skeleton=False))
# [{"label": ..., "score": ..., "similarity": ..., "match": ...}, ...]: match says whether the label really fits

model = AutoModel.from_pretrained(model_id, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=True)
inputs = processor(text=["a person walks forward", "a person jumps"], motions=[joints], return_tensors="pt",
                   check_skeleton=False)
with torch.no_grad():
    print(model(**inputs).logits_per_motion.softmax(-1).tolist())  # (motions, texts)
'''


def usage_snippet(model_id: str, skeleton: str, num_joints: int, fps: float) -> str:
    """The Python code of a model card's "How to use" section (without the fences)."""
    code = Template(USAGE_TEMPLATE).substitute(model_id=model_id, skeleton=skeleton, num_joints=num_joints,
                                               fps=f"{float(fps):g}")
    return code.rstrip("\n")


__all__ = ["USAGE_TEMPLATE", "usage_snippet"]
