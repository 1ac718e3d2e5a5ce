//! Writes what the firmware embeds, for each spec it runs: the synthetic torchvision
//! `state_dict` (seed 0) that `resnet!` reads from `$OUT_DIR`, folds and packs, and the
//! synthetic input (seed 0), as little-endian `f32`. They are the weights and the input that
//! `tools/gen_expected.py` gave torchvision and that the host reference uses.
//!
//! Also hands cortex-m-rt its memory map (`memory.x`) and linker script (`link.x`).

use std::path::{Path, PathBuf};

/// The specs with a binary in `src/bin/`, relative to this crate.
const SPECS: [&str; 2] = [
    "../../../specs/resnet8_cifar.yaml",
    "../../../specs/resnet20_cifar.yaml",
];

fn main() {
    if let Err(e) = run() {
        // A build script reports by exiting; `cargo:warning` would be easy to miss.
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set: build with Cargo")?);
    for spec in SPECS {
        println!("cargo:rerun-if-changed={spec}");
        let text = std::fs::read_to_string(spec).map_err(|e| format!("cannot read {spec}: {e}"))?;
        let spec = resnet_compiler::spec::parse_yaml(&text, spec).map_err(|e| e.to_string())?;
        let c = resnet_compiler::compile(&spec, &resnet_compiler::Options::default())
            .map_err(|e| e.to_string())?;
        let weights = resnet_compiler::weights::synthetic_safetensors(&c.graph, 0);
        write(&out.join(format!("{}.safetensors", spec.name)), &weights)?;
        let input: Vec<u8> = resnet_compiler::synth::input(&spec.input, 0)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write(&out.join(format!("{}.input", spec.name)), &input)?;
    }

    // cortex-m-rt's link.x includes memory.x, found through the linker's search path.
    write(&out.join("memory.x"), include_bytes!("memory.x"))?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    Ok(())
}

/// Writes `bytes` unless the file already holds them, so that Cargo does not rebuild the
/// firmware (and refold the weights) for nothing.
fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
