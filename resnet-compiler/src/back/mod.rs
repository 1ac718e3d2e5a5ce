//! Back ends: text produced from a compilation.

pub mod dot;
pub mod rust;
