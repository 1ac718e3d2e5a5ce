#!/usr/bin/env python3
"""resnetc's generated Rust against ONNX Runtime, side by side, in one run.

    tools/.venv/bin/python tools/bench_ort.py                 # everything (~5 min here)
    tools/.venv/bin/python tools/bench_ort.py --models resnet50 --batch 1 --threads 1,2 --torch
    tools/.venv/bin/python tools/bench_ort.py --layers resnet50 --threads 1,2   # per block

For each row (model, batch, threads) of resnet18, resnet50, resnext50_32x4d and
wide_resnet50_2 at batch 1 and 8, on 1 and 2 threads:

- ours: `cargo run --release -p resnet-bench -- --json --outputs` for that row (the generated
  code, weights loaded at run time);
- ONNX Runtime: the torchvision model with the SAME synthetic weights (tools/resnet_spec.py,
  seed 0), exported to ONNX (opset 17, static shapes, cached in target/resnet-bench/onnx/),
  CPU execution provider, intra_op_num_threads = threads, inter_op_num_threads = 1, all graph
  optimizations;
- with --torch, PyTorch eager too (torch.set_num_threads(threads)).

Same protocol on both sides (resnet-bench/src/measure.rs): warm-up runs, then timed runs
(fixed with --runs, else until at least --min-runs and --min-time seconds); median and min.
Each row runs in --rounds rounds that alternate who goes first (ours, ORT; ORT, ours; ...),
each round with its own warm-up, so that drift and the other tenants of a shared machine hit
both alike; the median and min are over all rounds' runs. The outputs of both must agree:
max|ours - ORT| / max|ORT| over all logits of the batch, reported per row; above 1e-3 the
script says so and exits with status 1 (the timings are reported either way).

Then (unless --no-rss) the peak RSS, with /usr/bin/time -v, of one resnet50 inference by:
ours loading the weights at run time (rss-loaded), ours with the weights embedded by the
build script (rss-embedded), and a Python process holding only an ONNX Runtime session (and,
for reference, the same process without a session).

With --layers MODEL, instead: where the milliseconds go on each side, per residual block (and
the stem and the head), at batch 1: ours from `resnet-bench --layers MODEL` (the hook after
every kernel call), ONNX Runtime from its own profiler (SessionOptions.enable_profiling, the
`_kernel_time` of every node, grouped by the torchvision module in the node's name). Each
side's numbers are sums of per-call medians; ORT's profiler adds a little to each node.

Run outside a virtual environment, it re-runs itself in tools/.venv (created if missing); it
installs tools/requirements.txt (torch, torchvision, ...) and onnxruntime and onnx there with
pip if they are missing. --save FILE writes everything as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import warnings

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TOOLS_DIR)
MODELS = ["resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2"]
OPSET = 17
SEED = 0
AGREEMENT = 1e-3
# A row that takes longer than this is stuck (a deadlocked thread pool, say), not slow.
ROW_TIMEOUT_S = 3600
# Every cargo command of this script builds resnet-bench with the same features (so that it
# is built once): `embedded` adds the rss-embedded binary (resnet50's weights packed by
# build.rs and embedded), which the peak RSS comparison runs.
CARGO_FEATURES = ["--features", "embedded"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# The versions the README's numbers were measured with.
ONNX_PACKAGES = {"onnxruntime": "onnxruntime==1.32.0", "onnx": "onnx==1.23.2"}


# The import names of what tools/requirements.txt installs.
REQUIREMENTS_MODULES = ["torch", "torchvision", "safetensors", "yaml", "numpy"]


def ensure_venv(argv: list[str]) -> None:
    """Outside a virtual environment, re-runs this script in tools/.venv, creating it if needed,
    so that nothing is installed into the system's Python."""
    if sys.prefix != sys.base_prefix:
        return
    venv = os.path.join(TOOLS_DIR, ".venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        log(f"creating the virtual environment {venv}")
        run_checked([sys.executable, "-m", "venv", venv])
    log(f"re-running in {venv}")
    os.execv(python, [python, os.path.abspath(__file__), *argv])


def missing_modules(modules) -> list[str]:
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def ensure_packages() -> None:
    """torch & co. (tools/requirements.txt, ~3 GB the first time), onnxruntime and onnx,
    installed with pip into this interpreter (a virtual environment) if missing."""
    if missing_modules(REQUIREMENTS_MODULES):
        log(f"installing tools/requirements.txt with pip into {sys.prefix} (torch: about 3 GB)")
        run_checked([sys.executable, "-m", "pip", "install", "--quiet", "-r",
                     os.path.join(TOOLS_DIR, "requirements.txt")])
    missing = [ONNX_PACKAGES[m] for m in missing_modules(ONNX_PACKAGES)]
    if missing:
        log(f"installing {' '.join(missing)} with pip into {sys.prefix}")
        run_checked([sys.executable, "-m", "pip", "install", "--quiet", *missing])
    importlib.invalidate_caches()


def run_checked(cmd: list[str], **kwargs) -> None:
    """Runs cmd (output to the terminal); exits with a message if it fails."""
    if subprocess.run(cmd, **kwargs).returncode != 0:
        sys.exit(f"error: `{' '.join(cmd)}` failed")


# --- the protocol (the same rules as resnet-bench/src/measure.rs) ---------------------------


class Protocol:
    def __init__(self, warmup: int, runs: int | None, min_runs: int, min_time: float, max_runs: int):
        self.warmup, self.runs, self.min_runs, self.min_time, self.max_runs = (
            warmup, runs, max(min_runs, 1), min_time, max_runs)

    def done(self, n: int, elapsed: float) -> bool:
        if self.runs is not None:
            return n >= self.runs
        return n >= self.max_runs or (n >= self.min_runs and elapsed >= self.min_time)

    def rounds(self, r: int) -> list["Protocol"]:
        """This protocol cut into r rounds that together time as much."""
        def share(total: int, i: int) -> int:
            return max(1, total // r + (1 if i < total % r else 0))
        return [Protocol(self.warmup,
                         None if self.runs is None else share(self.runs, i),
                         share(self.min_runs, i),
                         self.min_time / r,
                         share(self.max_runs, i)) for i in range(r)]

    def cli(self) -> list[str]:
        args = ["--warmup", str(self.warmup), "--min-runs", str(self.min_runs),
                "--min-time", repr(self.min_time), "--max-runs", str(self.max_runs)]
        return args + (["--runs", str(self.runs)] if self.runs is not None else [])

    def describe(self) -> str:
        if self.runs is not None:
            return f"{self.runs} timed runs"
        return f"timed runs until at least {self.min_runs} and {self.min_time:g} s (at most {self.max_runs})"


def time_runs(fn, protocol: Protocol) -> list[float]:
    """Milliseconds of each timed call of fn(), after the warm-up calls."""
    for _ in range(protocol.warmup):
        fn()
    times: list[float] = []
    elapsed = 0.0
    while not protocol.done(len(times), elapsed):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        elapsed += took
        times.append(took * 1e3)
    return times


# --- ours ------------------------------------------------------------------------------------


def cargo_bench(args: list[str], timeout: float = ROW_TIMEOUT_S) -> dict:
    """`cargo run --release -p resnet-bench -- ARGS --json`, parsed."""
    cmd = ["cargo", "run", "--release", "--quiet", "-p", "resnet-bench", *CARGO_FEATURES, "--", *args, "--json",
           "--quiet"]
    try:
        done = subprocess.run(cmd, cwd=REPO_DIR, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.exit(f"error: `{' '.join(cmd)}` ran for more than {timeout:.0f} s; stuck?")
    if done.returncode != 0:
        sys.exit(f"error: `{' '.join(cmd)}` failed:\n{done.stderr}")
    return json.loads(done.stdout)


def target_dir() -> str:
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO_DIR,
                          capture_output=True, text=True, check=True)
    return json.loads(meta.stdout)["target_directory"]


# --- ONNX Runtime and torch ------------------------------------------------------------------


def spec_at_batch(model: str, batch: int) -> dict:
    import resnet_spec as R
    spec = R.load_spec(os.path.join(REPO_DIR, "specs", f"{model}.yaml"))
    spec["input"] = [batch] + list(spec["input"][1:])
    return spec


def torch_model(model: str):
    """The torchvision model with the synthetic weights (seed 0), in eval mode."""
    import resnet_spec as R
    spec = spec_at_batch(model, 1)
    m = R.build_model(spec)
    m.load_state_dict(R.synthetic_state_dict(m.state_dict(), SEED), strict=True)
    return m.eval()


def onnx_path(cache: str, model: str, batch: int) -> str:
    """The model exported at `batch` (static shapes), exported now unless cached."""
    import torch
    path = os.path.join(cache, f"{model}_b{batch}_seed{SEED}_opset{OPSET}_torch{torch.__version__}.onnx")
    if os.path.exists(path):
        return path
    import onnx
    import resnet_spec as R
    log(f"{model} batch {batch}: exporting to ONNX")
    m = torch_model(model)
    x = R.synthetic_input(spec_at_batch(model, batch), SEED)
    tmp = path + f".{os.getpid()}.tmp"
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the torch.export-based one,
        # which needs onnxscript; both give the same graph for a ResNet.
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), tmp, opset_version=OPSET, dynamo=False, do_constant_folding=True,
                          input_names=["input"], output_names=["logits"])
    onnx.checker.check_model(tmp)
    os.replace(tmp, path)
    return path


def ort_session(path: str, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def max_rel_diff(ours, theirs) -> float:
    import numpy as np
    a = np.asarray(ours, dtype=np.float64).ravel()
    b = np.asarray(theirs, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return math.inf
    if not np.all(np.isfinite(a)):
        return math.inf
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# --- the machine -----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> float:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return math.nan


def git_state() -> str:
    def git(*a):
        r = subprocess.run(["git", *a], cwd=REPO_DIR, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "resnet-runtime", "resnet-compiler", "resnet-macros")
    return head + (" (resnet-runtime/compiler/macros modified)" if dirty else "")


def versions() -> dict:
    import numpy
    import onnx
    import onnxruntime
    import torch
    import torchvision
    return {"python": platform.python_version(), "numpy": numpy.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__}


# --- peak RSS --------------------------------------------------------------------------------


def max_rss_kib(cmd: list[str], cwd: str = REPO_DIR) -> tuple[int, str]:
    """Maximum resident set size (KiB) of cmd, from /usr/bin/time -v, and its stdout."""
    if not os.path.exists("/usr/bin/time"):
        sys.exit("error: /usr/bin/time is missing (Debian: apt-get install time), or pass --no-rss")
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, capture_output=True, text=True,
                       timeout=ROW_TIMEOUT_S)
    if r.returncode != 0:
        sys.exit(f"error: `{' '.join(cmd)}` failed:\n{r.stderr}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    if not m:
        sys.exit(f"error: no maximum resident set size in /usr/bin/time's output:\n{r.stderr}")
    return int(m.group(1)), r.stdout.strip()


def rss_child(onnx_file: str, input_file: str) -> None:
    """The ORT side of the RSS measurement: only numpy and onnxruntime (no torch), one session
    with one intra-op thread, one inference. With onnx_file "-", no session at all."""
    import numpy as np
    import onnxruntime  # noqa: F401  (imported in both cases: the baseline includes it)
    if onnx_file == "-":
        print("python + numpy + onnxruntime, no session")
        return
    x = np.load(input_file)
    y = ort_session(onnx_file, 1).run(None, {"input": x})[0]
    print(f"onnxruntime: sum of the logits {float(np.sum(y, dtype=np.float64)):.6f}")


def measure_rss(cache: str) -> list[dict]:
    import numpy as np
    import resnet_spec as R
    model = "resnet50"
    weights = os.path.join(cache, f"{model}_seed{SEED}.safetensors")
    if not os.path.exists(weights):
        m = torch_model(model)
        R.save_safetensors(m.state_dict(), weights)
    x_file = os.path.join(cache, f"{model}_b1_input.npy")
    np.save(x_file, R.synthetic_input(spec_at_batch(model, 1), SEED).numpy())
    onnx_file = onnx_path(cache, model, 1)
    log("building rss-loaded and rss-embedded")
    run_checked(["cargo", "build", "--release", "--quiet", "-p", "resnet-bench", *CARGO_FEATURES, "--bins"],
                cwd=REPO_DIR)
    bin_dir = os.path.join(target_dir(), "release")
    me = [sys.executable, os.path.abspath(__file__), "--rss-child"]
    runs = [
        ("ours, weights loaded at run time (rss-loaded: file read, f64 folding, packed)",
         [os.path.join(bin_dir, "rss-loaded"), model, weights]),
        ("ours, weights embedded by build.rs (rss-embedded: weights + arena + code)",
         [os.path.join(bin_dir, "rss-embedded")]),
        ("ONNX Runtime: Python + numpy + onnxruntime + one session (1 thread), one run",
         [*me, onnx_file, x_file]),
        ("  reference: the same Python process without a session",
         [*me, "-", x_file]),
    ]
    out = []
    for what, cmd in runs:
        log(f"peak RSS: {what}")
        kib, stdout = max_rss_kib(cmd)
        out.append({"what": what, "max_rss_kib": kib, "stdout": stdout})
    return out


# --- one row ---------------------------------------------------------------------------------


def summary(times: list[float]) -> dict:
    return {"median": statistics.median(times), "min": min(times), "runs": len(times), "times": times}


def bench_row(model: str, batch: int, threads: int, onnx_file: str, x, torch_m, rounds: list[Protocol],
              first: int) -> tuple[dict, dict]:
    """Times one row on both sides (and torch eager when torch_m is given), round by round;
    round i starts with ours when i + first is even, with ORT otherwise. Returns the row and
    resnet-bench's description of the machine."""
    import torch
    row_args = ["--models", model, "--batch", str(batch), "--threads", str(threads), "--no-peak", "--outputs"]
    session = ort_session(onnx_file, threads)
    feed = {"input": x.numpy()}
    times = {"ours": [], "ort": [], "torch": []}
    outputs = {}
    report = {}

    def ours(protocol: Protocol) -> None:
        report.update(cargo_bench(row_args + protocol.cli()))
        (r,) = report["rows"]
        times["ours"].extend(r["times_ms"])
        outputs["ours"] = r["output"]

    def ort(protocol: Protocol) -> None:
        def once():
            outputs["ort"] = session.run(None, feed)[0]
        times["ort"].extend(time_runs(once, protocol))

    def eager(protocol: Protocol) -> None:
        def once():
            with torch.inference_mode():
                outputs["torch"] = torch_m(x).numpy()
        torch.set_num_threads(threads)
        times["torch"].extend(time_runs(once, protocol))

    for i, protocol in enumerate(rounds):
        for side in ([ours, ort] if (i + first) % 2 == 0 else [ort, ours]):
            side(protocol)
        if torch_m is not None:
            eager(protocol)
    (r,) = report["rows"]
    row = {
        "model": model, "batch": batch, "threads": threads, "macs": r["macs"],
        "ours_ms": summary(times["ours"]), "ort_ms": summary(times["ort"]),
        "max_rel_diff_ours_vs_ort": max_rel_diff(outputs["ours"], outputs["ort"]),
        "max_rel_diff_ours_vs_torchvision_first_image": r["max_rel_diff_torchvision"],
    }
    if torch_m is not None:
        row["torch_ms"] = summary(times["torch"])
        row["max_rel_diff_ort_vs_torch"] = max_rel_diff(outputs["ort"], outputs["torch"])
    row["ratio"] = row["ours_ms"]["median"] / row["ort_ms"]["median"]
    return row, report["machine"]


# --- main ------------------------------------------------------------------------------------


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=lambda s: s.split(","), default=MODELS)
    p.add_argument("--batch", type=ints, default=[1, 8])
    p.add_argument("--threads", type=ints, default=[1, 2])
    p.add_argument("--runs", type=int, default=None, help="exactly this many timed runs per row and side")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per round and side")
    p.add_argument("--min-runs", type=int, default=5)
    p.add_argument("--min-time", type=float, default=2.0, help="seconds of timed runs per row and side")
    p.add_argument("--max-runs", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2, help="alternations of ours and ORT per row")
    p.add_argument("--torch", action="store_true", help="also time PyTorch eager")
    p.add_argument("--no-rss", action="store_true", help="skip the peak RSS measurement")
    p.add_argument("--save", metavar="FILE", help="write everything as JSON")
    p.add_argument("--layers", metavar="MODEL", help="per block of MODEL (batch 1), ours against ORT's profiler")
    p.add_argument("--rss-child", nargs=2, metavar=("ONNX", "INPUT"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    unknown = [m for m in a.models if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; this script knows {', '.join(MODELS)}")
    if a.layers is not None and a.layers not in MODELS:
        p.error(f"unknown model {a.layers}; this script knows {', '.join(MODELS)}")
    if a.rounds < 1 or (a.runs is not None and a.runs < a.rounds):
        p.error("--rounds is at least 1, and --runs at least --rounds")
    return a


def block_of_ours(step: str) -> str:
    """The residual block (`layer3.1`), `stem` or `head` of one of our kernel calls, named by
    the torchvision modules it covers (`layer3.1.conv2 + bn2 + add + relu`)."""
    m = re.match(r"(layer\d+\.\d+)\.", step)
    if m:
        return m.group(1)
    return "head" if step.split(" ")[0] in ("avgpool", "fc") else "stem"


def block_of_ort(node: str) -> str:
    """The same for an ONNX Runtime node, named after the exported module path
    (`/layer3/layer3.1/conv2/Conv_output_0_nchwc`); layout conversions of the input and
    output (`ReorderInput`, `ReorderOutput`) count with the stem and the head."""
    m = re.search(r"/(layer\d+\.\d+)/", node)
    if m:
        return m.group(1)
    if any(k in node for k in ("/avgpool", "/fc/", "Flatten", "ReorderOutput")):
        return "head"
    return "stem"


def ort_profile(path: str, threads: int, x, runs: int, warmup: int) -> dict[str, float]:
    """Median `_kernel_time` (ms) of every node over `runs` profiled runs."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(target_dir(), "resnet-bench", "ort_profile")
    session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = {"input": x.numpy()}
    # The warm-up runs are in the profile too: each node's first `warmup` events are dropped.
    for _ in range(warmup + runs):
        session.run(None, feed)
    file = session.end_profiling()
    with open(file) as f:
        events = json.load(f)
    os.remove(file)
    times: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            times.setdefault(e["name"][: -len("_kernel_time")], []).append(e["dur"] / 1e3)
    return {n: statistics.median(t[warmup:] or t) for n, t in times.items()}


def per_block(args, cache: str, protocol: Protocol) -> int:
    """--layers: ours and ONNX Runtime per residual block of one model, at batch 1."""
    sys.path.insert(0, TOOLS_DIR)
    import resnet_spec as R
    model = args.layers
    path = onnx_path(cache, model, 1)
    x = R.synthetic_input(spec_at_batch(model, 1), SEED)
    lines = [f"{model}, batch 1: ms per block, sums of per-call medians "
             f"(ours: resnet-bench --layers; ONNX Runtime: its profiler, per node)"]
    for threads in args.threads:
        log(f"{model}, {threads} thread(s): ours")
        ours = cargo_bench(["--layers", model, "--threads", str(threads), *protocol.cli()])["rows"][0]
        runs = max(ours["runs"], args.min_runs)
        log(f"{model}, {threads} thread(s): ONNX Runtime, {runs} profiled runs")
        theirs = ort_profile(path, threads, x, runs, args.warmup)
        blocks: dict[str, list[float]] = {}
        for step in ours["layers"]:
            blocks.setdefault(block_of_ours(step["name"]), [0.0, 0.0])[0] += step["median_ms"]
        for node, ms in theirs.items():
            blocks.setdefault(block_of_ort(node), [0.0, 0.0])[1] += ms
        lines.append("")
        lines.append(f"{threads} thread(s); whole forward pass, ours: median {ours['median_ms']:.2f} ms")
        lines.append(f"{'block':12} {'ours ms':>9} {'ORT ms':>9} {'ours/ORT':>9}")
        tot = [0.0, 0.0]
        for block, (a, b) in blocks.items():
            tot[0] += a
            tot[1] += b
            ratio = f"{a / b:9.2f}" if b > 0 else f"{'-':>9}"
            lines.append(f"{block:12} {a:9.3f} {b:9.3f} {ratio}")
        lines.append(f"{'sum':12} {tot[0]:9.3f} {tot[1]:9.3f} {tot[0] / tot[1]:9.2f}")
    print("\n".join(lines))
    return 0


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.rss_child:
        rss_child(*args.rss_child)
        return 0
    ensure_venv(sys.argv[1:] if argv is None else argv)
    ensure_packages()
    sys.path.insert(0, TOOLS_DIR)
    import torch
    import resnet_spec as R

    load_before = load_average()
    if load_before > 0.5:
        log(f"warning: load average {load_before:.2f}: other processes are running; timings will be noisy")
    cache = os.path.join(target_dir(), "resnet-bench", "onnx")
    os.makedirs(cache, exist_ok=True)
    protocol = Protocol(args.warmup, args.runs, args.min_runs, args.min_time, args.max_runs)
    rounds = protocol.rounds(args.rounds)

    log("building resnet-bench (cargo build --release -p resnet-bench --features embedded --bins)")
    run_checked(["cargo", "build", "--release", "--quiet", "-p", "resnet-bench", *CARGO_FEATURES, "--bins"],
                cwd=REPO_DIR)
    if args.layers:
        return per_block(args, cache, protocol)
    log("measuring the FMA peak (resnet-bench --peak-only)")
    peak = cargo_bench(["--peak-only"], timeout=600)

    def peak_for(threads: int) -> float:
        cores = peak.get("all_cores")
        if cores and cores[0] == threads:
            return cores[1]
        return peak["per_core"] * threads

    rows = []
    machine = None
    torch.set_num_interop_threads(1)
    for model in args.models:
        torch_m = torch_model(model) if args.torch else None
        for batch in args.batch:
            path = onnx_path(cache, model, batch)
            x = R.synthetic_input(spec_at_batch(model, batch), SEED)
            for threads in args.threads:
                row, machine = bench_row(model, batch, threads, path, x, torch_m, rounds, first=len(rows) % 2)
                rows.append(row)
                log(f"{model} batch {batch}, {threads} thread(s): ours {row['ours_ms']['median']:.2f} ms, "
                    f"ORT {row['ort_ms']['median']:.2f} ms, ours/ORT {row['ratio']:.2f}, "
                    f"max rel diff {row['max_rel_diff_ours_vs_ort']:.1e}")

    rss = None if args.no_rss else measure_rss(cache)

    # --- report ---
    ver = versions()
    out = []
    out.append(f"machine: {cpu_model()}, {os.cpu_count()} CPUs ({', '.join(machine['simd'])}); "
               f"{platform.system()} {platform.release()}")
    out.append(f"versions: resnetc {git_state()}, {machine['rustc']}; onnxruntime {ver['onnxruntime']} "
               f"(CPUExecutionProvider), onnx {ver['onnx']} (opset {OPSET}), torch {ver['torch']}, "
               f"torchvision {ver['torchvision']}, numpy {ver['numpy']}, Python {ver['python']}")
    cores = f", {peak['all_cores'][1]:.1f} on {peak['all_cores'][0]}" if peak.get("all_cores") else ""
    out.append(f"FMA peak ({peak['source']}): {peak['per_core']:.1f} GFLOP/s on 1 core{cores}")
    out.append(f"protocol, per row and side: {protocol.describe()}, in {args.rounds} round(s) alternating who "
               f"goes first, each round after {args.warmup} warm-up runs; median and min over all timed runs")
    out.append(f"load average (1 min) before: {load_before:.2f}, after: {load_average():.2f} "
               "(other processes on the machine make the numbers noisier)")
    out.append("")
    head = (f"{'model':<16} {'batch':>5} {'thr':>3}  {'ours ms':>9} {'(min)':>9}  {'ORT ms':>9} {'(min)':>9}"
            f"  {'ours/ORT':>8}")
    if args.torch:
        head += f"  {'torch ms':>9}"
    head += f"  {'ours %pk':>8} {'ORT %pk':>8}  {'max rel diff':>12}"
    out.append(head)
    for r in rows:
        def pct(ms: float) -> float:
            return 100 * 2.0 * r["macs"] / (ms * 1e6) / peak_for(r["threads"])
        line = (f"{r['model']:<16} {r['batch']:>5} {r['threads']:>3}  {fmt_ms(r['ours_ms']['median']):>9} "
                f"{fmt_ms(r['ours_ms']['min']):>9}  {fmt_ms(r['ort_ms']['median']):>9} "
                f"{fmt_ms(r['ort_ms']['min']):>9}  {r['ratio']:>8.2f}")
        if args.torch:
            line += f"  {fmt_ms(r['torch_ms']['median']):>9}"
        line += (f"  {pct(r['ours_ms']['median']):>8.1f} {pct(r['ort_ms']['median']):>8.1f}"
                 f"  {r['max_rel_diff_ours_vs_ort']:>12.1e}")
        out.append(line)
    ratios = [r["ratio"] for r in rows]
    faster = sum(1 for v in ratios if v < 1)
    out.append("")
    out.append(f"ours/ORT below 1 means ours is faster: {faster} of {len(rows)} rows; geometric mean of "
               f"ours/ORT {math.exp(sum(math.log(v) for v in ratios) / len(ratios)):.2f}")
    out.append("%pk = 2 * MACs (direct convolution) / median / FMA peak of `thr` cores; max rel diff = "
               "max|ours - ORT| / max|ORT| over all logits of the batch")
    worst = max(r["max_rel_diff_ours_vs_ort"] for r in rows)
    if args.torch:
        out.append(f"ORT vs torch eager: max rel diff {max(r['max_rel_diff_ort_vs_torch'] for r in rows):.1e}")
    if rss:
        out.append("")
        out.append("peak RSS of one resnet50 inference (batch 1), /usr/bin/time -v, nothing subtracted:")
        for entry in rss:
            out.append(f"  {entry['max_rss_kib'] / 1024:>8.1f} MiB  {entry['what']}")
    print("\n".join(out))

    if args.save:
        with open(args.save, "w") as f:
            json.dump({"machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), **machine},
                       "versions": {**ver, "resnetc": git_state()}, "peak": peak,
                       "protocol": {"rounds": args.rounds, **vars(protocol)}, "rows": rows, "rss": rss},
                      f, indent=1)
            f.write("\n")
    if worst > AGREEMENT:
        print(f"error: ours and ORT disagree: max rel diff {worst:.2e} > {AGREEMENT:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
