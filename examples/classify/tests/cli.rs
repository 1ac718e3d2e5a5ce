//! The example end to end: a generated image and synthetic resnet18 weights in a temporary
//! directory, the binary run on them.

use std::process::Command;

#[test]
fn prints_five_classes_and_rejects_bad_input() {
    let dir = std::env::temp_dir().join(format!("classify-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let img_path = dir.join("in.png");
    img.save(&img_path).unwrap();
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../specs/resnet18.yaml")).unwrap();
    let spec = resnet_compiler::spec::parse_yaml(&spec, "resnet18.yaml").unwrap();
    let c = resnet_compiler::compile(&spec, &resnet_compiler::Options::default()).unwrap();
    let weights = dir.join("w.safetensors");
    std::fs::write(
        &weights,
        resnet_compiler::weights::synthetic_safetensors(&c.graph, 0),
    )
    .unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_classify"))
        .args(["--model", "resnet18", "--weights"])
        .arg(&weights)
        .arg(&img_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    let names = classify::class_names();
    let mut last = f64::INFINITY;
    for line in lines {
        let (pct, rest) = line.trim_start().split_once("%  ").unwrap();
        let pct: f64 = pct.parse().unwrap();
        assert!((0.0..=100.0).contains(&pct) && pct <= last, "{line}");
        last = pct;
        let (name, index) = rest.rsplit_once(" (").unwrap();
        let index: usize = index.trim_end_matches(')').parse().unwrap();
        assert_eq!(names[index], name);
    }

    // resnet50 weights given for resnet18: one error listing the mismatches, no panic.
    let out = Command::new(env!("CARGO_BIN_EXE_classify"))
        .args(["--model", "resnet50", "--weights"])
        .arg(&weights)
        .arg(&img_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: the weights do not fit resnet50"), "{err}");
    assert!(
        err.contains("missing tensor `layer1.0.conv3.weight` of shape [256, 64, 1, 1]"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_classify"))
        .args(["--weights"])
        .arg(&weights)
        .arg(dir.join("missing.jpg"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .starts_with("error: cannot read the image")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
