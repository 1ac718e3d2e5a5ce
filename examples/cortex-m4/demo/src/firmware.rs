//! The Rust images: `examples/cortex-m4/firmware`, one binary per spec, built by Cargo for
//! the Cortex-M4.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::RUST_TARGET;
use crate::{Error, Tools, command_output};

/// The firmware crate's manifest.
pub fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/Cargo.toml")
}

/// Builds every binary of the firmware in release mode into `target_dir`; returns the
/// directory holding them (named after the specs).
pub fn build(tools: &Tools, target_dir: &Path) -> Result<PathBuf, Error> {
    let mut cargo = Command::new(&tools.cargo);
    cargo
        .args([
            "build",
            "--release",
            "--bins",
            "--target",
            RUST_TARGET,
            "--manifest-path",
        ])
        .arg(manifest())
        .arg("--target-dir")
        .arg(target_dir);
    // Flags meant for the host (say, `-C target-cpu=native`) must not reach the Cortex-M4
    // build, nor a target directory other than the one given.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        cargo.env_remove(var);
    }
    command_output("cargo build (the Rust firmware)", &mut cargo)?;
    Ok(target_dir.join(RUST_TARGET).join("release"))
}
