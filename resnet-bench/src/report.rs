//! The results: one [`Row`] per (model, batch, threads), as text tables or JSON (the JSON is
//! what `tools/bench_ort.py` reads).

use std::fmt::Write as _;

use serde::Serialize;

use crate::machine::Machine;
use crate::measure::{Protocol, Times};
use crate::peak::Peak;

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where.
    pub machine: Machine,
    /// The FMA peak the "% of peak" column divides by.
    pub peak: Option<Peak>,
    /// Why there is no peak, when there is none.
    #[serde(skip)]
    pub no_peak: String,
    /// How many runs.
    pub protocol: ProtocolReport,
    /// The results.
    pub rows: Vec<Row>,
}

/// [`Protocol`] in plain numbers.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolReport {
    /// Untimed runs per row.
    pub warmup: usize,
    /// Fixed timed runs per row, if fixed.
    pub runs: Option<usize>,
    /// Otherwise at least this many...
    pub min_runs: usize,
    /// ...and this many seconds...
    pub min_time_s: f64,
    /// ...and at most this many.
    pub max_runs: usize,
}

impl From<&Protocol> for ProtocolReport {
    fn from(p: &Protocol) -> ProtocolReport {
        ProtocolReport {
            warmup: p.warmup,
            runs: p.runs,
            min_runs: p.min_runs,
            min_time_s: p.min_time.as_secs_f64(),
            max_runs: p.max_runs,
        }
    }
}

/// One (model, batch, threads).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// torchvision's name.
    pub model: &'static str,
    /// Images per forward pass.
    pub batch: usize,
    /// Threads per conv.
    pub threads: usize,
    /// Multiply-accumulates per forward pass, convolutions counted as direct convolutions.
    pub macs: u64,
    /// Untimed runs.
    pub warmup: usize,
    /// Timed runs.
    pub runs: usize,
    /// Median forward pass, ms.
    pub median_ms: f64,
    /// Fastest forward pass, ms.
    pub min_ms: f64,
    /// `2 * macs / median`, GFLOP/s.
    pub gflops: f64,
    /// The FMA peak of `threads` cores, GFLOP/s.
    pub peak_gflops: Option<f64>,
    /// `gflops / peak_gflops`, percent.
    pub peak_percent: Option<f64>,
    /// `max|ours - torchvision| / max|torchvision|` on the first image's logits.
    pub max_rel_diff_torchvision: Option<f64>,
    /// Allocations (all threads) during the timed runs, when counted: 0 is the contract.
    pub allocations: Option<u64>,
    /// Every timed run, ms, in order.
    pub times_ms: Vec<f64>,
    /// Per kernel call, with `--layers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerRow>>,
    /// The output of the last run, with `--outputs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Vec<f32>>,
}

impl Row {
    /// A row from its timed runs; `peak` is the FMA peak of `threads` cores.
    pub fn new(
        model: &'static str,
        batch: usize,
        threads: usize,
        macs: u64,
        warmup: usize,
        times: Times,
        peak: Option<f64>,
    ) -> Row {
        let median_ms = times.median();
        let gflops = 2.0 * macs as f64 / (median_ms * 1e6);
        Row {
            model,
            batch,
            threads,
            macs,
            warmup,
            runs: times.0.len(),
            median_ms,
            min_ms: times.min(),
            gflops,
            peak_gflops: peak,
            peak_percent: peak.map(|p| 100.0 * gflops / p),
            max_rel_diff_torchvision: None,
            allocations: None,
            times_ms: times.0,
            layers: None,
            output: None,
        }
    }
}

/// One kernel call of a `--layers` table.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    /// Position in the forward pass.
    pub index: usize,
    /// The torchvision modules it covers.
    pub name: &'static str,
    /// How it computes: `winograd`, `direct` (conv), `linear` or `pool`.
    pub algorithm: &'static str,
    /// Its multiply-accumulates as a direct convolution (0 for pools).
    pub macs: u64,
    /// Its median time, ms.
    pub median_ms: f64,
    /// Its share of the sum of all calls' medians, percent.
    pub percent: f64,
    /// `2 * macs / median`, GFLOP/s (none for pools): for Winograd calls, more than the
    /// multiplies they do.
    pub gflops: Option<f64>,
}

impl LayerRow {
    /// The rows of one table, from each call's times.
    pub fn table(
        names: &'static [&'static str],
        algorithms: &[&'static str],
        macs: &[u64],
        times: &[Times],
    ) -> Vec<LayerRow> {
        let medians: Vec<f64> = times.iter().map(Times::median).collect();
        let total: f64 = medians.iter().sum();
        names
            .iter()
            .zip(macs)
            .zip(medians)
            .enumerate()
            .map(|(index, ((&name, &macs), median_ms))| LayerRow {
                index,
                name,
                algorithm: algorithms.get(index).copied().unwrap_or("?"),
                macs,
                median_ms,
                percent: 100.0 * median_ms / total,
                gflops: (macs > 0 && median_ms > 0.0).then(|| 2.0 * macs as f64 / (median_ms * 1e6)),
            })
            .collect()
    }
}

/// The stage a kernel call belongs to: `layerN` for a call inside stage N, `stem` before the
/// first stage, `head` after the last.
fn stage(name: &str, seen_stage: bool) -> &str {
    match name.split_once('.') {
        Some((first, _)) if first.starts_with("layer") => first,
        _ if seen_stage => "head",
        _ => "stem",
    }
}

impl Report {
    /// The report as text: the machine, the peak, the protocol, per-layer tables (with
    /// `--layers`), then one line per row.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "resnet-bench {}: the generated Rust of resnetc, weights loaded at run time (synthetic, seed 0)",
            m.resnet_bench
        );
        let _ = writeln!(
            s,
            "machine: {}, {} CPUs ({}); {}; conv kernels: {}",
            m.cpu,
            m.cpus,
            m.simd.join(", "),
            m.rustc,
            m.isa
        );
        if let Some(load) = m.load_average {
            let _ = writeln!(
                s,
                "load average (1 min) at the start: {load:.2}{}",
                if load > 0.5 {
                    " (other processes are running: the timings are noisier)"
                } else {
                    ""
                }
            );
        }
        match &self.peak {
            None => {
                let _ = writeln!(s, "FMA peak: {}", self.no_peak);
            }
            Some(p) => s.push_str(&peak_text(p)),
        }
        let p = &self.protocol;
        let runs = match p.runs {
            Some(n) => format!("{n} timed runs"),
            None => format!(
                "timed runs until at least {} and {} s (at most {})",
                p.min_runs, p.min_time_s, p.max_runs
            ),
        };
        let _ = writeln!(
            s,
            "protocol: per row, {} warm-up run(s), then {runs}; median and min\n",
            p.warmup
        );
        for row in &self.rows {
            if let Some(layers) = &row.layers {
                layer_table(&mut s, row, layers);
            }
        }
        let _ = writeln!(
            s,
            "{:<16} {:>5} {:>7} {:>7} {:>5} {:>10} {:>10} {:>8} {:>6} {:>14} {:>6}",
            "model",
            "batch",
            "threads",
            "GMACs",
            "runs",
            "median ms",
            "min ms",
            "GFLOP/s",
            "% peak",
            "vs torchvision",
            "allocs"
        );
        for r in &self.rows {
            let peak = r.peak_percent.map_or_else(|| "-".into(), |p| format!("{p:.1}"));
            let diff = r
                .max_rel_diff_torchvision
                .map_or_else(|| "-".into(), |d| format!("{d:.1e}"));
            let allocs = r.allocations.map_or_else(|| "-".into(), |a| a.to_string());
            let _ = writeln!(
                s,
                "{:<16} {:>5} {:>7} {:>7.2} {:>5} {:>10.2} {:>10.2} {:>8.1} {:>6} {:>14} {:>6}",
                r.model,
                r.batch,
                r.threads,
                r.macs as f64 / 1e9,
                r.runs,
                r.median_ms,
                r.min_ms,
                r.gflops,
                peak,
                diff,
                allocs
            );
        }
        let _ = writeln!(
            s,
            "\nGFLOP/s = 2 * MACs / median, MACs counting each convolution as a direct convolution; \
             % peak = GFLOP/s / FMA peak of `threads` cores\n(Winograd layers do fewer multiplies than \
             that count, so their GFLOP/s can exceed what the FMA units do); vs torchvision = max|ours - torchvision| \
             / max|torchvision| on the first image's logits (tests/expected);\nallocs = allocations \
             (all threads) during the timed runs."
        );
        s
    }
}

/// The peak in one line.
pub fn peak_text(p: &Peak) -> String {
    let mut s = format!("FMA peak, {}: {:.1} GFLOP/s on 1 core", p.source, p.per_core);
    if let Some((n, g)) = p.all_cores {
        let _ = write!(s, ", {g:.1} on {n}");
    }
    s.push('\n');
    s
}

/// One `--layers` table and its per-stage totals.
fn layer_table(s: &mut String, row: &Row, layers: &[LayerRow]) {
    let width = layers.iter().map(|l| l.name.len()).max().unwrap_or(0).max(11);
    let total_ms: f64 = layers.iter().map(|l| l.median_ms).sum();
    let total_macs: u64 = layers.iter().map(|l| l.macs).sum();
    let _ = writeln!(
        s,
        "{}, batch {}, {} thread{}: each kernel call, median over {} runs (whole forward: median {:.2} ms)",
        row.model,
        row.batch,
        row.threads,
        if row.threads == 1 { "" } else { "s" },
        row.runs,
        row.median_ms
    );
    let _ = writeln!(
        s,
        "{:>4}  {:<width$}  {:<8}  {:>9}  {:>9}  {:>7}  {:>8}",
        "#", "kernel call", "kernel", "MMACs", "median ms", "% total", "GFLOP/s"
    );
    for l in layers {
        let gflops = l.gflops.map_or_else(|| "-".into(), |g| format!("{g:.1}"));
        let _ = writeln!(
            s,
            "{:>4}  {:<width$}  {:<8}  {:>9.1}  {:>9.3}  {:>7.1}  {:>8}",
            l.index,
            l.name,
            l.algorithm,
            l.macs as f64 / 1e6,
            l.median_ms,
            l.percent,
            gflops
        );
    }
    let _ = writeln!(
        s,
        "{:>4}  {:<width$}  {:<8}  {:>9.1}  {:>9.3}  {:>7.1}  {:>8.1}",
        "",
        "sum of the medians",
        "",
        total_macs as f64 / 1e6,
        total_ms,
        100.0,
        2.0 * total_macs as f64 / (total_ms * 1e6)
    );
    // Per stage: where the milliseconds go at a glance.
    let mut stages: Vec<(&str, f64, u64)> = Vec::new();
    let mut seen_stage = false;
    for l in layers {
        let st = stage(l.name, seen_stage);
        seen_stage |= st.starts_with("layer");
        match stages.last_mut() {
            Some((name, ms, macs)) if *name == st => {
                *ms += l.median_ms;
                *macs += l.macs;
            }
            _ => stages.push((st, l.median_ms, l.macs)),
        }
    }
    let _ = writeln!(s, "by stage:");
    for (name, ms, macs) in stages {
        let g = if ms > 0.0 {
            2.0 * macs as f64 / (ms * 1e6)
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "{:>4}  {name:<8} {ms:>9.3} ms  {:>5.1}%  {g:>6.1} GFLOP/s",
            "",
            100.0 * ms / total_ms
        );
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_of_kernel_calls() {
        let names = [
            "conv1 + bn1 + relu",
            "maxpool",
            "layer1.0.conv1 + bn1",
            "layer4.1.conv2",
            "avgpool",
            "fc",
        ];
        let mut seen = false;
        let got: Vec<&str> = names
            .iter()
            .map(|n| {
                let st = stage(n, seen);
                seen |= st.starts_with("layer");
                st
            })
            .collect();
        assert_eq!(got, ["stem", "stem", "layer1", "layer4", "head", "head"]);
    }

    #[test]
    fn layer_shares_add_up() {
        let times = [Times(vec![1.0, 3.0]), Times(vec![2.0]), Times(vec![4.0])];
        let rows = LayerRow::table(
            &["a", "b", "c"],
            &["direct", "pool", "winograd"],
            &[1_000_000, 0, 2_000_000],
            &times,
        );
        assert_eq!(rows[0].median_ms, 2.0);
        assert_eq!(rows[1].gflops, None);
        let sum: f64 = rows.iter().map(|r| r.percent).sum();
        assert!((sum - 100.0).abs() < 1e-9);
        assert_eq!(rows[2].gflops, Some(1.0));
        assert_eq!(rows[2].algorithm, "winograd");
    }
}
