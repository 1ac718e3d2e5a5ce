#!/usr/bin/env python3
"""Write tests/expected/counts.json: for every spec in specs/ and tests/specs/, torchvision's
parameter count, MACs (torch.utils.flop_counter.FlopCounterMode FLOPs / 2) and the full
state_dict as [name, shape] in state_dict order.

    tools/.venv/bin/python tools/gen_counts.py

Models are built on the meta device (no memory, no compute); FlopCounterMode counts from shapes.
"""

from __future__ import annotations

import os
import sys

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resnet_spec as R  # noqa: E402

OUT = os.path.join(R.REPO_DIR, "tests", "expected", "counts.json")


def counts_for(spec_path: str) -> dict:
    spec = R.load_spec(os.path.join(R.REPO_DIR, spec_path))
    with torch.device("meta"):
        model = R.build_model(spec).eval()
        x = torch.empty(spec["input"], dtype=torch.float32)
    params = sum(p.numel() for p in model.parameters())
    sd = model.state_dict()
    fc = FlopCounterMode(display=False)
    with fc, torch.no_grad():
        model(x)
    flops_by_op = {str(op).split(".")[-1] if "." in str(op) else str(op): int(v) for op, v in fc.get_flop_counts()["Global"].items()}
    flops = int(fc.get_total_flops())
    assert flops % 2 == 0
    n = spec["input"][0]
    return {
        "spec": spec_path,
        "name": spec["name"],
        "input": spec["input"],
        "params": int(params),
        "macs": flops // 2,
        "macs_per_sample": flops // 2 // n,
        "macs_by_op": {k: v // 2 for k, v in sorted(flops_by_op.items())},
        "state_dict": [[k, list(v.shape)] for k, v in sd.items()],
    }


def main():
    doc = {
        "about": (
            "Reference counts from torchvision (tools/gen_counts.py). params: "
            "sum(p.numel() for p in model.parameters()) (BatchNorm running stats and "
            "num_batches_tracked are buffers, not counted). macs: FlopCounterMode total FLOPs / 2 "
            "for the spec's whole input (all N samples); it counts conv and linear (addmm) only. "
            "With head: features the model is IntermediateLayerGetter's: stages after the last "
            "listed feature, avgpool and fc are not part of it. state_dict: [name, shape] in "
            "state_dict order (num_batches_tracked has shape [])."
        ),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "specs": {},
    }
    for path in R.spec_files():
        c = counts_for(path)
        key = os.path.splitext(os.path.basename(path))[0]
        assert key not in doc["specs"], f"duplicate spec name {key}"
        doc["specs"][key] = c
        print(f"{path:40s} params {c['params']:>12,d}  macs {c['macs']:>15,d}  state_dict {len(c['state_dict'])}")
    R.dump_json(doc, OUT)
    print("wrote", os.path.relpath(OUT, R.REPO_DIR), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
