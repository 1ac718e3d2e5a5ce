//! Snapshots of the summary and of the fused IR (the Program's text form) of every spec.
//! Under `CI=true` a changed snapshot fails; accept changes with `INSTA_UPDATE=always` and
//! read the diff.

use resnet_compiler::summary::Summary;
use resnet_compiler::{Options, compile, spec::parse_yaml};

fn compiled(path: &std::path::Path) -> resnet_compiler::Compilation {
    let text = std::fs::read_to_string(path).unwrap();
    let spec = parse_yaml(&text, &path.display().to_string()).unwrap();
    compile(&spec, &Options::default()).unwrap()
}

#[test]
fn summary_of_every_spec() {
    insta::glob!("../specs", "*.yaml", |path| {
        insta::assert_snapshot!(Summary::new(&compiled(path)).to_string());
    });
}

#[test]
fn fused_ir_of_every_spec() {
    insta::glob!("../specs", "*.yaml", |path| {
        insta::assert_snapshot!(compiled(path).program.to_string());
    });
}
