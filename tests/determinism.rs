//! Emitting the same spec twice gives byte-identical Rust, C and weight blobs: nothing that
//! reaches the output depends on hash order, addresses or time. (`clippy.toml` forbids
//! `HashMap`/`HashSet` for the same reason; this checks the result.)

use resnet_compiler::back::{c, rust};
use resnet_compiler::build::{WeightsSource, packed_weights};
use resnet_compiler::{Options, compile, spec::parse_yaml};

fn emit_all(file: &str) -> (String, c::CFiles, Vec<u8>, String) {
    let text = std::fs::read_to_string(crate::root().join(file)).unwrap();
    // A fresh parse and compile each time: every map and graph is rebuilt.
    let comp = compile(&parse_yaml(&text, file).unwrap(), &Options::default()).unwrap();
    let blob = packed_weights(&comp, &WeightsSource::Synthetic(0)).unwrap();
    let rust = rust::file(&comp.program, &rust::Weights::Runtime, file);
    // The C back end's program: every conv direct.
    let direct = Options {
        winograd: false,
        ..Options::default()
    };
    let comp_c = compile(&parse_yaml(&text, file).unwrap(), &direct).unwrap();
    let blob_c = packed_weights(&comp_c, &WeightsSource::Synthetic(0)).unwrap();
    let cfiles = c::emit(&comp_c.program, &blob_c, file);
    let bytes = resnet_compiler::weights::blob_bytes(&blob);
    let dot = resnet_compiler::back::dot::fused(&comp);
    (rust, cfiles, bytes, dot)
}

#[test]
fn emitting_twice_gives_the_same_bytes() {
    for file in [
        "specs/resnet8_cifar.yaml",
        "specs/resnet20_cifar.yaml",
        "tests/specs/resnext_tiny.yaml",
    ] {
        let a = emit_all(file);
        let b = emit_all(file);
        assert!(a.0 == b.0, "{file}: Rust differs");
        assert!(a.1 == b.1, "{file}: C differs");
        assert!(a.2 == b.2, "{file}: blob differs");
        assert!(a.3 == b.3, "{file}: DOT differs");
    }
}
