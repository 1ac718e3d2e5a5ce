//! `resnet!`: a ResNet spec compiled into a module of the calling crate.
//!
//! ```text
//! resnet_macros::resnet! {
//!     pub mod resnet18 {
//!         spec: "specs/resnet18.yaml",                 // relative to CARGO_MANIFEST_DIR
//!         weights: "weights/resnet18.safetensors",     // optional: embedded, folded, packed
//!     }
//! }
//! // resnet18::INPUT_LEN, resnet18::OUTPUT_LEN, resnet18::Arena (can live in a `static`)
//! // resnet18::forward(&input, &mut output, &mut arena)
//! ```
//!
//! A path may also start with an environment variable set for the compilation, such as
//! `weights: "$OUT_DIR/resnet18.safetensors"` for weights a build script fetches or writes.
//!
//! `winograd: false` (either form) runs every conv directly. By default the 3x3 stride-1 convs
//! on planes of about 24x24 and up run as Winograd F(4x4, 3x3) (4x fewer multiplies, those
//! layers' weights 4x larger), and those with 129-256 channels on 12x12 to 14x14 planes as
//! F(2x2, 3x3) (2.25x fewer, weights 1.8x larger), with a stack buffer of up to 1 MiB per
//! call. On a microcontroller, set it to `false`.
//!
//! Without `weights`, the module has `Weights::load(path)` and `forward(&weights, ..)`
//! instead, and needs `resnet-runtime`'s `std` feature. The spec can also be written inline,
//! in the same fields as the YAML file (`name` is the module's):
//!
//! ```
//! resnet_macros::resnet! {
//!     pub mod tiny {
//!         block: basic,
//!         layers: [1, 1],
//!         widths: [8, 16],
//!         stem: cifar,
//!         num_classes: 10,
//!         input: [1, 3, 32, 32],
//!     }
//! }
//! assert_eq!(tiny::INPUT_LEN, 3 * 32 * 32);
//! assert_eq!(tiny::OUTPUT_LEN, 10);
//! // Without `weights`, they are loaded at run time; a file with a missing tensor is refused.
//! let err = tiny::Weights::from_safetensors(b"not safetensors").err().unwrap();
//! assert!(err.to_string().contains("not a safetensors file"));
//! ```
//!
//! Every error is a compile error on the offending path or field; errors inside a spec file
//! give its line and column.

mod expand;
mod input;

use proc_macro::TokenStream;

/// Compiles a ResNet spec into a module; see the crate documentation.
#[proc_macro]
pub fn resnet(tokens: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(tokens as input::ModelInput);
    expand::expand(&input).into()
}
