//! `resnet-bench`: see the library ([`resnet_bench`]) and the README's "Benchmarks" section.

use std::process::ExitCode;

use clap::Parser;

/// Counts the allocations of the timed forward passes (the `allocs` column); counting is off,
/// and costs one relaxed atomic load per allocation, everywhere else.
#[global_allocator]
static GLOBAL: resnet_bench::alloc::Counting = resnet_bench::alloc::Counting;

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
