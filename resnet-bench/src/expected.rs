//! A correctness check beside the timings: the kernels change while they are tuned, and a
//! fast wrong answer must not go unnoticed. The first image's logits are compared with
//! torchvision's for the same synthetic weights and input (`tests/expected/<model>.safetensors`,
//! batch 1, seed 0; the batch-8 input starts with the batch-1 image, as both come from one
//! generator stream).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use safetensors::SafeTensors;

/// The tolerance of the numerics tests (`tests/numerics.rs`).
pub const TOLERANCE: f64 = 1e-4;

/// `max|ours - torchvision| / max|torchvision|` over the first image's logits, or `None`
/// when this checkout has no expected file for `model`.
pub fn vs_torchvision(model: &str, output: &[f32]) -> Result<Option<f64>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/expected")
        .join(format!("{model}.safetensors"));
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(None);
    };
    let file = SafeTensors::deserialize(&bytes).with_context(|| format!("cannot read {}", path.display()))?;
    let logits = file
        .tensor("logits")
        .with_context(|| format!("no `logits` in {}", path.display()))?;
    let theirs: Vec<f32> = logits
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if output.len() < theirs.len() {
        bail!(
            "{model}: {} outputs, fewer than torchvision's {}",
            output.len(),
            theirs.len()
        );
    }
    Ok(Some(max_rel_diff(&output[..theirs.len()], &theirs)))
}

/// `max|a - b| / max|b|`; infinite if any value of `a` is not finite.
pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let scale = b.iter().map(|v| f64::from(v.abs())).fold(0.0, f64::max);
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
        .fold(0.0, f64::max);
    diff / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_to_the_largest_reference_value() {
        assert_eq!(max_rel_diff(&[1.0, 2.0], &[1.0, 4.0]), 0.5);
        assert_eq!(max_rel_diff(&[f32::NAN], &[1.0]), f64::INFINITY);
    }
}
