//! Every spec in `specs/` through `resnet!`: the generated code compiles (warning-free, as the
//! workspace denies warnings in CI), and its constants agree with the compiler's plan. The
//! numerics of most of these models are checked in `numerics.rs`; the rest differ from
//! those only in block counts.

use resnet_compiler::{Options, compile, spec::parse_yaml};

macro_rules! spec_module {
    ($($module:ident: $path:literal),* $(,)?) => {
        $(resnet_macros::resnet! { pub mod $module { spec: $path } })*

        #[test]
        fn constants_agree_with_the_plan() {
            $({
                let file = $path.trim_start_matches("../");
                let text = std::fs::read_to_string(crate::root().join(file)).unwrap();
                let c = compile(&parse_yaml(&text, file).unwrap(), &Options::default()).unwrap();
                assert_eq!($module::INPUT_LEN, c.program.input_len(), "{file}");
                assert_eq!($module::INPUT_SHAPE, c.program.input, "{file}");
                assert_eq!($module::OUTPUT_LEN, c.program.output_len, "{file}");
                assert_eq!($module::ARENA_BYTES, c.program.arena_bytes, "{file}");
                assert_eq!(std::mem::size_of::<$module::Arena>(), c.program.arena_bytes, "{file}");
                assert_eq!(std::mem::align_of::<$module::Arena>(), 64);
                assert_eq!($module::MODEL.layers.len(), c.program.steps.iter().filter(|s| matches!(
                    s.kind,
                    resnet_compiler::program::StepKind::Conv(_) | resnet_compiler::program::StepKind::Linear { .. }
                )).count());
            })*
        }
    };
}

spec_module! {
    resnet18: "../specs/resnet18.yaml",
    resnet34: "../specs/resnet34.yaml",
    resnet50: "../specs/resnet50.yaml",
    resnet101: "../specs/resnet101.yaml",
    resnet152: "../specs/resnet152.yaml",
    resnext50_32x4d: "../specs/resnext50_32x4d.yaml",
    resnext101_32x8d: "../specs/resnext101_32x8d.yaml",
    resnext101_64x4d: "../specs/resnext101_64x4d.yaml",
    wide_resnet50_2: "../specs/wide_resnet50_2.yaml",
    wide_resnet101_2: "../specs/wide_resnet101_2.yaml",
    resnet50_dilated: "../specs/resnet50_dilated.yaml",
    resnet20_cifar: "../specs/resnet20_cifar.yaml",
    resnet8_cifar: "../specs/resnet8_cifar.yaml",
}
