//! `rss-embedded`: one forward pass (batch 1, the synthetic input, seed 0) of resnet50 with
//! its weights folded and packed by `build.rs` (`resnet_compiler::build::Builder`, synthetic
//! weights of seed 0) and embedded in the binary; for `/usr/bin/time -v`
//! (`tools/bench_ort.py`), whose "Maximum resident set size" is then the footprint of
//! weights + arena + code, with nothing read or folded at run time.
//!
//! Built only with the `embedded` feature: packing 25 M parameters and embedding a 100 MB
//! blob is too slow for every `cargo test` (see `Cargo.toml`).
//!
//! Prints the sum of the logits and how far they are from torchvision's
//! (`tests/expected/resnet50.safetensors`); fails above the tolerance.

use std::process::ExitCode;

use resnet_bench::expected;

/// resnet50 with embedded weights, as `build.rs` wrote it.
#[allow(dead_code)] // Not every generated item is used here.
mod resnet50 {
    include!(concat!(env!("OUT_DIR"), "/resnet50.rs"));
}

fn main() -> ExitCode {
    let input: Box<[f32; resnet50::INPUT_LEN]> =
        match resnet_compiler::synth::input(&resnet50::INPUT_SHAPE, 0)
            .into_boxed_slice()
            .try_into()
        {
            Ok(input) => input,
            Err(_) => {
                eprintln!("error: the synthetic input does not have INPUT_LEN values");
                return ExitCode::FAILURE;
            }
        };
    let mut output = Box::new([0.0f32; resnet50::OUTPUT_LEN]);
    let mut arena = resnet_runtime::zeroed_box::<resnet50::Arena>();
    resnet50::forward(&input, &mut output, &mut arena);
    let sum: f64 = output.iter().map(|&v| f64::from(v)).sum();
    println!("resnet50 (embedded): sum of the logits {sum:.6}");
    match expected::vs_torchvision("resnet50", &output[..]) {
        Ok(Some(d)) if d > expected::TOLERANCE => {
            eprintln!(
                "error: the logits differ from torchvision's by {d:.2e} (tolerance {:.0e})",
                expected::TOLERANCE
            );
            ExitCode::FAILURE
        }
        Ok(Some(d)) => {
            println!("max rel diff vs torchvision {d:.1e}");
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("no tests/expected/resnet50.safetensors to compare with");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
