//! The `resnetc` command, run in-process: exit codes, stdout and stderr.

use std::process::ExitCode;

use crate::root;

struct Run {
    code: ExitCode,
    out: String,
    err: String,
}

fn resnetc(args: &[&str]) -> Run {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("resnetc").chain(args.iter().copied());
    let code = resnet_compiler::cli::run(argv, &mut out, &mut err);
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn spec(name: &str) -> String {
    root().join("specs").join(name).display().to_string()
}

#[test]
fn check_accepts_every_spec() {
    for path in crate::specs() {
        let r = resnetc(&["check", &path.display().to_string()]);
        assert_eq!(r.code, ExitCode::SUCCESS, "{}: {}", path.display(), r.err);
        assert!(r.out.contains(": ok: "), "{}", r.out);
        assert!(r.err.is_empty());
    }
}

#[test]
fn check_reports_every_error_with_its_position() {
    let dir = std::env::temp_dir().join(format!("resnetc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "name: tiny\nblock: basic\nlayers: [2, 0, 2]\ngroups: 4\nnum_classes: 0\nhead: features\nfeatures: [layer4]\n",
    )
    .unwrap();
    let r = resnetc(&["check", &bad.display().to_string()]);
    assert_eq!(r.code, ExitCode::FAILURE);
    assert!(r.out.is_empty());
    let lines: Vec<&str> = r.err.lines().collect();
    let file = bad.display().to_string();
    let expect = [
        format!("error: {file}:3:13: layers[1] is 0"),
        format!("error: {file}:4:9: BasicBlock only supports groups=1 and base_width=64"),
        format!("error: {file}:5:14: num_classes is 0"),
        format!("error: {file}:7:12: `layer4` is not a stage"),
    ];
    assert_eq!(lines.len(), expect.len(), "{}", r.err);
    for (line, prefix) in lines.iter().zip(&expect) {
        assert!(
            line.starts_with(prefix.as_str()),
            "{line:?} does not start with {prefix:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_path_is_one_clear_line() {
    let r = resnetc(&["check", "no/such/spec.yaml"]);
    assert_eq!(r.code, ExitCode::FAILURE);
    assert!(
        r.err.starts_with("error: cannot read no/such/spec.yaml: "),
        "{}",
        r.err
    );
    assert_eq!(r.err.lines().count(), 1);
    // A directory is not a spec either.
    let r = resnetc(&["summary", &root().join("specs").display().to_string()]);
    assert_eq!(r.code, ExitCode::FAILURE);
    assert!(r.err.starts_with("error: cannot read "), "{}", r.err);
}

#[test]
fn usage_errors_exit_with_2() {
    let r = resnetc(&["frobnicate"]);
    assert_eq!(r.code, ExitCode::from(2));
    assert!(r.err.contains("unrecognized subcommand"), "{}", r.err);
    let r = resnetc(&["--help"]);
    assert_eq!(r.code, ExitCode::SUCCESS);
    assert!(r.out.contains("summary"));
}

#[test]
fn summary_json_has_the_contract_keys() {
    let r = resnetc(&["summary", &spec("resnet50.yaml"), "--json"]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    // torchvision's count for resnet50.
    assert_eq!(v["params"], 25_557_032);
    let macs = v["macs"].as_u64().unwrap() as f64;
    assert!((macs / 4.09e9 - 1.0).abs() < 0.01, "{macs}");
    assert!(v["arena_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["arena_bytes"], v["lower_bound_bytes"]);
    assert!(v["weight_bytes"].as_u64().unwrap() > 0);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers[0]["name"], "conv1");
    assert_eq!(layers[0]["shape"], serde_json::json!([1, 64, 112, 112]));
    let params: u64 = layers.iter().map(|l| l["params"].as_u64().unwrap()).sum();
    assert_eq!(params, 25_557_032);
}

#[test]
fn graph_prints_dot_before_and_after_fusion() {
    let r = resnetc(&["graph", &spec("resnet18.yaml")]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
    assert!(r.out.starts_with("digraph resnet18 {"));
    assert!(r.out.contains("layer3.0.downsample.1"));
    assert!(r.out.contains("[1, 256, 14, 14]"));
    let fused = resnetc(&["graph", &spec("resnet18.yaml"), "--fused"]);
    assert_eq!(fused.code, ExitCode::SUCCESS);
    assert!(!fused.out.contains("batch_norm"));
    assert!(
        fused
            .out
            .contains("layer3.0.conv2 + bn2 + downsample.0 + downsample.1 + add + relu")
    );
    assert!(fused.out.contains("@ arena["));
    assert!(fused.out.lines().count() < r.out.lines().count());
}

#[test]
fn emit_rust_writes_the_module_and_the_blob() {
    let dir = std::env::temp_dir().join(format!("resnetc-emit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("gen");
    let r = resnetc(&[
        "emit",
        "rust",
        &spec("resnet8_cifar.yaml"),
        "--synthetic-weights",
        "0",
        "-o",
        &out.display().to_string(),
    ]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
    let module = std::fs::read_to_string(out.join("resnet8_cifar.rs")).unwrap();
    assert!(module.starts_with("// @generated by resnetc"));
    assert!(module.contains("// layer2.0.conv2 + bn2 + downsample.0 + downsample.1 + add + relu"));
    let blobs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".weights"))
        .collect();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert!(module.contains(&format!("include_bytes!(\"{}\")", blobs[0])));
    // The same inputs give the same files (the blob name is a content hash).
    let again = resnetc(&[
        "emit",
        "rust",
        &spec("resnet8_cifar.yaml"),
        "--synthetic-weights",
        "0",
        "-o",
        &out.display().to_string(),
    ]);
    assert_eq!(again.code, ExitCode::SUCCESS);
    assert_eq!(
        std::fs::read_to_string(out.join("resnet8_cifar.rs")).unwrap(),
        module
    );
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        2,
        "no temporary files are left"
    );

    // Weights that do not fit: every problem by tensor name, and nothing written.
    let bad = dir.join("bad");
    let wrong = dir.join("resnet18.safetensors");
    let text = std::fs::read_to_string(root().join("specs/resnet18.yaml")).unwrap();
    let c = resnet_compiler::compile(
        &resnet_compiler::spec::parse_yaml(&text, "r").unwrap(),
        &Default::default(),
    )
    .unwrap();
    std::fs::write(
        &wrong,
        resnet_compiler::weights::synthetic_safetensors(&c.graph, 0),
    )
    .unwrap();
    let r = resnetc(&[
        "emit",
        "rust",
        &spec("resnet8_cifar.yaml"),
        "--weights",
        &wrong.display().to_string(),
        "-o",
        &bad.display().to_string(),
    ]);
    assert_eq!(r.code, ExitCode::FAILURE);
    assert!(
        r.err.contains("the weights do not fit resnet8_cifar"),
        "{}",
        r.err
    );
    assert!(
        r.err
            .contains("tensor `conv1.weight` has shape [64, 3, 7, 7], but the model needs [16, 3, 3, 3]"),
        "{}",
        r.err
    );
    assert!(
        r.err.contains("unexpected tensor `layer4.1.bn2.weight`"),
        "{}",
        r.err
    );
    assert!(!bad.join("resnet8_cifar.rs").exists());

    // An output path that cannot be a directory.
    let file = dir.join("a_file");
    std::fs::write(&file, "").unwrap();
    let r = resnetc(&[
        "emit",
        "rust",
        &spec("resnet8_cifar.yaml"),
        "-o",
        &file.join("sub").display().to_string(),
    ]);
    assert_eq!(r.code, ExitCode::FAILURE);
    assert!(
        r.err.starts_with("error: cannot create the directory "),
        "{}",
        r.err
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn emit_c_needs_weights_and_writes_all_or_nothing() {
    let dir = std::env::temp_dir().join(format!("resnetc-emit-c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("c");
    let out_s = out.display().to_string();
    let r = resnetc(&["emit", "c", &spec("resnet8_cifar.yaml"), "-o", &out_s]);
    assert_eq!(r.code, ExitCode::FAILURE);
    assert!(r.err.starts_with("error: emit c needs weights"), "{}", r.err);
    assert!(!out.exists(), "nothing is created without weights");

    let r = resnetc(&[
        "emit",
        "c",
        &spec("resnet8_cifar.yaml"),
        "--synthetic-weights",
        "3",
        "-o",
        &out_s,
    ]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["resnet8_cifar.c", "resnet8_cifar.h", "resnet8_cifar_weights.c"]
    );
    let header = std::fs::read_to_string(out.join("resnet8_cifar.h")).unwrap();
    assert!(header.contains("#define RESNET8_CIFAR_ARENA_BYTES 131072"));
    assert!(header.contains("int resnet8_cifar_forward(const float *input, float *output, void *arena);"));

    // A directory that cannot be created: a clear error and no files.
    let blocked = dir.join("file");
    std::fs::write(&blocked, "").unwrap();
    let target = blocked.join("c").display().to_string();
    let r = resnetc(&[
        "emit",
        "c",
        &spec("resnet8_cifar.yaml"),
        "--synthetic-weights",
        "0",
        "-o",
        &target,
    ]);
    assert_eq!(r.code, ExitCode::FAILURE);
    assert!(
        r.err.starts_with("error: cannot create the directory "),
        "{}",
        r.err
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
