//! The Program: a flat list of kernel calls with literal shapes and memory locations.
//!
//! Lowered from the fused graph, its shapes and its memory plan. Both emitters and the
//! reference interpreter read only the Program. Its `Display` is the fused IR's text form:
//! one line per step, stable, and the format of the snapshot tests.

use std::fmt;

use crate::ir::{Conv, Graph, Linear, MaxPool, Op, Port, Shortcut, module_of};
use crate::plan::{Loc, MemoryPlan};
use crate::shape::{Shape, ShapeInfo};

/// A tensor as a step sees it: where it is and its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tensor {
    /// Where it lives.
    pub loc: Loc,
    /// Its shape.
    pub shape: Shape,
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.loc, self.shape)
    }
}

/// A returned tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramOutput {
    /// `logits`, or a stage name.
    pub name: String,
    /// Its shape.
    pub shape: Shape,
    /// Its offset in the output buffer, in elements.
    pub offset: usize,
}

/// A conv with its fused epilogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvStep {
    /// The conv's module name: its weights are `{name}.weight`.
    pub name: String,
    /// Geometry and what is fused.
    pub conv: Conv,
    /// The data input.
    pub input: Tensor,
    /// The output.
    pub output: Tensor,
    /// An identity shortcut, added before the ReLU (may share the output's memory).
    pub residual: Option<Tensor>,
    /// The input of a projection shortcut, read strided as extra K-columns.
    pub shortcut: Option<Tensor>,
    /// Whether it runs as Winograd (F(4x4, 3x3), or F(2x2, 3x3) by `resnet_runtime::winograd::
    /// winograd_tile`) rather than as a direct convolution; see [`winograd_pays`].
    pub winograd: bool,
}

/// Whether a conv that `resnet_runtime::winograd` supports (3x3, stride 1, dilation 1, no
/// projection shortcut) is worth running as Winograd, F(4x4, 3x3) or F(2x2, 3x3) (the runtime's
/// `winograd_tile`: more than 128 input channels per group).
///
/// F(4x4) with 16 to 128 channels per group, when the output planes hold at least 36 tiles of
/// 4x4 (about 24x24 and up: ResNet's 56x56 and 28x28 stages, CIFAR's 32x32). On smaller planes
/// the partial edge tiles and the per-tile transforms cost more than the 4x fewer multiplies
/// save: measured on one AVX-512 core, 256 channels at 14x14 run at 134 effective GFLOP/s as
/// F(4x4) and 194 direct, 512 at 7x7 at 151 and 147, while 64 channels at 56x56 and 128 at
/// 28x28 run at 435 and 401 against 205 and 194. Grouped convs with few channels per group
/// (ResNeXt's 4 and 8) stay direct: there the per-tile transforms outweigh the small GEMMs
/// (resnext50_32x4d's layer1.0.conv2, 32 groups of 4 channels at 56x56, ran at 13.5 effective
/// GFLOP/s as Winograd).
///
/// F(2x2) with more channels (16 positions, 2.25x fewer multiplies, 4.2 MB of weights for 256
/// channels against F(4x4)'s 9.4), when the planes hold at least 36 tiles of 2x2 and either
/// 129 to 256 channels per group on at most 28x28 pixels (ResNet's 14x14 stage,
/// wide_resnet50_2's 28x28 one) or up to 512 on at most 14x14 (wide_resnet50_2's layer3). With
/// 640 MB written between calls (no weights in any cache, as in a forward pass), one AVX-512
/// thread: 256 channels at 14x14 1.14 ms against 1.41 direct and 1.51 as F(4x4); 256 at 28x28
/// 3.59 ms against 5.16 direct; 512 at 14x14 4.7-5.1 against 5.5-6.0; 512 at 7x7 2.03-2.06
/// against 1.73-1.78 (stays direct). In the models (`resnet-bench --layers`, two runs
/// alternating with the previous rule, one thread): wide_resnet50_2's layer2.1-3.conv2 (256
/// at 28x28) 4.74-5.13 ms direct, 3.16-3.50 as F(2x2); its layer3.1-2.conv2 (512 at 14x14)
/// 5.76-5.79 direct, 4.55-4.93 as F(2x2).
pub fn winograd_pays(g: &resnet_runtime::ConvGeom) -> bool {
    let cg = g.c / g.groups.max(1);
    resnet_runtime::winograd::winograd_supported(g)
        && cg >= 16
        && g.o / g.groups >= 16
        && if cg <= 128 {
            g.oh.div_ceil(4) * g.ow.div_ceil(4) >= 36
        } else {
            g.oh.div_ceil(2) * g.ow.div_ceil(2) >= 36
                && (cg <= 256 && g.oh * g.ow <= 28 * 28 || cg <= 512 && g.oh * g.ow <= 14 * 14)
        }
}

/// One kernel call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// A conv with bias, shortcut and ReLU fused.
    Conv(Box<ConvStep>),
    /// A max pool.
    MaxPool {
        /// Window.
        pool: MaxPool,
        /// Input.
        input: Tensor,
        /// Output.
        output: Tensor,
    },
    /// Global average pool and flatten.
    GlobalAvgPool {
        /// Input.
        input: Tensor,
        /// Output, `[N, C]`.
        output: Tensor,
    },
    /// The classifier.
    Linear {
        /// Module name: weights `{name}.weight`, `{name}.bias`.
        name: String,
        /// Sizes.
        linear: Linear,
        /// Input, `[N, in]`.
        input: Tensor,
        /// Output, `[N, out]`.
        output: Tensor,
    },
}

/// One kernel call, with the torchvision modules it computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The modules, e.g. `layer1.0.conv3 + bn3 + downsample.0 + downsample.1 + add + relu`.
    pub covers: String,
    /// The call.
    pub kind: StepKind,
}

impl Step {
    /// The output tensor.
    pub fn output(&self) -> Tensor {
        match &self.kind {
            StepKind::Conv(c) => c.output,
            StepKind::MaxPool { output, .. }
            | StepKind::GlobalAvgPool { output, .. }
            | StepKind::Linear { output, .. } => *output,
        }
    }
}

/// A compiled network, ready for an emitter or the interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The spec's name.
    pub name: String,
    /// Input shape, `[N, C, H, W]`.
    pub input: [usize; 4],
    /// What is returned, in order, in one output buffer.
    pub outputs: Vec<ProgramOutput>,
    /// Length of the output buffer, in elements.
    pub output_len: usize,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// The largest live set of any step, in bytes.
    pub lower_bound_bytes: usize,
    /// Alignment of arena offsets, in bytes.
    pub align_bytes: usize,
    /// The kernel calls, in order.
    pub steps: Vec<Step>,
    /// `state_dict` prefixes of torchvision's full model that this one drops (a features head
    /// ends at its last stage: `fc.` and the later stages), accepted and ignored when loading.
    pub unused_prefixes: Vec<String>,
}

impl Program {
    /// Lowers the fused graph `g` of `spec`. With `winograd`, the convs that
    /// [`winograd_pays`] for run as Winograd.
    pub fn lower(
        spec: &crate::spec::Spec,
        g: &Graph,
        shapes: &ShapeInfo,
        plan: &MemoryPlan,
        winograd: bool,
    ) -> Program {
        let tensor = |id| Tensor {
            loc: plan.loc(id),
            shape: shapes.get(id),
        };
        let mut steps = Vec::new();
        for id in g.schedule() {
            let node = g.node(id);
            let input = || tensor(g.input_at(id, Port::Main).expect("verified: one main input"));
            let output = tensor(id);
            let kind = match &node.op {
                Op::Input => continue,
                Op::Conv(c) => StepKind::Conv(Box::new(ConvStep {
                    name: node.name.clone(),
                    conv: c.clone(),
                    input: input(),
                    output,
                    residual: g.input_at(id, Port::Residual).map(tensor),
                    shortcut: g.input_at(id, Port::Shortcut).map(tensor),
                    winograd: false,
                })),
                Op::MaxPool(pool) => StepKind::MaxPool {
                    pool: *pool,
                    input: input(),
                    output,
                },
                Op::GlobalAvgPool => StepKind::GlobalAvgPool {
                    input: input(),
                    output,
                },
                Op::Linear(linear) => StepKind::Linear {
                    name: node.name.clone(),
                    linear: *linear,
                    input: input(),
                    output,
                },
                Op::BatchNorm(_) | Op::Relu | Op::Add => {
                    unreachable!("verify_fused rejects unfused {}", node.op.kind())
                }
            };
            let kind = match kind {
                StepKind::Conv(mut c) => {
                    c.winograd = winograd && winograd_pays(&crate::weights::conv_geom(&c));
                    StepKind::Conv(c)
                }
                other => other,
            };
            steps.push(Step {
                covers: covers(&node.name, &node.op),
                kind,
            });
        }
        Program {
            name: g.name().to_owned(),
            input: g.input_shape(),
            outputs: g
                .outputs()
                .iter()
                .map(|o| ProgramOutput {
                    name: o.name.clone(),
                    shape: shapes.get(o.node),
                    offset: match plan.loc(o.node) {
                        Loc::Output(at) => at,
                        other => unreachable!("outputs are planned in the output buffer, not {other}"),
                    },
                })
                .collect(),
            output_len: plan.output_elements,
            arena_bytes: plan.arena_bytes(),
            lower_bound_bytes: plan.lower_bound_bytes(),
            align_bytes: plan.align_elements * crate::plan::ELEMENT_BYTES,
            steps,
            unused_prefixes: match &spec.head {
                crate::spec::Head::Classifier => Vec::new(),
                crate::spec::Head::Features(f) => {
                    let last = f.iter().max().map_or(0, |&s| s + 1);
                    let later = (last..spec.stages()).map(|s| format!("layer{}.", s + 1));
                    later.chain(["fc.".to_owned()]).collect()
                }
            },
        }
    }

    /// Length of the input, in elements.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }
}

/// The modules a node computes, the first by full name and the others relative to its block:
/// `layer1.0.conv3 + bn3 + downsample.0 + downsample.1 + add + relu`.
fn covers(name: &str, op: &Op) -> String {
    let mut names = vec![name.to_owned()];
    if let Op::Conv(c) = op {
        names.extend(c.fused.bn.clone());
        match &c.fused.shortcut {
            Some(Shortcut::Identity { add }) => names.push(add.clone()),
            Some(Shortcut::Projection { conv, bn, add, .. }) => {
                names.push(conv.clone());
                names.extend(bn.clone());
                names.push(add.clone());
            }
            None => {}
        }
        names.extend(c.fused.relu.as_deref().map(|r| module_of(r).to_owned()));
    }
    let prefix = name.rfind('.').map_or("", |i| &name[..=i]);
    let rest = names[1..].iter().map(|n| n.strip_prefix(prefix).unwrap_or(n));
    std::iter::once(name).chain(rest).collect::<Vec<_>>().join(" + ")
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "program {} {:?}", self.name, self.input)?;
        for o in &self.outputs {
            writeln!(f, "  output {} {} at output[{}]", o.name, o.shape, o.offset)?;
        }
        writeln!(
            f,
            "  arena {} bytes = {} f32 (lower bound {} bytes), offsets aligned to {} bytes",
            self.arena_bytes,
            self.arena_bytes / crate::plan::ELEMENT_BYTES,
            self.lower_bound_bytes,
            self.align_bytes
        )?;
        for step in &self.steps {
            write!(f, "  ")?;
            match &step.kind {
                StepKind::Conv(s) => {
                    let c = &s.conv;
                    write!(
                        f,
                        "{} = conv2d({}) {}->{} k{} s{} p{} d{} g{}",
                        s.output,
                        s.input.loc,
                        c.in_channels,
                        c.out_channels,
                        c.kernel,
                        c.stride,
                        c.padding,
                        c.dilation,
                        c.groups
                    )?;
                    if c.fused.bn.is_some() {
                        write!(f, " +bias")?;
                    }
                    if let Some(r) = &s.residual {
                        let in_place = if r.loc == s.output.loc { " in place" } else { "" };
                        write!(f, " +residual({}{in_place})", r.loc)?;
                    }
                    if let (
                        Some(x),
                        Some(Shortcut::Projection {
                            in_channels,
                            stride,
                            bn,
                            ..
                        }),
                    ) = (&s.shortcut, &c.fused.shortcut)
                    {
                        let bias = if bn.is_some() { " +bias" } else { "" };
                        write!(
                            f,
                            " +projection({} {in_channels}->{} s{stride}{bias})",
                            x.loc, c.out_channels
                        )?;
                    }
                    if c.fused.relu.is_some() {
                        write!(f, " +relu")?;
                    }
                    if s.winograd {
                        let t = resnet_runtime::winograd::winograd_tile(&crate::weights::conv_geom(s));
                        write!(f, " [winograd F({t}x{t},3x3)]")?;
                    }
                }
                StepKind::MaxPool { pool, input, output } => write!(
                    f,
                    "{output} = max_pool2d({}) k{} s{} p{}",
                    input.loc, pool.kernel, pool.stride, pool.padding
                )?,
                StepKind::GlobalAvgPool { input, output } => {
                    write!(f, "{output} = avg_pool2d({})", input.loc)?
                }
                StepKind::Linear {
                    linear,
                    input,
                    output,
                    ..
                } => write!(
                    f,
                    "{output} = linear({}) {}->{} +bias",
                    input.loc, linear.in_features, linear.out_features
                )?,
            }
            writeln!(f, "  # {}", step.covers)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Fused;

    #[test]
    fn covers_names_modules_relative_to_the_block() {
        let conv = Conv {
            in_channels: 64,
            out_channels: 256,
            kernel: 1,
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
            fused: Fused {
                bn: Some("layer1.0.bn3".into()),
                shortcut: Some(Shortcut::Projection {
                    conv: "layer1.0.downsample.0".into(),
                    bn: Some("layer1.0.downsample.1".into()),
                    in_channels: 64,
                    stride: 1,
                    add: "layer1.0.add".into(),
                }),
                relu: Some("layer1.0.relu_2".into()),
            },
        };
        assert_eq!(
            covers("layer1.0.conv3", &Op::Conv(conv)),
            "layer1.0.conv3 + bn3 + downsample.0 + downsample.1 + add + relu"
        );
        assert_eq!(
            covers(
                "maxpool",
                &Op::MaxPool(MaxPool {
                    kernel: 3,
                    stride: 2,
                    padding: 1
                })
            ),
            "maxpool"
        );
    }

    /// The rule: 3x3 stride-1 convs on planes of 36 tiles and more, with 16 to 128 input
    /// channels per group (and 16 output channels and more); never a stride, a dilation or a
    /// projection shortcut.
    #[test]
    fn winograd_pays_on_large_planes_and_wide_groups() {
        let g = |c, hw, groups| resnet_runtime::ConvGeom {
            n: 1,
            c,
            h: hw,
            w: hw,
            o: c,
            oh: hw,
            ow: hw,
            k: 3,
            stride: 1,
            pad: 1,
            dilation: 1,
            groups,
            shortcut: None,
            residual: false,
            relu: true,
        };
        assert!(winograd_pays(&g(64, 56, 1)));
        assert!(winograd_pays(&g(128, 28, 1)));
        assert!(winograd_pays(&g(128, 56, 1))); // wide_resnet50_2's layer1
        assert!(winograd_pays(&g(256, 28, 1))); // its layer2: F(2x2)
        assert!(winograd_pays(&g(256, 28, 2))); // 128 per group
        assert!(winograd_pays(&g(16, 24, 1))); // 6 x 6 tiles
        assert!(!winograd_pays(&g(16, 20, 1))); // 5 x 5 tiles
        assert!(winograd_pays(&g(256, 14, 1))); // F(2x2)
        assert!(!winograd_pays(&g(256, 56, 1))); // F(2x2), but 3136 pixels
        assert!(winograd_pays(&g(512, 14, 1))); // F(2x2), wide_resnet50_2's layer3
        assert!(!winograd_pays(&g(512, 28, 1))); // F(2x2), but 16.8 MB of weights for 196 tiles
        assert!(!winograd_pays(&g(256, 10, 1))); // F(2x2), 25 tiles
        assert!(winograd_pays(&g(256, 12, 1))); // F(2x2), 36 tiles
        assert!(!winograd_pays(&g(512, 7, 1)));
        assert!(!winograd_pays(&g(128, 56, 32))); // ResNeXt: 4 channels per group
        assert!(winograd_pays(&g(512, 56, 32))); // 16 per group
        let strided = resnet_runtime::ConvGeom {
            stride: 2,
            oh: 28,
            ow: 28,
            ..g(64, 56, 1)
        };
        assert!(!winograd_pays(&strided));
        let dilated = resnet_runtime::ConvGeom {
            dilation: 2,
            pad: 2,
            ..g(64, 56, 1)
        };
        assert!(!winograd_pays(&dilated));
    }
}
