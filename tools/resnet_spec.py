"""Reference model builder and deterministic synthetic tensors for resnetc.

Part 1: spec -> torchvision model
================================

``build_model(spec)`` turns a spec (DESIGN.md, "Spec (v1)") into a torchvision model, reusing
torchvision's own code: ``torchvision.models.resnet.ResNet`` as is when the spec is a torchvision
variant (4 stages, default widths, imagenet stem, 3 input channels), otherwise the same ResNet
rebuilt stage by stage with torchvision's own ``ResNet._make_layer`` (custom widths, cifar stem,
any number of stages, any input channel count). ``head: features`` wraps the model in
``torchvision.models._utils.IntermediateLayerGetter``; like torchvision, this keeps the stem and
the stages up to the last listed one and drops later stages, avgpool and fc (so their tensors are
not in the state dict either).

Part 2: deterministic synthetic tensors
=======================================

Every tensor (each state_dict entry except ``*.num_batches_tracked``, and the input) is generated
from (name, shape, seed) and a range [lo, hi] that depends on the name and shape only:

    MASK = 2**64 - 1
    def splitmix64_next(state):                      # -> (new_state, output)
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return state, z ^ (z >> 31)
    fnv1a64(bytes): h = 0xcbf29ce484222325; for b in bytes: h = ((h ^ b) * 0x100000001b3) & MASK
    state = fnv1a64(name.encode("utf-8")) ^ ((seed * 0x9E3779B97F4A7C15) & MASK)
    for each element in row-major (C) order:
        state, x = splitmix64_next(state)
        u = (x >> 40) / 2**24                        # exact in f64, in [0, 1)
        value = float32(lo + (hi - lo) * u)          # f64 ops, no FMA: t = hi - lo; t = t * u;
                                                     # t = lo + t; then one round-to-nearest-even to f32

(``seed`` is a non-negative integer < 2**64; the product is taken mod 2**64.)

Range table (the only thing that depends on the role of a tensor). ``b`` is computed in f64 as
written: ``sqrt(6.0 / fan_in)`` means f64 division then f64 sqrt (correctly rounded, as Rust's
``f64::sqrt``), ``1.0 / sqrt(n)`` means f64 sqrt then f64 division; lo = -b and hi = b.

    role            tensor                                    [lo, hi]
    conv_weight     4-D  P.weight [O, I/g, kh, kw]            [-b, b], b = sqrt(6.0 / fan_in), fan_in = I/g*kh*kw
    linear_weight   2-D  P.weight [out, in]                   [-b, b], b = 1.0 / sqrt(in)
    linear_bias     1-D  P.bias, P.weight 2-D [out, in]       [-b, b], b = 1.0 / sqrt(in)
    bn_weight       1-D  P.weight (BN gamma)                  [0.3, 0.9]
    bn_bias         1-D  P.bias otherwise (BN beta)           [-0.05, 0.05]
    running_mean    P.running_mean                            [-0.05, 0.05]
    running_var     P.running_var                             [0.5, 2.0]
    input           "input", shape = spec input               [-1.0, 1.0]
    (P.num_batches_tracked: not generated, int64 scalar 0)

(The decimal constants are f64 literals, i.e. the nearest f64, as Rust parses them.)

Roles are decided from the name and the number of dims of the tensor, plus, for a 1-D
``P.bias``, the number of dims (and in-features) of its sibling ``P.weight`` in the same state
dict; in a ResNet the only linear bias is ``fc.bias`` and its b is that of ``fc.weight``.
A tensor matching no row is an error.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
import torchvision
import yaml
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TOOLS_DIR)

# --------------------------------------------------------------------------------------------
# Synthetic ranges. Keep in sync with the module docstring and tools/README.md.
# --------------------------------------------------------------------------------------------

# Fixed ranges by role (lo, hi). Conv and linear ranges depend on fan-in and are computed in
# tensor_range().
# Tuned so activations stay O(0.1..1) through resnet152 and the output depends on the input
# (see tools/README.md, "Why these ranges"): torch-default-like gamma [0.5, 1.5] and
# beta/mean [-0.2, 0.2] made resnet152's layer3 reach 1e9 and the logits nearly input-independent.
RANGES = {
    "bn_weight": (0.3, 0.9),
    "bn_bias": (-0.05, 0.05),
    "running_mean": (-0.05, 0.05),
    "running_var": (0.5, 2.0),
    "input": (-1.0, 1.0),
}
# Conv weights: b = sqrt(CONV_GAIN / fan_in); linear: b = 1 / sqrt(in_features).
CONV_GAIN = 6.0

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def splitmix64_next(state: int) -> tuple[int, int]:
    state = (state + GOLDEN) & MASK
    z = state
    z = ((z ^ (z >> 30)) * MIX1) & MASK
    z = ((z ^ (z >> 27)) * MIX2) & MASK
    return state, z ^ (z >> 31)


def initial_state(name: str, seed: int) -> int:
    if not (0 <= seed <= MASK):
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return fnv1a64(name.encode("utf-8")) ^ ((seed * GOLDEN) & MASK)


def synth_values_reference(name: str, shape, seed: int, lo: float, hi: float, count: int | None = None) -> list[float]:
    """Pure-Python, element-by-element reference (slow). Returns Python floats that are exactly
    float32 values; ``count`` limits the number of elements generated."""
    n = math.prod(shape)
    if count is not None:
        n = min(n, count)
    state = initial_state(name, seed)
    out = []
    for _ in range(n):
        state, x = splitmix64_next(state)
        u = (x >> 40) / 2**24
        v = lo + (hi - lo) * u
        out.append(float(np.float32(v)))
    return out


def synth_array(name: str, shape, seed: int, lo: float, hi: float) -> np.ndarray:
    """Vectorized generator (numpy uint64 arithmetic wraps mod 2**64), bit-identical to
    synth_values_reference. Returns a float32 array of the given shape."""
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    s0 = np.uint64(initial_state(name, seed))
    with np.errstate(over="ignore"):
        k = np.arange(1, n + 1, dtype=np.uint64)
        st = s0 + k * np.uint64(GOLDEN)  # state after k steps
        z = st
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / float(2**24)
    t = float(hi) - float(lo)
    v = float(lo) + t * u  # two separate f64 ops (numpy does not fuse them)
    return v.astype(np.float32).reshape(shape)


def synth_tensor(name: str, shape, seed: int, lo: float, hi: float) -> torch.Tensor:
    return torch.from_numpy(synth_array(name, shape, seed, lo, hi))


def tensor_range(name: str, shape, sibling_weight_shape=None) -> tuple[str, float, float]:
    """(role, lo, hi) for a state_dict entry. ``sibling_weight_shape`` is the shape of
    ``<prefix>.weight`` in the same state dict (needed for a 1-D ``<prefix>.bias`` only)."""
    nd = len(shape)
    if name == "input":
        return ("input",) + RANGES["input"]
    if name.endswith(".weight"):
        if nd == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            b = math.sqrt(CONV_GAIN / fan_in)
            return "conv_weight", -b, b
        if nd == 2:
            b = 1.0 / math.sqrt(shape[1])
            return "linear_weight", -b, b
        if nd == 1:
            return ("bn_weight",) + RANGES["bn_weight"]
    elif name.endswith(".bias") and nd == 1:
        if sibling_weight_shape is not None and len(sibling_weight_shape) == 2:
            b = 1.0 / math.sqrt(sibling_weight_shape[1])
            return "linear_bias", -b, b
        if sibling_weight_shape is None or len(sibling_weight_shape) == 1:
            return ("bn_bias",) + RANGES["bn_bias"]
    elif name.endswith(".running_mean"):
        return ("running_mean",) + RANGES["running_mean"]
    elif name.endswith(".running_var"):
        return ("running_var",) + RANGES["running_var"]
    raise ValueError(f"no synthetic role for tensor {name!r} with shape {list(shape)}")


def synthetic_state_dict(template: dict[str, torch.Tensor], seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """Synthetic float32 tensors for every entry of ``template`` (a model's state_dict), in its
    order; ``*.num_batches_tracked`` are copied from the template (int64 0)."""
    out = OrderedDict()
    for name, t in template.items():
        if name.endswith(".num_batches_tracked"):
            out[name] = torch.zeros((), dtype=torch.int64) if t is None else t.detach().clone()
            continue
        shape = list(t.shape)
        sib = None
        if name.endswith(".bias"):
            w = template.get(name[: -len("bias")] + "weight")
            sib = None if w is None else list(w.shape)
        _, lo, hi = tensor_range(name, shape, sib)
        out[name] = synth_tensor(name, shape, seed, lo, hi)
    return out


def synthetic_input(spec: dict, seed: int = 0) -> torch.Tensor:
    lo, hi = RANGES["input"]
    return synth_tensor("input", spec["input"], seed, lo, hi)


def range_table_markdown() -> str:
    rows = [
        ("4-D `P.weight` (conv, [O, I/g, kh, kw])", f"[-b, b], b = sqrt({CONV_GAIN!r} / fan_in), fan_in = I/g*kh*kw"),
        ("2-D `P.weight` (linear, [out, in])", "[-b, b], b = 1.0 / sqrt(in)"),
        ("1-D `P.bias` whose `P.weight` is 2-D (linear bias)", "[-b, b], b = 1.0 / sqrt(in) of `P.weight`"),
        ("1-D `P.weight` (BatchNorm gamma)", "[{!r}, {!r}]".format(*RANGES["bn_weight"])),
        ("1-D `P.bias` otherwise (BatchNorm beta)", "[{!r}, {!r}]".format(*RANGES["bn_bias"])),
        ("`P.running_mean`", "[{!r}, {!r}]".format(*RANGES["running_mean"])),
        ("`P.running_var`", "[{!r}, {!r}]".format(*RANGES["running_var"])),
        ("`P.num_batches_tracked`", "not generated: int64 scalar 0"),
        ("`input` (shape = spec input)", "[{!r}, {!r}]".format(*RANGES["input"])),
    ]
    lines = ["| tensor | [lo, hi] |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def save_safetensors(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str] | None = None) -> None:
    """safetensors.torch.save, with the JSON header re-serialized with sorted keys so the file is
    byte-for-byte reproducible (the library writes its metadata map in random order). Data
    offsets are relative to the end of the header, so they are unchanged."""
    import json
    import struct

    from safetensors.torch import save

    raw = save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        f.write(data)
    os.chmod(path, 0o644)


def dump_json(obj, path: str) -> None:
    """JSON with indent 1, but every list that holds no dict written on one line (so a
    state_dict entry ["layer1.0.conv1.weight", [64, 64, 1, 1]] is one line)."""
    import json

    def enc(o, ind):
        pad = " " * ind
        if isinstance(o, dict):
            if not o:
                return "{}"
            items = [f'{pad} {json.dumps(k)}: {enc(v, ind + 1)}' for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list) and any(isinstance(v, dict) for v in o):
            items = [pad + " " + enc(v, ind + 1) for v in o]
            return "[\n" + ",\n".join(items) + "\n" + pad + "]"
        if isinstance(o, list) and o and all(isinstance(v, list) for v in o):
            items = [pad + " " + json.dumps(v) for v in o]
            return "[\n" + ",\n".join(items) + "\n" + pad + "]"
        return json.dumps(o)

    with open(path, "w") as f:
        f.write(enc(obj, 0) + "\n")


# --------------------------------------------------------------------------------------------
# Spec loading
# --------------------------------------------------------------------------------------------

SPEC_KEYS = {
    "name", "block", "layers", "groups", "width_per_group", "replace_stride_with_dilation",
    "num_classes", "input", "widths", "stem", "head", "features",
}


def load_spec(path: str) -> dict[str, Any]:
    with open(path) as f:
        raw = yaml.safe_load(f)
    spec = normalize_spec(raw)
    spec["_path"] = path
    return spec


def normalize_spec(raw: dict[str, Any]) -> dict[str, Any]:
    """Apply the v1 defaults. Light validation only (the Rust side owns error reporting)."""
    unknown = set(raw) - SPEC_KEYS
    if unknown:
        raise ValueError(f"unknown spec keys: {sorted(unknown)}")
    s = dict(raw)
    for k in ("name", "block", "layers", "input"):
        if k not in s:
            raise ValueError(f"missing spec key {k!r}")
    if s["block"] not in ("basic", "bottleneck"):
        raise ValueError(f"block must be basic or bottleneck, got {s['block']!r}")
    n = len(s["layers"])
    if n < 1 or any((not isinstance(b, int)) or b < 1 for b in s["layers"]):
        raise ValueError(f"layers must be a non-empty list of positive integers, got {s['layers']}")
    s.setdefault("groups", 1)
    s.setdefault("width_per_group", 64)
    s.setdefault("replace_stride_with_dilation", [False] * (n - 1))
    s.setdefault("num_classes", 1000)
    s.setdefault("widths", [64 * 2**i for i in range(n)])
    s.setdefault("stem", "imagenet")
    s.setdefault("head", "classifier")
    if len(s["replace_stride_with_dilation"]) != n - 1:
        raise ValueError(f"replace_stride_with_dilation needs {n - 1} entries, got {s['replace_stride_with_dilation']}")
    if len(s["widths"]) != n:
        raise ValueError(f"widths needs {n} entries, got {s['widths']}")
    if s["stem"] not in ("imagenet", "cifar"):
        raise ValueError(f"stem must be imagenet or cifar, got {s['stem']!r}")
    if s["head"] not in ("classifier", "features"):
        raise ValueError(f"head must be classifier or features, got {s['head']!r}")
    if s["head"] == "features":
        s.setdefault("features", [f"layer{n}"])
        valid = {f"layer{k}" for k in range(1, n + 1)}
        if not s["features"] or any(f not in valid for f in s["features"]) or len(set(s["features"])) != len(s["features"]):
            raise ValueError(f"features must be distinct names among {sorted(valid)}, got {s['features']}")
    elif "features" in s:
        raise ValueError("features is only allowed with head: features")
    if len(s["input"]) != 4:
        raise ValueError(f"input must be [N, C, H, W], got {s['input']}")
    return s


# --------------------------------------------------------------------------------------------
# Model building
# --------------------------------------------------------------------------------------------

TORCHVISION_VARIANTS = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
    "wide_resnet50_2", "wide_resnet101_2",
]


class SpecResNet(ResNet):
    """torchvision's ResNet with any number of stages (layer1..layerN); the forward is
    torchvision's _forward_impl with the stage loop generalized."""

    num_stages: int = 4

    def _forward_impl(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        for k in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{k}")(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


def _block_class(spec):
    return BasicBlock if spec["block"] == "basic" else Bottleneck


def is_torchvision_layout(spec) -> bool:
    n = len(spec["layers"])
    return (
        n == 4
        and spec["widths"] == [64, 128, 256, 512]
        and spec["stem"] == "imagenet"
        and spec["input"][1] == 3
    )


def build_classifier(spec, force_rebuild: bool = False) -> ResNet:
    """The full model (stem, stages, avgpool, fc), whatever the head. ``force_rebuild`` takes the
    SpecResNet/_make_layer path even for a torchvision layout (used by the self-check)."""
    block = _block_class(spec)
    layers = list(spec["layers"])
    n = len(layers)
    rswd = [bool(b) for b in spec["replace_stride_with_dilation"]]
    kwargs = dict(
        groups=spec["groups"],
        width_per_group=spec["width_per_group"],
        num_classes=spec["num_classes"],
    )
    if is_torchvision_layout(spec) and not force_rebuild:
        return ResNet(block, layers, replace_stride_with_dilation=rswd, **kwargs)

    # Construct torchvision's ResNet (validates groups/width for BasicBlock etc. with its own
    # words), then rebuild stem and stages with its own _make_layer. Stages beyond those built
    # are small placeholders, replaced below.
    tv_layers = (layers + [1, 1, 1, 1])[:4]
    tv_rswd = (rswd + [False, False, False])[:3]
    m = SpecResNet(block, tv_layers, replace_stride_with_dilation=tv_rswd, **kwargs)
    m.num_stages = n
    # Remove every child, then re-register in torchvision's order so the state_dict order is
    # conv1, bn1, layer1..layerN, fc.
    for name in list(m._modules):
        delattr(m, name)
    widths = list(spec["widths"])
    c_in = spec["input"][1]
    if spec["stem"] == "imagenet":
        m.conv1 = nn.Conv2d(c_in, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        m.bn1 = m._norm_layer(widths[0])
        m.relu = nn.ReLU(inplace=True)
        m.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    else:  # cifar
        m.conv1 = nn.Conv2d(c_in, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        m.bn1 = m._norm_layer(widths[0])
        m.relu = nn.ReLU(inplace=True)
        m.maxpool = nn.Identity()
    m.inplanes = widths[0]
    m.dilation = 1
    for k in range(1, n + 1):
        if k == 1:
            stage = m._make_layer(block, widths[0], layers[0])
        else:
            stage = m._make_layer(block, widths[k - 1], layers[k - 1], stride=2, dilate=rswd[k - 2])
        setattr(m, f"layer{k}", stage)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    m.fc = nn.Linear(widths[-1] * block.expansion, spec["num_classes"])
    return m


class FeatureModel(nn.Module):
    """head: features. Wraps IntermediateLayerGetter; returns an OrderedDict in the order of
    spec['features'] (IntermediateLayerGetter itself returns them in network order). The
    state_dict names are the torchvision names (no prefix)."""

    def __init__(self, model: ResNet, features: list[str]):
        super().__init__()
        self.features = list(features)
        self.body = IntermediateLayerGetter(model, {f: f for f in features})

    def forward(self, x):
        out = self.body(x)
        return OrderedDict((f, out[f]) for f in self.features)

    # Present the body's names unprefixed (conv1.weight, layer1.0..., as torchvision's).
    def state_dict(self, *args, **kwargs):
        return self.body.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.body.load_state_dict(state_dict, strict=strict, assign=assign)


def build_model(spec, force_rebuild: bool = False) -> nn.Module:
    m = build_classifier(spec, force_rebuild)
    if spec["head"] == "features":
        return FeatureModel(m, spec["features"])
    return m


def output_names(spec) -> list[str]:
    return ["logits"] if spec["head"] == "classifier" else list(spec["features"])


def run(model: nn.Module, spec, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
    with torch.no_grad():
        y = model(x)
    if spec["head"] == "classifier":
        return OrderedDict(logits=y)
    return y


def spec_files() -> list[str]:
    out = []
    for d in ("specs", os.path.join("tests", "specs")):
        full = os.path.join(REPO_DIR, d)
        if os.path.isdir(full):
            out += sorted(os.path.join(d, f) for f in os.listdir(full) if f.endswith((".yaml", ".yml")))
    return out


# --------------------------------------------------------------------------------------------
# Checks (python tools/resnet_spec.py check | stats SPEC...)
# --------------------------------------------------------------------------------------------


def check_torchvision_variants(verbose=True) -> None:
    """For every torchvision variant spec in specs/, the builder's state_dict keys and shapes
    must equal those of torchvision.models.<name>() exactly (same order too)."""
    for name in TORCHVISION_VARIANTS:
        spec = load_spec(os.path.join(REPO_DIR, "specs", f"{name}.yaml"))
        ours = build_model(spec).state_dict()
        theirs = getattr(torchvision.models, name)().state_dict()
        a = [(k, tuple(v.shape)) for k, v in ours.items()]
        b = [(k, tuple(v.shape)) for k, v in theirs.items()]
        assert a == b, f"{name}: state_dict differs from torchvision.models.{name}()"
        # Also through the rebuild path (SpecResNet + _make_layer), which must agree with it.
        rebuilt = build_model(spec, force_rebuild=True).state_dict()
        c = [(k, tuple(v.shape)) for k, v in rebuilt.items()]
        assert c == b, f"{name}: rebuild path differs from torchvision.models.{name}()"
        if verbose:
            print(f"ok  {name}: {len(a)} state_dict entries equal torchvision.models.{name}() (direct and rebuild path)")
    # The rebuild path's forward (SpecResNet._forward_impl) equals torchvision's, bit for bit.
    for name in ("resnet18", "resnext50_32x4d"):
        spec = load_spec(os.path.join(REPO_DIR, "specs", f"{name}.yaml"))
        spec = dict(spec, input=[1, 3, 64, 64])
        sd = synthetic_state_dict(build_model(spec).state_dict(), 0)
        x = synthetic_input(spec, 0)
        outs = []
        for force in (False, True):
            m = build_model(spec, force_rebuild=force)
            m.load_state_dict(sd, strict=True)
            outs.append(run(m.eval(), spec, x)["logits"])
        assert torch.equal(outs[0], outs[1]), f"{name}: rebuild path forward differs"
        if verbose:
            print(f"ok  {name}: rebuild-path forward equals torchvision's ResNet forward bit for bit (64x64)")
    # The vectorized generator equals the element-by-element reference.
    for nm, shape, seed in [("conv1.weight", [64, 3, 7, 7], 0), ("fc.bias", [1000], 5), ("input", [2, 3, 8, 8], 2**64 - 1)]:
        _, lo, hi = tensor_range(nm, shape, [1000, 512] if nm == "fc.bias" else None)
        fast = synth_array(nm, shape, seed, lo, hi).ravel()
        ref = np.array(synth_values_reference(nm, shape, seed, lo, hi), dtype=np.float32)
        assert np.array_equal(fast.view(np.uint32), ref.view(np.uint32)), nm
    if verbose:
        print("ok  vectorized generator == pure-Python reference")
    # tools/README.md documents the table in effect.
    readme = os.path.join(TOOLS_DIR, "README.md")
    if os.path.exists(readme):
        with open(readme) as f:
            assert range_table_markdown() in f.read(), "tools/README.md range table is out of date (python tools/resnet_spec.py table)"
        if verbose:
            print("ok  tools/README.md range table matches RANGES")


def activation_stats(spec, seed=0):
    """Per-stage max|x| and std (float32, eval mode) with synthetic weights and input, plus the
    logits, and how much the output changes when the input changes (input seed+1)."""
    model = build_model(spec)
    model.load_state_dict(synthetic_state_dict(model.state_dict(), seed), strict=True)
    model.eval()
    base = model.body if isinstance(model, FeatureModel) else model
    n = len(spec["layers"])
    rows = []
    hooks = []

    def hook(name):
        def f(_m, _i, o):
            rows.append((name, o.detach()))
        return f

    names = ["stem"] + [f"layer{k}" for k in range(1, n + 1)]
    mods = [base.maxpool] + [getattr(base, f"layer{k}", None) for k in range(1, n + 1)]
    for nm, md in zip(names, mods):
        if md is not None:
            hooks.append(md.register_forward_hook(hook(nm)))
    x = synthetic_input(spec, seed)
    out = run(model, spec, x)
    for h in hooks:
        h.remove()
    x2 = synth_tensor("input", spec["input"], seed + 1, *RANGES["input"])
    out2 = run(model, spec, x2)
    stats = [(nm, float(t.abs().max()), float(t.float().std())) for nm, t in rows]
    for k, v in out.items():
        if k == "logits":
            stats.append(("logits", float(v.abs().max()), float(v.std())))
    sens = {k: float((out[k] - out2[k]).abs().max() / out[k].abs().max()) for k in out}
    return stats, sens


def _main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="assert builder == torchvision for the torchvision variant specs")
    st = sub.add_parser("stats", help="activation statistics with synthetic weights")
    st.add_argument("specs", nargs="+")
    st.add_argument("--seed", type=int, default=0)
    sub.add_parser("table", help="print the synthetic range table (markdown)")
    a = p.parse_args(argv)
    if a.cmd == "check":
        check_torchvision_variants()
    elif a.cmd == "stats":
        for path in a.specs:
            spec = load_spec(path)
            stats, sens = activation_stats(spec, a.seed)
            print(f"{spec['name']} ({path}, input {spec['input']}, seed {a.seed})")
            for nm, mx, sd in stats:
                print(f"  {nm:8s} max|x| = {mx:.6g}  std = {sd:.6g}")
            for k, v in sens.items():
                print(f"  {k}: max|out(input seed {a.seed}) - out(input seed {a.seed + 1})| / max|out| = {v:.4g}")
    elif a.cmd == "table":
        print(range_table_markdown())


if __name__ == "__main__":
    _main()
