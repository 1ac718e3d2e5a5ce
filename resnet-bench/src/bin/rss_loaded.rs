//! `rss-loaded MODEL FILE.safetensors`: one forward pass (batch 1, the synthetic input, seed 0)
//! of a benchmarked model whose weights are read from a torchvision `state_dict` at run time,
//! checked, folded and packed; for `/usr/bin/time -v` (`tools/bench_ort.py`), whose "Maximum
//! resident set size" is then the peak of the run-time loading path: the file's bytes, the
//! tensors in f64 while folding and the packed weights are briefly held together.
//!
//! Prints the sum of the logits and how far the first image's logits are from torchvision's
//! (`tests/expected/MODEL.safetensors`, for the synthetic weights of seed 0); fails above the
//! tolerance, so that a footprint is never reported for a wrong answer.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use resnet_bench::expected;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, file] = args.as_slice() else {
        bail!(
            "usage: rss-loaded MODEL FILE.safetensors (MODEL: one of {})",
            resnet_bench::models::names().join(", ")
        );
    };
    let model = resnet_bench::models::find(model, 1).with_context(|| {
        format!(
            "unknown model `{model}`; rss-loaded has {}",
            resnet_bench::models::names().join(", ")
        )
    })?;
    let prepared = model.prepare()?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    let mut net = model.load(&bytes, &prepared.input)?;
    // The file is no longer needed once packed, as in a program that loads and then serves.
    drop(bytes);
    net.forward();
    let output = net.output();
    let sum: f64 = output.iter().map(|&v| f64::from(v)).sum();
    println!("{}: sum of the logits {sum:.6}", model.name);
    match expected::vs_torchvision(model.name, output)? {
        Some(d) if d > expected::TOLERANCE => bail!(
            "{}: the logits differ from torchvision's by {d:.2e} (tolerance {:.0e}); were the \
             weights the synthetic ones of seed 0?",
            model.name,
            expected::TOLERANCE
        ),
        Some(d) => println!("max rel diff vs torchvision {d:.1e}"),
        None => println!("no tests/expected/{}.safetensors to compare with", model.name),
    }
    Ok(())
}
