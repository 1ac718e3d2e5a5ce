//! The `resnetc` command; everything but the entry point is in `resnet_compiler::cli`.

fn main() -> std::process::ExitCode {
    resnet_compiler::cli::main()
}
