//! Graphviz DOT of a graph, before or after the passes (`resnetc graph [--fused]`).

use petgraph::dot::{Config, Dot};

use crate::Compilation;
use crate::ir::{Graph, Op, Port};

/// The graph as built: one box per module call, labelled with its name, op and shape.
pub fn unfused(c: &Compilation) -> String {
    render(&c.graph, &|id| {
        let node = c.graph.node(id);
        format!("{}\\n{}\\n{}", node.name, op_label(&node.op), c.shapes.get(id))
    })
}

/// The graph after the passes: one box per kernel call, labelled with the modules it
/// covers, the op and the arena offset of its output.
pub fn fused(c: &Compilation) -> String {
    let covers: std::collections::BTreeMap<_, _> = c
        .fused
        .schedule()
        .into_iter()
        .filter(|&id| id != c.fused.input())
        .zip(&c.program.steps)
        .map(|(id, step)| (id, step.covers.clone()))
        .collect();
    render(&c.fused, &|id| {
        let node = c.fused.node(id);
        let title = covers.get(&id).cloned().unwrap_or_else(|| node.name.clone());
        format!(
            "{title}\\n{}\\n{} @ {}",
            op_label(&node.op),
            c.fused_shapes.get(id),
            c.plan.loc(id)
        )
    })
}

fn render(g: &Graph, label: &dyn Fn(crate::ir::NodeId) -> String) -> String {
    let pg = g.petgraph();
    let node_attr = |_, (index, _): (petgraph::stable_graph::NodeIndex, &crate::ir::Node)| {
        let id = crate::ir::NodeId::from_index(index);
        let shape = if g.is_output(id) || id == g.input() {
            "box, style=bold"
        } else {
            "box"
        };
        format!("label=\"{}\" shape={shape}", escape(&label(id)))
    };
    let edge_attr = |_, e: petgraph::stable_graph::EdgeReference<'_, Port>| match e.weight() {
        Port::Main => String::new(),
        Port::Residual => "label=\"residual\" style=dashed".into(),
        Port::Shortcut => "label=\"shortcut\" style=dashed".into(),
    };
    let dot = Dot::with_attr_getters(
        pg,
        &[Config::EdgeNoLabel, Config::NodeNoLabel],
        &edge_attr,
        &node_attr,
    );
    let body = format!("{dot:?}");
    // Name the graph after the model.
    body.replacen("digraph {", &format!("digraph {} {{", g.name()), 1)
}

fn op_label(op: &Op) -> String {
    match op {
        Op::Conv(c) => {
            let mut s = format!(
                "conv2d {}x{} /{} {}->{}",
                c.kernel, c.kernel, c.stride, c.in_channels, c.out_channels
            );
            if c.groups > 1 {
                s += &format!(" g{}", c.groups);
            }
            if c.dilation > 1 {
                s += &format!(" d{}", c.dilation);
            }
            if c.fused.bn.is_some() {
                s += " +bias";
            }
            match c.fused.shortcut {
                Some(crate::ir::Shortcut::Identity { .. }) => s += " +residual",
                Some(crate::ir::Shortcut::Projection { .. }) => s += " +projection",
                None => {}
            }
            if c.fused.relu.is_some() {
                s += " +relu";
            }
            s
        }
        Op::MaxPool(p) => format!("max_pool2d {}x{} /{}", p.kernel, p.kernel, p.stride),
        other => other.kind().to_owned(),
    }
}

/// Escapes a label for a double-quoted DOT string (`\n` sequences are kept as line breaks).
fn escape(s: &str) -> String {
    s.replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_has_a_node_per_module_and_edges_for_shortcuts() {
        let spec = crate::spec::parse_yaml(include_str!("../../../specs/resnet8_cifar.yaml"), "s").unwrap();
        let c = crate::compile(&spec, &crate::Options::default()).unwrap();
        let dot = super::unfused(&c);
        assert!(dot.starts_with("digraph resnet8_cifar {"));
        assert_eq!(dot.matches("shape=box").count(), c.graph.len());
        assert!(
            dot.contains("layer2.0.downsample.0\\nconv2d 1x1 /2 16->32\\n[1, 32, 16, 16]"),
            "{dot}"
        );
        let fused = super::fused(&c);
        assert_eq!(fused.matches("shape=box").count(), c.fused.len());
        assert!(fused.contains("label=\"shortcut\""));
        assert!(
            fused.contains("layer2.0.conv2 + bn2 + downsample.0 + downsample.1 + add + relu"),
            "{fused}"
        );
    }
}
