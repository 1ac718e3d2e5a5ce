#!/usr/bin/env python3
"""Convert a torchvision ResNet checkpoint to safetensors, or write synthetic weights.

    # a state dict saved with torch.save(model.state_dict(), "model.pth")
    tools/.venv/bin/python tools/convert_checkpoint.py model.pth -o model.safetensors
    # torchvision's published weights, by name (downloads through torchvision, to TORCH_HOME)
    tools/.venv/bin/python tools/convert_checkpoint.py ResNet50_Weights.IMAGENET1K_V2 -o resnet50.safetensors
    # deterministic synthetic weights for a spec (tools/resnet_spec.py)
    tools/.venv/bin/python tools/convert_checkpoint.py --synthetic specs/resnet18.yaml --seed 0 -o r18.safetensors

Every state_dict tensor is written contiguous float32, except `*.num_batches_tracked`, kept
int64. Names are torchvision's (`conv1.weight`, `layer1.0.downsample.1.running_var`, ...).
With `--spec SPEC`, the tensors are also checked against the model the spec describes (same
names and shapes, loaded with strict=True), and with head: features the entries the spec's
model does not have (fc, later stages) are dropped.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import OrderedDict

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resnet_spec as R  # noqa: E402


def load_pth(path: str) -> "OrderedDict[str, torch.Tensor]":
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                print(f"note: using the checkpoint's {key!r} entry", file=sys.stderr)
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SystemExit(f"error: {path}: not a state dict (a dict of name -> tensor)")
    if obj and all(k.startswith("module.") for k in obj):  # saved from nn.DataParallel / DDP
        print("note: stripping the 'module.' prefix (DataParallel checkpoint)", file=sys.stderr)
        obj = OrderedDict((k[len("module."):], v) for k, v in obj.items())
    return OrderedDict(obj)


def load_weights_enum(name: str) -> tuple["OrderedDict[str, torch.Tensor]", dict[str, str]]:
    """`ResNet50_Weights.IMAGENET1K_V2` (or `ResNet50_Weights.DEFAULT`)."""
    try:
        weights = torchvision.models.get_weight(name)
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"error: {name!r} is not a torchvision weights name ({e})")
    try:
        sd = weights.get_state_dict(progress=True, check_hash=True)
    except Exception as e:  # noqa: BLE001
        raise SystemExit(
            f"error: could not download {name} from {weights.url}: {e}\n"
            f"  (download that file some other way and pass its path instead)"
        )
    meta = {
        "source": "torchvision",
        "weights": f"{type(weights).__name__}.{weights.name}",
        "url": weights.url,
        "num_classes": str(len(weights.meta.get("categories", []))),
    }
    return OrderedDict(sd), meta


def to_safetensors_dict(sd: dict[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    out = OrderedDict()
    for k, v in sd.items():
        v = v.detach().cpu()
        if k.endswith(".num_batches_tracked"):
            out[k] = v.to(torch.int64).contiguous().clone()
        elif v.is_floating_point():
            out[k] = v.to(torch.float32).contiguous().clone()
        else:
            raise SystemExit(f"error: tensor {k!r} has dtype {v.dtype}; expected a floating point tensor")
    return out


def check_against_spec(sd: dict[str, torch.Tensor], spec_path: str) -> "OrderedDict[str, torch.Tensor]":
    spec = R.load_spec(spec_path)
    model = R.build_model(spec)
    want = model.state_dict()
    if spec["head"] == "features":
        sd = OrderedDict((k, v) for k, v in sd.items() if k in want)
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    wrong = [(k, list(sd[k].shape), list(want[k].shape)) for k in want if k in sd and sd[k].shape != want[k].shape]
    if missing or unexpected or wrong:
        msg = [f"error: the weights do not match {spec_path}"]
        msg += [f"  missing: {k} {list(want[k].shape)}" for k in missing[:20]]
        msg += [f"  unexpected: {k} {list(sd[k].shape)}" for k in unexpected[:20]]
        msg += [f"  shape of {k}: {a}, spec wants {b}" for k, a, b in wrong[:20]]
        msg += [f"  ({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong shape in all)"]
        raise SystemExit("\n".join(msg))
    model.load_state_dict(sd, strict=True)
    return OrderedDict((k, sd[k]) for k in want)  # the model's order


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("source", nargs="?", help="a .pth/.pt state dict file, or a torchvision weights name such as ResNet50_Weights.IMAGENET1K_V2")
    p.add_argument("--synthetic", metavar="SPEC", help="write the synthetic state dict of this spec instead")
    p.add_argument("--seed", type=int, default=0, help="seed for --synthetic (default 0)")
    p.add_argument("--spec", metavar="SPEC", help="check names and shapes against this spec's model")
    p.add_argument("-o", "--output", required=True, metavar="OUT.safetensors")
    a = p.parse_args(argv)

    if (a.source is None) == (a.synthetic is None):
        p.error("give either SOURCE or --synthetic SPEC")
    if a.synthetic is not None:
        spec = R.load_spec(a.synthetic)
        model = R.build_model(spec)
        sd = R.synthetic_state_dict(model.state_dict(), a.seed)
        meta = {"source": "synthetic", "spec": a.synthetic, "seed": str(a.seed),
                "generator": "resnetc synthetic v1 (splitmix64/fnv1a64, tools/resnet_spec.py)"}
        if a.spec:
            sd = check_against_spec(sd, a.spec)
    else:
        if os.path.exists(a.source):
            sd = load_pth(a.source)
            meta = {"source": "file", "file": os.path.basename(a.source)}
        elif "_Weights." in a.source:
            sd, meta = load_weights_enum(a.source)
        else:
            raise SystemExit(f"error: {a.source}: no such file, and not a torchvision weights name (like ResNet50_Weights.IMAGENET1K_V2)")
        if a.spec:
            sd = check_against_spec(sd, a.spec)
    meta["torch"] = torch.__version__
    meta["torchvision"] = torchvision.__version__
    tensors = to_safetensors_dict(sd)
    R.save_safetensors(tensors, a.output, metadata=meta)
    n = sum(v.numel() for k, v in tensors.items() if not k.endswith(".num_batches_tracked"))
    print(f"wrote {a.output}: {len(tensors)} tensors, {n:,d} float32 values, {os.path.getsize(a.output):,d} bytes")


if __name__ == "__main__":
    main()
