//! Back ends: text produced from a compilation.

pub mod c;
pub mod dot;
pub mod rust;
