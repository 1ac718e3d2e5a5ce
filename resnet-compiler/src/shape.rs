//! Shape inference: the static shape of every node's output.
//!
//! One rule per op, as torchvision computes it (`floor` division throughout; `nn.MaxPool2d`
//! with `ceil_mode=False`). Inference also checks what the rules assume: channel counts
//! agree along every edge, a residual has the shape of the conv it is added in, and no
//! feature map is empty or larger than the compiler's limits.

use std::collections::BTreeMap;
use std::fmt;

use crate::ir::{Graph, NodeId, Op, Port};
use crate::spec::{Diagnostic, Field, FieldPath, Spec};

/// A tensor's static shape: `[N, C, H, W]` feature maps, or `[N, C]` after the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A batch of feature maps.
    Nchw([usize; 4]),
    /// A batch of vectors.
    Nc([usize; 2]),
}

impl Shape {
    /// Elements in the tensor.
    pub fn elements(self) -> usize {
        self.dims().iter().product()
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        match self {
            Shape::Nchw(d) => d,
            Shape::Nc(d) => d,
        }
    }

    /// Channels (the second dimension).
    pub fn channels(self) -> usize {
        self.dims()[1]
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

/// Output extent of a sliding window: torchvision's
/// `floor((len + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1`, or `None` when
/// the window does not fit once (an empty output).
pub fn window_out(
    len: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    let span = dilation * (kernel - 1) + 1;
    (len + 2 * padding)
        .checked_sub(span)
        .map(|room| room / stride + 1)
}

/// The output shape of every node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShapeInfo {
    shapes: BTreeMap<NodeId, Shape>,
}

impl ShapeInfo {
    /// The output shape of `id`.
    pub fn get(&self, id: NodeId) -> Shape {
        self.shapes[&id]
    }
}

/// Why shapes could not be inferred.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {kind}")]
pub struct ShapeError {
    /// The node whose output could not be shaped.
    pub node: NodeId,
    /// Its name.
    pub name: String,
    /// What went wrong.
    pub kind: ShapeErrorKind,
}

/// See [`ShapeError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeErrorKind {
    /// The window does not fit in the input once.
    #[error("input {input} is too small: the output would be empty")]
    Empty {
        /// The node's input shape.
        input: Shape,
    },
    /// The output would be larger than the compiler's limit.
    #[error("output {shape} has more than 2^29 elements")]
    TooLarge {
        /// The output shape.
        shape: Shape,
    },
    /// The inputs do not fit the op.
    #[error("{0}")]
    Mismatch(String),
}

/// Infers the shape of every node of `graph`.
pub fn infer(graph: &Graph) -> Result<ShapeInfo, ShapeError> {
    let mut info = ShapeInfo::default();
    for id in graph.schedule() {
        let node = graph.node(id);
        let err = |kind| ShapeError {
            node: id,
            name: node.name.clone(),
            kind,
        };
        let mismatch = |msg: String| err(ShapeErrorKind::Mismatch(msg));
        let input = |port: Port| -> Result<Shape, ShapeError> {
            let from = graph
                .input_at(id, port)
                .ok_or_else(|| mismatch(format!("expects exactly one {port:?} input")))?;
            info.shapes
                .get(&from)
                .copied()
                .ok_or_else(|| mismatch(format!("input {from} is scheduled after it")))
        };
        let nchw = |shape: Shape| match shape {
            Shape::Nchw(d) => Ok(d),
            Shape::Nc(_) => Err(mismatch(format!("expects a feature map, got {shape}"))),
        };
        let shape = match &node.op {
            Op::Input => Shape::Nchw(graph.input_shape()),
            Op::Conv(c) => {
                let x = input(Port::Main)?;
                let [n, ch, h, w] = nchw(x)?;
                if ch != c.in_channels {
                    return Err(mismatch(format!(
                        "expects {} input channels, got {x}",
                        c.in_channels
                    )));
                }
                let (Some(oh), Some(ow)) = (
                    window_out(h, c.kernel, c.stride, c.padding, c.dilation),
                    window_out(w, c.kernel, c.stride, c.padding, c.dilation),
                ) else {
                    return Err(err(ShapeErrorKind::Empty { input: x }));
                };
                let out = Shape::Nchw([n, c.out_channels, oh, ow]);
                for (port, what) in graph.inputs(id) {
                    match port {
                        Port::Main => {}
                        Port::Residual => {
                            let r = info.shapes[&what];
                            if r != out {
                                return Err(mismatch(format!(
                                    "residual {r} does not match the output {out}"
                                )));
                            }
                        }
                        Port::Shortcut => {
                            let Some(crate::ir::Shortcut::Projection {
                                in_channels, stride, ..
                            }) = &c.fused.shortcut
                            else {
                                return Err(mismatch("has a shortcut input but no projection".into()));
                            };
                            let s = info.shapes[&what];
                            let [sn, sc, sh, sw] = nchw(s)?;
                            let strided = [
                                sn,
                                c.out_channels,
                                window_out(sh, 1, *stride, 0, 1).unwrap_or(0),
                                window_out(sw, 1, *stride, 0, 1).unwrap_or(0),
                            ];
                            if sc != *in_channels || Shape::Nchw(strided) != out {
                                return Err(mismatch(format!(
                                    "projection shortcut of {s} with stride {stride} does not match the output {out}"
                                )));
                            }
                        }
                    }
                }
                out
            }
            Op::BatchNorm(bn) => {
                let x = input(Port::Main)?;
                if x.channels() != bn.channels {
                    return Err(mismatch(format!("expects {} channels, got {x}", bn.channels)));
                }
                x
            }
            Op::Relu => input(Port::Main)?,
            Op::MaxPool(p) => {
                let x = input(Port::Main)?;
                let [n, c, h, w] = nchw(x)?;
                match (
                    window_out(h, p.kernel, p.stride, p.padding, 1),
                    window_out(w, p.kernel, p.stride, p.padding, 1),
                ) {
                    (Some(oh), Some(ow)) => Shape::Nchw([n, c, oh, ow]),
                    _ => return Err(err(ShapeErrorKind::Empty { input: x })),
                }
            }
            Op::Add => {
                let (a, b) = (input(Port::Main)?, input(Port::Residual)?);
                if a != b {
                    return Err(mismatch(format!("adds {a} and {b}")));
                }
                a
            }
            Op::GlobalAvgPool => {
                let [n, c, _, _] = nchw(input(Port::Main)?)?;
                Shape::Nc([n, c])
            }
            Op::Linear(l) => {
                let x = input(Port::Main)?;
                match x {
                    Shape::Nc([n, f]) if f == l.in_features => Shape::Nc([n, l.out_features]),
                    _ => return Err(mismatch(format!("expects [N, {}], got {x}", l.in_features))),
                }
            }
        };
        let elements = shape
            .dims()
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        if elements.is_none_or(|e| e > crate::spec::limits::ELEMENTS) {
            return Err(err(ShapeErrorKind::TooLarge { shape }));
        }
        info.shapes.insert(id, shape);
    }
    Ok(info)
}

/// Checks that `spec`'s input gives every feature map at least one element, and none more
/// than the compiler's limit; the diagnostic names the layer that fails.
pub(crate) fn check_input_extent(spec: &Spec, graph: &Graph) -> Result<(), Diagnostic> {
    let e = match infer(graph) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let [n, c, h, w] = spec.input;
    let message = match e.kind {
        // With torchvision's paddings every window fits an input of 1x1, so this is a guard
        // for graphs other than torchvision's rather than a rule users meet.
        ShapeErrorKind::Empty { input } => format!(
            "input [{n}, {c}, {h}, {w}] is too small for this network: {} would get {input} and produce an \
             empty feature map",
            e.name
        ),
        ShapeErrorKind::TooLarge { .. } if e.node == graph.input() => format!(
            "input [{n}, {c}, {h}, {w}] has {} elements; at most 2^29 (536,870,912) are supported",
            n * c * h * w
        ),
        ShapeErrorKind::TooLarge { shape } => format!(
            "input [{n}, {c}, {h}, {w}] is too large: {} would produce {shape}, more than 2^29 elements",
            e.name
        ),
        ShapeErrorKind::Mismatch(m) => format!("internal error: {}: {m}", e.name),
    };
    Err(Diagnostic::new(FieldPath::Field(Field::Input), message))
}
