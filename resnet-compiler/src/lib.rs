//! `resnetc`: an architecture compiler for ResNets.
//!
//! A YAML spec ([`spec`]) becomes a graph of torchvision modules ([`ir`]); shape inference
//! ([`shape`]) and the fusion passes ([`passes`]) turn it into a flat [`program`] whose
//! every tensor has a place in one statically planned arena ([`plan`]).

pub mod ir;
pub mod passes;
pub mod shape;
pub mod spec;
pub mod valid;
