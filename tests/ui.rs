//! trybuild UI tests: every error the `resnet!` macro gives, on the right span, with the
//! spec's line and column where the error is inside a spec file.
//!
//! trybuild compiles each file in its own project under the target directory, where the
//! macro resolves paths against that project's `CARGO_MANIFEST_DIR`; the data the tests
//! read (specs, and weight files generated here) are copied there first.

use std::path::PathBuf;

use resnet_compiler::{Options, compile, spec::parse_yaml, weights::synthetic_safetensors};

/// trybuild's project directory for this crate.
fn trybuild_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap()
        .join("tests/trybuild")
        .join(env!("CARGO_PKG_NAME"))
}

/// The tiny spec's synthetic weights, as a torchvision state dict, with `edit` applied to
/// the (name, shape, values) entries.
fn tiny_weights(edit: impl Fn(&mut Vec<(String, Vec<usize>, Vec<u8>, safetensors::Dtype)>)) -> Vec<u8> {
    let text = std::fs::read_to_string(crate::root().join("tests/ui/data/tiny.yaml")).unwrap();
    let c = compile(&parse_yaml(&text, "tiny.yaml").unwrap(), &Options::default()).unwrap();
    let file = synthetic_safetensors(&c.graph, 0);
    let st = safetensors::SafeTensors::deserialize(&file).unwrap();
    let mut entries: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec(), v.dtype()))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    edit(&mut entries);
    let views = entries.iter().map(|(n, shape, data, dtype)| {
        (
            n.as_str(),
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap(),
        )
    });
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn macro_errors() {
    let data = trybuild_dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for entry in std::fs::read_dir(crate::root().join("tests/ui/data")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, data.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(data.join("tiny.safetensors"), tiny_weights(|_| {})).unwrap();
    let bad_shape = tiny_weights(|e| {
        let conv1 = e.iter_mut().find(|(n, ..)| n == "conv1.weight").unwrap();
        conv1.1 = vec![4, 1, 1, 9];
    });
    std::fs::write(data.join("tiny_bad_shape.safetensors"), bad_shape).unwrap();
    let missing = tiny_weights(|e| e.retain(|(n, ..)| n != "layer1.0.bn2.running_var" && n != "fc.bias"));
    std::fs::write(data.join("tiny_missing_tensor.safetensors"), missing).unwrap();

    let t = trybuild::TestCases::new();
    t.pass("ui/embedded_ok.rs");
    for case in [
        "missing_spec",
        "yaml_syntax",
        "invalid_config",
        "weight_shape_mismatch",
        "missing_tensor",
        "missing_weights_file",
        "unset_env_var",
        "inline_invalid",
        "inline_unknown_field",
        "winograd_not_bool",
    ] {
        t.compile_fail(format!("ui/{case}.rs"));
    }
}
