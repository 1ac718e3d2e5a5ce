//! The safetensors loader and its name and shape checks, for a small model: any bytes end in
//! a packed blob of the right length or in a list of problems; never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn program() -> &'static resnet_compiler::program::Program {
    static P: OnceLock<resnet_compiler::program::Program> = OnceLock::new();
    P.get_or_init(|| {
        let text = include_str!("../../tests/ui/data/tiny.yaml");
        let spec = resnet_compiler::spec::parse_yaml(text, "tiny.yaml").unwrap();
        resnet_compiler::compile(&spec, &Default::default()).unwrap().program
    })
}

fuzz_target!(|data: &[u8]| {
    let p = program();
    match resnet_compiler::weights::pack(p, data) {
        Ok(blob) => assert_eq!(blob.len(), resnet_compiler::weights::Layout::new(p).blob_len),
        Err(e) => assert!(!e.problems.is_empty()),
    }
});
