//! Snapshots of the summary and of the fused IR (the Program's text form) of every spec.
//! Under `CI=true` a changed snapshot fails; accept changes with `INSTA_UPDATE=always` and
//! read the diff.

use resnet_compiler::summary::Summary;
use resnet_compiler::{Options, compile, spec::parse_yaml};

fn compiled(path: &std::path::Path) -> resnet_compiler::Compilation {
    compiled_with(path, &Options::default())
}

fn compiled_with(path: &std::path::Path, options: &Options) -> resnet_compiler::Compilation {
    let text = std::fs::read_to_string(path).unwrap();
    let spec = parse_yaml(&text, &path.display().to_string()).unwrap();
    compile(&spec, options).unwrap()
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

/// The generated Rust of every spec (weights loaded at run time, so no machine-specific
/// blob name). `all_specs.rs` compiles the same code through `resnet!`.
#[test]
fn generated_rust_of_every_spec() {
    use resnet_compiler::back::rust::{Weights, file};
    insta::glob!("../specs", "*.yaml", |path| {
        let source = format!("`specs/{}`", path.file_name().unwrap().to_string_lossy());
        insta::assert_snapshot!(file(&compiled(path).program, &Weights::Runtime, &source));
    });
}

/// The emitted C (header and code; the weights file is data) of the small specs.
#[test]
fn generated_c_of_small_specs() {
    use resnet_compiler::back::c::emit;
    use resnet_compiler::build::{WeightsSource, packed_weights};
    for name in ["resnet8_cifar", "resnet20_cifar"] {
        let path = crate::root().join(format!("specs/{name}.yaml"));
        let direct = Options {
            winograd: false,
            ..Options::default()
        };
        let c = compiled_with(&path, &direct);
        let blob = packed_weights(&c, &WeightsSource::Synthetic(0)).unwrap();
        let files = emit(&c.program, &blob, &format!("`specs/{name}.yaml`"));
        insta::assert_snapshot!(format!("{name}.h"), files.header);
        insta::assert_snapshot!(format!("{name}.c"), files.source);
    }
}
