//! `resnet20_cifar` on the Cortex-M4: `resnet!` with the weights embedded, one inference, the report.
#![no_std]
#![no_main]

resnet_macros::resnet! {
    mod model {
        spec: "../../../specs/resnet20_cifar.yaml",
        // Written by build.rs: the synthetic state_dict (seed 0), folded and packed here.
        weights: "$OUT_DIR/resnet20_cifar.safetensors",
        // Direct convs only: Winograd's weights are 4x larger (flash) and its scratch
        // buffer would not fit this stack.
        winograd: false,
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` references, safe because `main` runs once.
    // Zero-initialized, so they take RAM (.bss) but no flash.
    static mut INPUT: [f32; model::INPUT_LEN] = [0.0; model::INPUT_LEN];
    static mut OUTPUT: [f32; model::OUTPUT_LEN] = [0.0; model::OUTPUT_LEN];
    static mut ARENA: model::Arena = model::Arena::new();
    cortex_m4_firmware::run(
        cortex_m4_firmware::Run {
            name: "resnet20_cifar",
            test_input: include_bytes!(concat!(env!("OUT_DIR"), "/resnet20_cifar.input")),
            input: INPUT,
            output: OUTPUT,
            arena_bytes: core::mem::size_of::<model::Arena>(),
        },
        |x, y| model::forward(x, y, ARENA),
    )
}
