#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 60) and prints its executions and findings.
# Needs nightly and cargo-fuzz: `cargo install cargo-fuzz`. Corpora start from specs/ and
# from small real state dicts (the tiny test model's synthetic weights, whole and damaged).
# Crashes land in fuzz/artifacts/<target>/; each becomes a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"

mkdir -p fuzz/corpus/spec fuzz/corpus/weights fuzz/corpus/runtime_load
cp specs/*.yaml tests/specs/*.yaml tests/bad_specs/*.yaml fuzz/corpus/spec/
# A real state dict for the tiny model (tools/README.md sets up the venv); without it the
# weight targets start from nothing and take longer to find the format.
if [ -x tools/.venv/bin/python ]; then
    tools/.venv/bin/python tools/convert_checkpoint.py --synthetic tests/ui/data/tiny.yaml --seed 0 \
        -o fuzz/corpus/weights/tiny.safetensors >/dev/null
    cp fuzz/corpus/weights/tiny.safetensors fuzz/corpus/runtime_load/
fi

for target in spec weights runtime_load; do
    log="$(mktemp)"
    cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$seconds" -print_final_stats=1 \
        >"$log" 2>&1 || true
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    crashes=$(ls "fuzz/artifacts/$target" 2>/dev/null | wc -l)
    echo "$target: $execs executions in ${seconds}s, $crashes crash artifacts"
    grep -E '^==[0-9]+==ERROR|panicked at' "$log" | head -3 || true
    rm -f "$log"
done
