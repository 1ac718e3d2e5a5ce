//! The C back end on the host: the emitted C, compiled with `cc -std=c99 -Wall -Wextra -Werror
//! -pedantic` and run by a small harness, must agree with torchvision (the same tolerance as the
//! Rust back end) and give the same bits as the Rust runtime's portable kernels on the same
//! Program and blob (same accumulation order, no contraction under `-std=c99`). The generated
//! Rust runs the SIMD kernels where the CPU has them (fused multiply-adds, other bits) and
//! Winograd for some 3x3 convs; the C runs neither.

use std::path::{Path, PathBuf};
use std::process::Command;

use resnet_compiler::build::WeightsSource;
use resnet_compiler::interp::{Kernels, run_program_on};

use crate::numerics::{compare, input};

/// Reads the input from argv[1] and writes the output to argv[2], as raw floats; checks the
/// error codes of bad arguments on the way.
const HARNESS: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include "MODEL.h"

int main(int argc, char **argv)
{
    static float input[PREFIX_INPUT_LEN], output[PREFIX_OUTPUT_LEN];
    unsigned char *raw;
    void *arena;
    FILE *f;
    int rc;
    if (argc != 3)
        return 10;
    raw = malloc(PREFIX_ARENA_BYTES + PREFIX_ARENA_ALIGN + 1);
    if (raw == NULL)
        return 11;
    arena = raw + (PREFIX_ARENA_ALIGN - (uintptr_t)raw % PREFIX_ARENA_ALIGN);
    f = fopen(argv[1], "rb");
    if (f == NULL || fread(input, sizeof(float), PREFIX_INPUT_LEN, f) != PREFIX_INPUT_LEN)
        return 12;
    fclose(f);
    if (MODEL_forward(input, output, NULL) != 1 || MODEL_forward(input, output, (char *)arena + 1) != 2)
        return 13;
    rc = MODEL_forward(input, output, arena);
    if (rc != 0)
        return 20 + rc;
    f = fopen(argv[2], "wb");
    if (f == NULL || fwrite(output, sizeof(float), PREFIX_OUTPUT_LEN, f) != PREFIX_OUTPUT_LEN)
        return 14;
    fclose(f);
    free(raw);
    return 0;
}
"#;

fn cc(args: &[&str], cwd: &Path) {
    let out = Command::new("cc")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "cc {}:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Emits, compiles and runs the C for `spec`; returns its output.
fn run_c(spec: &str, case: &str) -> Vec<f32> {
    run_c_with(spec, case, &[])
}

/// As [`run_c`], with extra compiler flags for the model and the harness.
fn run_c_with(spec: &str, case: &str, flags: &[&str]) -> Vec<f32> {
    let dir: PathBuf = std::env::temp_dir().join(format!("resnetc-c-{case}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let written = resnet_compiler::build::write_c(
        &crate::root().join(spec),
        &WeightsSource::Synthetic(0),
        &dir,
        &resnet_compiler::Options::default(),
    )
    .unwrap();
    let name = written[0].file_stem().unwrap().to_string_lossy().into_owned();
    let harness = HARNESS
        .replace("MODEL", &name)
        .replace("PREFIX", &name.to_uppercase());
    std::fs::write(dir.join("main.c"), harness).unwrap();
    let strict = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"];
    let model_c = format!("{name}.c");
    let weights_c = format!("{name}_weights.c");
    cc(
        &[&strict[..], flags, &["-O2", "-c", &model_c, "-o", "model.o"]].concat(),
        &dir,
    );
    // The weights are data: optimizing them gains nothing and costs minutes on resnet50.
    cc(
        &[&strict[..], &["-O0", "-c", &weights_c, "-o", "weights.o"]].concat(),
        &dir,
    );
    let link = ["main.c", "model.o", "weights.o", "-o", "model"];
    cc(&[&["-std=c99", "-O2"][..], flags, &link].concat(), &dir);

    let x = input(spec, case);
    std::fs::write(
        dir.join("in.bin"),
        x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    let status = Command::new(dir.join("model"))
        .args(["in.bin", "out.bin"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "{case}: the harness exited with {status}");
    let y: Vec<f32> = std::fs::read(dir.join("out.bin"))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    y
}

/// The Rust runtime's portable kernels on the Program and blob the C is emitted from.
fn portable_output(spec: &str, case: &str) -> Vec<f32> {
    let s = resnet_compiler::build::read_spec(&crate::root().join(spec)).unwrap();
    let options = resnet_compiler::Options {
        winograd: false,
        ..Default::default()
    };
    let c = resnet_compiler::compile(&s, &options).unwrap();
    let blob = resnet_compiler::build::packed_weights(&c, &WeightsSource::Synthetic(0)).unwrap();
    run_program_on(&c.program, &blob, &input(spec, case), Kernels::Portable)
}

fn check(spec: &str, case: &str) {
    let c = run_c(spec, case);
    compare(spec, case, &c);
    let rust = portable_output(spec, case);
    assert_eq!(c.len(), rust.len());
    let same = c
        .iter()
        .zip(&rust)
        .filter(|(a, b)| a.to_bits() == b.to_bits())
        .count();
    assert_eq!(
        same,
        c.len(),
        "{case}: {} of {} outputs differ from the portable Rust kernels' bits",
        c.len() - same,
        c.len()
    );
}

#[test]
fn c_resnet8_cifar() {
    check("specs/resnet8_cifar.yaml", "resnet8_cifar");
}

#[test]
fn c_resnet20_cifar() {
    check("specs/resnet20_cifar.yaml", "resnet20_cifar");
}

#[test]
fn c_resnet18() {
    check("specs/resnet18.yaml", "resnet18");
}

#[test]
fn c_resnet50() {
    check("specs/resnet50.yaml", "resnet50");
}

/// Features heads are covered by `properties.rs` (random specs, through the C too), at a
/// fraction of the cost of compiling resnet18's weights once more.
#[test]
fn c_batches_and_groups() {
    check("tests/specs/resnet8_cifar_b2.yaml", "resnet8_cifar_b2");
    check("tests/specs/resnext_tiny.yaml", "resnext_tiny");
}

/// AddressSanitizer and UndefinedBehaviorSanitizer over the emitted code of the small specs
/// (every kernel, every tail, the in-place residuals): any report fails the run.
#[test]
fn c_under_sanitizers() {
    let flags = [
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
        "-g",
    ];
    for (spec, case) in [
        ("specs/resnet8_cifar.yaml", "resnet8_cifar"),
        ("specs/resnet20_cifar.yaml", "resnet20_cifar"),
        ("tests/specs/resnext_tiny.yaml", "resnext_tiny"),
        ("tests/specs/resnet8_cifar_b2.yaml", "resnet8_cifar_b2"),
    ] {
        let y = run_c_with(spec, case, &flags);
        compare(spec, case, &y);
    }
}
