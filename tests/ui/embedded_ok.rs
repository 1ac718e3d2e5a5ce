// Embedded weights: the module builds, and forward runs without any allocation or loading.
resnet_macros::resnet! {
    pub mod tiny {
        spec: "data/tiny.yaml",
        // A path may start with an environment variable (OUT_DIR, for weights a build script writes).
        weights: "$CARGO_MANIFEST_DIR/data/tiny.safetensors",
    }
}

fn main() {
    let input = [0.5f32; tiny::INPUT_LEN];
    let mut output = [0.0f32; tiny::OUTPUT_LEN];
    let mut arena = tiny::Arena::new();
    tiny::forward(&input, &mut output, &mut arena);
    assert!(output.iter().all(|v| v.is_finite()));
}
