//! The verifier: structural invariants of a graph, checked after building and after each pass.

use crate::ir::{Graph, NodeId, Op, Port};
use crate::shape::{self, ShapeError, ShapeInfo};

/// A broken invariant, with the node it is about.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// An edge or port is wrong.
    #[error("{name} ({node}): {message}")]
    Structure {
        /// The node.
        node: NodeId,
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Shapes do not agree.
    #[error(transparent)]
    Shape(#[from] ShapeError),
}

/// Checks that every edge goes forward in the schedule, that every node has the inputs its
/// op takes, that node names are unique, and that shapes agree; returns the shapes (the side
/// table later stages use, as naga's validator returns its `ModuleInfo`).
pub fn verify(g: &Graph) -> Result<ShapeInfo, VerifyError> {
    let mut names = std::collections::BTreeSet::new();
    for id in g.schedule() {
        let node = g.node(id);
        let fail = |message: String| VerifyError::Structure {
            node: id,
            name: node.name.clone(),
            message,
        };
        if !names.insert(node.name.as_str()) {
            return Err(fail("the name is used twice".into()));
        }
        let inputs = g.inputs(id);
        if let Some((_, from)) = inputs.iter().find(|(_, from)| *from >= id) {
            return Err(fail(format!("reads {from}, which is not scheduled before it")));
        }
        let ports: Vec<Port> = inputs.iter().map(|&(p, _)| p).collect();
        let expected: &[Port] = match &node.op {
            Op::Input => &[],
            Op::Add => &[Port::Main, Port::Residual],
            Op::Conv(c) => match &c.fused.shortcut {
                None => &[Port::Main],
                Some(crate::ir::Shortcut::Identity { .. }) => &[Port::Main, Port::Residual],
                Some(crate::ir::Shortcut::Projection { .. }) => &[Port::Main, Port::Shortcut],
            },
            _ => &[Port::Main],
        };
        if ports != expected {
            return Err(fail(format!("has inputs {ports:?}, expected {expected:?}")));
        }
        if let Op::Conv(c) = &node.op
            && (c.groups == 0 || c.in_channels % c.groups != 0 || c.out_channels % c.groups != 0)
        {
            return Err(fail(format!(
                "{} -> {} channels cannot be split into {} groups",
                c.in_channels, c.out_channels, c.groups
            )));
        }
    }
    for o in g.outputs() {
        if !g.contains(o.node) {
            return Err(VerifyError::Structure {
                node: o.node,
                name: o.name.clone(),
                message: "the output names a removed node".into(),
            });
        }
    }
    Ok(shape::infer(g)?)
}

/// Checks that the passes left nothing but convs, pools and the classifier.
pub fn verify_fused(g: &Graph) -> Result<(), VerifyError> {
    for id in g.schedule() {
        let node = g.node(id);
        if matches!(node.op, Op::BatchNorm(_) | Op::Add | Op::Relu) {
            return Err(VerifyError::Structure {
                node: id,
                name: node.name.clone(),
                message: format!("{} was not fused", node.op.kind()),
            });
        }
    }
    Ok(())
}
