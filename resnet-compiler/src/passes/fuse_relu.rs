//! Fuse ReLU into the epilogue of the conv that produces its input.
//!
//! For every ReLU whose input is a conv with no other user and no ReLU yet, the conv records
//! the ReLU (its epilogue clamps at zero after the bias and the shortcut) and takes the ReLU's
//! place. Runs after `fuse_shortcut`, so a block's final ReLU lands after the residual add.

use super::{Stage, conv_open_for};
use crate::ir::{Graph, Op, Port};

/// Fuses every ReLU that follows a conv; returns how many.
pub fn fuse_relu(g: &mut Graph) -> usize {
    let mut fused = 0;
    for relu in g.schedule() {
        if !matches!(g.node(relu).op, Op::Relu) {
            continue;
        }
        let Some(conv) = g.input_at(relu, Port::Main) else {
            continue;
        };
        if !conv_open_for(&g.node(conv).op, Stage::Relu) || g.users(conv).len() != 1 || g.is_output(conv) {
            continue;
        }
        let name = g.node(relu).name.clone();
        if let Op::Conv(c) = &mut g.node_mut(conv).op {
            c.fused.relu = Some(name);
        }
        g.replace_uses(relu, conv);
        g.remove(relu);
        fused += 1;
    }
    fused
}

#[cfg(test)]
mod tests {
    use super::super::tests::conv;
    use super::*;

    #[test]
    fn fuses_relu_into_conv() {
        let mut g = Graph::new("t", [1, 3, 8, 8]);
        let c = g.add("conv1", conv(3, 4, 3, 1), &[(Port::Main, g.input())]);
        let r = g.add("relu", Op::Relu, &[(Port::Main, c)]);
        let c2 = g.add("conv2", conv(4, 4, 3, 1), &[(Port::Main, r)]);
        g.add_output("out", c2);
        assert_eq!(fuse_relu(&mut g), 1);
        assert!(!g.contains(r));
        assert_eq!(g.input_at(c2, Port::Main), Some(c));
        let Op::Conv(cv) = &g.node(c).op else { panic!() };
        assert_eq!(cv.fused.relu.as_deref(), Some("relu"));
    }

    #[test]
    fn keeps_relu_after_a_pool_or_a_shared_conv() {
        let mut g = Graph::new("t", [1, 3, 8, 8]);
        let c = g.add("conv1", conv(3, 4, 3, 1), &[(Port::Main, g.input())]);
        let r = g.add("relu", Op::Relu, &[(Port::Main, c)]);
        g.add_output("pre", c);
        g.add_output("post", r);
        assert_eq!(fuse_relu(&mut g), 0, "the conv's own output is returned too");
        let mut g = Graph::new("t", [1, 3, 8, 8]);
        let r = g.add("relu", Op::Relu, &[(Port::Main, g.input())]);
        assert_eq!(fuse_relu(&mut g), 0);
        assert!(g.contains(r));
    }
}
