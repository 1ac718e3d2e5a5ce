//! Fuse a block's shortcut into its last conv.
//!
//! A block ends `relu(bn(conv(h)) + shortcut)`. After `fold_bn` the `add` reads the last conv
//! (port `Main`) and the shortcut (port `Residual`), which is either the block input `x`
//! (identity) or a folded 1x1 strided conv of it (projection, torchvision's `downsample`).
//!
//! - Identity: the conv takes `x` on its `Residual` port and adds it in its epilogue.
//! - Projection: `W_last * h + b_last + W_ds * x_strided + b_ds` is one conv with the K-columns
//!   of both: `[W_last | W_ds] * [h ; x_strided] + (b_last + b_ds)`. The conv records the
//!   downsample and reads `x` on its `Shortcut` port; the downsample node is removed, so its
//!   output is never materialized.
//!
//! In both cases the conv takes the `add`'s place and the `add` is removed.

use super::{Stage, conv_open_for};
use crate::ir::{Graph, Op, Port, Shortcut};

/// Fuses every `add` whose main input is a conv that can take it; returns how many.
pub fn fuse_shortcut(g: &mut Graph) -> usize {
    let mut fused = 0;
    for add in g.schedule() {
        if !matches!(g.node(add).op, Op::Add) {
            continue;
        }
        let (Some(main), Some(res)) = (g.input_at(add, Port::Main), g.input_at(add, Port::Residual)) else {
            continue;
        };
        if !conv_open_for(&g.node(main).op, Stage::Shortcut) || g.users(main).len() != 1 || g.is_output(main)
        {
            continue;
        }
        let add_name = g.node(add).name.clone();
        let (shortcut, from, port) = match projection(g, res) {
            Some((conv, bn, in_channels, stride, x)) => {
                let s = Shortcut::Projection {
                    conv,
                    bn,
                    in_channels,
                    stride,
                    add: add_name,
                };
                g.remove(res);
                (s, x, Port::Shortcut)
            }
            None => (Shortcut::Identity { add: add_name }, res, Port::Residual),
        };
        if let Op::Conv(c) = &mut g.node_mut(main).op {
            c.fused.shortcut = Some(shortcut);
        }
        g.connect(from, main, port);
        g.replace_uses(add, main);
        g.remove(add);
        fused += 1;
    }
    fused
}

/// If `res` is a 1x1, ungrouped, unpadded conv used only by the `add` (torchvision's
/// `downsample` after `fold_bn`), its name, BatchNorm, input channels, stride and input.
fn projection(
    g: &Graph,
    res: crate::ir::NodeId,
) -> Option<(String, Option<String>, usize, usize, crate::ir::NodeId)> {
    let node = g.node(res);
    let Op::Conv(c) = &node.op else { return None };
    let plain = c.kernel == 1 && c.groups == 1 && c.padding == 0 && c.dilation == 1;
    let nothing_after_bn = c.fused.shortcut.is_none() && c.fused.relu.is_none();
    if !plain || !nothing_after_bn || g.users(res).len() != 1 || g.is_output(res) {
        return None;
    }
    let x = g.input_at(res, Port::Main)?;
    Some((node.name.clone(), c.fused.bn.clone(), c.in_channels, c.stride, x))
}

#[cfg(test)]
mod tests {
    use super::super::tests::conv;
    use super::*;

    /// x -> c1 -> c2 (main) ; x -> [ds] (residual) ; add ; relu
    fn block(projection: bool) -> (Graph, [crate::ir::NodeId; 4]) {
        let mut g = Graph::new("t", [1, 4, 8, 8]);
        let x = g.add("x", Op::Relu, &[(Port::Main, g.input())]);
        let stride = if projection { 2 } else { 1 };
        let cout = if projection { 8 } else { 4 };
        let h = g.add("conv1", conv(4, cout, 3, stride), &[(Port::Main, x)]);
        let h = g.add("conv2", conv(cout, cout, 3, 1), &[(Port::Main, h)]);
        let res = if projection {
            g.add("downsample.0", conv(4, cout, 1, 2), &[(Port::Main, x)])
        } else {
            x
        };
        let add = g.add("add", Op::Add, &[(Port::Main, h), (Port::Residual, res)]);
        let r = g.add("relu_1", Op::Relu, &[(Port::Main, add)]);
        g.add_output("out", r);
        (g, [x, h, res, r])
    }

    #[test]
    fn identity_becomes_residual_input() {
        let (mut g, [x, conv2, _, relu]) = block(false);
        assert_eq!(fuse_shortcut(&mut g), 1);
        assert_eq!(g.input_at(conv2, Port::Residual), Some(x));
        assert_eq!(g.input_at(relu, Port::Main), Some(conv2));
        assert!(g.schedule().iter().all(|&n| !matches!(g.node(n).op, Op::Add)));
        let Op::Conv(c) = &g.node(conv2).op else { panic!() };
        assert_eq!(c.fused.shortcut, Some(Shortcut::Identity { add: "add".into() }));
        crate::shape::infer(&g).unwrap();
    }

    #[test]
    fn projection_becomes_extra_k_columns() {
        let (mut g, [x, conv2, ds, _]) = block(true);
        assert_eq!(fuse_shortcut(&mut g), 1);
        assert!(!g.contains(ds), "the downsample is not materialized");
        assert_eq!(g.input_at(conv2, Port::Shortcut), Some(x));
        let Op::Conv(c) = &g.node(conv2).op else { panic!() };
        assert_eq!(
            c.fused.shortcut,
            Some(Shortcut::Projection {
                conv: "downsample.0".into(),
                bn: None,
                in_channels: 4,
                stride: 2,
                add: "add".into()
            })
        );
        crate::shape::infer(&g).unwrap();
    }
}
