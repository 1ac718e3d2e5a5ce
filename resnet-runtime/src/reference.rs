//! Test-only helpers: a deterministic PRNG and naive reference convolutions written straight
//! from the [`ConvGeom`] formula, with no tiling, packing or precomputed offsets.

use crate::conv::{Engine, Residual};
use crate::geom::{ConvGeom, ShortcutGeom};
use crate::isa::Isa;

/// Under Miri, which runs about a million times slower than native code, tests skip
/// cases above this many multiply-accumulates; the small cases left still reach every path.
pub(crate) fn too_big_for_miri(macs: usize) -> bool {
    cfg!(miri) && macs > 4000
}

/// SplitMix64: tiny, deterministic, good enough to fill tensors and pick geometries.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`, with 24 random bits.
    pub(crate) fn f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }

    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub(crate) fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    pub(crate) fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.f32()).collect()
    }
}

/// The operands of one conv call in their natural (unpacked) layouts.
#[derive(Debug, Clone)]
pub(crate) struct ConvData {
    pub(crate) g: ConvGeom,
    /// `[o, c / groups, k, k]`.
    pub(crate) w: Vec<f32>,
    /// `[o, sc]`, empty without a shortcut.
    pub(crate) ws: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    pub(crate) input: Vec<f32>,
    pub(crate) shortcut: Vec<f32>,
    /// `[n, o, oh, ow]`: the residual (used as the old `out` for `InPlace` too).
    pub(crate) residual: Vec<f32>,
}

impl ConvData {
    pub(crate) fn random(g: ConvGeom, rng: &mut Rng) -> Self {
        Self {
            g,
            w: rng.vec(g.o * g.k_main()),
            ws: rng.vec(g.o * (g.k_total() - g.k_main())),
            bias: rng.vec(g.o),
            input: rng.vec(g.input_len()),
            shortcut: rng.vec(g.shortcut_len()),
            residual: if g.residual {
                rng.vec(g.output_len())
            } else {
                Vec::new()
            },
        }
    }
}

/// Output size of a conv along one axis.
pub(crate) const fn out_size(len: usize, k: usize, stride: usize, pad: usize, dilation: usize) -> usize {
    (len + 2 * pad - dilation * (k - 1) - 1) / stride + 1
}

/// Builds a geometry, computing `oh`, `ow`; the shortcut `(cs, ss, extra)` (channels, stride,
/// `extra < ss`) gets the smallest input whose strided 1x1 conv has the output's size, plus
/// `extra` rows and columns, so that strided reads do not always end at the input's edge.
/// A `const fn`, so that tests can build [`crate::geom::ConvShape`]s with it.
#[allow(clippy::too_many_arguments)]
pub(crate) const fn conv_geom(
    n: usize,
    c: usize,
    hw: (usize, usize),
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    groups: usize,
    shortcut: Option<(usize, usize, usize)>,
    residual: bool,
    relu: bool,
) -> ConvGeom {
    let (h, w) = hw;
    let oh = out_size(h, k, stride, pad, dilation);
    let ow = out_size(w, k, stride, pad, dilation);
    let shortcut = match shortcut {
        Some((cs, ss, extra)) => Some(ShortcutGeom {
            c: cs,
            h: (oh - 1) * ss + 1 + extra,
            w: (ow - 1) * ss + 1 + extra,
            stride: ss,
        }),
        None => None,
    };
    ConvGeom {
        n,
        c,
        h,
        w,
        o,
        oh,
        ow,
        k,
        stride,
        pad,
        dilation,
        groups,
        shortcut,
        residual,
        relu,
    }
}

/// The input value the formula reads at signed coordinates, zero outside.
fn input_at(g: &ConvGeom, input: &[f32], b: usize, ch: usize, iy: isize, ix: isize) -> f32 {
    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
        0.0
    } else {
        input[((b * g.c + ch) * g.h + iy as usize) * g.w + ix as usize]
    }
}

/// Visits every term of `out[b, o, y, x]` in the documented accumulation order: main taps
/// `(ci, i, j)` ascending, then shortcut channels ascending, as `(weight, input)` pairs.
fn terms(d: &ConvData, b: usize, o: usize, y: usize, x: usize, mut f: impl FnMut(f32, f32)) {
    let g = &d.g;
    let cg = g.c / g.groups;
    let og = g.o / g.groups;
    let gi = o / og;
    for ci in 0..cg {
        for i in 0..g.k {
            for j in 0..g.k {
                let iy = (y * g.stride + i * g.dilation) as isize - g.pad as isize;
                let ix = (x * g.stride + j * g.dilation) as isize - g.pad as isize;
                let wv = d.w[((o * cg + ci) * g.k + i) * g.k + j];
                f(wv, input_at(g, &d.input, b, gi * cg + ci, iy, ix));
            }
        }
    }
    if let Some(s) = g.shortcut {
        for cs in 0..s.c {
            let xv = d.shortcut[((b * s.c + cs) * s.h + y * s.stride) * s.w + x * s.stride];
            f(d.ws[o * s.c + cs], xv);
        }
    }
}

/// The exact value in f64 and the magnitude `|bias| + sum |w * x| + |residual|` that bounds
/// the f32 kernel's rounding error, both before the ReLU, for every output element.
pub(crate) fn conv_f64(d: &ConvData) -> Vec<(f64, f64)> {
    let g = &d.g;
    let mut out = Vec::with_capacity(g.output_len());
    for b in 0..g.n {
        for o in 0..g.o {
            for y in 0..g.oh {
                for x in 0..g.ow {
                    let (mut s, mut mag) = (0.0f64, 0.0f64);
                    terms(d, b, o, y, x, |wv, xv| {
                        let t = f64::from(wv) * f64::from(xv);
                        s += t;
                        mag += t.abs();
                    });
                    s += f64::from(d.bias[o]);
                    mag += f64::from(d.bias[o]).abs();
                    if g.residual {
                        let r = f64::from(d.residual[out.len()]);
                        s += r;
                        mag += r.abs();
                    }
                    out.push((s, mag));
                }
            }
        }
    }
    out
}

/// The kernel's documented f32 arithmetic, one element at a time: what the portable kernel
/// (and the C back end) must reproduce bit for bit.
pub(crate) fn conv_f32_exact(d: &ConvData) -> Vec<f32> {
    conv_f32_order(d, |acc, w, x| acc + w * x)
}

/// The SIMD kernels' documented arithmetic: the same order with fused multiply-adds.
pub(crate) fn conv_f32_fma(d: &ConvData) -> Vec<f32> {
    conv_f32_order(d, |acc, w, x| w.mul_add(x, acc))
}

/// What `engine` must reproduce bit for bit.
pub(crate) fn conv_f32_for(d: &ConvData, engine: Engine) -> Vec<f32> {
    match engine {
        Engine::Portable => conv_f32_exact(d),
        _ => conv_f32_fma(d),
    }
}

/// The documented order, with `step(acc, w, x)` adding one term.
fn conv_f32_order(d: &ConvData, step: impl Fn(f32, f32, f32) -> f32) -> Vec<f32> {
    let g = &d.g;
    let mut out = Vec::with_capacity(g.output_len());
    for b in 0..g.n {
        for o in 0..g.o {
            for y in 0..g.oh {
                for x in 0..g.ow {
                    let mut acc = 0.0f32;
                    terms(d, b, o, y, x, |wv, xv| acc = step(acc, wv, xv));
                    let mut v = acc + d.bias[o];
                    if g.residual {
                        v += d.residual[out.len()];
                    }
                    if g.relu && v < 0.0 {
                        v = 0.0;
                    }
                    out.push(v);
                }
            }
        }
    }
    out
}

/// How a test passes the residual to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResMode {
    None,
    InPlace,
    Separate,
}

/// The engines this machine can run, portable first.
pub(crate) fn engines() -> impl Iterator<Item = Engine> {
    Isa::ALL.into_iter().filter_map(Engine::new)
}

/// Packs `d` and runs [`crate::conv::conv2d_dyn`] with the residual passed as `mode`.
pub(crate) fn run_kernel(d: &ConvData, mode: ResMode) -> Vec<f32> {
    run_with(d, mode, |packed, bias, input, sc, res, out| {
        crate::conv::conv2d_dyn(&d.g, packed, bias, input, sc, res, out)
    })
}

/// Packs `d` and runs `f` on it (`f` takes `conv2d`'s arguments), with the residual passed
/// as `mode`.
pub(crate) fn run_with(
    d: &ConvData,
    mode: ResMode,
    f: impl FnOnce(&[f32], &[f32], &[f32], Option<&[f32]>, Residual<'_>, &mut [f32]),
) -> Vec<f32> {
    let g = &d.g;
    assert_eq!(g.residual, mode != ResMode::None);
    let mut packed = vec![f32::NAN; crate::pack::packed_conv_len(g)];
    let ws = g.shortcut.map(|_| &d.ws[..]);
    crate::pack::pack_conv(g, &d.w, ws, &mut packed);
    let sc = g.shortcut.map(|_| &d.shortcut[..]);
    let mut out = match mode {
        ResMode::InPlace => d.residual.clone(),
        _ => vec![f32::NAN; g.output_len()],
    };
    let res = match mode {
        ResMode::None => Residual::None,
        ResMode::InPlace => Residual::InPlace,
        ResMode::Separate => Residual::Separate(&d.residual),
    };
    f(&packed, &d.bias, &d.input, sc, res, &mut out);
    out
}
