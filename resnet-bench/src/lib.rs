//! Benchmarks of the code `resnetc` generates: latency (median and min), GFLOP/s on the direct
//! convolution MACs and % of the measured FMA peak for resnet18, resnet50, resnext50_32x4d and
//! wide_resnet50_2 at batch 1 and 8, on 1 and 2 threads; and where each millisecond goes,
//! kernel call by kernel call (`--layers MODEL`). `tools/bench_ort.py` runs it beside ONNX
//! Runtime. Timings are reports, never assertions.
//!
//! The weights are torchvision-shaped synthetic ones (seed 0, as `tools/` gives torchvision),
//! loaded at run time: generated and packed once per (model, batch), before any timing.

pub mod alloc;
pub mod expected;
pub mod machine;
pub mod measure;
pub mod models;
pub mod peak;
pub mod report;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::machine::Machine;
use crate::measure::Protocol;
use crate::models::Model;
use crate::peak::Peak;
use crate::report::{LayerRow, Report, Row};

/// Benchmarks the generated Rust of four ResNets (run-time loaded synthetic weights).
#[derive(Debug, Parser)]
#[command(name = "resnet-bench", version)]
pub struct Args {
    /// Models, comma-separated [default: resnet18,resnet50,resnext50_32x4d,wide_resnet50_2]
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Batch sizes, of those compiled in (1, 8) [default: 1,8; with --layers: 1]
    #[arg(long, value_delimiter = ',')]
    pub batch: Vec<usize>,
    /// Thread counts [default: 1,2; with --layers: 1]
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Exactly this many timed runs per row (default: adaptive, see --min-runs and --min-time)
    #[arg(long)]
    pub runs: Option<usize>,
    /// Untimed runs before the timed ones, per row
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Without --runs: at least this many timed runs per row...
    #[arg(long, default_value_t = 5)]
    pub min_runs: usize,
    /// ...and at least this many seconds of them...
    #[arg(long, default_value_t = 2.0)]
    pub min_time: f64,
    /// ...but at most this many runs
    #[arg(long, default_value_t = 200)]
    pub max_runs: usize,
    /// FMA peak of one core, GFLOP/s (default: measured now with peak.c, which needs gcc)
    #[arg(long, value_name = "GFLOPS", conflicts_with = "no_peak")]
    pub peak: Option<f64>,
    /// No peak, no "% of peak" column
    #[arg(long)]
    pub no_peak: bool,
    /// Per kernel call table of this model: name, MACs, median ms, % of the total, GFLOP/s
    #[arg(long, value_name = "MODEL")]
    pub layers: Option<String>,
    /// Only measure (or print) the FMA peak, then exit
    #[arg(long, conflicts_with = "no_peak")]
    pub peak_only: bool,
    /// Conv kernels' instruction set: portable, avx2, avx512 or neon [default: the best this CPU has]
    #[arg(long, value_parser = parse_isa)]
    pub isa: Option<resnet_runtime::Isa>,
    /// Print JSON on stdout instead of tables
    #[arg(long)]
    pub json: bool,
    /// With --json, also the output (logits) of each row
    #[arg(long, requires = "json")]
    pub outputs: bool,
    /// No progress messages on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--isa`'s names.
fn parse_isa(name: &str) -> Result<resnet_runtime::Isa, String> {
    use resnet_runtime::Isa;
    match name {
        "portable" => Ok(Isa::Portable),
        "avx2" => Ok(Isa::Avx2Fma),
        "avx512" => Ok(Isa::Avx512),
        "neon" => Ok(Isa::Neon),
        _ => Err(format!("`{name}`: one of portable, avx2, avx512, neon")),
    }
}

/// What to benchmark, checked.
#[derive(Debug, Clone)]
struct Plan {
    models: Vec<&'static str>,
    batches: Vec<usize>,
    threads: Vec<usize>,
    protocol: Protocol,
    layers: bool,
}

impl Args {
    fn plan(&self) -> Result<Plan> {
        let known = models::names();
        let compiled = models::batches();
        let layers = self.layers.is_some();
        let requested: Vec<String> = match &self.layers {
            Some(model) if self.models.is_empty() => vec![model.clone()],
            Some(_) => bail!("--layers MODEL names the model; leave out --models"),
            None if self.models.is_empty() => known.iter().map(|s| s.to_string()).collect(),
            None => self.models.clone(),
        };
        let mut models = Vec::new();
        for m in &requested {
            let Some(&name) = known.iter().find(|k| **k == m.as_str()) else {
                bail!("unknown model `{m}`; resnet-bench has {}", known.join(", "));
            };
            models.push(name);
        }
        let default = |all: Vec<usize>| if layers { vec![1] } else { all };
        let batches = if self.batch.is_empty() {
            default(compiled.clone())
        } else {
            self.batch.clone()
        };
        if let Some(b) = batches.iter().find(|b| !compiled.contains(b)) {
            bail!(
                "batch {b} is not compiled in: shapes are static, and resnet-bench has batch {:?} \
                 (build.rs writes the batched specs)",
                compiled
            );
        }
        let threads = if self.threads.is_empty() {
            default(vec![1, 2])
        } else {
            self.threads.clone()
        };
        if threads.contains(&0) {
            bail!("--threads: a thread count is at least 1");
        }
        if !(self.min_time.is_finite() && self.min_time >= 0.0) {
            bail!("--min-time: {} is not a number of seconds", self.min_time);
        }
        if self.runs == Some(0) || self.max_runs == 0 {
            bail!("--runs and --max-runs: at least 1");
        }
        if let Some(p) = self.peak
            && !(p.is_finite() && p > 0.0)
        {
            bail!("--peak: {p} is not a positive GFLOP/s figure");
        }
        Ok(Plan {
            models,
            batches,
            threads,
            protocol: Protocol {
                warmup: self.warmup,
                runs: self.runs,
                min_runs: self.min_runs.max(1),
                min_time: Duration::from_secs_f64(self.min_time),
                max_runs: self.max_runs,
            },
            layers,
        })
    }
}

/// Runs the benchmark the arguments describe and prints its report.
pub fn run(args: &Args) -> Result<()> {
    let plan = args.plan()?;
    let progress = |msg: String| {
        if !args.quiet {
            eprintln!("{msg}");
        }
    };
    if let Some(isa) = args.isa
        && !resnet_runtime::set_isa(isa)
    {
        bail!("--isa: this CPU cannot run {isa:?}");
    }
    let machine = Machine::current();
    if let Some(&t) = plan.threads.iter().find(|&&t| t > machine.cpus) {
        progress(format!(
            "warning: {t} threads on {} CPUs: threads will share cores",
            machine.cpus
        ));
    }
    // Without a peak the timings still stand; only the "% of peak" column goes.
    let (peak, no_peak) = match (args.no_peak, args.peak) {
        (true, _) => (None, "not used (--no-peak)".to_owned()),
        (false, Some(p)) => (Some(Peak::given(p)), String::new()),
        (false, None) => {
            progress("measuring the FMA peak (peak.c)...".into());
            match Peak::measure() {
                Ok(p) => (Some(p), String::new()),
                Err(e) if !args.peak_only => {
                    progress(format!("warning: no FMA peak, no \"% peak\" column: {e:#}"));
                    (None, format!("not measured: {e}"))
                }
                Err(e) => return Err(e),
            }
        }
    };
    if args.peak_only {
        let peak = peak.context("unreachable: --peak-only conflicts with --no-peak")?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&peak)?);
        } else {
            print!("{}", report::peak_text(&peak));
        }
        return Ok(());
    }
    // `main.rs` makes the counting allocator global; a program that uses this library without
    // doing so gets no `allocs` column rather than zeros.
    let counting = alloc::counter_works();
    let mut rows = Vec::new();
    for &name in &plan.models {
        // One synthetic state_dict per model: parameter names and shapes do not depend on the batch.
        let mut safetensors: Option<Vec<u8>> = None;
        for &batch in &plan.batches {
            let model: &Model = models::find(name, batch)
                .with_context(|| format!("{name} at batch {batch} is not compiled in"))?;
            let prepared = model.prepare()?;
            let weights = match &safetensors {
                Some(w) => w,
                None => {
                    progress(format!("{name}: generating synthetic weights (seed 0)"));
                    safetensors.insert(resnet_compiler::weights::synthetic_safetensors(
                        &prepared.compilation.graph,
                        0,
                    ))
                }
            };
            progress(format!(
                "{name} batch {batch}: checking, folding and packing the weights"
            ));
            let mut net = model.load(weights, &prepared.input)?;
            for &threads in &plan.threads {
                resnet_runtime::threads::set_threads(threads);
                let (times, allocations, layers) = if plan.layers {
                    let t = measure::time_steps(net.as_mut(), &plan.protocol);
                    let algorithms = prepared.algorithms();
                    if algorithms.len() != net.steps().len() {
                        bail!(
                            "{name}: the compiled program has {} steps, the generated module {}",
                            algorithms.len(),
                            net.steps().len()
                        );
                    }
                    let layers = LayerRow::table(net.steps(), &algorithms, net.step_macs(), &t.steps);
                    (t.total, t.allocations, Some(layers))
                } else {
                    let (times, allocations) = measure::time_forward(net.as_mut(), &plan.protocol);
                    (times, allocations, None)
                };
                let vs_torchvision = expected::vs_torchvision(name, net.output())?;
                if let Some(d) = vs_torchvision
                    && d > expected::TOLERANCE
                {
                    progress(format!(
                        "warning: {name} batch {batch} on {threads} threads: the first image's logits differ \
                         from torchvision's by {d:.2e} (tolerance {:.0e})",
                        expected::TOLERANCE
                    ));
                }
                let mut row = Row::new(
                    name,
                    batch,
                    threads,
                    prepared.macs,
                    plan.protocol.warmup,
                    times,
                    peak.as_ref().map(|p| p.for_threads(threads)),
                );
                row.max_rel_diff_torchvision = vs_torchvision;
                row.allocations = counting.then_some(allocations);
                row.output = args.outputs.then(|| net.output().to_vec());
                row.layers = layers;
                progress(format!(
                    "{name} batch {batch}, {threads} thread(s): {} runs, median {:.2} ms",
                    row.runs, row.median_ms
                ));
                rows.push(row);
            }
        }
    }
    resnet_runtime::threads::set_threads(1);
    let report = Report {
        machine,
        peak,
        no_peak,
        protocol: report::ProtocolReport::from(&plan.protocol),
        rows,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(())
}
