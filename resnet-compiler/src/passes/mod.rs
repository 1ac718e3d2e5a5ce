//! The fusion passes and the driver that runs them.
//!
//! Each pass is a free function `fn(&mut Graph) -> usize` (the number of rewrites) in its own
//! file, with its algorithm in the file's header. [`run`] applies them in order and verifies
//! the graph after each one, naming the pass that broke it; at the end no BatchNorm, `add`
//! or standalone ReLU may remain.

mod fold_bn;
mod fuse_relu;
mod fuse_shortcut;

pub use fold_bn::fold_bn;
pub use fuse_relu::fuse_relu;
pub use fuse_shortcut::fuse_shortcut;

use crate::ir::{Graph, Op};
use crate::shape::ShapeInfo;
use crate::valid;

/// A pass left the graph invalid: a compiler bug, reported with the pass's name.
#[derive(Debug, thiserror::Error)]
#[error("after pass `{pass}`: {source}")]
pub struct PassError {
    /// The pass after which verification failed.
    pub pass: &'static str,
    /// What the verifier found.
    #[source]
    pub source: valid::VerifyError,
}

/// A pass: rewrites the graph in place and returns how many rewrites it made.
pub type Pass = fn(&mut Graph) -> usize;

/// The passes, in the order they run.
pub const PASSES: [(&str, Pass); 3] = [
    ("fold_bn", fold_bn),
    ("fuse_shortcut", fuse_shortcut),
    ("fuse_relu", fuse_relu),
];

/// A graph after the passes, with the shapes the verifier found.
#[derive(Debug, Clone)]
pub struct Fused {
    /// The shapes of the graph the passes started from.
    pub input_shapes: ShapeInfo,
    /// The fused graph.
    pub graph: Graph,
    /// Its shapes.
    pub shapes: ShapeInfo,
}

/// Runs every pass on a copy of `graph` and returns the fused graph and the shapes of both.
pub fn run(graph: &Graph) -> Result<Fused, PassError> {
    let mut g = graph.clone();
    let input_shapes = valid::verify(&g).map_err(|source| PassError {
        pass: "build",
        source,
    })?;
    let mut shapes = input_shapes.clone();
    for (pass, f) in PASSES {
        f(&mut g);
        shapes = valid::verify(&g).map_err(|source| PassError { pass, source })?;
    }
    valid::verify_fused(&g).map_err(|source| PassError {
        pass: "fuse_relu",
        source,
    })?;
    Ok(Fused {
        input_shapes,
        graph: g,
        shapes,
    })
}

/// Whether `op` is a conv with nothing fused after `stage` yet, so that a following module
/// of `stage` can be fused into it.
fn conv_open_for(op: &Op, stage: Stage) -> bool {
    let Op::Conv(c) = op else { return false };
    match stage {
        Stage::Bn => c.fused.bn.is_none() && c.fused.shortcut.is_none() && c.fused.relu.is_none(),
        Stage::Shortcut => c.fused.shortcut.is_none() && c.fused.relu.is_none(),
        Stage::Relu => c.fused.relu.is_none(),
    }
}

/// The epilogue stages, in the order a conv applies them.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Bn,
    Shortcut,
    Relu,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BatchNorm, Conv, Fused, Port};

    pub(super) fn conv(cin: usize, cout: usize, k: usize, stride: usize) -> Op {
        Op::Conv(Conv {
            in_channels: cin,
            out_channels: cout,
            kernel: k,
            stride,
            padding: k / 2,
            dilation: 1,
            groups: 1,
            fused: Fused::default(),
        })
    }

    pub(super) fn bn(c: usize) -> Op {
        Op::BatchNorm(BatchNorm {
            channels: c,
            eps: 1e-5,
        })
    }

    #[test]
    fn passes_leave_only_convs_pools_and_linear() {
        for text in [
            include_str!("../../../specs/resnet18.yaml"),
            include_str!("../../../specs/resnext50_32x4d.yaml"),
            include_str!("../../../specs/resnet20_cifar.yaml"),
        ] {
            let spec = crate::spec::parse_yaml(text, "spec").unwrap();
            let fused = run(&Graph::from_spec(&spec)).unwrap().graph;
            for id in fused.schedule() {
                let op = &fused.node(id).op;
                assert!(
                    matches!(
                        op,
                        Op::Input | Op::Conv(_) | Op::MaxPool(_) | Op::GlobalAvgPool | Op::Linear(_)
                    ),
                    "{} is left: {op:?}",
                    fused.node(id).name
                );
            }
        }
    }

    #[test]
    fn verification_names_the_pass_that_broke_the_graph() {
        let mut g = Graph::new("t", [1, 3, 8, 8]);
        let c = g.add("conv1", conv(3, 4, 3, 1), &[(Port::Main, g.input())]);
        // A BatchNorm over the wrong channel count: shapes fail right away.
        let b = g.add("bn1", bn(5), &[(Port::Main, c)]);
        g.add_output("out", b);
        let e = run(&g).unwrap_err();
        assert_eq!(e.pass, "build");
        assert!(e.to_string().contains("bn1: expects 5 channels"), "{e}");
    }
}
