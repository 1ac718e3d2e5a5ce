//! Generates resnet8_cifar with embedded synthetic weights into OUT_DIR.
fn main() {
    if let Err(e) = resnet_compiler::build::Builder::new("../../specs/resnet8_cifar.yaml").synthetic_weights(0).write() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
