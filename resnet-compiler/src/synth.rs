//! Deterministic synthetic weights and inputs, identical bit for bit to `tools/resnet_spec.py`.
//!
//! Every tensor is generated from its `state_dict` name, its shape and a seed, so that tests,
//! `resnetc emit --synthetic-weights SEED` and the torchvision scripts that produce the expected
//! outputs agree without any weights being stored. The algorithm and the ranges are documented
//! in `tools/README.md` ("Synthetic tensors"); `tests/expected/synth_vectors.json` holds vectors
//! from the Python side that the tests below check.

use crate::ir::Parameter;

/// SplitMix64, the generator's stream.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `count` values uniform in `[lo, hi)`, from the stream named `name`.
pub fn uniform(name: &str, count: usize, seed: u64, lo: f64, hi: f64) -> Vec<f32> {
    let mut state = fnv1a64(name.as_bytes()) ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..count)
        .map(|_| {
            let u = (splitmix64(&mut state) >> 40) as f64 / 16_777_216.0;
            // f64 throughout, one rounding to f32 at the end; Rust does not contract to FMA.
            (lo + (hi - lo) * u) as f32
        })
        .collect()
}

/// The range of a `state_dict` entry, by role (see `tools/README.md`). `linear_in` is the
/// input width of the sibling `P.weight` when it is 2-D (the bias of a linear layer).
pub fn range(name: &str, shape: &[usize], linear_in: Option<usize>) -> Option<(f64, f64)> {
    let last = name.rsplit('.').next().unwrap_or(name);
    let sym = |b: f64| Some((-b, b));
    match (last, shape.len()) {
        ("weight", 4) => sym((6.0 / (shape[1] * shape[2] * shape[3]) as f64).sqrt()),
        ("weight", 2) => sym(1.0 / (shape[1] as f64).sqrt()),
        ("bias", 1) => match linear_in {
            Some(fan_in) => sym(1.0 / (fan_in as f64).sqrt()),
            None => Some((-0.05, 0.05)),
        },
        ("weight", 1) => Some((0.3, 0.9)),
        ("running_mean", 1) => Some((-0.05, 0.05)),
        ("running_var", 1) => Some((0.5, 2.0)),
        _ => None,
    }
}

/// One synthetic `state_dict` entry; `None` for `num_batches_tracked` (an int64 0, not
/// generated) and for names no role fits.
pub fn parameter(p: &Parameter, linear_in: Option<usize>, seed: u64) -> Option<Vec<f32>> {
    let (lo, hi) = range(&p.name, &p.shape, linear_in)?;
    Some(uniform(&p.name, p.shape.iter().product(), seed, lo, hi))
}

/// The synthetic input of shape `shape`.
pub fn input(shape: &[usize], seed: u64) -> Vec<f32> {
    uniform("input", shape.iter().product(), seed, -1.0, 1.0)
}

/// A whole synthetic `state_dict` for `params` (as [`crate::ir::Graph::state_dict`] lists
/// them), as (name, shape, values); `num_batches_tracked` entries get `None`.
pub fn state_dict(params: &[Parameter], seed: u64) -> Vec<(Parameter, Option<Vec<f32>>)> {
    params
        .iter()
        .map(|p| {
            let prefix = p.name.rsplit_once('.').map_or("", |(prefix, _)| prefix);
            let linear_in = params
                .iter()
                .find(|q| q.name == format!("{prefix}.weight") && q.shape.len() == 2)
                .map(|q| q.shape[1]);
            (p.clone(), parameter(p, linear_in, seed))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_python_generator_bit_for_bit() {
        let text = include_str!("../../tests/expected/synth_vectors.json");
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 8);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let shape: Vec<usize> = serde_json::from_value(case["shape"].clone()).unwrap();
            let seed = case["seed"].as_u64().unwrap();
            let (lo, hi) = if name == "input" {
                (-1.0, 1.0)
            } else {
                let linear_in = (case["role"] == "linear_bias").then_some(2048);
                range(name, &shape, linear_in).unwrap()
            };
            assert_eq!(lo.to_bits(), case["lo_f64_bits"].as_u64().unwrap(), "{name}: lo");
            assert_eq!(hi.to_bits(), case["hi_f64_bits"].as_u64().unwrap(), "{name}: hi");
            let values = if name == "input" {
                input(&shape, seed)
            } else {
                uniform(name, shape.iter().product(), seed, lo, hi)
            };
            let first: Vec<u64> = values.iter().take(16).map(|v| u64::from(v.to_bits())).collect();
            let expected: Vec<u64> = serde_json::from_value(case["first16_f32_bits"].clone()).unwrap();
            assert_eq!(first, expected, "{name} seed {seed}");
            let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
            assert_eq!(sum, case["sum_f64"].as_f64().unwrap(), "{name} seed {seed}: sum");
        }
    }
}
