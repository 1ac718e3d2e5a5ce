//! Whole models against torchvision itself: the outputs of the generated code, with the
//! synthetic weights and input that `tools/gen_expected.py` gave torchvision, must be within
//! 1e-4 of torchvision's (max |ours - theirs| / max |theirs|, per returned tensor).
//!
//! Every case runs through the run-time loading path (`resnet!` without `weights`); the
//! smaller ones also through the build-script path with embedded weights, which must give
//! the same bits (same blob, same kernels).

use resnet_compiler::{Options, compile, spec::parse_yaml, weights::synthetic_safetensors};
use safetensors::SafeTensors;

/// The tolerance the issue sets.
const TOLERANCE: f64 = 1e-4;

/// The spec, compiled.
fn compiled(spec: &str) -> resnet_compiler::Compilation {
    let path = crate::root().join(spec);
    let text = std::fs::read_to_string(&path).unwrap();
    compile(&parse_yaml(&text, spec).unwrap(), &Options::default()).unwrap()
}

/// The synthetic state_dict (seed 0) of `spec` as a safetensors file.
fn weights_file(spec: &str) -> Vec<u8> {
    synthetic_safetensors(&compiled(spec).graph, 0)
}

/// The synthetic input (seed 0), checked against the sum `tools/` recorded.
pub(crate) fn input(spec: &str, case: &str) -> Vec<f32> {
    let c = compiled(spec);
    let x = resnet_compiler::synth::input(&c.spec.input, 0);
    let expected = std::fs::read(crate::root().join(format!("tests/expected/{case}.safetensors"))).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&expected).unwrap();
    let sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
    let recorded: f64 = meta.metadata().as_ref().unwrap()["input_sum"].parse().unwrap();
    assert_eq!(sum, recorded, "{case}: the input generator disagrees with tools/");
    x
}

/// Compares every returned tensor with torchvision's; returns the largest relative error.
pub(crate) fn compare(spec: &str, case: &str, output: &[f32]) -> f64 {
    let c = compiled(spec);
    let bytes = std::fs::read(crate::root().join(format!("tests/expected/{case}.safetensors"))).unwrap();
    let expected = SafeTensors::deserialize(&bytes).unwrap();
    let mut worst: f64 = 0.0;
    assert_eq!(output.len(), c.program.output_len);
    for o in &c.program.outputs {
        let name = if o.name == "logits" {
            "logits"
        } else {
            o.name.as_str()
        };
        let view = expected
            .tensor(name)
            .unwrap_or_else(|_| panic!("{case}: no `{name}` in the expected file"));
        assert_eq!(view.shape(), o.shape.dims(), "{case}: {name} shape");
        let theirs: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let ours = &output[o.offset..o.offset + theirs.len()];
        let scale = theirs.iter().map(|v| f64::from(v.abs())).fold(0.0, f64::max);
        let diff = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max);
        assert!(
            ours.iter().all(|v| v.is_finite()),
            "{case}: {name} has non-finite values"
        );
        let rel = diff / scale;
        eprintln!("{case:>22} {name:<7} max|ours - torchvision| / max|torchvision| = {rel:.3e}");
        assert!(
            rel <= TOLERANCE,
            "{case}: {name} differs from torchvision by {rel:e} (tolerance {TOLERANCE:e})"
        );
        worst = worst.max(rel);
    }
    worst
}

/// The output of the generated Rust for `case`, weights loaded at run time; for the other
/// back ends to compare with.
pub(crate) fn loaded_output(case: &str) -> Vec<f32> {
    macro_rules! run {
        ($module:ident, $spec:literal) => {{
            let weights = $module::Weights::from_safetensors(&weights_file($spec)).unwrap();
            let x = input($spec, case);
            let mut y = vec![f32::NAN; $module::OUTPUT_LEN];
            let mut arena = resnet_runtime::zeroed_box::<$module::Arena>();
            $module::forward(
                &weights,
                x.as_slice().try_into().unwrap(),
                y.as_mut_slice().try_into().unwrap(),
                &mut arena,
            );
            y
        }};
    }
    match case {
        "resnet8_cifar" => run!(resnet8_cifar, "specs/resnet8_cifar.yaml"),
        "resnet20_cifar" => run!(resnet20_cifar, "specs/resnet20_cifar.yaml"),
        "resnet18" => run!(resnet18, "specs/resnet18.yaml"),
        "resnet50" => run!(resnet50, "specs/resnet50.yaml"),
        "resnet50_dilated_64" => run!(resnet50_dilated_64, "tests/specs/resnet50_dilated_64.yaml"),
        "resnet18_features" => run!(resnet18_features, "tests/specs/resnet18_features.yaml"),
        "resnet8_cifar_b2" => run!(resnet8_cifar_b2, "tests/specs/resnet8_cifar_b2.yaml"),
        "resnext_tiny" => run!(resnext_tiny, "tests/specs/resnext_tiny.yaml"),
        other => panic!("no Rust module for {other}"),
    }
}

/// Runs a module compiled without weights (loaded at run time) and compares it.
macro_rules! runtime_case {
    ($test:ident, $module:ident, $spec:literal, $case:literal) => {
        #[test]
        fn $test() {
            let weights = $module::Weights::from_safetensors(&weights_file($spec)).unwrap();
            let x = input($spec, $case);
            let mut y = vec![f32::NAN; $module::OUTPUT_LEN];
            let mut arena = resnet_runtime::zeroed_box::<$module::Arena>();
            $module::forward(
                &weights,
                x.as_slice().try_into().unwrap(),
                y.as_mut_slice().try_into().unwrap(),
                &mut arena,
            );
            compare($spec, $case, &y);
        }
    };
}

/// Runs a module with embedded weights (build-script path), compares it, and checks that the
/// run-time loading path gives the same bits.
macro_rules! embedded_case {
    ($test:ident, $module:ident, $runtime:ident, $file:literal, $spec:literal, $case:literal) => {
        #[allow(dead_code)]
        mod $module {
            include!(concat!(env!("OUT_DIR"), "/", $file));
        }

        #[test]
        fn $test() {
            let x = input($spec, $case);
            let mut y = vec![f32::NAN; $module::OUTPUT_LEN];
            let mut arena = resnet_runtime::zeroed_box::<$module::Arena>();
            $module::forward(
                x.as_slice().try_into().unwrap(),
                y.as_mut_slice().try_into().unwrap(),
                &mut arena,
            );
            compare($spec, $case, &y);

            let weights = $runtime::Weights::from_safetensors(&weights_file($spec)).unwrap();
            let mut z = vec![f32::NAN; $runtime::OUTPUT_LEN];
            let mut arena = resnet_runtime::zeroed_box::<$runtime::Arena>();
            $runtime::forward(
                &weights,
                x.as_slice().try_into().unwrap(),
                z.as_mut_slice().try_into().unwrap(),
                &mut arena,
            );
            assert!(
                y.iter().zip(&z).all(|(a, b)| a.to_bits() == b.to_bits()),
                "embedded and loaded weights differ"
            );
        }
    };
}

resnet_macros::resnet! { #[allow(dead_code)] mod resnet8_cifar { spec: "../specs/resnet8_cifar.yaml" } }
resnet_macros::resnet! { #[allow(dead_code)] mod resnet20_cifar { spec: "../specs/resnet20_cifar.yaml" } }
resnet_macros::resnet! { #[allow(dead_code)] mod resnet18 { spec: "../specs/resnet18.yaml" } }
resnet_macros::resnet! { #[allow(dead_code)] mod resnet50 { spec: "../specs/resnet50.yaml" } }
resnet_macros::resnet! { #[allow(dead_code)] mod resnext50_32x4d { spec: "../specs/resnext50_32x4d.yaml" } }
resnet_macros::resnet! { #[allow(dead_code)] mod wide_resnet50_2 { spec: "../specs/wide_resnet50_2.yaml" } }
resnet_macros::resnet! { #[allow(dead_code)] mod resnet18_97x131 { spec: "specs/resnet18_97x131.yaml" } }
resnet_macros::resnet! { #[allow(dead_code)] mod resnet50_dilated_64 { spec: "specs/resnet50_dilated_64.yaml" } }
resnet_macros::resnet! { #[allow(dead_code)] mod resnet18_features { spec: "specs/resnet18_features.yaml" } }
resnet_macros::resnet! { #[allow(dead_code)] mod resnet8_cifar_b2 { spec: "specs/resnet8_cifar_b2.yaml" } }
resnet_macros::resnet! { #[allow(dead_code)] mod resnext_tiny { spec: "specs/resnext_tiny.yaml" } }

runtime_case!(resnet50_loaded, resnet50, "specs/resnet50.yaml", "resnet50");
runtime_case!(
    resnext50_32x4d_loaded,
    resnext50_32x4d,
    "specs/resnext50_32x4d.yaml",
    "resnext50_32x4d"
);
runtime_case!(
    wide_resnet50_2_loaded,
    wide_resnet50_2,
    "specs/wide_resnet50_2.yaml",
    "wide_resnet50_2"
);
runtime_case!(
    resnet50_dilated_64_loaded,
    resnet50_dilated_64,
    "tests/specs/resnet50_dilated_64.yaml",
    "resnet50_dilated_64"
);

embedded_case!(
    resnet8_cifar_embedded,
    e_resnet8_cifar,
    resnet8_cifar,
    "resnet8_cifar.rs",
    "specs/resnet8_cifar.yaml",
    "resnet8_cifar"
);
embedded_case!(
    resnet20_cifar_embedded,
    e_resnet20_cifar,
    resnet20_cifar,
    "resnet20_cifar.rs",
    "specs/resnet20_cifar.yaml",
    "resnet20_cifar"
);
embedded_case!(
    resnet18_embedded,
    e_resnet18,
    resnet18,
    "resnet18.rs",
    "specs/resnet18.yaml",
    "resnet18"
);
embedded_case!(
    resnet18_97x131_embedded,
    e_resnet18_97x131,
    resnet18_97x131,
    "resnet18_97x131.rs",
    "tests/specs/resnet18_97x131.yaml",
    "resnet18_97x131"
);
embedded_case!(
    resnet18_features_embedded,
    e_resnet18_features,
    resnet18_features,
    "resnet18_features.rs",
    "tests/specs/resnet18_features.yaml",
    "resnet18_features"
);
embedded_case!(
    resnet8_cifar_b2_embedded,
    e_resnet8_cifar_b2,
    resnet8_cifar_b2,
    "resnet8_cifar_b2.rs",
    "tests/specs/resnet8_cifar_b2.yaml",
    "resnet8_cifar_b2"
);
embedded_case!(
    resnext_tiny_embedded,
    e_resnext_tiny,
    resnext_tiny,
    "resnext_tiny.rs",
    "tests/specs/resnext_tiny.yaml",
    "resnext_tiny"
);
