//! `resnet-bench`: see the library ([`resnet_bench`]) and the README's "Benchmarks" section.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = resnet_bench::Args::parse();
    match resnet_bench::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
