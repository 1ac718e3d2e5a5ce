//! Spec to graph: torchvision's `ResNet.__init__`, `_make_layer` and `forward`, in that order.

use super::{BatchNorm, Conv, Fused, Graph, Linear, MaxPool, NodeId, Op, Port};
use crate::spec::{Block, Head, Spec, Stem, bottleneck_width};

/// torchvision's `nn.BatchNorm2d` default.
const BN_EPS: f64 = 1e-5;

impl Graph {
    /// The network `spec` describes, one node per torchvision module call, in `forward` order.
    pub fn from_spec(spec: &Spec) -> Graph {
        let mut b = Builder {
            g: Graph::new(&spec.name, spec.input),
        };
        let [_, in_channels, _, _] = spec.input;
        let stem_width = spec.widths[0];
        let mut x = b.g.input();

        x = match spec.stem {
            Stem::Imagenet => b.conv(x, "conv1", in_channels, stem_width, 7, 2, 3, 1, 1),
            Stem::Cifar => b.conv(x, "conv1", in_channels, stem_width, 3, 1, 1, 1, 1),
        };
        x = b.bn(x, "bn1", stem_width);
        x = b.relu(x, "relu");
        if spec.stem == Stem::Imagenet {
            x = b.g.add(
                "maxpool",
                Op::MaxPool(MaxPool {
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                }),
                &[(Port::Main, x)],
            );
        }

        // `_make_layer`'s state across stages.
        let mut inplanes = stem_width;
        let mut dilation = 1;
        let mut stage_outputs = Vec::new();
        // A features head is torchvision's `IntermediateLayerGetter`: the network ends at the
        // last stage it returns.
        let stages = match &spec.head {
            Head::Classifier => spec.stages(),
            Head::Features(f) => f.iter().max().map_or(spec.stages(), |&last| last + 1),
        };
        let stage_specs = spec.layers.iter().zip(&spec.widths).take(stages);
        for (stage, (&blocks, &planes)) in stage_specs.enumerate() {
            let mut stride = if stage == 0 { 1 } else { 2 };
            let previous_dilation = dilation;
            if stage > 0 && spec.replace_stride_with_dilation[stage - 1] {
                dilation *= stride;
                stride = 1;
            }
            let outplanes = planes * spec.block.expansion();
            let downsample = stride != 1 || inplanes != outplanes;
            for i in 0..blocks {
                let block = BlockArgs {
                    prefix: format!("layer{}.{i}.", stage + 1),
                    inplanes,
                    planes,
                    stride: if i == 0 { stride } else { 1 },
                    downsample: i == 0 && downsample,
                    dilation: if i == 0 { previous_dilation } else { dilation },
                };
                x = match spec.block {
                    Block::Basic => b.basic_block(x, &block),
                    Block::Bottleneck => b.bottleneck(x, &block, spec),
                };
                inplanes = outplanes;
            }
            stage_outputs.push(x);
        }

        match &spec.head {
            Head::Classifier => {
                let x = b.g.add("avgpool", Op::GlobalAvgPool, &[(Port::Main, x)]);
                let fc = Linear {
                    in_features: inplanes,
                    out_features: spec.num_classes,
                };
                let x = b.g.add("fc", Op::Linear(fc), &[(Port::Main, x)]);
                b.g.add_output("logits", x);
            }
            Head::Features(stages) => {
                for &s in stages {
                    b.g.add_output(format!("layer{}", s + 1), stage_outputs[s]);
                }
            }
        }
        b.g
    }
}

struct BlockArgs {
    prefix: String,
    inplanes: usize,
    planes: usize,
    stride: usize,
    downsample: bool,
    dilation: usize,
}

struct Builder {
    g: Graph,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: NodeId,
        name: impl Into<String>,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> NodeId {
        let conv = Conv {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            fused: Fused::default(),
        };
        self.g.add(name, Op::Conv(conv), &[(Port::Main, x)])
    }

    fn bn(&mut self, x: NodeId, name: impl Into<String>, channels: usize) -> NodeId {
        let bn = BatchNorm {
            channels,
            eps: BN_EPS,
        };
        self.g.add(name, Op::BatchNorm(bn), &[(Port::Main, x)])
    }

    fn relu(&mut self, x: NodeId, name: impl Into<String>) -> NodeId {
        self.g.add(name, Op::Relu, &[(Port::Main, x)])
    }

    /// `downsample = Sequential(conv1x1(inplanes, outplanes, stride), BatchNorm2d(outplanes))`.
    fn downsample(&mut self, x: NodeId, p: &str, inplanes: usize, outplanes: usize, stride: usize) -> NodeId {
        let d = self.conv(
            x,
            format!("{p}downsample.0"),
            inplanes,
            outplanes,
            1,
            stride,
            0,
            1,
            1,
        );
        self.bn(d, format!("{p}downsample.1"), outplanes)
    }

    /// torchvision's `BasicBlock.forward`.
    fn basic_block(&mut self, x: NodeId, a: &BlockArgs) -> NodeId {
        let p = &a.prefix;
        let h = self.conv(x, format!("{p}conv1"), a.inplanes, a.planes, 3, a.stride, 1, 1, 1);
        let h = self.bn(h, format!("{p}bn1"), a.planes);
        let h = self.relu(h, format!("{p}relu"));
        let h = self.conv(h, format!("{p}conv2"), a.planes, a.planes, 3, 1, 1, 1, 1);
        let h = self.bn(h, format!("{p}bn2"), a.planes);
        let identity = if a.downsample {
            self.downsample(x, p, a.inplanes, a.planes, a.stride)
        } else {
            x
        };
        let sum = self.g.add(
            format!("{p}add"),
            Op::Add,
            &[(Port::Main, h), (Port::Residual, identity)],
        );
        self.relu(sum, format!("{p}relu_1"))
    }

    /// torchvision's `Bottleneck.forward` (stride on the 3x3, "ResNet v1.5").
    fn bottleneck(&mut self, x: NodeId, a: &BlockArgs, spec: &Spec) -> NodeId {
        let p = &a.prefix;
        let width = bottleneck_width(a.planes, spec.width_per_group, spec.groups);
        let out = a.planes * Block::Bottleneck.expansion();
        let d = a.dilation;
        let h = self.conv(x, format!("{p}conv1"), a.inplanes, width, 1, 1, 0, 1, 1);
        let h = self.bn(h, format!("{p}bn1"), width);
        let h = self.relu(h, format!("{p}relu"));
        let h = self.conv(
            h,
            format!("{p}conv2"),
            width,
            width,
            3,
            a.stride,
            d,
            d,
            spec.groups,
        );
        let h = self.bn(h, format!("{p}bn2"), width);
        let h = self.relu(h, format!("{p}relu_1"));
        let h = self.conv(h, format!("{p}conv3"), width, out, 1, 1, 0, 1, 1);
        let h = self.bn(h, format!("{p}bn3"), out);
        let identity = if a.downsample {
            self.downsample(x, p, a.inplanes, out, a.stride)
        } else {
            x
        };
        let sum = self.g.add(
            format!("{p}add"),
            Op::Add,
            &[(Port::Main, h), (Port::Residual, identity)],
        );
        self.relu(sum, format!("{p}relu_2"))
    }
}
