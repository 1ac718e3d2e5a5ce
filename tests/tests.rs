//! Integration tests of the whole workspace, in one test binary.

mod all_specs;
mod c_backend;
mod cli;
mod determinism;
mod embedded;
mod golden;
mod numerics;
mod properties;
mod spec_errors;
mod spec_fuzz;
mod threads;
mod torchvision_counts;
mod ui;

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every spec in `specs/`, sorted by file name.
pub fn specs() -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(root().join("specs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Lines as YAML counts them: `\r\n`, `\r` and `\n` each end one (`str::lines` does not
/// count a bare `\r`).
pub fn yaml_lines(text: &str) -> usize {
    text.replace("\r\n", "\n").matches(['\r', '\n']).count() + 1
}
