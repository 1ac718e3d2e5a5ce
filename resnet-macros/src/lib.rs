//! The `resnet!` macro.
