//! Reference execution, for tests: the unfused graph interpreted in f64 straight from the
//! torchvision `state_dict` (BatchNorm, `add` and ReLU as separate ops, as torchvision runs
//! them), and the Program executed on `resnet_runtime`'s kernels in one arena exactly as the
//! generated code does (the same offsets, the same in-place residuals, the same blob).
//!
//! The first checks the passes and the folding against the network's definition; the second
//! checks the plan and the kernels against the first, for any spec, without compiling code.

use std::collections::BTreeMap;

use resnet_runtime::{PoolGeom, Residual};

use crate::ir::{Graph, Op, Port};
use crate::plan::Loc;
use crate::program::{Program, StepKind, Tensor};
use crate::shape::{Shape, ShapeInfo};
use crate::weights::{Layout, conv_geom};

/// Runs the unfused `graph` in f64 on `input`, with the `state_dict` values `params` (every
/// entry of [`Graph::state_dict`] but `num_batches_tracked`). Returns the output buffer: each
/// graph output in full, one after another.
pub fn run_graph(
    graph: &Graph,
    shapes: &ShapeInfo,
    params: &BTreeMap<String, Vec<f32>>,
    input: &[f32],
) -> Vec<f64> {
    let p = |name: String| -> Vec<f64> { params[&name].iter().map(|&v| f64::from(v)).collect() };
    let mut values: BTreeMap<_, Vec<f64>> = BTreeMap::new();
    for id in graph.schedule() {
        let node = graph.node(id);
        let arg = |port| &values[&graph.input_at(id, port).expect("verified")];
        let out = match &node.op {
            Op::Input => input.iter().map(|&v| f64::from(v)).collect(),
            Op::Conv(c) => {
                let x = arg(Port::Main);
                let Shape::Nchw([n, ci, h, w]) =
                    shapes.get(graph.input_at(id, Port::Main).expect("verified"))
                else {
                    unreachable!()
                };
                let Shape::Nchw([_, o, oh, ow]) = shapes.get(id) else {
                    unreachable!()
                };
                let wt = p(format!("{}.weight", node.name));
                let (cg, og, k) = (ci / c.groups, o / c.groups, c.kernel);
                let mut y = vec![0.0; n * o * oh * ow];
                for b in 0..n {
                    for oc in 0..o {
                        let g = oc / og;
                        for yy in 0..oh {
                            for xx in 0..ow {
                                let mut acc = 0.0;
                                for cc in 0..cg {
                                    for i in 0..k {
                                        for j in 0..k {
                                            let iy = (yy * c.stride + i * c.dilation) as isize
                                                - c.padding as isize;
                                            let ix = (xx * c.stride + j * c.dilation) as isize
                                                - c.padding as isize;
                                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                                continue;
                                            }
                                            let xi =
                                                ((b * ci + g * cg + cc) * h + iy as usize) * w + ix as usize;
                                            acc += wt[((oc * cg + cc) * k + i) * k + j] * x[xi];
                                        }
                                    }
                                }
                                y[((b * o + oc) * oh + yy) * ow + xx] = acc;
                            }
                        }
                    }
                }
                y
            }
            Op::BatchNorm(bn) => {
                let x = arg(Port::Main);
                let (g, b, m, v) = (
                    p(format!("{}.weight", node.name)),
                    p(format!("{}.bias", node.name)),
                    p(format!("{}.running_mean", node.name)),
                    p(format!("{}.running_var", node.name)),
                );
                let plane = x.len() / shapes.get(id).dims()[0] / bn.channels;
                x.iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        let c = i / plane % bn.channels;
                        (x - m[c]) / (v[c] + bn.eps).sqrt() * g[c] + b[c]
                    })
                    .collect()
            }
            Op::Relu => arg(Port::Main).iter().map(|&x| x.max(0.0)).collect(),
            Op::Add => arg(Port::Main)
                .iter()
                .zip(arg(Port::Residual))
                .map(|(a, b)| a + b)
                .collect(),
            Op::MaxPool(mp) => {
                let x = arg(Port::Main);
                let Shape::Nchw([n, c, h, w]) = shapes.get(graph.input_at(id, Port::Main).expect("verified"))
                else {
                    unreachable!()
                };
                let Shape::Nchw([_, _, oh, ow]) = shapes.get(id) else {
                    unreachable!()
                };
                let mut y = Vec::with_capacity(n * c * oh * ow);
                for plane in x.chunks_exact(h * w) {
                    for yy in 0..oh {
                        for xx in 0..ow {
                            let mut m = f64::NEG_INFINITY;
                            for i in 0..mp.kernel {
                                for j in 0..mp.kernel {
                                    let iy = (yy * mp.stride + i) as isize - mp.padding as isize;
                                    let ix = (xx * mp.stride + j) as isize - mp.padding as isize;
                                    if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                                        m = m.max(plane[iy as usize * w + ix as usize]);
                                    }
                                }
                            }
                            y.push(m);
                        }
                    }
                }
                y
            }
            Op::GlobalAvgPool => {
                let x = arg(Port::Main);
                let Shape::Nchw([_, _, h, w]) = shapes.get(graph.input_at(id, Port::Main).expect("verified"))
                else {
                    unreachable!()
                };
                x.chunks_exact(h * w)
                    .map(|pl| pl.iter().sum::<f64>() / (h * w) as f64)
                    .collect()
            }
            Op::Linear(l) => {
                let x = arg(Port::Main);
                let (wt, bias) = (
                    p(format!("{}.weight", node.name)),
                    p(format!("{}.bias", node.name)),
                );
                let mut y = Vec::new();
                for xb in x.chunks_exact(l.in_features) {
                    for j in 0..l.out_features {
                        let row = &wt[j * l.in_features..(j + 1) * l.in_features];
                        y.push(bias[j] + row.iter().zip(xb).map(|(a, b)| a * b).sum::<f64>());
                    }
                }
                y
            }
        };
        values.insert(id, out);
    }
    graph
        .outputs()
        .iter()
        .flat_map(|o| values[&o.node].iter().copied())
        .collect()
}

/// Executes `program` on the runtime's kernels, with the packed `blob`, as the generated code
/// does: activations in one arena at the planned offsets, returned tensors written into the
/// output buffer, identity residuals in place where the plan says so.
pub fn run_program(program: &Program, blob: &[f32], input: &[f32]) -> Vec<f32> {
    run_program_on(program, blob, input, Kernels::Chosen)
}

/// Which conv kernels [`run_program_on`] calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// The process's instruction set (`resnet_runtime::isa`), as the generated Rust does.
    Chosen,
    /// The portable direct kernel whatever the CPU: the bits the emitted C and a Cortex-M give
    /// (the program must have no Winograd conv).
    Portable,
}

/// [`run_program`] on the given kernels.
pub fn run_program_on(program: &Program, blob: &[f32], input: &[f32], kernels: Kernels) -> Vec<f32> {
    assert_eq!(input.len(), program.input_len());
    let layout = Layout::new(program);
    let mut arena = vec![0.0f32; program.arena_bytes / 4];
    let mut output = vec![f32::NAN; program.output_len];
    let mut layers = layout.layers.iter();
    for step in &program.steps {
        // Inputs are copied out of their buffers, so that every view can be borrowed freely;
        // the output is written in place, where the plan put it.
        let read = |t: Tensor, arena: &[f32], output: &[f32]| -> Vec<f32> {
            let len = t.shape.elements();
            match t.loc {
                Loc::Input => input[..len].to_vec(),
                Loc::Arena(o) => arena[o..o + len].to_vec(),
                Loc::Output(o) => output[o..o + len].to_vec(),
            }
        };
        let out_tensor = step.output();
        let mut y = read(out_tensor, &arena, &output);
        match &step.kind {
            StepKind::Conv(c) => {
                let l = layers.next().expect("a layer per conv");
                let g = conv_geom(c);
                let x = read(c.input, &arena, &output);
                let sc = c.shortcut.map(|t| read(t, &arena, &output));
                let res = c
                    .residual
                    .map(|t| (t.loc == c.output.loc, read(t, &arena, &output)));
                let residual = match &res {
                    None => Residual::None,
                    Some((true, _)) => Residual::InPlace,
                    Some((false, r)) => Residual::Separate(r),
                };
                let (w, b) = (
                    &blob[l.weights..l.weights + l.weights_len()],
                    &blob[l.bias..l.bias + l.bias_len()],
                );
                match (c.winograd, kernels) {
                    (true, Kernels::Chosen) => {
                        resnet_runtime::winograd::winograd_conv2d_dyn(&g, w, b, &x, residual, &mut y);
                    }
                    (true, Kernels::Portable) => {
                        panic!("{}: the portable kernels run no Winograd conv", c.name)
                    }
                    (false, Kernels::Chosen) => {
                        resnet_runtime::conv::conv2d_dyn(&g, w, b, &x, sc.as_deref(), residual, &mut y);
                    }
                    (false, Kernels::Portable) => resnet_runtime::conv::conv2d_dyn_portable(
                        &g,
                        w,
                        b,
                        &x,
                        sc.as_deref(),
                        residual,
                        &mut y,
                    ),
                }
            }
            StepKind::MaxPool {
                pool,
                input: t,
                output: o,
            } => {
                let (Shape::Nchw([n, c, h, w]), Shape::Nchw([_, _, oh, ow])) = (t.shape, o.shape) else {
                    unreachable!()
                };
                let g = PoolGeom {
                    n,
                    c,
                    h,
                    w,
                    oh,
                    ow,
                    k: pool.kernel,
                    stride: pool.stride,
                    pad: pool.padding,
                };
                resnet_runtime::pool::max_pool2d(&g, &read(*t, &arena, &output), &mut y);
            }
            StepKind::GlobalAvgPool { input: t, .. } => {
                let Shape::Nchw([n, c, h, w]) = t.shape else {
                    unreachable!()
                };
                resnet_runtime::pool::global_avg_pool(n, c, h * w, &read(*t, &arena, &output), &mut y);
            }
            StepKind::Linear { linear, input: t, .. } => {
                let l = layers.next().expect("a layer per linear");
                resnet_runtime::linear::linear(
                    t.shape.dims()[0],
                    linear.in_features,
                    linear.out_features,
                    &blob[l.weights..l.weights + l.weights_len()],
                    &blob[l.bias..l.bias + l.bias_len()],
                    &read(*t, &arena, &output),
                    &mut y,
                );
            }
        }
        let len = y.len();
        match out_tensor.loc {
            Loc::Arena(o) => arena[o..o + len].copy_from_slice(&y),
            Loc::Output(o) => output[o..o + len].copy_from_slice(&y),
            Loc::Input => unreachable!("nothing writes the input"),
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused program on the kernels agrees with the unfused graph in f64, and the memory
    /// plan's reuse does not corrupt anything (a wrong offset would change the numbers).
    #[test]
    fn program_agrees_with_the_unfused_graph() {
        for text in [
            include_str!("../../specs/resnet8_cifar.yaml"),
            include_str!("../../tests/specs/resnext_tiny.yaml"),
            include_str!("../../tests/specs/resnet8_cifar_b2.yaml"),
        ] {
            let spec = crate::spec::parse_yaml(text, "spec").unwrap();
            let c = crate::compile(&spec, &crate::Options::default()).unwrap();
            let params: BTreeMap<String, Vec<f32>> = crate::synth::state_dict(&c.graph.state_dict(), 0)
                .into_iter()
                .filter_map(|(p, v)| v.map(|v| (p.name, v)))
                .collect();
            let x = crate::synth::input(&spec.input, 0);
            let reference = run_graph(&c.graph, &c.shapes, &params, &x);
            let bytes = crate::weights::synthetic_safetensors(&c.graph, 0);
            let blob = crate::weights::pack(&c.program, &bytes).unwrap();
            let ours = run_program(&c.program, &blob, &x);
            let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = ours
                .iter()
                .zip(&reference)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            assert!(err / scale < 1e-5, "{}: {}", spec.name, err / scale);
        }
    }
}
