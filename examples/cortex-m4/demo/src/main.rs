//! `cortex-m4-demo`: the CIFAR ResNets on a Cortex-M4 under QEMU, in C and in Rust.
//!
//! ```text
//! cargo run --release -p cortex-m4-demo
//! ```
//!
//! Builds and runs both specs in both languages and prints one table: flash (code, weights),
//! RAM (arena, stack, input and output, the rest), instructions per inference and agreement
//! with the host. Needs `arm-none-eabi-gcc`, newlib, `qemu-system-arm` and the Rust target
//! `thumbv7em-none-eabihf`: installs them when it can (as root with apt-get, and rustup), as
//! `.ci/run` does, and otherwise says how to install whichever is missing.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args_os().len() > 1 {
        eprintln!("usage: cortex-m4-demo (no arguments; see examples/cortex-m4/README.md)");
        return ExitCode::from(2);
    }
    let options = cortex_m4_demo::Options::default();
    let mut say = |step: &str| eprintln!("{step}");
    let mut result = cortex_m4_demo::run(&options, &mut say);
    if matches!(result, Err(cortex_m4_demo::Error::MissingTools { .. }))
        && cortex_m4_demo::tools::install(&mut say)
    {
        result = cortex_m4_demo::run(&options, &mut say);
    }
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
