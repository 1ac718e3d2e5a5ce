//! Fold BatchNorm into the preceding conv.
//!
//! In eval mode `bn(conv(x)) = g * (W*x - m) / sqrt(v + eps) + b`, which is a conv with weights
//! `W' = W * g / sqrt(v + eps)` (per output channel) and bias `b' = b - m * g / sqrt(v + eps)`.
//! The pass is structural: for every BatchNorm whose input is a conv with no other user and
//! nothing fused yet, the conv records the BatchNorm (so that weight preparation folds its
//! parameters, in f64) and takes the BatchNorm's place; the BatchNorm node is removed.

use super::{Stage, conv_open_for};
use crate::ir::{Graph, Op, Port};

/// Folds every BatchNorm that follows a conv; returns how many.
pub fn fold_bn(g: &mut Graph) -> usize {
    let mut folded = 0;
    for bn in g.schedule() {
        if !matches!(g.node(bn).op, Op::BatchNorm(_)) {
            continue;
        }
        let Some(conv) = g.input_at(bn, Port::Main) else {
            continue;
        };
        if !conv_open_for(&g.node(conv).op, Stage::Bn) || g.users(conv).len() != 1 || g.is_output(conv) {
            continue;
        }
        let name = g.node(bn).name.clone();
        if let Op::Conv(c) = &mut g.node_mut(conv).op {
            c.fused.bn = Some(name);
        }
        g.replace_uses(bn, conv);
        g.remove(bn);
        folded += 1;
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bn, conv};
    use super::*;

    #[test]
    fn folds_bn_after_conv_and_keeps_outputs() {
        let mut g = Graph::new("t", [1, 3, 8, 8]);
        let c = g.add("conv1", conv(3, 4, 3, 1), &[(Port::Main, g.input())]);
        let b = g.add("bn1", bn(4), &[(Port::Main, c)]);
        let r = g.add("relu", Op::Relu, &[(Port::Main, b)]);
        g.add_output("out", b);
        assert_eq!(fold_bn(&mut g), 1);
        assert!(!g.contains(b));
        assert_eq!(g.input_at(r, Port::Main), Some(c));
        assert_eq!(g.outputs()[0].node, c);
        let Op::Conv(cv) = &g.node(c).op else { panic!() };
        assert_eq!(cv.fused.bn.as_deref(), Some("bn1"));
    }

    #[test]
    fn leaves_bn_whose_conv_has_other_users() {
        let mut g = Graph::new("t", [1, 3, 8, 8]);
        let c = g.add("conv1", conv(3, 4, 3, 1), &[(Port::Main, g.input())]);
        let b = g.add("bn1", bn(4), &[(Port::Main, c)]);
        g.add("relu", Op::Relu, &[(Port::Main, c)]);
        assert_eq!(fold_bn(&mut g), 0);
        assert!(g.contains(b));
        // A BatchNorm after something other than a conv stays too.
        let mut g = Graph::new("t", [1, 3, 8, 8]);
        let b = g.add("bn1", bn(3), &[(Port::Main, g.input())]);
        assert_eq!(fold_bn(&mut g), 0);
        assert!(g.contains(b));
    }
}
