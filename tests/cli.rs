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
