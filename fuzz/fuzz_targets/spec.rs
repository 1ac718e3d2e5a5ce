//! The spec parser and validator: any bytes end in a spec that compiles, or in errors with
//! positions inside the text; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match resnet_compiler::spec::parse_yaml(text, "fuzz.yaml") {
        Ok(spec) => {
            resnet_compiler::compile(&spec, &resnet_compiler::Options::default()).expect("a valid spec compiles");
        }
        Err(errors) => {
            // Lines as YAML counts them: a bare `\r` ends one too.
            let lines = text.replace("\r\n", "\n").matches(['\r', '\n']).count() + 1;
            assert!(!errors.0.is_empty());
            for e in &errors.0 {
                assert!(e.line >= 1 && e.line <= lines + 1 && e.column >= 1, "{e}");
            }
        }
    }
});
