//! The graph IR: one node per torchvision module call, named as torchvision names it.
//!
//! A [`Graph`] is a dataflow DAG whose nodes are [`Op`]s and whose edges carry a [`Port`]
//! saying which input of the consumer they feed. Nodes are added in the order of
//! torchvision's `forward`, and that order is the schedule: every edge goes from an earlier
//! node to a later one (the verifier checks it), so the schedule is deterministic and needs
//! no topological sort. The passes remove and rewire nodes; a [`StableGraph`] keeps the ids
//! of the remaining nodes valid, so ids stay meaningful across passes and in messages.
//!
//! Names follow `torch.fx`'s tracing of torchvision's models: a module called once is named
//! after the module (`layer2.0.downsample.0`); the block's shared `relu` module, called two
//! or three times, gives `relu`, `relu_1`, `relu_2`; the residual addition is `add`.

mod build;
mod display;

use std::fmt;

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::EdgeRef;

/// Identifies a node of a [`Graph`]; stays valid while other nodes are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(NodeIndex<u32>);

impl NodeId {
    /// Position in the schedule of the graph the node was created in.
    pub fn index(self) -> usize {
        self.0.index()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0.index())
    }
}

/// Which input of its consumer an edge feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// The data input (a conv's, a pool's) or, for `add`, the residual branch.
    Main,
    /// For `add`, the shortcut; for a conv after `fuse_shortcut`, the identity shortcut,
    /// added in the epilogue.
    Residual,
    /// For a conv after `fuse_shortcut`, the input of a projection shortcut, whose 1x1
    /// strided conv is computed as extra K-columns of this conv.
    Shortcut,
}

/// A 2-D convolution (`nn.Conv2d` with square kernel, stride, padding and dilation), and the
/// modules fused into its epilogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conv {
    /// Input channels (of the `Main` input).
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: usize,
    /// Stride along both axes.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Dilation along both axes.
    pub dilation: usize,
    /// Channel groups; `in_channels` and `out_channels` are multiples of it.
    pub groups: usize,
    /// What the passes fused into this conv. Empty on a freshly built graph.
    pub fused: Fused,
}

impl Conv {
    /// Multiply-accumulates per output element (the conv alone, not its shortcut).
    pub fn macs_per_output(&self) -> usize {
        self.in_channels / self.groups * self.kernel * self.kernel
    }

    /// Parameters of torchvision's module (`bias=False` throughout torchvision's ResNets).
    pub fn params(&self) -> usize {
        self.out_channels * self.macs_per_output()
    }
}

/// Modules fused into a conv, named by their graph node names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fused {
    /// The BatchNorm folded into the weights; the conv then has a bias.
    pub bn: Option<String>,
    /// The block's shortcut, computed in this conv's epilogue.
    pub shortcut: Option<Shortcut>,
    /// The ReLU applied last.
    pub relu: Option<String>,
}

/// A block's shortcut fused into the block's last conv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortcut {
    /// `out += identity`: the `Residual` input is added in the epilogue.
    Identity {
        /// The `add` node.
        add: String,
    },
    /// `out += downsample(x)`: the 1x1 strided conv (with its BatchNorm folded) reads the
    /// `Shortcut` input as extra K-columns of this conv, into the same accumulators.
    Projection {
        /// The downsample conv (`layerK.0.downsample.0`).
        conv: String,
        /// Its BatchNorm (`layerK.0.downsample.1`), folded.
        bn: Option<String>,
        /// Channels of the shortcut input.
        in_channels: usize,
        /// Stride of the 1x1 conv.
        stride: usize,
        /// The `add` node.
        add: String,
    },
}

/// `nn.BatchNorm2d` in eval mode.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// Channels normalized.
    pub channels: usize,
    /// torchvision's default, 1e-5.
    pub eps: f64,
}

/// `nn.MaxPool2d` (square window, `ceil_mode=False`, dilation 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool {
    /// Window height and width.
    pub kernel: usize,
    /// Stride along both axes.
    pub stride: usize,
    /// Padding on every side (padded cells never win the max).
    pub padding: usize,
}

/// `nn.Linear`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
}

/// What a node computes. Closed, so that every pass and back end handles every op.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The model's input.
    Input,
    /// `nn.Conv2d`, with whatever the passes fused into it.
    Conv(Conv),
    /// `nn.BatchNorm2d`.
    BatchNorm(BatchNorm),
    /// `nn.ReLU`.
    Relu,
    /// `nn.MaxPool2d`.
    MaxPool(MaxPool),
    /// `out += identity` in a block's `forward`.
    Add,
    /// `nn.AdaptiveAvgPool2d((1, 1))` followed by `torch.flatten(x, 1)`.
    GlobalAvgPool,
    /// `nn.Linear`.
    Linear(Linear),
}

impl Op {
    /// Short lowercase name, as printed in the IR text and the summary.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv(_) => "conv2d",
            Op::BatchNorm(_) => "batch_norm",
            Op::Relu => "relu",
            Op::MaxPool(_) => "max_pool2d",
            Op::Add => "add",
            Op::GlobalAvgPool => "avg_pool2d",
            Op::Linear(_) => "linear",
        }
    }

    /// torchvision's parameter count of the module (BatchNorm: weight and bias, not its
    /// running statistics).
    pub fn params(&self) -> usize {
        match self {
            Op::Conv(c) => c.params(),
            Op::BatchNorm(bn) => 2 * bn.channels,
            Op::Linear(l) => l.in_features * l.out_features + l.out_features,
            _ => 0,
        }
    }
}

/// A node: a torchvision module call.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Unique name (see the module docs).
    pub name: String,
    /// What it computes.
    pub op: Op,
}

impl Node {
    /// The torchvision module this node calls: the name without the `_1`, `_2` that tell
    /// apart repeated calls of a block's shared `relu`.
    pub fn module(&self) -> &str {
        module_of(&self.name)
    }
}

/// See [`Node::module`].
pub(crate) fn module_of(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((stem, n)) if stem.ends_with("relu") && n.bytes().all(|b| b.is_ascii_digit()) => stem,
        _ => name,
    }
}

/// One tensor of torchvision's `state_dict` for a module of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// Its `state_dict` key, e.g. `layer1.0.bn1.running_var`.
    pub name: String,
    /// Its shape (`[]` for the scalar `num_batches_tracked`).
    pub shape: Vec<usize>,
}

/// One of the values a graph returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// `logits`, or the stage name (`layer3`) for a features head.
    pub name: String,
    /// The node producing it.
    pub node: NodeId,
}

/// A ResNet as a graph of torchvision module calls.
#[derive(Debug, Clone)]
pub struct Graph {
    name: String,
    input_shape: [usize; 4],
    graph: StableGraph<Node, Port>,
    input: NodeId,
    outputs: Vec<Output>,
}

impl Graph {
    /// An empty graph with just its input.
    pub fn new(name: impl Into<String>, input_shape: [usize; 4]) -> Graph {
        let mut graph = StableGraph::default();
        let input = NodeId(graph.add_node(Node {
            name: "input".into(),
            op: Op::Input,
        }));
        Graph {
            name: name.into(),
            input_shape,
            graph,
            input,
            outputs: Vec::new(),
        }
    }

    /// The model name (the spec's `name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Static input shape, `[N, C, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        self.input_shape
    }

    /// The input node.
    pub fn input(&self) -> NodeId {
        self.input
    }

    /// What the graph returns, in order.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// Appends a node reading `inputs`; it runs after every node added before.
    pub fn add(&mut self, name: impl Into<String>, op: Op, inputs: &[(Port, NodeId)]) -> NodeId {
        let id = NodeId(self.graph.add_node(Node {
            name: name.into(),
            op,
        }));
        for &(port, from) in inputs {
            self.graph.add_edge(from.0, id.0, port);
        }
        id
    }

    /// Marks `node` as returned, under `name`.
    pub fn add_output(&mut self, name: impl Into<String>, node: NodeId) {
        self.outputs.push(Output {
            name: name.into(),
            node,
        });
    }

    /// The node `id`. Panics if it was removed: ids of removed nodes are never handed out.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id.0]
    }

    /// The node `id`, mutably.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.graph[id.0]
    }

    /// Whether `id` is still in the graph.
    pub fn contains(&self, id: NodeId) -> bool {
        self.graph.contains_node(id.0)
    }

    /// Every node, in schedule order.
    pub fn schedule(&self) -> Vec<NodeId> {
        let mut ids: Vec<_> = self.graph.node_indices().map(NodeId).collect();
        ids.sort();
        ids
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether the graph has no nodes (never true: the input is always there).
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The inputs of `id`, ordered by port.
    pub fn inputs(&self, id: NodeId) -> Vec<(Port, NodeId)> {
        let mut v: Vec<_> = self
            .graph
            .edges_directed(id.0, Direction::Incoming)
            .map(|e| (*e.weight(), NodeId(e.source())))
            .collect();
        v.sort();
        v
    }

    /// The producer feeding `port` of `id`, if exactly one does.
    pub fn input_at(&self, id: NodeId, port: Port) -> Option<NodeId> {
        let mut it = self.inputs(id).into_iter().filter(|&(p, _)| p == port);
        match (it.next(), it.next()) {
            (Some((_, n)), None) => Some(n),
            _ => None,
        }
    }

    /// The consumers of `id`, in schedule order, once per edge.
    pub fn users(&self, id: NodeId) -> Vec<(NodeId, Port)> {
        let mut v: Vec<_> = self
            .graph
            .edges_directed(id.0, Direction::Outgoing)
            .map(|e| (NodeId(e.target()), *e.weight()))
            .collect();
        v.sort();
        v
    }

    /// Whether `id` is one of the graph's outputs.
    pub fn is_output(&self, id: NodeId) -> bool {
        self.outputs.iter().any(|o| o.node == id)
    }

    /// Adds an edge feeding `port` of `to` from `from`.
    pub fn connect(&mut self, from: NodeId, to: NodeId, port: Port) {
        self.graph.add_edge(from.0, to.0, port);
    }

    /// Makes every consumer of `old` (and every output naming it) use `new` instead.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        for (user, port) in self.users(old) {
            if let Some(e) = self.graph.find_edge(old.0, user.0) {
                self.graph.remove_edge(e);
            }
            self.graph.add_edge(new.0, user.0, port);
        }
        for o in &mut self.outputs {
            if o.node == old {
                o.node = new;
            }
        }
    }

    /// Removes `id` and its edges.
    pub fn remove(&mut self, id: NodeId) -> Node {
        self.graph
            .remove_node(id.0)
            .expect("removing a node that is not in the graph")
    }

    /// torchvision's `state_dict` entries for this graph's modules, in torchvision's order
    /// (module registration order, which is the order of `forward` for a ResNet).
    pub fn state_dict(&self) -> Vec<Parameter> {
        let mut out = Vec::new();
        let mut push = |module: &str, what: &str, shape: Vec<usize>| {
            out.push(Parameter {
                name: format!("{module}.{what}"),
                shape,
            })
        };
        for id in self.schedule() {
            let node = self.node(id);
            match &node.op {
                Op::Conv(c) => push(
                    &node.name,
                    "weight",
                    vec![c.out_channels, c.in_channels / c.groups, c.kernel, c.kernel],
                ),
                Op::BatchNorm(bn) => {
                    for what in ["weight", "bias", "running_mean", "running_var"] {
                        push(&node.name, what, vec![bn.channels]);
                    }
                    push(&node.name, "num_batches_tracked", vec![]);
                }
                Op::Linear(l) => {
                    push(&node.name, "weight", vec![l.out_features, l.in_features]);
                    push(&node.name, "bias", vec![l.out_features]);
                }
                Op::Input | Op::Relu | Op::MaxPool(_) | Op::Add | Op::GlobalAvgPool => {}
            }
        }
        out
    }

    /// The underlying petgraph, for the DOT writer.
    pub(crate) fn petgraph(&self) -> &StableGraph<Node, Port> {
        &self.graph
    }
}

impl NodeId {
    pub(crate) fn from_index(index: NodeIndex<u32>) -> NodeId {
        NodeId(index)
    }
}
