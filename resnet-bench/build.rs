//! Writes into `OUT_DIR` what the benchmarks compile besides `specs/`:
//!
//! - `<model>_b8.yaml` for each benchmarked model: its spec with `input: [8, C, H, W]`, since
//!   the batch is part of a spec's static shape; `src/models.rs` compiles them with
//!   `resnet!` from `$OUT_DIR`.
//! - with the `embedded` feature, `resnet50.rs` and its weight blob, through the build-script
//!   path with synthetic weights: the `rss-embedded` binary, whose peak RSS is the real
//!   footprint of weights + arena + code.
//!
//! It also records the compiler's version (`RESNET_BENCH_RUSTC`) for the reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The models benchmarked at batch 8 (the same list as `src/models.rs`).
const MODELS: [&str; 4] = ["resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2"];

/// The larger batch.
const BATCH: usize = 8;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = std::process::Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "rustc (unknown version)".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        );
    println!("cargo:rustc-env=RESNET_BENCH_RUSTC={version}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    for model in MODELS {
        let path = format!("../specs/{model}.yaml");
        println!("cargo:rerun-if-changed={path}");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let batched = with_batch(&text, &path, model, BATCH)?;
        resnet_compiler::build::write_if_changed(
            &out.join(format!("{model}_b{BATCH}.yaml")),
            batched.as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    }
    if std::env::var_os("CARGO_FEATURE_EMBEDDED").is_some() {
        resnet_compiler::build::Builder::new("../specs/resnet50.yaml")
            .synthetic_weights(0)
            .write()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The spec `text` with batch `batch` and the name `<model>_b<batch>`: the top-level `name:`
/// and `input:` lines are replaced, everything else is kept as written, and the result is
/// validated so that a spec this edit does not understand fails here, not in the macro.
fn with_batch(text: &str, path: &str, model: &str, batch: usize) -> Result<String, String> {
    let spec = resnet_compiler::spec::parse_yaml(text, path).map_err(|e| e.to_string())?;
    let [_, c, h, w] = spec.input;
    let mut out = format!(
        "# {path} at batch {batch}, written by resnet-bench's build.rs\nname: {model}_b{batch}\ninput: [{batch}, {c}, {h}, {w}]\n"
    );
    for line in text.lines() {
        if !(line.starts_with("name:") || line.starts_with("input:")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    let written = Path::new(path).with_extension(format!("b{batch}.yaml"));
    let check = resnet_compiler::spec::parse_yaml(&out, &written.display().to_string())
        .map_err(|e| format!("the batch-{batch} edit of {path} is not a valid spec: {e}"))?;
    if check.input != [batch, c, h, w] || check.layers != spec.layers {
        return Err(format!(
            "the batch-{batch} edit of {path} changed more than the batch"
        ));
    }
    Ok(out)
}
