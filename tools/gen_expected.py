#!/usr/bin/env python3
"""Regenerate tests/expected/: torchvision's own outputs for the test cases, with synthetic
weights and input (tools/resnet_spec.py), and the generator's test vectors.

    tools/.venv/bin/python tools/gen_expected.py            # everything
    tools/.venv/bin/python tools/gen_expected.py resnet18   # some cases only
    tools/.venv/bin/python tools/gen_expected.py --vectors  # synth_vectors.json only

For each case: build the model (resnet_spec.build_model), load the synthetic state dict
(strict), eval mode; run in float32 and, with the same weights and input, in float64
(model.double()). Runs single-threaded. Writes tests/expected/<case>.safetensors with the float32 outputs
(`logits` [N, num_classes], or one tensor per listed feature, named `layer3` etc.) and string
metadata (see README.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resnet_spec as R  # noqa: E402

EXPECTED_DIR = os.path.join(R.REPO_DIR, "tests", "expected")

# case name -> spec path (relative to the repo root)
CASES = {
    "resnet18": "specs/resnet18.yaml",
    "resnet50": "specs/resnet50.yaml",
    "resnext50_32x4d": "specs/resnext50_32x4d.yaml",
    "wide_resnet50_2": "specs/wide_resnet50_2.yaml",
    "resnet20_cifar": "specs/resnet20_cifar.yaml",
    "resnet8_cifar": "specs/resnet8_cifar.yaml",
    "resnet18_97x131": "tests/specs/resnet18_97x131.yaml",
    "resnet50_dilated_64": "tests/specs/resnet50_dilated_64.yaml",
    "resnet18_features": "tests/specs/resnet18_features.yaml",
    "resnet8_cifar_b2": "tests/specs/resnet8_cifar_b2.yaml",
    "resnext_tiny": "tests/specs/resnext_tiny.yaml",
}
SEED = 0


def seq_sum_f64(a: np.ndarray) -> float:
    """Sequential float64 sum in row-major order, starting from 0.0 (what a simple Rust loop
    `s += v as f64` gives). Not numpy's pairwise sum."""
    s = 0.0
    for v in np.asarray(a, dtype=np.float64).ravel().tolist():
        s += v
    return s


def gen_case(case: str, spec_path: str, seed: int = SEED) -> dict:
    spec = R.load_spec(os.path.join(R.REPO_DIR, spec_path))
    model = R.build_model(spec)
    sd = R.synthetic_state_dict(model.state_dict(), seed)
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = R.synthetic_input(spec, seed)

    out32 = R.run(model, spec, x)
    model64 = copy.deepcopy(model).double().eval()
    out64 = R.run(model64, spec, x.double())

    errs = {}
    for k in out32:
        a, b = out32[k].double(), out64[k]
        errs[k] = float((a - b).abs().max() / b.abs().max())
    f32_vs_f64 = max(errs.values())

    tensors = {k: v.detach().float().contiguous() for k, v in out32.items()}
    meta = {
        "case": case,
        "spec": spec_path,
        "seed": str(seed),
        "input_shape": json.dumps(spec["input"]),
        "input_sum": repr(seq_sum_f64(x.numpy())),
        "outputs": json.dumps(R.output_names(spec)),
        "f32_vs_f64": repr(f32_vs_f64),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "generator": "resnetc synthetic v1 (splitmix64/fnv1a64, tools/resnet_spec.py)",
    }
    if len(errs) > 1:
        for k, e in errs.items():
            meta[f"f32_vs_f64.{k}"] = repr(e)
    path = os.path.join(EXPECTED_DIR, f"{case}.safetensors")
    R.save_safetensors(tensors, path, metadata=meta)
    info = {
        "case": case,
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
        "errs": errs,
        "bytes": os.path.getsize(path),
        "max_abs": {k: float(v.abs().max()) for k, v in tensors.items()},
        "std": {k: float(v.std()) for k, v in tensors.items()},
    }
    return info


# (name, shape, seed[, sibling weight shape for a linear bias]) covering every role
VECTOR_CASES = [
    ("conv1.weight", [64, 3, 7, 7], 0, None),
    ("layer1.0.downsample.0.weight", [256, 64, 1, 1], 0, None),
    ("layer2.0.conv2.weight", [128, 4, 3, 3], 7, None),  # grouped 3x3 (ResNeXt), I/g = 4
    ("fc.weight", [1000, 2048], 0, None),
    ("fc.bias", [1000], 0, [1000, 2048]),
    ("bn1.weight", [64], 0, [64]),
    ("layer1.0.bn1.bias", [64], 3, [64]),
    ("layer3.5.bn3.running_mean", [1024], 0, None),
    ("layer4.2.bn3.running_var", [2048], 2**64 - 1, None),
    ("input", [1, 3, 224, 224], 0, None),
    ("input", [2, 3, 32, 32], 1, None),
]


def f64_bits(x: float) -> int:
    return int(np.array([x], dtype=np.float64).view(np.uint64)[0])


def gen_vectors() -> str:
    out = []
    for name, shape, seed, sib in VECTOR_CASES:
        role, lo, hi = R.tensor_range(name, shape, sib)
        arr = R.synth_array(name, shape, seed, lo, hi)
        ref = R.synth_values_reference(name, shape, seed, lo, hi, count=4096)
        flat = arr.ravel()
        assert np.array_equal(flat[: len(ref)].view(np.uint32), np.array(ref, dtype=np.float32).view(np.uint32)), name
        entry = {
            "name": name,
            "shape": shape,
            "seed": seed,
            "role": role,
            "lo": lo,
            "hi": hi,
            "lo_f64_bits": f64_bits(lo),
            "hi_f64_bits": f64_bits(hi),
            "initial_state": R.initial_state(name, seed),
            "first16_f32_bits": [int(v) for v in flat[:16].view(np.uint32)],
            "first16": [float(v) for v in flat[:16]],
            "count": int(flat.size),
            "sum_f64": seq_sum_f64(flat),
        }
        if sib is not None and role == "linear_bias":
            entry["sibling_weight_shape"] = sib
        out.append(entry)
    doc = {
        "about": (
            "Test vectors for the synthetic tensor generator (tools/resnet_spec.py). "
            "first16_f32_bits: the first 16 values (row-major) as IEEE-754 float32 bit patterns. "
            "sum_f64: sequential float64 sum of all `count` values in row-major order, from 0.0. "
            "lo/hi: the range (f64; *_f64_bits are their exact bit patterns). "
            "initial_state: fnv1a64(name) ^ (seed * 0x9E3779B97F4A7C15 mod 2^64). "
            "sibling_weight_shape: shape of <prefix>.weight, which decides a linear bias's range."
        ),
        "ranges": {k: list(v) for k, v in R.RANGES.items()} | {"conv_gain": R.CONV_GAIN},
        "cases": out,
    }
    path = os.path.join(EXPECTED_DIR, "synth_vectors.json")
    R.dump_json(doc, path)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cases", nargs="*", help=f"cases to regenerate (default: all): {', '.join(CASES)}")
    p.add_argument("--vectors", action="store_true", help="only write synth_vectors.json")
    a = p.parse_args(argv)
    # One thread: the float32 results then do not depend on the machine's core count (oneDNN's
    # accumulation order does). They may still differ in the last bits across CPUs/versions.
    torch.set_num_threads(1)
    os.makedirs(EXPECTED_DIR, exist_ok=True)
    if a.vectors:
        print("wrote", gen_vectors())
        return
    unknown = [c for c in a.cases if c not in CASES]
    if unknown:
        p.error(f"unknown cases {unknown}")
    cases = a.cases or list(CASES)
    if not a.cases:
        print("wrote", gen_vectors())
    for case in cases:
        info = gen_case(case, CASES[case])
        errs = ", ".join(f"{k} {v:.3g}" for k, v in info["errs"].items())
        shapes = ", ".join(f"{k} {v}" for k, v in info["shapes"].items())
        print(f"wrote {os.path.relpath(os.path.join(EXPECTED_DIR, case + '.safetensors'), R.REPO_DIR)} ({info['bytes']} bytes): {shapes}; f32_vs_f64: {errs}")


if __name__ == "__main__":
    main()
