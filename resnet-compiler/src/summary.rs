//! `resnetc summary`: one row per torchvision module call, with totals and memory.
//!
//! Parameters are counted as torchvision counts them (`sum(p.numel() for p in
//! model.parameters())`: conv and fc weights, fc bias, BatchNorm weight and bias, not the
//! running statistics). MACs count the multiply-accumulates of the convs and of the fc, as
//! torchvision's published GFLOPS figures do.

use std::fmt;

use serde::Serialize;

use crate::Compilation;
use crate::ir::{Op, Shortcut};

/// One row of the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Node name (torchvision module, `_1`/`_2` for repeated ReLU calls).
    pub name: String,
    /// Op kind.
    pub op: &'static str,
    /// Output shape.
    pub shape: Vec<usize>,
    /// torchvision parameters of the module.
    pub params: usize,
    /// Multiply-accumulates.
    pub macs: usize,
}

/// The whole summary; serializes to `resnetc summary --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Model name.
    pub name: String,
    /// Input shape.
    pub input: [usize; 4],
    /// torchvision's parameter count.
    pub params: usize,
    /// Total multiply-accumulates per forward pass (the whole batch).
    pub macs: usize,
    /// Arena size, bytes.
    pub arena_bytes: usize,
    /// The arena's lower bound, bytes.
    pub lower_bound_bytes: usize,
    /// Weights and biases after folding BatchNorm, as `f32`, bytes.
    pub weight_bytes: usize,
    /// Kernel calls after fusion.
    pub steps: usize,
    /// One row per module call, in forward order.
    pub layers: Vec<Row>,
}

impl Summary {
    /// Summarizes a compilation.
    pub fn new(c: &Compilation) -> Summary {
        let g = &c.graph;
        let layers: Vec<Row> = g
            .schedule()
            .into_iter()
            .filter(|&id| id != g.input())
            .map(|id| {
                let node = g.node(id);
                let shape = c.shapes.get(id);
                let macs = match &node.op {
                    Op::Conv(conv) => shape.elements() * conv.macs_per_output(),
                    Op::Linear(l) => shape.dims()[0] * l.in_features * l.out_features,
                    _ => 0,
                };
                Row {
                    name: node.name.clone(),
                    op: node.op.kind(),
                    shape: shape.dims().to_vec(),
                    params: node.op.params(),
                    macs,
                }
            })
            .collect();
        let weight_elements: usize = c
            .fused
            .schedule()
            .into_iter()
            .map(|id| match &c.fused.node(id).op {
                Op::Conv(conv) => {
                    let shortcut = match &conv.fused.shortcut {
                        Some(Shortcut::Projection { in_channels, .. }) => conv.out_channels * in_channels,
                        _ => 0,
                    };
                    let bias = if conv.fused.bn.is_some() {
                        conv.out_channels
                    } else {
                        0
                    };
                    conv.params() + shortcut + bias
                }
                Op::Linear(l) => l.in_features * l.out_features + l.out_features,
                _ => 0,
            })
            .sum();
        Summary {
            name: c.spec.name.clone(),
            input: c.spec.input,
            params: layers.iter().map(|r| r.params).sum(),
            macs: layers.iter().map(|r| r.macs).sum(),
            arena_bytes: c.plan.arena_bytes(),
            lower_bound_bytes: c.plan.lower_bound_bytes(),
            weight_bytes: weight_elements * crate::plan::ELEMENT_BYTES,
            steps: c.program.steps.len(),
            layers,
        }
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_w = self.layers.iter().map(|r| r.name.len()).max().unwrap_or(4).max(5);
        writeln!(f, "{}: input {:?}", self.name, self.input)?;
        writeln!(
            f,
            "{:<name_w$}  {:<10}  {:<20}  {:>12}  {:>15}",
            "layer", "op", "output shape", "params", "MACs"
        )?;
        for r in &self.layers {
            writeln!(
                f,
                "{:<name_w$}  {:<10}  {:<20}  {:>12}  {:>15}",
                r.name,
                r.op,
                format!("{:?}", r.shape),
                thousands(r.params),
                thousands(r.macs)
            )?;
        }
        writeln!(
            f,
            "{:<name_w$}  {:<10}  {:<20}  {:>12}  {:>15}",
            "total",
            "",
            "",
            thousands(self.params),
            thousands(self.macs)
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "params:       {} ({:.2} M)",
            thousands(self.params),
            self.params as f64 / 1e6
        )?;
        writeln!(
            f,
            "MACs:         {} ({:.2} G)",
            thousands(self.macs),
            self.macs as f64 / 1e9
        )?;
        writeln!(
            f,
            "arena:        {} bytes (lower bound {} bytes)",
            thousands(self.arena_bytes),
            thousands(self.lower_bound_bytes)
        )?;
        writeln!(
            f,
            "weights:      {} bytes after folding BatchNorm",
            thousands(self.weight_bytes)
        )?;
        writeln!(
            f,
            "kernel calls: {} after fusion ({} module calls)",
            self.steps,
            self.layers.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(text: &str) -> Summary {
        let spec = crate::spec::parse_yaml(text, "spec").unwrap();
        Summary::new(&crate::compile(&spec, &crate::Options::default()).unwrap())
    }

    /// torchvision's counts, from its model documentation (`num_params`, `GFLOPS`).
    #[test]
    fn params_and_macs_match_torchvision() {
        let cases = [
            (include_str!("../../specs/resnet18.yaml"), 11_689_512, 1.81),
            (include_str!("../../specs/resnet34.yaml"), 21_797_672, 3.66),
            (include_str!("../../specs/resnet50.yaml"), 25_557_032, 4.09),
            (include_str!("../../specs/resnet101.yaml"), 44_549_160, 7.80),
            (include_str!("../../specs/resnet152.yaml"), 60_192_808, 11.51),
            (include_str!("../../specs/resnext50_32x4d.yaml"), 25_028_904, 4.23),
            (
                include_str!("../../specs/resnext101_32x8d.yaml"),
                88_791_336,
                16.41,
            ),
            (
                include_str!("../../specs/resnext101_64x4d.yaml"),
                83_455_272,
                15.46,
            ),
            (
                include_str!("../../specs/wide_resnet50_2.yaml"),
                68_883_240,
                11.40,
            ),
            (
                include_str!("../../specs/wide_resnet101_2.yaml"),
                126_886_696,
                22.75,
            ),
        ];
        for (text, params, gmacs) in cases {
            let s = summary(text);
            assert_eq!(s.params, params, "{}", s.name);
            let rel = (s.macs as f64 / 1e9 - gmacs).abs() / gmacs;
            assert!(
                rel < 0.01,
                "{}: {} MACs vs torchvision's {gmacs} G",
                s.name,
                s.macs
            );
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(25_557_032), "25,557,032");
    }
}
