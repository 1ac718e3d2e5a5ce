//! Generates the embedded-weights modules of the numerics tests through the build-script path
//! (`resnet_compiler::build::Builder`), with the synthetic weights `tools/` also gives torchvision.
//! The large models (resnet50 and wider) are tested through the run-time loading path only, to
//! keep the test build small; both paths share the blob layout, the packing and the kernels.

fn main() {
    let cases = [
        "../specs/resnet8_cifar.yaml",
        "../specs/resnet20_cifar.yaml",
        "../specs/resnet18.yaml",
        "specs/resnet18_97x131.yaml",
        "specs/resnet18_features.yaml",
        "specs/resnet8_cifar_b2.yaml",
        "specs/resnext_tiny.yaml",
    ];
    for spec in cases {
        if let Err(e) = resnet_compiler::build::Builder::new(spec)
            .synthetic_weights(0)
            .write()
        {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
