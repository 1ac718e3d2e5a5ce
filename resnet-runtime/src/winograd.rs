//! 3x3 stride-1 convolution by Winograd's minimal filtering algorithm F(4x4, 3x3).
//!
//! # Algorithm
//!
//! For a 3-tap filter `g` and a 6-sample input `d`, the 4 outputs of the correlation
//! `y[i] = sum_k g[k] * d[i + k]` are
//!
//! ```text
//! y = A^T [ (G g) . (B^T d) ]            (. : element-wise product of 6-vectors)
//! ```
//!
//! and in two dimensions, for a 3x3 filter `g` and a 6x6 input patch `d`, the 4x4 outputs are
//! `Y = A^T [ (G g G^T) . (B^T d B) ] A`. A conv becomes, per image and group, for each 4x4
//! output tile (its 6x6 input patch: rows `4*ty - pad ..`, columns `4*tx - pad ..`, zero outside
//! the image) and each of the 36 transform positions `(i, j)`, one GEMM over input channels:
//!
//! ```text
//! V[i,j][ci][tile] = (B^T d_ci,tile B)[i][j]                      input transform (run time)
//! U[i,j][o][ci]    = (G w_o,ci G^T)[i][j]                          weight transform (compile time)
//! M[i,j][o][tile]  = sum_ci U[i,j][o][ci] * V[i,j][ci][tile]       36 GEMMs
//! out[o][tile]     = A^T M[.,.][o][tile] A  (+ bias, + residual, ReLU)   output transform
//! ```
//!
//! 36 multiplies per 16 outputs instead of 144: 4x fewer. Tiles at the right and bottom edges
//! are computed whole (their patches read zeros past the image) and stored partially.
//!
//! # Interpolation points (accuracy)
//!
//! The matrices come from Toom-Cook with the points `0, 1, -1, 2, -1/2` and infinity. The
//! usual choice `0, ±1, ±2` amplifies rounding errors about 3x more: measured against an f64
//! direct conv on ResNet-like data (inputs `max(N(0,1), 0)`, Kaiming-scaled weights),
//! `max|err| / max|ref|` per layer is
//!
//! | channels | F(4x4), 0 ±1 2 -1/2 | F(4x4), 0 ±1 ±2 | F(2x2) | direct f32 |
//! |---------:|-----------:|-----------:|--------:|--------:|
//! |   64     | 1.7e-6     | 5.1e-6     | 2.4e-7  | 5.9e-7  |
//! |  128     | 2.3e-6     | 6.7e-6     | 2.8e-7  | 7.2e-7  |
//! |  256     | 2.7e-6     | 8.0e-6     | 4.2e-7  | 1.1e-6  |
//! |  512     | 4.0e-6     | 1.2e-5     | 7.8e-7  | 1.5e-6  |
//!
//! (a simulation of this arithmetic over 64 tiles x 4 output channels; the test
//! `per_layer_error_resnet_like` measures the kernel itself). The error is dominated by the
//! channel sums of the amplified transformed values, not by the order of the additions inside
//! the transforms, which changed it by less than the sampling noise.
//!
//! ```text
//!        | 1  3/2  -2  -3/2   1   0 |          | 1     0     0   |
//!        | 0  -1  -5/2 -1/2   1   0 |          | -1/3  -1/3  -1/3 |
//! B^T =  | 0   1   1/2 -5/2   1   0 |    G  =  | 1/3   -1/3  1/3  |
//!        | 0 -1/2  -1   1/2   1   0 |          | 1/15  2/15  4/15 |
//!        | 0   2   -1   -2    1   0 |          | -16/15 8/15 -4/15 |
//!        | 0   1   3/2  -2  -3/2  1 |          | 0     0     1   |
//!
//!        | 1  1   1  1   1     0 |
//! A^T =  | 0  1  -1  2  -1/2   0 |
//!        | 0  1   1  4   1/4   0 |
//!        | 0  1  -1  8  -1/8   1 |
//! ```
//!
//! Every entry of `B^T` and `A^T` is exact in binary, and so are the products by them; the
//! thirds and fifteenths live in `G`, applied in f64 at compile time ([`pack_winograd`]).
//!
//! # Arithmetic of one output element (the numeric contract)
//!
//! In f32, without fused multiply-adds in the transforms. The 1-D input transform of
//! `d0..d5` is, in this order,
//!
//! ```text
//! a = d1 - d3          e = d4 - d2
//! r0 = (d0 - d2) + (e + 1.5*a)          r3 = e - 0.5*a
//! r1 = (d4 - 2.5*d2) - (d1 + 0.5*d3)    r4 = e + 2*a
//! r2 = (d4 - 2.5*d3) + (d1 + 0.5*d2)    r5 = (d5 - d3) + (a - 1.5*e)
//! ```
//!
//! applied first down each of the patch's 6 columns, then along each of the 6 resulting rows:
//! `V[i][j]` is entry `j` of the row transform of row `i` of the column transforms. The 1-D
//! output transform of `m0..m5` is
//!
//! ```text
//! p = m1 + m2          q = m1 - m2
//! y0 = (m0 + p) + (m3 + m4)             y2 = p + (4*m3 + 0.25*m4)
//! y1 = q + (2*m3 - 0.5*m4)              y3 = (q + m5) + (8*m3 - 0.125*m4)
//! ```
//!
//! applied first down each of `M`'s 6 columns, then along each of the 4 resulting rows. `M`
//! accumulates from `+0.0` over `ci` ascending; each step is `acc + U * V` rounded twice
//! (portable kernel) or once (fused multiply-add: the AVX2 and AVX-512 kernels, selected at
//! run time with `std`, at compile time from `target_feature` without). Then
//! `v = Y + bias[o]`, `v = v + res` (with a residual), ReLU (`v < 0.0` becomes `0.0`).
//!
//! The result of each element depends only on the geometry, the operands and the kernel
//! (portable or FMA), never on blocking, tile grouping or how the work is split across calls
//! or threads: the same bits for any split (tested).
//!
//! # Two variants
//!
//! With more than 128 input channels per group ([`winograd_tile`]) the kernel runs F(2x2, 3x3)
//! instead: 2x2 output tiles from 4x4 patches (rows `2*ty - pad ..`), 16 positions, 16
//! multiplies per 4 outputs (2.25x fewer than direct). There the transformed weights
//! (`positions * c * o` floats, not in any cache in a forward pass) are what a call waits for,
//! and F(2x2) has 16 positions to F(4x4)'s 36; its error is also 5-7x smaller (the table
//! above). Its matrices (Lavin and Gray's):
//!
//! ```text
//!        | 1  0 -1  0 |          | 1    0    0   |
//! B^T =  | 0  1  1  0 |    G  =  | 1/2  1/2  1/2 |    A^T = | 1  1  1  0 |
//!        | 0 -1  1  0 |          | 1/2 -1/2  1/2 |          | 0  1 -1 -1 |
//!        | 0  1  0 -1 |          | 0    0    1   |
//! ```
//!
//! The 1-D input transform of `d0..d3` is `r = [d0 - d2, d1 + d2, d2 - d1, d1 - d3]`, the
//! output transform of `m0..m3` is `y0 = (m0 + m1) + m2`, `y1 = (m1 - m2) - m3`, applied in
//! the same order as F(4x4)'s (columns, then rows; `V[i][j]` and `M[i][j]` at position `4i +
//! j`); everything else below (layouts, accumulation, epilogue, blocking, threads) is the same
//! with 16 positions in place of 36.
//!
//! # Layouts
//!
//! Output channels are cut per group into panels of [`winograd_panel`] channels (16; 8 or 4
//! for groups of at most 8 or 4 channels, so that ResNeXt's narrow groups are not padded 4x),
//! the last panel of a group padded with zero rows. The packed weights are, for each group
//! `gi`, panel `p`, position `pos = 6*i + j`, input channel `ci` of the group, one vector of
//! the panel's channels:
//!
//! ```text
//! packed[(((gi * panels + p) * 36 + pos) * cg + ci) * mr + r] = U[i,j][gi*og + p*mr + r][ci]
//!                                                             (0.0 past the group's channels)
//! ```
//!
//! so the GEMM of one panel and position streams `cg` vectors of `mr` weights, and each job's
//! weights (a range of panels) are contiguous. [`winograd_packed_len`] elements:
//! `groups * panels * 36 * cg * mr`, 4x the direct layout's `9 * c * o` (36/9) for 16 | og.
//!
//! At run time, per block of `T` tiles: `V` is `[36][cg][T]` (a tile row of the GEMM's right
//! operand is `T` consecutive floats, read `NR` at a time as broadcasts), and the GEMM result
//! for a group of panels is `[T][36][panels * mr]`: one tile's 36 vectors of channels, which
//! the output transform reads as vectors.
//!
//! # Blocking and stack
//!
//! The kernel does not allocate. Each call (each thread of a call) keeps one scratch buffer of
//! at most [`SCRATCH_BYTES`] on its stack, plus about 3 KB of locals. Per image and group,
//! tiles are processed in blocks of `T` (a multiple of the GEMM's `NR`, up to 64) sized so that
//! `V` for all `cg` channels and the GEMM result fit the scratch: the input transform of a
//! block is computed once and reused by every panel, and each panel's weights for one position
//! (`cg * mr` floats) stay in L1/L2 across the block's tiles. A GEMM call sums all of a
//! block's channels for up to `MRK` panels and `NR` tiles (AVX-512: 2 and 14), the block's tiles
//! cut into as few calls as `NR` allows, of nearly equal size. When even `NR` tiles do not fit
//! (with AVX-512's, above about 480 channels per group for F(4x4), 1100 for F(2x2)), the
//! channels are cut into chunks and the GEMM result is carried across chunks (same bits; the
//! input transform is then redone per group of panels).
//!
//! # Threads
//!
//! As in [`crate::conv`]: jobs are `(image, group, panel)`, consecutive jobs write consecutive
//! memory, and a range of jobs owns one contiguous slice of the output; with `std`, a call is
//! split across [`crate::threads::threads`] threads by job ranges, or, with fewer images than
//! threads and weights no larger than the input, by shares of each image's tiles (every job,
//! its share of the tiles; the output is then written through `conv::OutPtr`, since the shares
//! interleave).

use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ops::Range;

use crate::Residual;
use crate::conv::{Const, Dyn, Geom, OutPtr};
use crate::geom::{ConvGeom, ConvShape};

/// Outputs per tile side of the large variant, F(4x4, 3x3).
pub const TILE: usize = 4;

/// Input patch side of F(4x4, 3x3), `TILE + 2`.
const ALPHA: usize = TILE + 2;

/// Transform positions per tile of F(4x4, 3x3), `ALPHA^2`.
const POS: usize = ALPHA * ALPHA;

/// Transform positions per tile of F(t x t, 3x3): `(t + 2)^2`.
const fn positions(t: usize) -> usize {
    (t + 2) * (t + 2)
}

/// The variant [`winograd_conv2d`] runs `g` with, as its output tile side: 2 (F(2x2, 3x3)) with
/// more than 128 input channels per group, else 4 (F(4x4, 3x3)). With many channels the
/// transformed weights (`(t + 2)^2 * c * o` floats) are what a call streams from memory, and
/// F(2x2) has 16 positions to F(4x4)'s 36; see the [module docs](self#two-variants).
pub const fn winograd_tile(g: &ConvGeom) -> usize {
    if g.groups >= 1 && g.c / g.groups > 128 {
        2
    } else {
        4
    }
}

/// Upper bound of the stack scratch of one call (or of each thread of a call), in bytes.
pub const SCRATCH_BYTES: usize = SCRATCH_FLOATS * 4;

/// The scratch in floats: 1 MiB (Miri: 64 KiB). In a forward pass a layer's transformed weights
/// are in no cache, and when they do not fit L2 they stream from memory once per block of tiles:
/// this scratch holds all 49 tiles of a 28x28 plane over 128 channels (one pass over their 2.4 MB
/// instead of four with 384 KiB). Measured on one AVX-512 thread, 640 MB written between calls
/// (`RESNET_RUNTIME_WINOGRAD_BUDGETS`), 384 KiB -> 1 MiB: 128 channels at 28x28 1.25 -> 1.01 ms
/// (direct: 1.32); in resnet50 (`resnet-bench --layers`, three runs alternating), its layer2
/// 3x3 convs 1.04-1.20 -> 0.82-0.99 ms. Weights that fit L2 ([`L2_WEIGHTS`]) keep smaller blocks
/// ([`L2_SCRATCH_FLOATS`]): with 1 MiB, resnet50's layer1 3x3 convs (64 channels at 56x56) ran
/// slower in the model (0.81-1.10 ms against 0.77-0.90, three runs alternating).
const SCRATCH_FLOATS: usize = if cfg!(miri) { 16 * 1024 } else { 256 * 1024 };

/// Transformed weights (bytes, one group's) up to which they stay in L2 across blocks of tiles.
const L2_WEIGHTS: usize = 1 << 20;

/// The scratch a plan uses for weights up to [`L2_WEIGHTS`]: 384 KiB, so that `V` stays in L2
/// with them.
const L2_SCRATCH_FLOATS: usize = 96 * 1024;

/// The scratch buffer of one call. Its `V` part is written by the input transform before the
/// GEMMs read it, element by element, and is never viewed as `f32` before that; the GEMM
/// result part is zeroed by each call (see [`jobs_with`]).
type Scratch = [Uninit; SCRATCH_FLOATS];

/// A scratch element: written before it is read.
type Uninit = MaybeUninit<f32>;

/// The least scratch any kernel needs: one channel of `V` and the GEMM result for blocks of
/// `NR <= 6` tiles and `MRK * MR <= 64` channels.
const MIN_SCRATCH_FLOATS: usize = POS * (6 * (1 + 64) + V_PAD);

const _: () = assert!(SCRATCH_FLOATS >= MIN_SCRATCH_FLOATS);

/// How many positions ahead [`gemm_block`] prefetches the weights (less than 16). Measured on
/// one AVX-512 thread with the weights flushed before each call, 128 channels at 28x28
/// (F(4x4)): no prefetch 0.73-0.77 ms, 1 position ahead 0.60-0.65, 2 0.63-0.65, 4 0.63-0.64;
/// into L1 instead of L2 0.63-0.64; non-temporal 1.18-1.28.
const WEIGHTS_AHEAD: usize = 1;

/// Channels per microkernel call: a position's calls (one per few tiles of the block) each
/// take `GEMM_CHANNELS` of the chunk's channels, then the next, so that the calls after the
/// first find those weights (`GEMM_CHANNELS * MRK * MR` floats, 8 KiB on AVX-512) and rows of
/// `V` in L1 (presumably what changed: with all 256 channels of resnet50's layer3 in one call,
/// 32 KiB of weights and as many lines of `V` went past L1 before the next call read them
/// again). The sums keep their order (each accumulator is stored and reloaded between calls):
/// the same bits. In the model
/// (`resnet-bench --layers`, three runs alternating), resnet50's layer3.1-5.conv2 (F(2x2), 256
/// channels at 14x14): one thread 0.87-0.95 -> 0.77-0.85 ms, two threads 0.48-0.54 -> 0.44-0.48;
/// layer2's (F(4x4), 128 channels) 0.62-0.68 -> 0.60-0.64 ms on one thread, the same on two;
/// 32 channels measured slower than 64 (layer3: 0.84-0.87 against 0.75-0.81 ms). resnet18's
/// layer3.1.conv2 0.82 -> 0.76 ms (two runs). wide_resnet50_2 on one thread (four runs
/// alternating, each conv's mean): layer3.1-3.conv2 (512 channels at 14x14) 4.44 -> 4.20 ms,
/// but layer2.1-3.conv2 (256 at 28x28, blocks of 56 tiles) 3.19 -> 3.29 ms.
const GEMM_CHANNELS: usize = 64;

/// Padding between positions in `V` (floats); see [`Plan::v_stride`].
const V_PAD: usize = 16;

/// Largest number of tiles in one block.
const MAX_BLOCK_TILES: usize = 64;

/// Tiles transformed together by the input transform (its vector lanes).
const LANES: usize = 16;

/// Floats of a patch row one input-transform chunk reads: the `4 * LANES + 2` columns of its
/// tiles, and 2 more that the AVX2 loads touch.
const ROW: usize = TILE * LANES + 4;

/// Whether the Winograd kernel computes `g`: a 3x3 conv with stride 1 and dilation 1, no
/// projection shortcut, consistent sizes (`oh = h + 2*pad - 2`, likewise `ow`, `h + 2*pad >= 3`)
/// and groups that divide both channel counts. Any padding, groups, batch, residual and ReLU.
pub const fn winograd_supported(g: &ConvGeom) -> bool {
    g.k == 3
        && g.stride == 1
        && g.dilation == 1
        && g.shortcut.is_none()
        && g.groups >= 1
        && g.c >= g.groups
        && g.o >= g.groups
        && g.c.is_multiple_of(g.groups)
        && g.o.is_multiple_of(g.groups)
        && g.h >= 1
        && g.w >= 1
        && g.h + 2 * g.pad >= 3
        && g.w + 2 * g.pad >= 3
        && g.oh == g.h + 2 * g.pad - 2
        && g.ow == g.w + 2 * g.pad - 2
}

/// Output channels per packed panel: 4 if a group has at most 4, 8 if at most 8, else 16.
pub const fn winograd_panel(g: &ConvGeom) -> usize {
    let og = g.o / g.groups;
    if og <= 4 {
        4
    } else if og <= 8 {
        8
    } else {
        16
    }
}

/// Panels per group: `ceil((o / groups) / winograd_panel)`.
pub const fn winograd_panels_per_group(g: &ConvGeom) -> usize {
    (g.o / g.groups).div_ceil(winograd_panel(g))
}

/// Elements of the packed transformed weights: `groups * panels * (t + 2)^2 * (c / groups) *
/// panel`, `t` the [`winograd_tile`].
pub const fn winograd_packed_len(g: &ConvGeom) -> usize {
    packed_len(g, winograd_tile(g))
}

/// [`winograd_packed_len`] for tile side `t`.
const fn packed_len(g: &ConvGeom, t: usize) -> usize {
    g.groups * winograd_panels_per_group(g) * positions(t) * (g.c / g.groups) * winograd_panel(g)
}

/// `G` times 15 (rows 0 and 5) or 3 (rows 1, 2) or 15 (rows 3, 4): integer rows, and the
/// divisor of each row, so that `G = diag(1 / GDEN) * GINT` (see the module docs).
const GINT: [[f64; 3]; ALPHA] = [
    [1.0, 0.0, 0.0],
    [-1.0, -1.0, -1.0],
    [1.0, -1.0, 1.0],
    [1.0, 2.0, 4.0],
    [-16.0, 8.0, -4.0],
    [0.0, 0.0, 1.0],
];

/// Divisors of the rows of [`GINT`].
const GDEN: [f64; ALPHA] = [1.0, 3.0, 3.0, 15.0, 15.0, 1.0];

/// `G` of F(2x2, 3x3) times 2 (rows 1 and 2), and the divisors of its rows.
const GINT2: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [1.0, 1.0, 1.0],
    [1.0, -1.0, 1.0],
    [0.0, 0.0, 1.0],
];

/// Divisors of the rows of [`GINT2`].
const GDEN2: [f64; 4] = [1.0, 2.0, 2.0, 1.0];

/// `(G w G^T)[i][j]` in f64 for one 3x3 filter `w` (row-major) and tile side `t` (4 or 2):
/// `GINT w GINT^T` exactly (small integers times f32 values), then one division.
fn transform_weight(w: &[f32], t: usize, i: usize, j: usize) -> f64 {
    let (gi, gj, den) = if t == 2 {
        (&GINT2[i], &GINT2[j], GDEN2[i] * GDEN2[j])
    } else {
        (&GINT[i], &GINT[j], GDEN[i] * GDEN[j])
    };
    let mut s = 0.0;
    for (a, &ga) in gi.iter().enumerate() {
        let mut row = 0.0;
        for (b, &gb) in gj.iter().enumerate() {
            row += f64::from(w[a * 3 + b]) * gb;
        }
        s += ga * row;
    }
    s / den
}

/// Packs a conv's weights for [`winograd_conv2d`] in the layout the module docs give.
///
/// `w`: `[o, c / groups, 3, 3]` row-major (torchvision's layout, BatchNorm folded); `out`:
/// exactly [`winograd_packed_len`] elements, fully written. The transform is computed in f64
/// and each value rounded to f32 once.
pub fn pack_winograd(g: &ConvGeom, w: &[f32], out: &mut [f32]) {
    pack_tile(g, winograd_tile(g), w, out);
}

/// [`pack_winograd`] for tile side `t` (`out`: [`packed_len`] elements).
fn pack_tile(g: &ConvGeom, t: usize, w: &[f32], out: &mut [f32]) {
    debug_assert!(winograd_supported(g));
    let og = g.o / g.groups;
    let cg = g.c / g.groups;
    let mr = winograd_panel(g);
    let panels = winograd_panels_per_group(g);
    debug_assert_eq!(w.len(), g.o * cg * 9);
    debug_assert_eq!(out.len(), packed_len(g, t));
    let alpha = t + 2;
    // `out` is walked in storage order, so every element is written exactly once.
    let mut rows = out.chunks_exact_mut(mr);
    for gi in 0..g.groups {
        for p in 0..panels {
            for pos in 0..alpha * alpha {
                for ci in 0..cg {
                    let Some(row) = rows.next() else { return };
                    for (r, dst) in row.iter_mut().enumerate() {
                        let oc = p * mr + r;
                        *dst = if oc < og {
                            let at = ((gi * og + oc) * cg + ci) * 9;
                            transform_weight(&w[at..at + 9], t, pos / alpha, pos % alpha) as f32
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// The 1-D input transform `B^T d` of six values, in the order the module docs give, with the
/// operations passed in: every kernel (scalar, AVX2, AVX-512) expands this same sequence, so
/// all produce the same bits.
macro_rules! bt_ops {
    ($d:expr, add: $add:expr, sub: $sub:expr, scale: $mul:expr) => {{
        let [d0, d1, d2, d3, d4, d5] = $d;
        let a = $sub(d1, d3);
        let e = $sub(d4, d2);
        [
            $add($sub(d0, d2), $add(e, $mul(1.5, a))),
            $sub($sub(d4, $mul(2.5, d2)), $add(d1, $mul(0.5, d3))),
            $add($sub(d4, $mul(2.5, d3)), $add(d1, $mul(0.5, d2))),
            $sub(e, $mul(0.5, a)),
            $add(e, $mul(2.0, a)),
            $add($sub(d5, d3), $sub(a, $mul(1.5, e))),
        ]
    }};
}

/// [`bt_ops`] on scalars.
#[inline(always)]
fn bt(d: [f32; ALPHA]) -> [f32; ALPHA] {
    bt_ops!(d, add: |x: f32, y: f32| x + y, sub: |x: f32, y: f32| x - y, scale: |c: f32, x: f32| c * x)
}

/// The 1-D output transform `A^T m` of six values, in the order the module docs give, with the
/// operations passed in (as [`bt_ops`]).
macro_rules! at_ops {
    ($m:expr, add: $add:expr, sub: $sub:expr, scale: $mul:expr) => {{
        let [m0, m1, m2, m3, m4, m5] = $m;
        let p = $add(m1, m2);
        let q = $sub(m1, m2);
        [
            $add($add(m0, p), $add(m3, m4)),
            $add(q, $sub($mul(2.0, m3), $mul(0.5, m4))),
            $add(p, $add($mul(4.0, m3), $mul(0.25, m4))),
            $add($add(q, m5), $sub($mul(8.0, m3), $mul(0.125, m4))),
        ]
    }};
}

/// [`at_ops`] on vectors of `N` channels.
#[inline(always)]
fn at<const N: usize>(m: &[[f32; N]; ALPHA]) -> [[f32; N]; TILE] {
    let mut y = [[0.0; N]; TILE];
    for r in 0..N {
        let col = at_ops!(
            [m[0][r], m[1][r], m[2][r], m[3][r], m[4][r], m[5][r]],
            add: |x: f32, y: f32| x + y,
            sub: |x: f32, y: f32| x - y,
            scale: |c: f32, x: f32| c * x
        );
        for (ya, c) in y.iter_mut().zip(col) {
            ya[r] = c;
        }
    }
    y
}

/// The output transform of one tile of one panel: `M[i][j]` (a vector of `N` channels) at
/// `m[(6i + j) * stride ..]`; down the columns, then along the rows: `Y[a][b]`.
#[inline(always)]
fn output_transform<const N: usize>(m: &[f32], stride: usize) -> [[[f32; N]; TILE]; TILE] {
    let mut z = [[[0.0f32; N]; ALPHA]; TILE];
    #[expect(
        clippy::needless_range_loop,
        reason = "j indexes M's columns and z's second axis: a transpose"
    )]
    for j in 0..ALPHA {
        let col: [[f32; N]; ALPHA] = core::array::from_fn(|i| {
            let at = (i * ALPHA + j) * stride;
            m[at..at + N].try_into().unwrap_or([0.0; N])
        });
        for (a, y) in at(&col).into_iter().enumerate() {
            z[a][j] = y;
        }
    }
    core::array::from_fn(|a| at(&z[a]))
}

/// The 1-D input transform `B^T d` of F(2x2, 3x3) on four values, with the operations passed
/// in (as [`bt_ops`]): one operation per output, so every kernel gets the same bits.
macro_rules! bt2_ops {
    ($d:expr, add: $add:expr, sub: $sub:expr) => {{
        let [d0, d1, d2, d3] = $d;
        [$sub(d0, d2), $add(d1, d2), $sub(d2, d1), $sub(d1, d3)]
    }};
}

/// [`bt2_ops`] on scalars.
#[inline(always)]
fn bt2(d: [f32; 4]) -> [f32; 4] {
    bt2_ops!(d, add: |x: f32, y: f32| x + y, sub: |x: f32, y: f32| x - y)
}

/// The 1-D output transform `A^T m` of F(2x2, 3x3) on four values, with the operations passed
/// in (as [`bt_ops`]).
macro_rules! at2_ops {
    ($m:expr, add: $add:expr, sub: $sub:expr) => {{
        let [m0, m1, m2, m3] = $m;
        [$add($add(m0, m1), m2), $sub($sub(m1, m2), m3)]
    }};
}

/// [`at2_ops`] on vectors of `N` channels.
#[inline(always)]
fn at2<const N: usize>(m: &[[f32; N]; 4]) -> [[f32; N]; 2] {
    let mut y = [[0.0; N]; 2];
    for r in 0..N {
        let col = at2_ops!([m[0][r], m[1][r], m[2][r], m[3][r]], add: |x: f32, y: f32| x + y, sub: |x: f32, y: f32| x - y);
        y[0][r] = col[0];
        y[1][r] = col[1];
    }
    y
}

/// [`output_transform`] of F(2x2, 3x3): `M[i][j]` at `m[(4i + j) * stride ..]`; down the
/// columns, then along the rows: `Y[a][b]`.
#[inline(always)]
fn output_transform2<const N: usize>(m: &[f32], stride: usize) -> [[[f32; N]; 2]; 2] {
    let mut z = [[[0.0f32; N]; 4]; 2];
    #[expect(
        clippy::needless_range_loop,
        reason = "j indexes M's columns and z's second axis: a transpose"
    )]
    for j in 0..4 {
        let col: [[f32; N]; 4] = core::array::from_fn(|i| {
            let at = (i * 4 + j) * stride;
            m[at..at + N].try_into().unwrap_or([0.0; N])
        });
        let [y0, y1] = at2(&col);
        z[0][j] = y0;
        z[1][j] = y1;
    }
    [at2(&z[0]), at2(&z[1])]
}

/// The read-only operands of a call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operands<'a> {
    packed: &'a [f32],
    bias: &'a [f32],
    input: &'a [f32],
    residual: Residual<'a>,
}

/// Computes the conv `S::GEOM` (which must be [`winograd_supported`]) into `out`, with every
/// size a constant.
///
/// - `packed`: the weights as [`pack_winograd`] laid them out; `bias`: `o` values.
/// - `input`: `[n, c, h, w]`; `residual` as in [`crate::conv2d`].
/// - `out`: `[n, o, oh, ow]`, fully overwritten (read first when `residual` is `InPlace`).
///
/// The result is the conv of [`ConvGeom`]'s formula up to rounding; the arithmetic of each
/// element is given in the [module docs](self).
pub fn winograd_conv2d<S: ConvShape>(
    packed: &[f32],
    bias: &[f32],
    input: &[f32],
    residual: Residual<'_>,
    out: &mut [f32],
) {
    let ops = Operands {
        packed,
        bias,
        input,
        residual,
    };
    run_all_jobs(Const::<S>(PhantomData), &ops, out, Isa::chosen());
}

/// [`winograd_conv2d`] with the geometry as a value: one shared instance for every geometry,
/// with results identical to [`winograd_conv2d`]'s.
pub fn winograd_conv2d_dyn(
    g: &ConvGeom,
    packed: &[f32],
    bias: &[f32],
    input: &[f32],
    residual: Residual<'_>,
    out: &mut [f32],
) {
    let ops = Operands {
        packed,
        bias,
        input,
        residual,
    };
    run_all_jobs(Dyn(g), &ops, out, Isa::chosen());
}

/// The GEMM kernel a call runs: the results of the two FMA kernels agree with each other, not
/// with the portable one (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Portable Rust, multiply then add.
    Portable,
    /// AVX2 with FMA, `x86_64` only.
    Avx2,
    /// AVX-512F, `x86_64` only.
    Avx512,
}

impl Isa {
    /// The kernel of the process's instruction set ([`crate::isa::isa`]), the one the
    /// direct convs run on too: AVX-512 or AVX2 with FMA on x86-64, else portable.
    pub(crate) fn chosen() -> Self {
        match crate::isa::isa() {
            crate::isa::Isa::Avx512 => Isa::Avx512,
            crate::isa::Isa::Avx2Fma => Isa::Avx2,
            crate::isa::Isa::Portable | crate::isa::Isa::Neon => Isa::Portable,
        }
    }

    /// Whether this CPU can run the kernel (for tests that force one).
    #[cfg(test)]
    pub(crate) fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// Runs every job of the call, split across [`crate::threads::threads`] threads under `std`.
fn run_all_jobs<G: Geom>(gg: G, ops: &Operands<'_>, out: &mut [f32], isa: Isa) {
    let g = gg.get();
    let total = job_count(&g);
    let tile = winograd_tile(&g);
    #[cfg(feature = "std")]
    {
        let threads = crate::threads::threads()
            .min(total)
            .min(g.macs() / crate::threads::MIN_MACS_PER_THREAD)
            .max(1);
        if threads > 1 {
            if split_by_tiles(&g, ops, threads) {
                let out = OutPtr::new(out);
                return crate::threads::run_parts(threads, &|t| {
                    winograd_jobs(gg, ops, 0..total, out, (t, threads), isa, SCRATCH_FLOATS, tile)
                });
            }
            return run_jobs_threaded(gg, ops, out, total, threads, isa, tile);
        }
    }
    winograd_jobs(
        gg,
        ops,
        0..total,
        OutPtr::new(out),
        (0, 1),
        isa,
        SCRATCH_FLOATS,
        tile,
    )
}

/// Whether a call split across `threads` threads is split by output tiles (each thread every
/// output channel of its share of each image's 4x4 tiles) rather than by jobs (each thread its
/// output channels, all tiles, each repeating the input transform of every tile): with fewer
/// images than threads (else the jobs of different images split with nothing done twice) and
/// transformed weights (which each thread then reads whole) at most 8x the input's bytes. Two
/// threads, `--layers` runs alternating with the bound at 1x: resnet50's layer2 3x3 convs
/// (F(4x4), 5.9x) together 0.93-0.97 -> 0.86-0.91 ms (five runs), resnet18's 0.32-0.35 ->
/// 0.30-0.31 and wide_resnet50_2's (F(2x2), 5.2x) 1.68-1.74 -> 1.56-1.67 (three runs); layer3's
/// F(2x2) weights, 21x their 14x14 input, stay split by jobs.
#[cfg(feature = "std")]
fn split_by_tiles(g: &ConvGeom, ops: &Operands<'_>, threads: usize) -> bool {
    g.n < threads && ops.packed.len() <= 8 * (g.input_len() / g.n.max(1))
}

/// Cuts the jobs into `threads` contiguous ranges of (nearly) equal size, each with its slice
/// of `out`, and runs them as the parts of one [`crate::threads::run_parts`] call.
#[cfg(feature = "std")]
#[inline(never)]
fn run_jobs_threaded<G: Geom>(
    gg: G,
    ops: &Operands<'_>,
    out: &mut [f32],
    total: usize,
    threads: usize,
    isa: Isa,
    tile: usize,
) {
    let g = gg.get();
    crate::threads::run_job_ranges(
        total,
        threads,
        out,
        &|jobs| jobs_output_range(&g, jobs),
        &|jobs, mine| {
            winograd_jobs(
                gg,
                ops,
                jobs,
                OutPtr::new(mine),
                (0, 1),
                isa,
                SCRATCH_FLOATS,
                tile,
            )
        },
    );
}

/// Units of work: one panel of output channels of one group of one image, ordered
/// `(b, group, panel)`; a range of jobs writes one contiguous slice of `out`
/// ([`jobs_output_range`]).
pub(crate) const fn job_count(g: &ConvGeom) -> usize {
    g.n * g.groups * winograd_panels_per_group(g)
}

/// The `(b, gi, p)` of job `q`.
const fn job_coords(g: &ConvGeom, q: usize) -> (usize, usize, usize) {
    crate::conv::panel_job_coords(g, winograd_panel(g), q)
}

/// The output element range that jobs `jobs` write.
pub(crate) const fn jobs_output_range(g: &ConvGeom, jobs: Range<usize>) -> Range<usize> {
    crate::conv::panel_jobs_output_range(g, winograd_panel(g), jobs)
}

/// Runs jobs `jobs` (see [`job_count`]), share `part.0` of `part.1` of each image's tiles,
/// with the kernel `isa` (which this CPU must support), `budget` floats of scratch (see
/// [`Plan::new`]) and tiles of side `tile` (4, or 2: the weights packed for it); `out` is
/// exactly the jobs' [`jobs_output_range`], and a `Separate` residual is the whole `[n, o, oh,
/// ow]` tensor. No one else writes these tiles of these channels meanwhile.
#[allow(clippy::too_many_arguments)]
fn winograd_jobs<G: Geom>(
    gg: G,
    ops: &Operands<'_>,
    jobs: Range<usize>,
    out: OutPtr<'_>,
    part: (usize, usize),
    isa: Isa,
    budget: usize,
    tile: usize,
) {
    let g = gg.get();
    debug_assert!(winograd_supported(&g));
    debug_assert!(tile == 2 || tile == 4);
    debug_assert_eq!(ops.packed.len(), packed_len(&g, tile));
    debug_assert_eq!(ops.bias.len(), g.o);
    debug_assert_eq!(ops.input.len(), g.input_len());
    debug_assert!(jobs.start <= jobs.end && jobs.end <= job_count(&g));
    debug_assert_eq!(out.len(), jobs_output_range(&g, jobs.clone()).len());
    debug_assert_eq!(g.residual, !matches!(ops.residual, Residual::None));
    if let Residual::Separate(r) = ops.residual {
        debug_assert_eq!(r.len(), g.output_len());
    }
    // The scratch, here rather than in `jobs_with`: that is inlined into each arm below, and
    // its arms' buffers need not share one slot of this frame.
    let mut buf = [const { MaybeUninit::<f32>::uninit() }; SCRATCH_FLOATS];
    let buf = &mut buf;
    /// The arm for tile side `tile`, as a constant.
    macro_rules! by_tile {
        (|$t:ident| $call:expr) => {
            if tile == 2 {
                const $t: usize = 2;
                $call
            } else {
                const $t: usize = 4;
                $call
            }
        };
    }
    match (winograd_panel(&g), isa) {
        #[cfg(target_arch = "x86_64")]
        (16, Isa::Avx512) => by_tile!(|T| {
            // SAFETY: `Isa::Avx512` is only chosen (by `Isa::detect`, or by tests after
            // `Isa::available`) when the CPU supports AVX-512F.
            unsafe { x86::jobs_avx512::<G, T>(gg, ops, jobs, out, part, budget, buf) }
        }),
        #[cfg(target_arch = "x86_64")]
        (16, Isa::Avx2) => by_tile!(|T| {
            // SAFETY: `Isa::Avx2` is only chosen when the CPU supports AVX2 and FMA.
            unsafe { x86::jobs_avx2::<G, T>(gg, ops, jobs, out, part, budget, buf) }
        }),
        (16, _) => by_tile!(|T| jobs_with::<G, Portable, 16, T>(gg, ops, jobs, out, part, budget, buf)),
        (8, _) => by_tile!(|T| jobs_with::<G, Portable, 8, T>(gg, ops, jobs, out, part, budget, buf)),
        _ => by_tile!(|T| jobs_with::<G, Portable, 4, T>(gg, ops, jobs, out, part, budget, buf)),
    }
}

/// A GEMM microkernel for panels of `MR` channels, and the vector steps of the transforms
/// that need more than element-wise arithmetic (their portable versions are the defaults).
trait Kernel<const MR: usize> {
    /// Tiles per call, at most.
    const NR: usize;
    /// Panels per call, at most.
    const MRK: usize;

    /// For `mk <= MRK` panels and `n <= NR` tiles, `M[t][pos][m] (+)= sum_{k < kc} U[m][k] *
    /// V[k][t]`; see [`Gemm`].
    fn gemm(args: &Gemm<'_>, n: usize, m: &mut [f32]);

    /// The input transform of one chunk of tiles (see [`input_chunk`]): `rows[r]` is patch row
    /// `r` (the whole image row, `None` outside the image), `x0` the first tile's first column
    /// (columns outside the row read as zero), `n <= LANES` the tiles; `V[pos]` of tile `l`
    /// goes to `v[pos * pos_stride + l]`.
    ///
    /// Down each column `u` of the `4n + 2` the tiles read: `t[i][u] = bt(column u)[i]`; then
    /// along each row `i`, one tile per lane: `V[6i + j]` of tile `l` is
    /// `bt(t[i][4l .. 4l + 6])[j]`.
    #[inline(always)]
    fn input_chunk(rows: &[Option<&[f32]>; ALPHA], x0: isize, n: usize, v: &mut [Uninit], pos_stride: usize) {
        let cols = TILE * n + 2;
        let at = |row: Option<&[f32]>, u: usize| {
            let x = x0 + u as isize;
            match row {
                Some(row) if x >= 0 => row.get(x as usize).copied().unwrap_or(0.0),
                _ => 0.0,
            }
        };
        let mut t = [[0.0f32; ROW]; ALPHA];
        for u in 0..cols {
            let col = bt(core::array::from_fn(|r| at(rows[r], u)));
            for (ti, c) in t.iter_mut().zip(col) {
                ti[u] = c;
            }
        }
        for (i, ti) in t.iter().enumerate() {
            let ph: [[f32; LANES]; ALPHA] =
                core::array::from_fn(|s| core::array::from_fn(|l| ti[TILE * l + s]));
            for (j, vj) in bt_lanes(&ph).iter().enumerate() {
                Self::store(&mut v[(i * ALPHA + j) * pos_stride..], vj, n);
            }
        }
    }

    /// `dst[l] = src[l]` for `l < n` (`n <= LANES`, `dst.len() >= n`).
    #[inline(always)]
    fn store(dst: &mut [Uninit], src: &[f32; LANES], n: usize) {
        for (d, &s) in dst[..n].iter_mut().zip(src) {
            d.write(s);
        }
    }

    /// `t[r][p] = y[p][r]`: one output tile's 16 pixels x 16 channels to channel-major.
    #[inline(always)]
    fn transpose(y: &[[f32; 16]; 16]) -> [[f32; 16]; 16] {
        core::array::from_fn(|r| core::array::from_fn(|p| y[p][r]))
    }

    /// A whole 4x4 tile of a 16-channel panel: [`output_transform`] of `m` (stride `mw`), then
    /// the epilogue into `dst`: `v = Y + bias` across channels, [`Kernel::transpose`], then
    /// `+ residual` and ReLU along rows of 4 pixels, for the first `dst.rows` channels.
    #[inline(always)]
    fn output_full(m: &[f32], mw: usize, dst: FullTile<'_, '_>) {
        let y = output_transform::<16>(m, mw);
        let yb: [[f32; 16]; 16] =
            core::array::from_fn(|px| core::array::from_fn(|r| y[px / TILE][px % TILE][r] + dst.bias[r]));
        let t = Self::transpose(&yb);
        let relu = |v: [f32; TILE]| v.map(|x| if dst.relu && x < 0.0 { 0.0 } else { x });
        for (r, tr) in t.iter().enumerate().take(dst.rows) {
            for a in 0..TILE {
                let at = dst.base + r * dst.ohw + a * dst.ow;
                assert!(at + TILE <= dst.out.len());
                let v: [f32; TILE] = core::array::from_fn(|b| tr[a * TILE + b]);
                // SAFETY (both): `at + b < at + TILE <= out.len()` (asserted), pixels of this
                // call's tiles, which no one else touches meanwhile (`winograd_jobs`).
                let v = relu(match dst.residual {
                    Residual::None => v,
                    Residual::InPlace => core::array::from_fn(|b| v[b] + unsafe { dst.out.get(at + b) }),
                    Residual::Separate(res) => {
                        let rv = &res[at..at + TILE];
                        core::array::from_fn(|b| v[b] + rv[b])
                    }
                });
                for (b, &v) in v.iter().enumerate() {
                    unsafe { dst.out.set(at + b, v) };
                }
            }
        }
    }

    /// [`Kernel::input_chunk`] of F(2x2, 3x3): `rows` are the patch's 4 rows and the tiles are
    /// 2 columns apart. Down each column `u` of the `2n + 2` the tiles read: `t[i][u] =
    /// bt2(column u)[i]`; then along each row `i`, one tile per lane: `V[4i + j]` of tile `l`
    /// is `bt2(t[i][2l .. 2l + 4])[j]`.
    #[inline(always)]
    fn input_chunk2(rows: &[Option<&[f32]>; 4], x0: isize, n: usize, v: &mut [Uninit], pos_stride: usize) {
        let cols = 2 * n + 2;
        let at = |row: Option<&[f32]>, u: usize| {
            let x = x0 + u as isize;
            match row {
                Some(row) if x >= 0 => row.get(x as usize).copied().unwrap_or(0.0),
                _ => 0.0,
            }
        };
        let mut t = [[0.0f32; 2 * LANES + 2]; 4];
        for u in 0..cols {
            let col = bt2(core::array::from_fn(|r| at(rows[r], u)));
            for (ti, c) in t.iter_mut().zip(col) {
                ti[u] = c;
            }
        }
        for (i, ti) in t.iter().enumerate() {
            let ph: [[f32; LANES]; 4] = core::array::from_fn(|s| core::array::from_fn(|l| ti[2 * l + s]));
            let mut row = [[0.0f32; LANES]; 4];
            for l in 0..LANES {
                let r = bt2([ph[0][l], ph[1][l], ph[2][l], ph[3][l]]);
                for (o, x) in row.iter_mut().zip(r) {
                    o[l] = x;
                }
            }
            for (j, vj) in row.iter().enumerate() {
                Self::store(&mut v[(i * 4 + j) * pos_stride..], vj, n);
            }
        }
    }

    /// [`Kernel::output_full`] of F(2x2, 3x3): a whole 2x2 tile of a 16-channel panel,
    /// [`output_transform2`] of `m` (stride `mw`), then `v = Y + bias`, `+ residual`, ReLU,
    /// for the first `dst.rows` channels.
    #[inline(always)]
    fn output_full2(m: &[f32], mw: usize, dst: FullTile<'_, '_>) {
        let y = output_transform2::<16>(m, mw);
        for r in 0..dst.rows.min(16) {
            for (a, ya) in y.iter().enumerate() {
                let at = dst.base + r * dst.ohw + a * dst.ow;
                assert!(at + 2 <= dst.out.len());
                for (b, yb) in ya.iter().enumerate() {
                    let v = yb[r] + dst.bias[r];
                    // SAFETY (both): `at + b < at + 2 <= out.len()` (asserted), a pixel of
                    // this call's tiles, which no one else touches meanwhile (`winograd_jobs`).
                    let v = match dst.residual {
                        Residual::None => v,
                        Residual::InPlace => v + unsafe { dst.out.get(at + b) },
                        Residual::Separate(res) => v + res[at + b],
                    };
                    unsafe { dst.out.set(at + b, if dst.relu && v < 0.0 { 0.0 } else { v }) };
                }
            }
        }
    }
}

/// Where a whole tile (4x4, or 2x2) of a 16-channel panel goes ([`Kernel::output_full`],
/// [`Kernel::output_full2`]).
struct FullTile<'r, 'o> {
    /// The panel's bias (zero past its real channels).
    bias: [f32; 16],
    /// The panel's real channels.
    rows: usize,
    relu: bool,
    /// Indexed like `out`.
    residual: Residual<'r>,
    /// The run's channels.
    out: OutPtr<'o>,
    /// The tile's first pixel of the panel's first channel in `out`.
    base: usize,
    /// Distance between channels (`oh * ow`) and rows (`ow`) in `out`.
    ohw: usize,
    ow: usize,
}

/// The operands of one microkernel call at one position.
struct Gemm<'a> {
    /// Panel `m`'s weights at this position: `u[m * u_stride + k * MR + r]`, `k < kc`.
    u: &'a [f32],
    /// Distance between consecutive panels in `u` (the portable kernel takes one panel).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    u_stride: usize,
    /// Panels in this call (`1..=MRK`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    mk: usize,
    /// The transformed input from the call's first tile: `v[k * v_stride + j]`, `j < n` (those
    /// written by the block's input transform; the rest of the slice may be uninitialized).
    v: &'a [Uninit],
    /// Distance between channels in `v` (the block's tile count).
    v_stride: usize,
    /// Channels summed in this call.
    kc: usize,
    /// Distance between tiles in the GEMM result `m` (`36 * MRK * MR`); panel `p`'s vector of
    /// tile `j` is at `m[j * m_stride + p * MR ..]`.
    m_stride: usize,
    /// Whether to add to the values in `m` (channel chunks after the first) or start from 0.
    accumulate: bool,
    /// Weights this call asks into L2 for a later call (the next position's, see
    /// [`gemm_block`]): line `k < ahead_rows` of each of the `mk` panels, at
    /// `ahead + p * u_stride + k * MR` (a prefetch never faults; the address need not be valid).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    ahead: *const f32,
    /// Lines per panel to prefetch from `ahead` (0 past the end of the weights).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    ahead_rows: usize,
}

/// The portable kernel: arrays the autovectorizer keeps in registers, multiply then add.
struct Portable;

impl<const MR: usize> Kernel<MR> for Portable {
    const NR: usize = 3;
    const MRK: usize = 1;

    #[inline(always)]
    fn gemm(args: &Gemm<'_>, n: usize, m: &mut [f32]) {
        match n {
            3 => portable_gemm::<MR, 3>(args, m),
            2 => portable_gemm::<MR, 2>(args, m),
            _ => portable_gemm::<MR, 1>(args, m),
        }
    }
}

/// [`Portable`]'s body for `NR` tiles and one panel.
#[inline(never)]
fn portable_gemm<const MR: usize, const NR: usize>(args: &Gemm<'_>, m: &mut [f32]) {
    let mut acc = [[0.0f32; MR]; NR];
    if args.accumulate {
        for (j, a) in acc.iter_mut().enumerate() {
            a.copy_from_slice(&m[j * args.m_stride..][..MR]);
        }
    }
    let (u, _) = args.u[..args.kc * MR].as_chunks::<MR>();
    let v = &args.v[..(args.kc - 1) * args.v_stride + NR];
    for (k, a) in u.iter().enumerate() {
        // SAFETY: tiles `j < NR <= n` of channels `k < kc`: written by the block's input
        // transform before any GEMM of the block runs.
        let b: [f32; NR] = core::array::from_fn(|j| unsafe { v[k * args.v_stride + j].assume_init() });
        for j in 0..NR {
            for r in 0..MR {
                acc[j][r] += a[r] * b[j];
            }
        }
    }
    for (j, a) in acc.iter().enumerate() {
        m[j * args.m_stride..][..MR].copy_from_slice(a);
    }
}

/// Sizes derived from the geometry (and the tile side, the kernel's `NR`, `MRK`), fixed for a
/// call.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Transform positions per tile, `(t + 2)^2`.
    pos: usize,
    /// Tiles per row of an image: `ceil(ow / t)`.
    tw: usize,
    /// Tiles per image: `ceil(oh / t) * tw`.
    tiles: usize,
    /// Tiles per block.
    block: usize,
    /// Channels per chunk (all `cg` when they fit).
    kc: usize,
}

impl Plan {
    /// Distance between positions in `V` for `kc` channels: `kc * block` plus a cache line, so
    /// that the 36 rows one tile writes do not all fall in one cache set when `kc * block` is
    /// a multiple of 1024 (4 KiB).
    fn v_stride(&self, kc: usize) -> usize {
        kc * self.block + V_PAD
    }

    /// The plan for tiles of side `t` and scratch of `budget` floats (clamped to
    /// `MIN_SCRATCH_FLOATS ..= SCRATCH_FLOATS`; tests pass small budgets to reach channel
    /// chunking).
    fn new(g: &ConvGeom, t: usize, nr: usize, mrk: usize, mr: usize, budget: usize) -> Self {
        let pos = positions(t);
        let tw = g.ow.div_ceil(t);
        let tiles = g.oh.div_ceil(t) * tw;
        let cg = g.c / g.groups;
        // Weights that stay in L2 across blocks: smaller blocks, whose `V` stays there too.
        let budget = if pos * cg * (g.o / g.groups) * 4 <= L2_WEIGHTS {
            budget.min(L2_SCRATCH_FLOATS)
        } else {
            budget
        };
        let budget = budget.clamp(MIN_SCRATCH_FLOATS, SCRATCH_FLOATS);
        let mw = mrk * mr;
        // The largest block (at most all the tiles and MAX_BLOCK_TILES; a multiple of NR when
        // above NR) whose V for all channels and GEMM result fit the scratch, but not below NR
        // tiles: then channel chunks cost less than streaming all the weights per tile.
        let mut block = tiles.min(MAX_BLOCK_TILES);
        while block > nr.min(tiles) && pos * (block * (cg + mw) + V_PAD) > budget {
            block = if block > nr {
                (block - 1) / nr * nr
            } else {
                block - 1
            };
        }
        // Whole tile rows when a block holds one or more, so that input-transform chunks are
        // whole rows (fewer, fuller vectors).
        if block > tw {
            block = block / tw * tw;
        }
        // Channels per chunk for that block: all of them, or as many as fit.
        let kc = ((budget / pos).saturating_sub(V_PAD) / block)
            .saturating_sub(mw)
            .clamp(1, cg);
        Plan {
            pos,
            tw,
            tiles,
            block,
            kc,
        }
    }
}

/// Runs jobs `jobs` with kernel `K` for panels of `MR` and tiles of side `T` (see
/// [`winograd_jobs`]).
#[inline(always)]
fn jobs_with<G: Geom, K: Kernel<MR>, const MR: usize, const T: usize>(
    gg: G,
    ops: &Operands<'_>,
    jobs: Range<usize>,
    out: OutPtr<'_>,
    (part, parts): (usize, usize),
    budget: usize,
    buf: &mut Scratch,
) {
    let g = gg.get();
    let ohw = g.oh * g.ow;
    let og = g.o / g.groups;
    let ppg = winograd_panels_per_group(&g);
    if ohw == 0 || jobs.is_empty() {
        return;
    }
    let plan = Plan::new(&g, T, K::NR, K::MRK, MR, budget);
    let used = plan.pos * (plan.v_stride(plan.kc) + plan.block * K::MRK * MR);
    debug_assert!(used <= SCRATCH_FLOATS);
    let (v, m) = buf[..used.min(SCRATCH_FLOATS)].split_at_mut(plan.pos * plan.v_stride(plan.kc));
    // `V` stays uninitialized: the input transform writes each element a GEMM reads. (It used
    // to be zeroed with the rest, up to 1.1 MB per call and thread. resnet50's Winograd convs
    // together, three `--layers` runs alternating: one thread 7.50-7.90 -> 7.23-7.65 ms; two
    // threads 4.25-4.32 against 4.19-4.37, no difference.) The GEMM result is zeroed, so that
    // it can be viewed as `f32`.
    for x in m.iter_mut() {
        x.write(0.0);
    }
    // SAFETY: every element of `m` was just initialized, and `MaybeUninit<f32>` has the layout
    // of `f32`.
    let m: &mut [f32] = unsafe { &mut *(m as *mut [Uninit] as *mut [f32]) };

    // This share of each image's tiles.
    let tiles = plan.tiles * part / parts..plan.tiles * (part + 1) / parts;
    // Split the job range into runs that share (b, gi) and hand each its part of `out`.
    let first = jobs_output_range(&g, jobs.clone()).start;
    assert_eq!(out.len(), jobs_output_range(&g, jobs.clone()).len());
    let mut abs = first;
    let mut q = jobs.start;
    while q < jobs.end {
        let (b, gi, p_lo) = job_coords(&g, q);
        let p_hi = if jobs.end - q < ppg - p_lo {
            p_lo + (jobs.end - q)
        } else {
            ppg
        };
        let rows = if p_hi * MR < og { p_hi * MR } else { og } - p_lo * MR;
        let run = out.sub(abs - first..abs - first + rows * ohw);
        let residual = match ops.residual {
            Residual::Separate(r) => Residual::Separate(&r[abs..abs + run.len()]),
            other => other,
        };
        let run_ops = Operands { residual, ..*ops };
        run_panels::<G, K, MR, T>(
            gg,
            &plan,
            &run_ops,
            (&mut *v, &mut *m),
            b,
            gi,
            p_lo..p_hi,
            run,
            tiles.clone(),
        );
        abs += run.len();
        q += p_hi - p_lo;
    }
}

/// Panels `panels` of group `gi` of image `b`, tiles `tiles`; `out` (and a `Separate`
/// residual) are exactly the output channels those panels write.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn run_panels<G: Geom, K: Kernel<MR>, const MR: usize, const T: usize>(
    gg: G,
    plan: &Plan,
    ops: &Operands<'_>,
    (v, m): (&mut [Uninit], &mut [f32]),
    b: usize,
    gi: usize,
    panels: Range<usize>,
    out: OutPtr<'_>,
    tiles: Range<usize>,
) {
    let g = gg.get();
    let cg = g.c / g.groups;
    let hw = g.h * g.w;
    let input = &ops.input[(b * g.c + gi * cg) * hw..][..cg * hw];
    let block = plan.block;
    let mw = K::MRK * MR;
    let m = &mut m[..plan.pos * block * mw];
    let one_chunk = plan.kc >= cg;

    let mut t0 = tiles.start;
    while t0 < tiles.end {
        let nt = (tiles.end - t0).min(block);
        if one_chunk {
            input_transform::<K, MR, T>(&g, plan, input, 0..cg, t0, nt, v);
        }
        let mut p = panels.start;
        while p < panels.end {
            let mk = (panels.end - p).min(K::MRK);
            let mut c0 = 0;
            while c0 < cg {
                let kc = (cg - c0).min(plan.kc);
                if !one_chunk {
                    input_transform::<K, MR, T>(&g, plan, input, c0..c0 + kc, t0, nt, v);
                }
                gemm_block::<G, K, MR>(gg, plan, ops.packed, gi, p, mk, c0, kc, nt, v, m);
                c0 += kc;
            }
            output_block::<K, MR, T>(&g, plan, ops, gi, p, mk, panels.start, t0, nt, m, out);
            p += mk;
        }
        t0 += nt;
    }
}

/// The input transform of channels `chans` (of the group's `input`) for tiles `t0 .. t0 + nt`
/// into `v`: `v[pos * v_stride(kc) + (ci - chans.start) * block + t - t0]`.
#[inline(always)]
fn input_transform<K: Kernel<MR>, const MR: usize, const T: usize>(
    g: &ConvGeom,
    plan: &Plan,
    input: &[f32],
    chans: Range<usize>,
    t0: usize,
    nt: usize,
    v: &mut [Uninit],
) {
    let hw = g.h * g.w;
    let kc = chans.len();
    let pos_stride = plan.v_stride(kc);
    for (k, ci) in chans.enumerate() {
        let plane = &input[ci * hw..][..hw];
        let mut t = t0;
        while t < t0 + nt {
            let (ty, tx) = (t / plan.tw, t % plan.tw);
            let n = (plan.tw - tx).min(t0 + nt - t).min(LANES);
            input_chunk::<K, MR, T>(g, plane, ty, tx, n, &mut v[k * plan.block + t - t0..], pos_stride);
            t += n;
        }
    }
}

/// Transforms tiles `tx .. tx + n` (`n <= LANES`) of tile row `ty` of one channel `plane`:
/// `V[pos]` of tile `tx + l` goes to `v[pos * pos_stride + l]` (see [`Kernel::input_chunk`]).
#[inline(always)]
fn input_chunk<K: Kernel<MR>, const MR: usize, const T: usize>(
    g: &ConvGeom,
    plane: &[f32],
    ty: usize,
    tx: usize,
    n: usize,
    v: &mut [Uninit],
    pos_stride: usize,
) {
    let y0 = (T * ty) as isize - g.pad as isize;
    let x0 = (T * tx) as isize - g.pad as isize;
    let row = |r: usize| {
        let y = y0 + r as isize;
        (y >= 0 && y < g.h as isize).then(|| &plane[y as usize * g.w..][..g.w])
    };
    if T == 2 {
        K::input_chunk2(&core::array::from_fn(row), x0, n, v, pos_stride);
    } else {
        K::input_chunk(&core::array::from_fn(row), x0, n, v, pos_stride);
    }
}

/// [`bt`] on each lane.
#[inline(always)]
fn bt_lanes<const N: usize>(d: &[[f32; N]; ALPHA]) -> [[f32; N]; ALPHA] {
    let mut out = [[0.0; N]; ALPHA];
    for l in 0..N {
        let r = bt([d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]]);
        for (o, x) in out.iter_mut().zip(r) {
            o[l] = x;
        }
    }
    out
}

/// The `plan.pos` GEMMs of panels `p .. p + mk` over channels `c0 .. c0 + kc` for the block's
/// `nt` tiles, into `m` (`[block][pos][MRK * MR]`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_block<G: Geom, K: Kernel<MR>, const MR: usize>(
    gg: G,
    plan: &Plan,
    packed: &[f32],
    gi: usize,
    p: usize,
    mk: usize,
    c0: usize,
    kc: usize,
    nt: usize,
    v: &[Uninit],
    m: &mut [f32],
) {
    let g = gg.get();
    let cg = g.c / g.groups;
    let ppg = winograd_panels_per_group(&g);
    let mw = K::MRK * MR;
    let npos = plan.pos;
    let u_stride = npos * cg * MR;
    for pos in 0..npos {
        let at = ((gi * ppg + p) * npos + pos) * cg * MR + c0 * MR;
        let u = &packed[at..][..(mk - 1) * u_stride + kc * MR];
        let vp = &v[pos * plan.v_stride(kc)..][..kc * plan.block];
        // The weights `WEIGHTS_AHEAD` positions on (past the last, the next chunk of channels'
        // or, after the last chunk, the next panels'), asked into L2 while this position runs:
        // each call its share of the rows, one line per channel and panel. A layer's transformed
        // weights are in no cache in a forward pass, and the hardware prefetchers stop at each
        // 4 KiB page of the stream. (Resnet50's layer2 3x3 convs, 128 channels at 28x28:
        // 0.78-0.87 -> 0.61-0.69 ms in the model, one thread, three runs alternating.)
        let d = pos + WEIGHTS_AHEAD;
        let (np, nc) = match (d < npos, c0 + kc < cg) {
            (true, _) => (p, c0),
            (false, true) => (p, c0 + kc),
            (false, false) => (p + mk, 0),
        };
        let next = ((gi * ppg + np) * npos + d % npos) * cg * MR + nc * MR;
        let ahead = packed.as_ptr().wrapping_add(next);
        // As few calls as `NR` allows, of (nearly) equal size: with AVX-512's 14, 49 tiles as
        // 13 + 3 x 12 rather than 3 x 14 + 7 (a short call has few independent chains of `kc`
        // multiply-adds; with 16-tile calls the rest was one tile, a single chain).
        let calls = nt.div_ceil(K::NR);
        // The chunk's channels in (nearly) equal parts of at most `GEMM_CHANNELS`, each through
        // all the calls (the same multiply-adds in the same order: only stored and reloaded in
        // between).
        let parts = kc.div_ceil(GEMM_CHANNELS);
        for part in 0..parts {
            let (k0, ks) = (kc * part / parts, kc * (part + 1) / parts - kc * part / parts);
            let mut j = 0;
            for call in 0..calls {
                let n = nt / calls + usize::from(call < nt % calls);
                let args = Gemm {
                    u: &u[k0 * MR..],
                    u_stride,
                    mk,
                    v: &vp[k0 * plan.block + j..],
                    v_stride: plan.block,
                    kc: ks,
                    m_stride: npos * mw,
                    accumulate: c0 > 0 || k0 > 0,
                    ahead: ahead.wrapping_add((k0 + ks * call / calls) * MR),
                    ahead_rows: if next < packed.len() {
                        ks * (call + 1) / calls - ks * call / calls
                    } else {
                        0
                    },
                };
                K::gemm(&args, n, &mut m[(j * npos + pos) * mw..]);
                j += n;
            }
        }
    }
}

/// Output transform and epilogue of panels `p .. p + mk` (the first of the run's slice `out`
/// is panel `p_first`) for the block's tiles `t0 .. t0 + nt`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_block<K: Kernel<MR>, const MR: usize, const T: usize>(
    g: &ConvGeom,
    plan: &Plan,
    ops: &Operands<'_>,
    gi: usize,
    p: usize,
    mk: usize,
    p_first: usize,
    t0: usize,
    nt: usize,
    m: &[f32],
    out: OutPtr<'_>,
) {
    let og = g.o / g.groups;
    let mw = m.len() / (plan.pos * plan.block);
    for pp in p..p + mk {
        let rows = (og - pp * MR).min(MR);
        let bias = &ops.bias[gi * og + pp * MR..][..rows];
        let row0 = (pp - p_first) * MR;
        let bias16: [f32; 16] = core::array::from_fn(|r| bias.get(r).copied().unwrap_or(0.0));
        for t in t0..t0 + nt {
            let (ty, tx) = (t / plan.tw, t % plan.tw);
            let mt = &m[(t - t0) * plan.pos * mw + (pp - p) * MR..];
            let tile = OutTile {
                y0: T * ty,
                x0: T * tx,
                row0,
            };
            if MR == 16 && tile.y0 + T <= g.oh && tile.x0 + T <= g.ow {
                let dst = FullTile {
                    bias: bias16,
                    rows,
                    relu: g.relu,
                    residual: ops.residual,
                    out,
                    base: row0 * g.oh * g.ow + tile.y0 * g.ow + tile.x0,
                    ohw: g.oh * g.ow,
                    ow: g.ow,
                };
                if T == 2 {
                    K::output_full2(mt, mw, dst);
                } else {
                    K::output_full(mt, mw, dst);
                }
            } else if T == 2 {
                let y = output_transform2::<MR>(mt, mw);
                epilogue::<MR, 2>(g, &y, bias, ops.residual, out, &tile);
            } else {
                let y = output_transform::<MR>(mt, mw);
                epilogue::<MR, TILE>(g, &y, bias, ops.residual, out, &tile);
            }
        }
    }
}

/// Where one tile of one panel goes.
struct OutTile {
    /// Its first output row and column.
    y0: usize,
    x0: usize,
    /// The panel's first channel in the run's slice of `out`.
    row0: usize,
}

/// Stores one tile of one panel: `v = Y + bias`, `+ residual`, ReLU, for the `bias.len()` real
/// channels and the tile's pixels inside the image.
#[inline(always)]
fn epilogue<const MR: usize, const T: usize>(
    g: &ConvGeom,
    y: &[[[f32; MR]; T]; T],
    bias: &[f32],
    residual: Residual<'_>,
    out: OutPtr<'_>,
    tile: &OutTile,
) {
    let ohw = g.oh * g.ow;
    let ah = (g.oh - tile.y0).min(T);
    let bw = (g.ow - tile.x0).min(T);
    let relu = |v: f32| if g.relu && v < 0.0 { 0.0 } else { v };
    for (r, &bo) in bias.iter().enumerate() {
        for (a, ya) in y.iter().enumerate().take(ah) {
            let base = (tile.row0 + r) * ohw + (tile.y0 + a) * g.ow + tile.x0;
            assert!(base + bw <= out.len());
            for (i, yb) in (base..base + bw).zip(ya) {
                let v = yb[r] + bo;
                // SAFETY (both): `i < base + bw <= out.len()` (asserted), a pixel of this
                // call's tiles, which no one else touches meanwhile (`winograd_jobs`).
                let v = match residual {
                    Residual::None => v,
                    Residual::InPlace => v + unsafe { out.get(i) },
                    Residual::Separate(res) => v + res[i],
                };
                unsafe { out.set(i, relu(v)) };
            }
        }
    }
}

/// The x86-64 kernels: AVX-512F and AVX2 with FMA, each with the whole job loop compiled for
/// its features (so the transforms use the wide vectors too).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;
    use core::ops::Range;

    use super::{
        ALPHA, FullTile, Gemm, Geom, Kernel, LANES, Operands, OutPtr, POS, Scratch, TILE, Uninit, jobs_with,
    };
    use crate::Residual;

    /// [`super::jobs_with`] with the AVX-512 kernel.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn jobs_avx512<G: Geom, const T: usize>(
        gg: G,
        ops: &Operands<'_>,
        jobs: Range<usize>,
        out: OutPtr<'_>,
        part: (usize, usize),
        budget: usize,
        buf: &mut Scratch,
    ) {
        jobs_with::<G, Avx512, 16, T>(gg, ops, jobs, out, part, budget, buf)
    }

    /// [`super::jobs_with`] with the AVX2 kernel.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn jobs_avx2<G: Geom, const T: usize>(
        gg: G,
        ops: &Operands<'_>,
        jobs: Range<usize>,
        out: OutPtr<'_>,
        part: (usize, usize),
        budget: usize,
        buf: &mut Scratch,
    ) {
        jobs_with::<G, Avx2, 16, T>(gg, ops, jobs, out, part, budget, buf)
    }

    /// Checks that a microkernel's reads and writes for `n` tiles stay within the slices (a
    /// few compares per call of `kc * mk * 16 * n` multiply-adds).
    #[inline(always)]
    fn check(args: &Gemm<'_>, m: &[f32], n: usize) {
        assert!(args.mk >= 1 && args.kc >= 1 && n >= 1);
        assert!(args.u.len() >= (args.mk - 1) * args.u_stride + args.kc * 16);
        assert!(args.v.len() >= (args.kc - 1) * args.v_stride + n);
        assert!(m.len() >= (n - 1) * args.m_stride + args.mk * 16);
    }

    /// 16 channels per zmm register: up to `MRK = 2` panels x `NR = 14` tiles, 28 accumulators
    /// (two weight loads and 14 broadcasts per 28 multiply-adds).
    pub(super) struct Avx512;

    impl Kernel<16> for Avx512 {
        const NR: usize = 14;
        const MRK: usize = 2;

        #[inline(always)]
        fn gemm(args: &Gemm<'_>, n: usize, m: &mut [f32]) {
            check(args, m, n);
            let m = m.as_mut_ptr();
            /// Calls `avx512::<MK, NR>` for the run-time `(mk, n)`.
            macro_rules! dispatch {
                ($($mk:literal),*; $nr:tt) => {
                    match args.mk { $($mk => dispatch!(@n $mk; $nr),)* _ => dispatch!(@n 1; $nr) }
                };
                (@n $mk:literal; [$($n:literal),*]) => {
                    match n {
                        // SAFETY: `Avx512` only runs inside `jobs_avx512` (AVX-512F present);
                        // `check` verified the bounds of every access for `mk` panels and `n`
                        // tiles.
                        $($n => unsafe { avx512::<$mk, $n>(args, m) },)*
                        _ => unsafe { avx512::<$mk, 1>(args, m) },
                    }
                };
            }
            dispatch!(1, 2; [14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2])
        }

        #[inline(always)]
        fn input_chunk(
            rows: &[Option<&[f32]>; ALPHA],
            x0: isize,
            n: usize,
            v: &mut [Uninit],
            pos_stride: usize,
        ) {
            // SAFETY: `Avx512` only runs inside `jobs_avx512` (AVX-512F present).
            unsafe { input_chunk512(rows, x0, n, v, pos_stride) }
        }

        #[inline(always)]
        fn store(dst: &mut [Uninit], src: &[f32; LANES], n: usize) {
            let n = n.min(dst.len()).min(LANES);
            // SAFETY: AVX-512F is present (as above); the mask covers the first `n` lanes, all
            // within `dst` and `src`, and masked-off lanes are neither read nor written.
            unsafe {
                let mask = ((1u32 << n) - 1) as u16;
                let v = _mm512_loadu_ps(src.as_ptr());
                _mm512_mask_storeu_ps(dst.as_mut_ptr().cast(), mask, v);
            }
        }

        #[inline(always)]
        fn transpose(y: &[[f32; 16]; 16]) -> [[f32; 16]; 16] {
            // SAFETY: AVX-512F is present (as above).
            unsafe { transpose512(y) }
        }

        #[inline(always)]
        fn output_full(m: &[f32], mw: usize, dst: FullTile<'_, '_>) {
            // SAFETY: AVX-512F is present (as above).
            unsafe { output_full512(m, mw, dst) }
        }

        #[inline(always)]
        fn input_chunk2(
            rows: &[Option<&[f32]>; 4],
            x0: isize,
            n: usize,
            v: &mut [Uninit],
            pos_stride: usize,
        ) {
            // SAFETY: AVX-512F is present (as above).
            unsafe { input_chunk2_512(rows, x0, n, v, pos_stride) }
        }

        #[inline(always)]
        fn output_full2(m: &[f32], mw: usize, dst: FullTile<'_, '_>) {
            // SAFETY: AVX-512F is present (as above).
            unsafe { output_full2_512(m, mw, dst) }
        }
    }

    /// The AVX-512 microkernel for `MK` panels and `NR` tiles.
    ///
    /// # Safety
    /// AVX-512F; the bounds `check` verifies for `mk >= MK` panels and `n >= NR` tiles; `m`
    /// points to the start of the result slice.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn avx512<const MK: usize, const NR: usize>(args: &Gemm<'_>, m: *mut f32) {
        let mut acc = [[_mm512_setzero_ps(); MK]; NR];
        let u = args.u.as_ptr();
        let v = args.v.as_ptr().cast::<f32>();
        if args.accumulate {
            for (j, aj) in acc.iter_mut().enumerate() {
                for (p, a) in aj.iter_mut().enumerate() {
                    // SAFETY: within `m` (see `check`).
                    *a = unsafe { _mm512_loadu_ps(m.add(j * args.m_stride + p * 16)) };
                }
            }
        }
        for k in 0..args.kc {
            if k < args.ahead_rows {
                for p in 0..MK {
                    let line = args.ahead.wrapping_add(p * args.u_stride + k * 16);
                    _mm_prefetch::<_MM_HINT_T1>(line.cast());
                }
            }
            let mut a = [_mm512_setzero_ps(); MK];
            for (p, a) in a.iter_mut().enumerate() {
                // SAFETY: `k < kc` and `p < MK <= mk`: within `u` (see `check`).
                *a = unsafe { _mm512_loadu_ps(u.add(p * args.u_stride + k * 16)) };
            }
            for (j, aj) in acc.iter_mut().enumerate() {
                // SAFETY: `k < kc`, `j < NR <= n`: within `v` (see `check`), and written by
                // the block's input transform.
                let b = _mm512_set1_ps(unsafe { *v.add(k * args.v_stride + j) });
                for (p, acc) in aj.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(a[p], b, *acc);
                }
            }
        }
        for (j, aj) in acc.iter().enumerate() {
            for (p, a) in aj.iter().enumerate() {
                // SAFETY: within `m` (see `check`).
                unsafe { _mm512_storeu_ps(m.add(j * args.m_stride + p * 16), *a) };
            }
        }
    }

    /// 16 columns of `row` from `x`, zero outside it.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn load_cols(row: &[f32], x: isize) -> __m512 {
        let w = row.len() as isize;
        let lo = (-x).clamp(0, 16);
        let hi = (w - x).clamp(0, 16);
        let mask = if lo < hi {
            ((1u32 << hi) - (1u32 << lo)) as u16
        } else {
            0
        };
        // SAFETY: the mask selects exactly the lanes whose columns are inside `row`; masked-off
        // lanes are not accessed (and read as zero), so the pointer, computed with wrapping
        // arithmetic, is only dereferenced within `row`.
        unsafe { _mm512_maskz_loadu_ps(mask, row.as_ptr().wrapping_offset(x)) }
    }

    /// The lanes of `mask` (the chunk's tiles) of `row[j]`, `V` at position `first + j`, to
    /// `v[(first + j) * pos_stride ..]`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn store_positions<const N: usize>(
        v: &mut [Uninit],
        row: &[__m512; N],
        first: usize,
        pos_stride: usize,
        mask: u16,
    ) {
        let n = 16 - mask.leading_zeros() as usize;
        for (j, &r) in row.iter().enumerate() {
            let at = (first + j) * pos_stride;
            assert!(at + n <= v.len());
            // SAFETY: the mask covers lanes `0 .. n`, within `v` from `at` (asserted);
            // masked-off lanes are not written.
            unsafe { _mm512_mask_storeu_ps(v.as_mut_ptr().add(at).cast(), mask, r) };
        }
    }

    /// [`Kernel::input_chunk`] with 16-lane vectors: the column transforms of the 80 columns
    /// from `x0` (masked loads, zero outside the image) into `t`; then, per row of `t`, two
    /// rounds of two-source permutes split its first 64 columns into even and odd, then into
    /// four phases (columns `4l + s`), and phases 4 and 5 are phases 0 and 1 moved one tile
    /// along with columns 64 and 65 shifted in.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn input_chunk512(
        rows: &[Option<&[f32]>; ALPHA],
        x0: isize,
        n: usize,
        v: &mut [Uninit],
        pos_stride: usize,
    ) {
        let add = |a, b| _mm512_add_ps(a, b);
        let sub = |a, b| _mm512_sub_ps(a, b);
        let scale = |c: f32, a| _mm512_mul_ps(_mm512_set1_ps(c), a);
        // Columns past the 4n + 2 the tiles read stay zero.
        let mut t = [[0.0f32; 80]; ALPHA];
        for q in 0..(TILE * n + 2).div_ceil(16).min(5) {
            let d: [__m512; ALPHA] = core::array::from_fn(|r| match rows[r] {
                Some(row) => load_cols(row, x0 + 16 * q as isize),
                None => _mm512_setzero_ps(),
            });
            let col = bt_ops!(d, add: add, sub: sub, scale: scale);
            for (ti, c) in t.iter_mut().zip(col) {
                // SAFETY: `ti` holds 80 floats; this writes 16 from `16 * q <= 64`.
                unsafe { _mm512_storeu_ps(ti.as_mut_ptr().add(16 * q), c) };
            }
        }
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let si = _mm512_castps_si512;
        let mask = ((1u32 << n.min(LANES)) - 1) as u16;
        for (i, ti) in t.iter().enumerate() {
            // SAFETY: `ti` holds 80 floats.
            let [a, b, c, d, e] = [0, 16, 32, 48, 64].map(|o| unsafe { _mm512_loadu_ps(ti.as_ptr().add(o)) });
            let (e0, o0) = (
                _mm512_permutex2var_ps(a, even, b),
                _mm512_permutex2var_ps(a, odd, b),
            );
            let (e1, o1) = (
                _mm512_permutex2var_ps(c, even, d),
                _mm512_permutex2var_ps(c, odd, d),
            );
            let ph0 = _mm512_permutex2var_ps(e0, even, e1);
            let ph2 = _mm512_permutex2var_ps(e0, odd, e1);
            let ph1 = _mm512_permutex2var_ps(o0, even, o1);
            let ph3 = _mm512_permutex2var_ps(o0, odd, o1);
            let ph4 = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(si(e), si(ph0)));
            let e_next = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(si(e), si(e)));
            let ph5 = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(si(e_next), si(ph1)));
            let row = bt_ops!([ph0, ph1, ph2, ph3, ph4, ph5], add: add, sub: sub, scale: scale);
            store_positions(v, &row, i * ALPHA, pos_stride, mask);
        }
    }

    /// [`Kernel::output_full`] in zmm registers: one register per `M[i][j]`, `Y[a][b]` and
    /// channel; the transposed rows go out as 4-float pieces.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn output_full512(m: &[f32], mw: usize, dst: FullTile<'_, '_>) {
        let add = |a, b| _mm512_add_ps(a, b);
        let sub = |a, b| _mm512_sub_ps(a, b);
        let scale = |c: f32, a| _mm512_mul_ps(_mm512_set1_ps(c), a);
        assert!(m.len() >= (POS - 1) * mw + 16);
        let mut z = [[_mm512_setzero_ps(); ALPHA]; TILE];
        #[expect(
            clippy::needless_range_loop,
            reason = "j indexes M's columns and z's second axis: a transpose"
        )]
        for j in 0..ALPHA {
            // SAFETY: `(6i + j) * mw + 16 <= m.len()` (asserted).
            let col: [__m512; ALPHA] =
                core::array::from_fn(|i| unsafe { _mm512_loadu_ps(m.as_ptr().add((i * ALPHA + j) * mw)) });
            for (a, y) in at_ops!(col, add: add, sub: sub, scale: scale)
                .into_iter()
                .enumerate()
            {
                z[a][j] = y;
            }
        }
        // SAFETY: `bias` holds 16 floats.
        let bias = unsafe { _mm512_loadu_ps(dst.bias.as_ptr()) };
        let mut y = [[0.0f32; 16]; 16];
        for (a, za) in z.iter().enumerate() {
            for (b, yb) in at_ops!(*za, add: add, sub: sub, scale: scale)
                .into_iter()
                .enumerate()
            {
                // SAFETY: each row of `y` holds 16 floats.
                unsafe { _mm512_storeu_ps(y[a * TILE + b].as_mut_ptr(), add(yb, bias)) };
            }
        }
        let t = transpose512(&y);
        let zero = _mm512_setzero_ps();
        let rows = dst.rows.min(16);
        let last = dst.base + (rows.max(1) - 1) * dst.ohw + (TILE - 1) * dst.ow + TILE;
        assert!(last <= dst.out.len());
        if let Residual::Separate(res) = dst.residual {
            assert!(last <= res.len());
        }
        let out = dst.out.as_ptr();
        for (r, tr) in t.iter().enumerate().take(rows) {
            // SAFETY: `tr` holds 16 floats.
            let mut v = unsafe { _mm512_loadu_ps(tr.as_ptr()) };
            let at = |a: usize| dst.base + r * dst.ohw + a * dst.ow;
            // The 16 pixels' old values (4 rows of 4), for a residual.
            let gather = |src: *const f32| {
                // SAFETY: the four rows `at(a) .. at(a) + 4` are within `out` and `res`
                // (asserted above: `at(3) + 4 <= last`).
                unsafe {
                    let lo = _mm512_castps128_ps512(_mm_loadu_ps(src.add(at(0))));
                    let lo = _mm512_insertf32x4::<1>(lo, _mm_loadu_ps(src.add(at(1))));
                    let lo = _mm512_insertf32x4::<2>(lo, _mm_loadu_ps(src.add(at(2))));
                    _mm512_insertf32x4::<3>(lo, _mm_loadu_ps(src.add(at(3))))
                }
            };
            match dst.residual {
                Residual::None => {}
                Residual::InPlace => v = add(v, gather(out)),
                Residual::Separate(res) => v = add(v, gather(res.as_ptr())),
            }
            if dst.relu {
                // `v < 0.0` lanes become 0.0; NaN and -0.0 pass, as in the scalar epilogue.
                v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, zero), zero);
            }
            // SAFETY: as for `gather`.
            unsafe {
                _mm_storeu_ps(out.add(at(0)), _mm512_extractf32x4_ps::<0>(v));
                _mm_storeu_ps(out.add(at(1)), _mm512_extractf32x4_ps::<1>(v));
                _mm_storeu_ps(out.add(at(2)), _mm512_extractf32x4_ps::<2>(v));
                _mm_storeu_ps(out.add(at(3)), _mm512_extractf32x4_ps::<3>(v));
            }
        }
    }

    /// [`Kernel::input_chunk2`] with 16-lane vectors: the column transforms of the 48 columns
    /// from `x0` (masked loads, zero outside the image) into `t`; then, per row of `t`, two
    /// two-source permutes split its first 32 columns into even and odd (columns `2l` and
    /// `2l + 1`), and the third and fourth phases are those moved one tile along with columns
    /// 32 and 33 shifted in.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn input_chunk2_512(
        rows: &[Option<&[f32]>; 4],
        x0: isize,
        n: usize,
        v: &mut [Uninit],
        pos_stride: usize,
    ) {
        let add = |a, b| _mm512_add_ps(a, b);
        let sub = |a, b| _mm512_sub_ps(a, b);
        // Columns past the 2n + 2 the tiles read stay zero.
        let mut t = [[0.0f32; 48]; 4];
        for q in 0..(2 * n + 2).div_ceil(16).min(3) {
            let d: [__m512; 4] = core::array::from_fn(|r| match rows[r] {
                Some(row) => load_cols(row, x0 + 16 * q as isize),
                None => _mm512_setzero_ps(),
            });
            let col = bt2_ops!(d, add: add, sub: sub);
            for (ti, c) in t.iter_mut().zip(col) {
                // SAFETY: `ti` holds 48 floats; this writes 16 from `16 * q <= 32`.
                unsafe { _mm512_storeu_ps(ti.as_mut_ptr().add(16 * q), c) };
            }
        }
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let si = _mm512_castps_si512;
        let ps = _mm512_castsi512_ps;
        let mask = ((1u32 << n.min(LANES)) - 1) as u16;
        for (i, ti) in t.iter().enumerate() {
            // SAFETY: `ti` holds 48 floats.
            let [a, b, c] = [0, 16, 32].map(|o| unsafe { _mm512_loadu_ps(ti.as_ptr().add(o)) });
            let e = _mm512_permutex2var_ps(a, even, b);
            let o = _mm512_permutex2var_ps(a, odd, b);
            let e1 = ps(_mm512_alignr_epi32::<1>(si(c), si(e)));
            let c1 = _mm512_alignr_epi32::<1>(si(c), si(c));
            let o1 = ps(_mm512_alignr_epi32::<1>(c1, si(o)));
            let row = bt2_ops!([e, o, e1, o1], add: add, sub: sub);
            store_positions(v, &row, i * 4, pos_stride, mask);
        }
    }

    /// [`Kernel::output_full2`] in zmm registers, one per `M[i][j]` and `Y[a][b]` (channels in
    /// lanes); each pixel's 16 channels, `ohw` apart in `out`, are gathered (the residual) and
    /// scattered (the result) with one index vector.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn output_full2_512(m: &[f32], mw: usize, dst: FullTile<'_, '_>) {
        let add = |a, b| _mm512_add_ps(a, b);
        let sub = |a, b| _mm512_sub_ps(a, b);
        assert!(m.len() >= 15 * mw + 16);
        let mut z = [[_mm512_setzero_ps(); 4]; 2];
        #[expect(
            clippy::needless_range_loop,
            reason = "j indexes M's columns and z's second axis: a transpose"
        )]
        for j in 0..4 {
            // SAFETY: `(4i + j) * mw + 16 <= m.len()` (asserted).
            let col: [__m512; 4] =
                core::array::from_fn(|i| unsafe { _mm512_loadu_ps(m.as_ptr().add((i * 4 + j) * mw)) });
            let [y0, y1] = at2_ops!(col, add: add, sub: sub);
            z[0][j] = y0;
            z[1][j] = y1;
        }
        let rows = dst.rows.min(16);
        // Channel offsets as 32-bit indices.
        if rows == 0 || 16 * dst.ohw > i32::MAX as usize {
            return <super::Portable as Kernel<16>>::output_full2(m, mw, dst);
        }
        // SAFETY: `bias` holds 16 floats.
        let bias = unsafe { _mm512_loadu_ps(dst.bias.as_ptr()) };
        let last = dst.base + (rows - 1) * dst.ohw + dst.ow + 2;
        assert!(last <= dst.out.len());
        if let Residual::Separate(res) = dst.residual {
            assert!(last <= res.len());
        }
        let mask = ((1u32 << rows) - 1) as u16;
        let idx = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(dst.ohw as i32),
        );
        let zero = _mm512_setzero_ps();
        let out = dst.out.as_ptr();
        for (a, za) in z.iter().enumerate() {
            for (b, yb) in at2_ops!(*za, add: add, sub: sub).into_iter().enumerate() {
                let at = dst.base + a * dst.ow + b;
                let mut v = add(yb, bias);
                // SAFETY (gathers and scatter): lane `r < rows` (the mask) addresses
                // `at + r * ohw < last`, within `out` and `res` (asserted); masked-off lanes
                // are not accessed. Pixels of this call's tiles (`winograd_jobs`).
                match dst.residual {
                    Residual::None => {}
                    Residual::InPlace => {
                        v = add(v, unsafe {
                            _mm512_mask_i32gather_ps::<4>(zero, mask, idx, out.add(at))
                        })
                    }
                    Residual::Separate(res) => {
                        v = add(v, unsafe {
                            _mm512_mask_i32gather_ps::<4>(zero, mask, idx, res.as_ptr().add(at))
                        })
                    }
                }
                if dst.relu {
                    // `v < 0.0` lanes become 0.0; NaN and -0.0 pass, as in the scalar epilogue.
                    v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, zero), zero);
                }
                unsafe { _mm512_mask_i32scatter_ps::<4>(out.add(at), mask, idx, v) };
            }
        }
    }

    /// [`Kernel::transpose`] in zmm registers ([`crate::isa::transpose16`]).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn transpose512(y: &[[f32; 16]; 16]) -> [[f32; 16]; 16] {
        // SAFETY: each row holds 16 floats.
        let r: [__m512; 16] = core::array::from_fn(|i| unsafe { _mm512_loadu_ps(y[i].as_ptr()) });
        let mut out = [[0.0f32; 16]; 16];
        for (o, c) in out.iter_mut().zip(crate::isa::transpose16(r)) {
            // SAFETY: each row holds 16 floats.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), c) };
        }
        out
    }

    /// 16 channels in two ymm registers: one panel x `NR = 6` tiles, 12 accumulators.
    pub(super) struct Avx2;

    impl Kernel<16> for Avx2 {
        const NR: usize = 6;
        const MRK: usize = 1;

        #[inline(always)]
        fn gemm(args: &Gemm<'_>, n: usize, m: &mut [f32]) {
            check(args, m, n);
            let m = m.as_mut_ptr();
            // SAFETY: `Avx2` only runs inside `jobs_avx2` (AVX2 and FMA present); `check`
            // verified the bounds of every access for `n` tiles.
            unsafe {
                match n {
                    6 => avx2::<6>(args, m),
                    5 => avx2::<5>(args, m),
                    4 => avx2::<4>(args, m),
                    3 => avx2::<3>(args, m),
                    2 => avx2::<2>(args, m),
                    _ => avx2::<1>(args, m),
                }
            }
        }

        #[inline(always)]
        fn input_chunk(
            rows: &[Option<&[f32]>; ALPHA],
            x0: isize,
            n: usize,
            v: &mut [Uninit],
            pos_stride: usize,
        ) {
            // SAFETY: `Avx2` only runs inside `jobs_avx2` (AVX2 present).
            unsafe { input_chunk256(rows, x0, n, v, pos_stride) }
        }

        #[inline(always)]
        fn transpose(y: &[[f32; 16]; 16]) -> [[f32; 16]; 16] {
            // SAFETY: as above.
            unsafe { transpose256(y) }
        }
    }

    /// The AVX2 microkernel for `NR` tiles.
    ///
    /// # Safety
    /// AVX2 and FMA; the bounds `check` verifies for `n >= NR` tiles; `m` points to the start
    /// of the result slice.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn avx2<const NR: usize>(args: &Gemm<'_>, m: *mut f32) {
        let mut acc = [[_mm256_setzero_ps(); 2]; NR];
        let u = args.u.as_ptr();
        let v = args.v.as_ptr().cast::<f32>();
        if args.accumulate {
            for (j, aj) in acc.iter_mut().enumerate() {
                for (h, a) in aj.iter_mut().enumerate() {
                    // SAFETY: within `m` (see `check`).
                    *a = unsafe { _mm256_loadu_ps(m.add(j * args.m_stride + h * 8)) };
                }
            }
        }
        for k in 0..args.kc {
            if k < args.ahead_rows {
                _mm_prefetch::<_MM_HINT_T1>(args.ahead.wrapping_add(k * 16).cast());
            }
            // SAFETY: `k < kc`: within `u` (see `check`).
            let a = unsafe { [_mm256_loadu_ps(u.add(k * 16)), _mm256_loadu_ps(u.add(k * 16 + 8))] };
            for (j, aj) in acc.iter_mut().enumerate() {
                // SAFETY: `k < kc`, `j < NR <= n`: within `v` (see `check`), and written by
                // the block's input transform.
                let b = _mm256_set1_ps(unsafe { *v.add(k * args.v_stride + j) });
                for (h, acc) in aj.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(a[h], b, *acc);
                }
            }
        }
        for (j, aj) in acc.iter().enumerate() {
            for (h, a) in aj.iter().enumerate() {
                // SAFETY: within `m` (see `check`).
                unsafe { _mm256_storeu_ps(m.add(j * args.m_stride + h * 8), *a) };
            }
        }
    }

    /// [`Kernel::input_chunk`] with 8-lane vectors: the column transforms of the 72 columns
    /// from `x0` (masked loads, zero outside the image) into `t`; then, per row of `t` and half
    /// of the tiles, tiles `k` and `k + 4` share a register (one per 128-bit half) so that
    /// in-lane 4x4 transposes give four phases, and one more pair of shuffles the fifth and
    /// sixth.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn input_chunk256(
        rows: &[Option<&[f32]>; ALPHA],
        x0: isize,
        n: usize,
        v: &mut [Uninit],
        pos_stride: usize,
    ) {
        let add = |a, b| _mm256_add_ps(a, b);
        let sub = |a, b| _mm256_sub_ps(a, b);
        let scale = |c: f32, a| _mm256_mul_ps(_mm256_set1_ps(c), a);
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        // Lanes `lo .. hi` of 8 as a mask.
        let lanes = |lo: isize, hi: isize| {
            let lo = _mm256_set1_epi32(lo.clamp(-1, 8) as i32);
            let hi = _mm256_set1_epi32(hi.clamp(-1, 8) as i32);
            _mm256_andnot_si256(_mm256_cmpgt_epi32(lo, lane), _mm256_cmpgt_epi32(hi, lane))
        };
        // 8 columns of `row` from `x`, zero outside it.
        let load = |row: &[f32], x: isize| {
            let w = row.len() as isize;
            if x >= 0 && x + 8 <= w {
                // SAFETY: columns `x .. x + 8` are inside `row`.
                unsafe { _mm256_loadu_ps(row.as_ptr().add(x as usize)) }
            } else {
                // SAFETY: the mask selects exactly the lanes whose columns are inside `row`;
                // masked-off lanes are not accessed (and read as zero), so the pointer,
                // computed with wrapping arithmetic, is only dereferenced within `row`.
                unsafe { _mm256_maskload_ps(row.as_ptr().wrapping_offset(x), lanes(-x, w - x)) }
            }
        };
        // Columns past the 4n + 2 the tiles read stay zero.
        let mut t = [[0.0f32; 72]; ALPHA];
        for q in 0..(TILE * n + 2).div_ceil(8).min(9) {
            let d: [__m256; ALPHA] = core::array::from_fn(|r| match rows[r] {
                Some(row) => load(row, x0 + 8 * q as isize),
                None => _mm256_setzero_ps(),
            });
            let col = bt_ops!(d, add: add, sub: sub, scale: scale);
            for (ti, c) in t.iter_mut().zip(col) {
                // SAFETY: `ti` holds 72 floats; this writes 8 from `8 * q <= 64`.
                unsafe { _mm256_storeu_ps(ti.as_mut_ptr().add(8 * q), c) };
            }
        }
        for (i, ti) in t.iter().enumerate() {
            for half in 0..n.div_ceil(8) {
                let p = &ti[32 * half..32 * half + 36];
                // q[k] = [tile k | tile k + 4] (4 columns each), k = 0..=4.
                let q: [__m256; 5] = core::array::from_fn(|k| {
                    // SAFETY: columns `4k .. 4k + 4` and `16 + 4k .. 20 + 4k` are within `p`.
                    unsafe { _mm256_loadu2_m128(p.as_ptr().add(16 + 4 * k), p.as_ptr().add(4 * k)) }
                });
                let t0 = _mm256_unpacklo_ps(q[0], q[1]);
                let t1 = _mm256_unpackhi_ps(q[0], q[1]);
                let t2 = _mm256_unpacklo_ps(q[2], q[3]);
                let t3 = _mm256_unpackhi_ps(q[2], q[3]);
                let u0 = _mm256_unpacklo_ps(q[1], q[2]);
                let u2 = _mm256_unpacklo_ps(q[3], q[4]);
                let ph = [
                    _mm256_shuffle_ps::<0x44>(t0, t2),
                    _mm256_shuffle_ps::<0xee>(t0, t2),
                    _mm256_shuffle_ps::<0x44>(t1, t3),
                    _mm256_shuffle_ps::<0xee>(t1, t3),
                    _mm256_shuffle_ps::<0x44>(u0, u2),
                    _mm256_shuffle_ps::<0xee>(u0, u2),
                ];
                let row = bt_ops!(ph, add: add, sub: sub, scale: scale);
                let nh = (n - 8 * half).min(8);
                let mask = lanes(0, nh as isize);
                for (j, r) in row.into_iter().enumerate() {
                    let at = (i * ALPHA + j) * pos_stride + 8 * half;
                    assert!(at + nh <= v.len());
                    // SAFETY: the mask covers lanes `0 .. nh`, within `v` from `at`
                    // (asserted); masked-off lanes are not written.
                    unsafe { _mm256_maskstore_ps(v.as_mut_ptr().add(at).cast(), mask, r) };
                }
            }
        }
    }

    /// [`Kernel::transpose`] as four 8x8 transposes (32-bit, 64-bit, then 128-bit interleaves).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn transpose256(y: &[[f32; 16]; 16]) -> [[f32; 16]; 16] {
        let mut out = [[0.0f32; 16]; 16];
        for bi in 0..2 {
            for bj in 0..2 {
                // Block (bi, bj): rows 8*bi.., columns 8*bj.. of y, to rows 8*bj.., columns 8*bi...
                // SAFETY: each row holds 16 floats; this reads 8 from `8 * bj`.
                let r: [__m256; 8] =
                    core::array::from_fn(|i| unsafe { _mm256_loadu_ps(y[8 * bi + i].as_ptr().add(8 * bj)) });
                let t: [__m256; 8] = core::array::from_fn(|i| {
                    let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
                    if i % 2 == 0 {
                        _mm256_unpacklo_ps(a, b)
                    } else {
                        _mm256_unpackhi_ps(a, b)
                    }
                });
                let s = [
                    _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                    _mm256_shuffle_ps::<0xee>(t[0], t[2]),
                    _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                    _mm256_shuffle_ps::<0xee>(t[1], t[3]),
                    _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                    _mm256_shuffle_ps::<0xee>(t[4], t[6]),
                    _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                    _mm256_shuffle_ps::<0xee>(t[5], t[7]),
                ];
                for k in 0..4 {
                    let lo = _mm256_permute2f128_ps::<0x20>(s[k], s[4 + k]);
                    let hi = _mm256_permute2f128_ps::<0x31>(s[k], s[4 + k]);
                    // SAFETY: each row holds 16 floats; this writes 8 from `8 * bi`.
                    unsafe {
                        _mm256_storeu_ps(out[8 * bj + k].as_mut_ptr().add(8 * bi), lo);
                        _mm256_storeu_ps(out[8 * bj + 4 + k].as_mut_ptr().add(8 * bi), hi);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64, for operands and geometry choices.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in `[-1, 1)`.
        fn uniform(&mut self) -> f32 {
            ((self.next() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        }

        /// Standard normal (Box-Muller), rounded to f32.
        fn normal(&mut self) -> f32 {
            let u1 = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            let u2 = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
            ((-2.0 * u1.ln()).sqrt() * (2.0 * core::f64::consts::PI * u2).cos()) as f32
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn vec(&mut self, len: usize) -> Vec<f32> {
            (0..len).map(|_| self.uniform()).collect()
        }
    }

    /// Under Miri (about a million times slower), cases above this many MACs are skipped.
    fn too_big_for_miri(g: &ConvGeom) -> bool {
        cfg!(miri) && g.macs() > 20_000
    }

    /// A 3x3 stride-1 geometry.
    fn geom(n: usize, c: usize, (h, w): (usize, usize), o: usize, pad: usize, groups: usize) -> ConvGeom {
        ConvGeom {
            n,
            c,
            h,
            w,
            o,
            oh: h + 2 * pad - 2,
            ow: w + 2 * pad - 2,
            k: 3,
            stride: 1,
            pad,
            dilation: 1,
            groups,
            shortcut: None,
            residual: false,
            relu: false,
        }
    }

    /// The operands of one call in their natural layouts.
    #[derive(Clone)]
    struct Data {
        g: ConvGeom,
        /// The tile side the weights are packed for and the kernel runs with.
        tile: usize,
        /// `[o, c / groups, 3, 3]`.
        w: Vec<f32>,
        bias: Vec<f32>,
        input: Vec<f32>,
        /// `[n, o, oh, ow]`, empty without a residual.
        residual: Vec<f32>,
    }

    impl Data {
        fn random(g: ConvGeom, rng: &mut Rng) -> Self {
            Data {
                g,
                tile: winograd_tile(&g),
                w: rng.vec(g.o * g.c / g.groups * 9),
                bias: rng.vec(g.o),
                input: rng.vec(g.input_len()),
                residual: if g.residual {
                    rng.vec(g.output_len())
                } else {
                    Vec::new()
                },
            }
        }

        /// ResNet-like operands: inputs `max(N(0, 1), 0)` (after a ReLU), weights
        /// `N(0, 2 / (9 * c / groups))` (Kaiming), bias `N(0, 0.1)`.
        fn resnet_like(g: ConvGeom, rng: &mut Rng) -> Self {
            let std = (2.0 / (9.0 * (g.c / g.groups) as f64)).sqrt() as f32;
            Data {
                g,
                tile: winograd_tile(&g),
                w: (0..g.o * g.c / g.groups * 9)
                    .map(|_| rng.normal() * std)
                    .collect(),
                bias: (0..g.o).map(|_| rng.normal() * 0.1).collect(),
                input: (0..g.input_len()).map(|_| rng.normal().max(0.0)).collect(),
                residual: if g.residual {
                    (0..g.output_len()).map(|_| rng.normal().max(0.0)).collect()
                } else {
                    Vec::new()
                },
            }
        }

        fn packed(&self) -> Vec<f32> {
            let mut packed = vec![f32::NAN; packed_len(&self.g, self.tile)];
            pack_tile(&self.g, self.tile, &self.w, &mut packed);
            packed
        }

        /// The conv in f64 straight from [`ConvGeom`]'s formula, before the ReLU, and the
        /// magnitude of each element's rounding error (see [`tolerance`]):
        /// `|bias| + |residual| + sum_ci (sum_taps |w|) * max |x over the element's tile's patch|`.
        fn reference(&self) -> Vec<(f64, f64)> {
            let g = &self.g;
            let (tile, alpha) = (self.tile, self.tile as isize + 2);
            let (cg, og) = (g.c / g.groups, g.o / g.groups);
            let mut out = Vec::with_capacity(g.output_len());
            for b in 0..g.n {
                for o in 0..g.o {
                    let gi = o / og;
                    for y in 0..g.oh {
                        for x in 0..g.ow {
                            let bias = f64::from(self.bias[o]);
                            let (mut s, mut mag) = (bias, bias.abs());
                            let (py, px) = (
                                (y / tile * tile) as isize - g.pad as isize,
                                (x / tile * tile) as isize - g.pad as isize,
                            );
                            for ci in 0..cg {
                                let ch = gi * cg + ci;
                                let mut patch_max = 0.0f64;
                                for iy in py.max(0)..(py + alpha).min(g.h as isize) {
                                    for ix in px.max(0)..(px + alpha).min(g.w as isize) {
                                        let v = self.input
                                            [((b * g.c + ch) * g.h + iy as usize) * g.w + ix as usize];
                                        patch_max = patch_max.max(f64::from(v.abs()));
                                    }
                                }
                                let w1: f64 = self.w[(o * cg + ci) * 9..][..9]
                                    .iter()
                                    .map(|&w| f64::from(w.abs()))
                                    .sum();
                                mag += w1 * patch_max;
                                for i in 0..3 {
                                    for j in 0..3 {
                                        let iy = (y + i) as isize - g.pad as isize;
                                        let ix = (x + j) as isize - g.pad as isize;
                                        if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                            continue;
                                        }
                                        let ch = gi * cg + ci;
                                        let v = self.input
                                            [((b * g.c + ch) * g.h + iy as usize) * g.w + ix as usize];
                                        let t =
                                            f64::from(self.w[((o * cg + ci) * 3 + i) * 3 + j]) * f64::from(v);
                                        s += t;
                                        mag += t.abs();
                                    }
                                }
                            }
                            if g.residual {
                                let r = f64::from(self.residual[out.len()]);
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

        /// The operands with `packed` weights, the residual passed as `mode`.
        fn operands<'a>(&'a self, packed: &'a [f32], mode: Mode) -> Operands<'a> {
            Operands {
                packed,
                bias: &self.bias,
                input: &self.input,
                residual: match mode {
                    Mode::None => Residual::None,
                    Mode::InPlace => Residual::InPlace,
                    Mode::Separate => Residual::Separate(&self.residual),
                },
            }
        }

        /// Runs the kernel `isa` on jobs `jobs`, `budget` floats of scratch, the residual passed
        /// as `mode`, into `out` (the whole output tensor).
        fn run_jobs(
            &self,
            packed: &[f32],
            mode: Mode,
            isa: Isa,
            budget: usize,
            jobs: Range<usize>,
            out: &mut [f32],
        ) {
            let ops = self.operands(packed, mode);
            let range = jobs_output_range(&self.g, jobs.clone());
            let out = OutPtr::new(&mut out[range]);
            winograd_jobs(Dyn(&self.g), &ops, jobs, out, (0, 1), isa, budget, self.tile);
        }

        /// Runs the kernel `isa` on every job, tile shares `parts` of `of` (in that order),
        /// the residual passed as `mode`, into `out` (the whole output tensor).
        fn run_tile_shares(
            &self,
            packed: &[f32],
            mode: Mode,
            isa: Isa,
            parts: &[usize],
            of: usize,
            out: &mut [f32],
        ) {
            let ops = self.operands(packed, mode);
            let out = OutPtr::new(out);
            for &part in parts {
                winograd_jobs(
                    Dyn(&self.g),
                    &ops,
                    0..job_count(&self.g),
                    out,
                    (part, of),
                    isa,
                    SCRATCH_FLOATS,
                    self.tile,
                );
            }
        }

        /// The output buffer before the call: the residual for `InPlace`, NaN otherwise.
        fn fresh_out(&self, mode: Mode) -> Vec<f32> {
            match mode {
                Mode::InPlace => self.residual.clone(),
                _ => vec![f32::NAN; self.g.output_len()],
            }
        }

        fn run(&self, mode: Mode, isa: Isa, budget: usize) -> Vec<f32> {
            let packed = self.packed();
            let mut out = self.fresh_out(mode);
            self.run_jobs(&packed, mode, isa, budget, 0..job_count(&self.g), &mut out);
            out
        }
    }

    /// How a test passes the residual.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mode {
        None,
        InPlace,
        Separate,
    }

    /// The kernels this CPU runs.
    fn isas() -> impl Iterator<Item = Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|i| i.available())
    }

    /// The tolerance per element: `C * eps * mag`, with `mag` from [`Data::reference`]. The
    /// kernel sums each element's channels in the transform domain, where the values combine
    /// the whole 6x6 patch, not just the element's 3x3 window (so an element at a border,
    /// whose window sees mostly padding, still carries the error of its tile's other pixels),
    /// amplified by the transforms' largest entries. `C = 40`: the worst `|err| / (eps * mag)`
    /// measured on these tests is about 10 (see `tolerance_margin`).
    fn tolerance(mag: f64) -> f64 {
        40.0 * f64::from(f32::EPSILON) * mag
    }

    /// The tile sides a test runs a case with: both, or under Miri one, alternating by `seed`.
    fn tiles(seed: u64) -> &'static [usize] {
        match (cfg!(miri), seed / 2 % 2) {
            (false, _) => &[4, 2],
            (true, 0) => &[4],
            (true, _) => &[2],
        }
    }

    /// Checks every kernel and both tile sides against the f64 reference.
    fn check(g: ConvGeom, mode: Mode, seed: u64) {
        if too_big_for_miri(&g) {
            return;
        }
        assert!(winograd_supported(&g), "{g:?}");
        let d = Data::random(g, &mut Rng(seed));
        for &tile in tiles(seed) {
            check_data(&Data { tile, ..d.clone() }, mode, seed);
        }
    }

    /// Checks every kernel on `d` against the f64 reference.
    fn check_data(d: &Data, mode: Mode, seed: u64) {
        let g = d.g;
        let refs = d.reference();
        // Under Miri, one scratch size per case, alternating.
        let budgets: &[usize] = match (cfg!(miri), seed % 2) {
            (false, _) => &[SCRATCH_FLOATS, MIN_SCRATCH_FLOATS],
            (true, 0) => &[SCRATCH_FLOATS],
            (true, _) => &[MIN_SCRATCH_FLOATS],
        };
        let tile = d.tile;
        for isa in isas() {
            for &budget in budgets {
                let got = d.run(mode, isa, budget);
                assert_eq!(got.len(), g.output_len());
                for (i, (&v, &(r, mag))) in got.iter().zip(&refs).enumerate() {
                    let r = if g.relu && r < 0.0 { 0.0 } else { r };
                    let tol = tolerance(mag);
                    assert!(
                        (f64::from(v) - r).abs() <= tol,
                        "{g:?} {mode:?} {isa:?} F({tile}x{tile}) budget {budget} at {i}: {v} vs {r} (tol {tol})"
                    );
                }
            }
        }
    }

    #[test]
    fn transforms_compute_the_correlation() {
        // 1-D: A^T [(G g) . (B^T d)] against the correlation, in f64, on the integer form.
        let d = [0.5f32, -1.25, 2.0, 0.75, -0.5, 1.5];
        let w = [0.25f32, -1.5, 0.625];
        let v = bt(d);
        let u: [f64; ALPHA] =
            core::array::from_fn(|i| (0..3).map(|k| GINT[i][k] * f64::from(w[k])).sum::<f64>() / GDEN[i]);
        let m: [[f32; 1]; ALPHA] = core::array::from_fn(|i| [(u[i] * f64::from(v[i])) as f32]);
        let y = at(&m);
        for i in 0..TILE {
            let e: f32 = (0..3).map(|k| w[k] * d[i + k]).sum();
            assert!((y[i][0] - e).abs() < 1e-5, "{i}: {} vs {e}", y[i][0]);
        }
        // 2-D: G w G^T from `transform_weight`, one tile, one channel.
        let w9 = [0.5f32, -0.25, 1.0, 0.75, -1.0, 0.125, 2.0, -0.5, 0.25];
        let patch: [[f32; ALPHA]; ALPHA] =
            core::array::from_fn(|r| core::array::from_fn(|s| (r * 7 + s * 3) as f32 / 8.0 - 2.0));
        let cols: [[f32; ALPHA]; ALPHA] = core::array::from_fn(|s| bt(core::array::from_fn(|r| patch[r][s])));
        let v: [[f32; ALPHA]; ALPHA] = core::array::from_fn(|i| bt(core::array::from_fn(|s| cols[s][i])));
        let m: [[[f32; 1]; ALPHA]; ALPHA] = core::array::from_fn(|i| {
            core::array::from_fn(|j| [(transform_weight(&w9, TILE, i, j) * f64::from(v[i][j])) as f32])
        });
        let z: [[[f32; 1]; ALPHA]; TILE] = {
            let mut z = [[[0.0; 1]; ALPHA]; TILE];
            for j in 0..ALPHA {
                let col: [[f32; 1]; ALPHA] = core::array::from_fn(|i| m[i][j]);
                for (a, y) in at(&col).into_iter().enumerate() {
                    z[a][j] = y;
                }
            }
            z
        };
        for a in 0..TILE {
            let y = at(&z[a]);
            for bcol in 0..TILE {
                let e: f32 = (0..9).map(|t| w9[t] * patch[a + t / 3][bcol + t % 3]).sum();
                assert!(
                    (y[bcol][0] - e).abs() < 1e-4,
                    "({a}, {bcol}): {} vs {e}",
                    y[bcol][0]
                );
            }
        }
    }

    #[test]
    fn transforms_compute_the_correlation_f2() {
        // 1-D.
        let d = [0.5f32, -1.25, 2.0, 0.75];
        let w = [0.25f32, -1.5, 0.625];
        let v = bt2(d);
        let m: [[f32; 1]; 4] = core::array::from_fn(|i| {
            let u = (0..3).map(|k| GINT2[i][k] * f64::from(w[k])).sum::<f64>() / GDEN2[i];
            [(u * f64::from(v[i])) as f32]
        });
        let y = at2(&m);
        for i in 0..2 {
            let e: f32 = (0..3).map(|k| w[k] * d[i + k]).sum();
            assert!((y[i][0] - e).abs() < 1e-5, "{i}: {} vs {e}", y[i][0]);
        }
        // 2-D, through the packed layout and `output_transform2`: one tile, one channel.
        let w9 = [0.5f32, -0.25, 1.0, 0.75, -1.0, 0.125, 2.0, -0.5, 0.25];
        let patch: [[f32; 4]; 4] =
            core::array::from_fn(|r| core::array::from_fn(|s| (r * 7 + s * 3) as f32 / 8.0 - 2.0));
        let cols: [[f32; 4]; 4] = core::array::from_fn(|s| bt2(core::array::from_fn(|r| patch[r][s])));
        let v: [[f32; 4]; 4] = core::array::from_fn(|i| bt2(core::array::from_fn(|s| cols[s][i])));
        let m: Vec<f32> = (0..16)
            .map(|pos| (transform_weight(&w9, 2, pos / 4, pos % 4) * f64::from(v[pos / 4][pos % 4])) as f32)
            .collect();
        let y = output_transform2::<1>(&m, 1);
        for a in 0..2 {
            for b in 0..2 {
                let e: f32 = (0..9).map(|t| w9[t] * patch[a + t / 3][b + t % 3]).sum();
                assert!((y[a][b][0] - e).abs() < 1e-4, "({a}, {b}): {} vs {e}", y[a][b][0]);
            }
        }
    }

    #[test]
    fn packed_layout_by_hand() {
        // o = 18 (two panels of 16, the second with 2 real rows), c = 2.
        let g = geom(1, 2, (4, 4), 18, 1, 1);
        assert_eq!(winograd_panel(&g), 16);
        assert_eq!(winograd_packed_len(&g), 2 * 36 * 2 * 16);
        // w[o][ci] = identity kernel (centre tap) scaled by 100 * (o + 1) + ci.
        let w: Vec<f32> = (0..18)
            .flat_map(|o| {
                (0..2).flat_map(move |ci| {
                    (0..9).map(move |t| if t == 4 { (100 * (o + 1) + ci) as f32 } else { 0.0 })
                })
            })
            .collect();
        // The centre tap's transform at (i, j) is G[i][1] * G[j][1] times the value; `g1`:
        // `G`'s centre column.
        let check_layout = |t: usize, g1: &dyn Fn(usize) -> f64| {
            let (alpha, npos) = (t + 2, positions(t));
            assert_eq!(packed_len(&g, t), 2 * npos * 2 * 16);
            let mut packed = vec![f32::NAN; packed_len(&g, t)];
            pack_tile(&g, t, &w, &mut packed);
            for p in 0..2 {
                for pos in 0..npos {
                    for ci in 0..2 {
                        for r in 0..16 {
                            let o = p * 16 + r;
                            let want = if o < 18 {
                                ((100 * (o + 1) + ci) as f64 * g1(pos / alpha) * g1(pos % alpha)) as f32
                            } else {
                                0.0
                            };
                            let got = packed[((p * npos + pos) * 2 + ci) * 16 + r];
                            assert_eq!(got, want, "F({t}x{t}) panel {p} pos {pos} ci {ci} r {r}");
                        }
                    }
                }
            }
        };
        check_layout(4, &|i| GINT[i][1] / GDEN[i]);
        // F(2x2): 16 positions, the same order; `G`'s centre column is 0, 1/2, -1/2, 0.
        check_layout(2, &|i| [0.0, 0.5, -0.5, 0.0][i]);
        let mut packed = vec![f32::NAN; winograd_packed_len(&g)];
        pack_winograd(&g, &w, &mut packed);
        assert_eq!(packed.len(), packed_len(&g, 4));
        assert!(packed.iter().all(|x| !x.is_nan()));
        // The variant by channels per group.
        assert_eq!(winograd_tile(&geom(1, 128, (14, 14), 256, 1, 1)), 4);
        assert_eq!(winograd_tile(&geom(1, 256, (14, 14), 256, 1, 1)), 2);
        assert_eq!(winograd_tile(&geom(1, 512, (14, 14), 512, 1, 4)), 4);
        assert_eq!(
            winograd_packed_len(&geom(1, 256, (4, 4), 16, 1, 1)),
            16 * 256 * 16
        );
        // Narrow groups get narrow panels.
        assert_eq!(winograd_panel(&geom(1, 64, (4, 4), 128, 1, 32)), 4);
        assert_eq!(winograd_panel(&geom(1, 64, (4, 4), 256, 1, 32)), 8);
        assert_eq!(
            winograd_packed_len(&geom(1, 64, (4, 4), 128, 1, 32)),
            32 * 36 * 2 * 4
        );
    }

    #[test]
    fn hand_picked_geometries() {
        type Case = (usize, usize, (usize, usize), usize, usize, usize);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // n, c, (h, w), o, pad, groups
            (1, 1, (1, 1), 1, 1, 1),       // every tap but the centre is padding
            (1, 3, (2, 3), 5, 1, 1),
            (2, 8, (5, 7), 17, 1, 1),
            (1, 17, (7, 7), 16, 1, 1),     // layer4-like: 2x2 tiles, partial
            (1, 8, (14, 14), 8, 1, 1),
            (1, 3, (13, 29), 9, 1, 1),     // several input-transform chunks per tile row
            (2, 17, (13, 29), 33, 0, 1),
            (1, 8, (5, 7), 8, 2, 1),       // pad 2
            (1, 5, (3, 3), 7, 0, 1),       // a single output pixel
            (1, 8, (9, 9), 8, 1, 2),       // groups of 4
            (2, 16, (7, 5), 32, 1, 2),     // groups of 8 in, 16 out
            (1, 64, (6, 6), 64, 1, 32),    // resnext-like: groups of 2
            (1, 64, (5, 7), 128, 1, 32),   // og = 4
            (1, 64, (5, 7), 256, 1, 32),   // og = 8
            (1, 64, (5, 7), 64, 1, 1),
            (1, 2, (1, 34), 3, 1, 1),      // one tile row, more tiles than LANES
            (1, 2, (34, 1), 3, 1, 1),
        ];
        for (t, &(n, c, hw, o, pad, groups)) in cases.iter().enumerate() {
            for relu in [false, true] {
                let mut g = geom(n, c, hw, o, pad, groups);
                g.relu = relu;
                check(g, Mode::None, t as u64);
                g.residual = true;
                check(g, Mode::InPlace, t as u64 + 100);
                // Under Miri (about 1000x slower), one variant of each geometry: the epilogue's
                // forms are the same code for every geometry.
                if cfg!(miri) {
                    break;
                }
                check(g, Mode::Separate, t as u64 + 200);
            }
        }
    }

    /// Random geometries over the listed parameters, drawn independently so that their
    /// interactions (partial tiles x chunks x padding x groups x panels) get covered.
    #[test]
    fn random_geometries() {
        let mut rng = Rng(42);
        let count = if cfg!(miri) { 3 } else { 150 };
        let mut done = 0;
        while done < count {
            let pick = |rng: &mut Rng, xs: &[usize]| xs[rng.below(xs.len())];
            let groups = pick(&mut rng, &[1, 1, 1, 2, 32]);
            let cg = pick(&mut rng, &[1, 2, 3, 8, 17]);
            let og = pick(&mut rng, &[1, 3, 4, 8, 9, 16, 17, 33]);
            let pad = pick(&mut rng, &[0, 1, 1, 2]);
            let h = pick(&mut rng, &[1, 2, 3, 5, 7, 8, 13, 14]);
            let w = pick(&mut rng, &[1, 2, 3, 5, 7, 9, 14, 29, 35]);
            let n = pick(&mut rng, &[1, 1, 2]);
            if h + 2 * pad < 3 || w + 2 * pad < 3 || (groups > 2 && cg * og > 64) {
                continue;
            }
            let mut g = geom(n, cg * groups, (h, w), og * groups, pad, groups);
            g.relu = rng.below(2) == 0;
            let mode = [Mode::None, Mode::InPlace, Mode::Separate][rng.below(3)];
            g.residual = mode != Mode::None;
            check(g, mode, done);
            done += 1;
        }
    }

    /// Any split of the job range writes the same bits as one call, for every kernel and
    /// scratch budget; and the budget (blocking, channel chunks) does not change the bits.
    #[test]
    fn job_splits_agree() {
        let mut rng = Rng(5);
        let mut cases = vec![
            (geom(2, 6, (5, 11), 35, 1, 1), Mode::Separate),
            (geom(1, 40, (9, 7), 64, 1, 1), Mode::InPlace),
            (geom(2, 8, (9, 7), 16, 1, 4), Mode::None),
            (geom(1, 64, (6, 5), 64, 1, 32), Mode::Separate),
            (geom(1, 2, (3, 3), 20, 1, 1), Mode::InPlace),
        ];
        cases[0].0.residual = true;
        cases[1].0.residual = true;
        cases[3].0.residual = true;
        cases[4].0.residual = true;
        cases[2].0.relu = true;
        for (g, mode) in cases {
            if too_big_for_miri(&g) {
                continue;
            }
            let d0 = Data::random(g, &mut rng);
            for &tile in tiles(g.c as u64) {
                let d = Data { tile, ..d0.clone() };
                let packed = d.packed();
                let jobs = job_count(&g);
                assert_eq!(jobs_output_range(&g, 0..jobs), 0..g.output_len());
                for isa in isas() {
                    let whole = d.run(mode, isa, SCRATCH_FLOATS);
                    for budget in [SCRATCH_FLOATS, MIN_SCRATCH_FLOATS] {
                        for step in [1, 2, 3, 5, jobs] {
                            let mut out = d.fresh_out(mode);
                            let mut q = 0;
                            while q < jobs {
                                let end = (q + step).min(jobs);
                                d.run_jobs(&packed, mode, isa, budget, q..end, &mut out);
                                q = end;
                            }
                            let same = out.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(
                                same,
                                "{g:?} {isa:?} F({tile}x{tile}) budget {budget} split by {step}"
                            );
                        }
                    }
                    // Split by tiles (every job, a share of each image's tiles), shares run in
                    // reverse order.
                    let shares: &[usize] = if cfg!(miri) { &[3] } else { &[2, 3, 7] };
                    for &of in shares {
                        let mut out = d.fresh_out(mode);
                        let parts: Vec<usize> = (0..of).rev().collect();
                        d.run_tile_shares(&packed, mode, isa, &parts, of, &mut out);
                        let same = out.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{g:?} {isa:?} F({tile}x{tile}) in {of} tile shares");
                    }
                }
            }
        }
    }

    /// The blocks of the full scratch: weights too large for L2 get one block of all 49 tiles of
    /// a 28x28 plane (with the GEMM of one panel by 16 tiles), so that they stream once;
    /// weights that fit L2 get blocks within [`L2_SCRATCH_FLOATS`].
    #[test]
    fn blocks_by_weight_size() {
        if cfg!(miri) {
            return; // Miri's scratch is 64 KiB
        }
        let g = |c, hw| geom(1, c, (hw, hw), c, 1, 1);
        // 128 channels: 36 x 128 x 128 x 4 bytes = 2.4 MB of weights.
        let wide = Plan::new(&g(128, 28), 4, 16, 1, 16, SCRATCH_FLOATS);
        assert_eq!((wide.block, wide.kc), (49, 128), "{wide:?}");
        // 64 channels: 0.6 MB, in L2.
        let narrow = Plan::new(&g(64, 56), 4, 16, 1, 16, SCRATCH_FLOATS);
        assert!(
            POS * (narrow.block * (64 + 16) + V_PAD) <= L2_SCRATCH_FLOATS,
            "{narrow:?}"
        );
        assert!(narrow.block >= 14 && narrow.kc == 64, "{narrow:?}");
        // F(2x2) on 14x14 with 256 channels: 16 x 256 x 256 x 4 bytes = 4.2 MB of weights, one
        // block of all 49 tiles.
        let f2 = Plan::new(&g(256, 14), 2, 16, 1, 16, SCRATCH_FLOATS);
        assert_eq!((f2.pos, f2.block, f2.kc), (16, 49, 256), "{f2:?}");
    }

    /// Large channel counts with a small scratch: blocks of `NR` tiles and channel chunks.
    #[test]
    fn channel_chunks() {
        for (c, o, hw) in [(300, 20, (6, 9)), (1000, 16, (5, 5))] {
            let mut g = geom(1, c, hw, o, 1, 1);
            g.relu = true;
            if too_big_for_miri(&g) {
                continue;
            }
            for t in [2, 4] {
                let plan = Plan::new(&g, t, 4, 1, 16, MIN_SCRATCH_FLOATS);
                assert!(plan.kc < c, "{plan:?}");
            }
            check(g, Mode::None, c as u64);
        }
    }

    /// The public entry points (with the detected kernel and, under `std`, threads) agree with
    /// the job runner, with the geometry as a value and as a constant.
    #[test]
    fn entry_points_agree() {
        macro_rules! check_const {
            ($($name:ident = $geom:expr, $mode:expr;)*) => {$('case: {
                struct $name;
                impl ConvShape for $name {
                    const GEOM: ConvGeom = $geom;
                }
                let g = $name::GEOM;
                if too_big_for_miri(&g) {
                    break 'case;
                }
                let d = Data::random(g, &mut Rng(9));
                let packed = d.packed();
                let res = match $mode {
                    Mode::None => Residual::None,
                    Mode::InPlace => Residual::InPlace,
                    Mode::Separate => Residual::Separate(&d.residual),
                };
                let want = d.run($mode, Isa::chosen(), SCRATCH_FLOATS);
                let mut out = d.fresh_out($mode);
                winograd_conv2d::<$name>(&packed, &d.bias, &d.input, res, &mut out);
                assert!(out.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{g:?}");
                let mut out = d.fresh_out($mode);
                winograd_conv2d_dyn(&g, &packed, &d.bias, &d.input, res, &mut out);
                assert!(out.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{g:?}");
            })*};
        }
        const fn with(mut g: ConvGeom, residual: bool, relu: bool) -> ConvGeom {
            g.residual = residual;
            g.relu = relu;
            g
        }
        const fn geom_c(
            n: usize,
            c: usize,
            h: usize,
            w: usize,
            o: usize,
            pad: usize,
            groups: usize,
        ) -> ConvGeom {
            ConvGeom {
                n,
                c,
                h,
                w,
                o,
                oh: h + 2 * pad - 2,
                ow: w + 2 * pad - 2,
                k: 3,
                stride: 1,
                pad,
                dilation: 1,
                groups,
                shortcut: None,
                residual: false,
                relu: false,
            }
        }
        check_const! {
            Basic = with(geom_c(1, 16, 14, 14, 16, 1, 1), true, true), Mode::InPlace;
            Wide = with(geom_c(2, 24, 9, 13, 40, 1, 1), false, true), Mode::None;
            Next = with(geom_c(1, 64, 6, 5, 64, 1, 32), true, false), Mode::Separate;
            Tiny = with(geom_c(1, 2, 3, 4, 3, 1, 1), true, true), Mode::InPlace;
            Many = with(geom_c(1, 144, 6, 7, 20, 1, 1), true, true), Mode::Separate; // F(2x2)
        }
        #[cfg(feature = "std")]
        {
            // Enough work for several threads (MIN_MACS_PER_THREAD each): split by jobs
            // (transformed weights 23x the input's bytes), then by tiles.
            let mut by_jobs = geom(1, 128, (14, 14), 128, 1, 1);
            let mut by_tiles = geom(1, 16, (64, 64), 16, 1, 1);
            for (g, tiles) in [(&mut by_jobs, false), (&mut by_tiles, true)] {
                g.residual = true;
                g.relu = true;
                let (packed, input) = (vec![0.0; winograd_packed_len(g)], vec![0.0; g.input_len()]);
                let ops = Operands {
                    packed: &packed,
                    bias: &[],
                    input: &input,
                    residual: Residual::None,
                };
                assert_eq!(split_by_tiles(g, &ops, 2), tiles, "{g:?}");
            }
            for g in [by_jobs, by_tiles] {
                if !too_big_for_miri(&g) {
                    let d = Data::random(g, &mut Rng(3));
                    let packed = d.packed();
                    let want = d.run(Mode::Separate, Isa::chosen(), SCRATCH_FLOATS);
                    for threads in [1, 2, 3, 7] {
                        crate::threads::set_threads(threads);
                        let mut out = vec![f32::NAN; g.output_len()];
                        let res = Residual::Separate(&d.residual);
                        winograd_conv2d_dyn(&g, &packed, &d.bias, &d.input, res, &mut out);
                        crate::threads::set_threads(1);
                        assert!(
                            out.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{g:?}: {threads} threads"
                        );
                    }
                }
            }
        }
    }

    /// Per-layer error on ResNet-like data, `max|ours - exact| / max|exact|` (the measure the
    /// whole-model bar uses), for every kernel: printed for 64..512 channels, asserted below
    /// 2e-5 (the direct kernel measures about 1e-6 here; the bar for whole models is 1e-4).
    #[test]
    fn per_layer_error_resnet_like() {
        if cfg!(miri) {
            return;
        }
        let small = cfg!(debug_assertions);
        for (c, hw) in [(64, 56), (128, 28), (256, 14), (512, 7)] {
            // Unoptimized test builds: fewer output channels.
            let o = if small { 16 } else { c };
            let mut g = geom(1, c, (hw, hw), o, 1, 1);
            g.relu = true;
            let d0 = Data::resnet_like(g, &mut Rng(c as u64));
            for tile in [4, 2] {
                let d = Data { tile, ..d0.clone() };
                let refs = d.reference();
                let scale = refs.iter().map(|&(r, _)| r.max(0.0)).fold(0.0, f64::max);
                for isa in isas() {
                    let got = d.run(Mode::None, isa, SCRATCH_FLOATS);
                    let err = got
                        .iter()
                        .zip(&refs)
                        .map(|(&v, &(r, _))| (f64::from(v) - r.max(0.0)).abs())
                        .fold(0.0, f64::max);
                    let rel = err / scale;
                    std::println!(
                        "{c:4} ch {hw:2}x{hw:<2} {o:4} out  F({tile}x{tile}) {isa:?}: max|err| / max|ref| = {rel:.2e}"
                    );
                    assert!(rel < 2e-5, "{c} channels, F({tile}x{tile}) {isa:?}: {rel:e}");
                }
            }
        }
    }

    /// The calling thread's CPU time in seconds (Linux), from `/proc/thread-self/schedstat`.
    fn thread_cpu_seconds() -> Option<f64> {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
        Some(ns as f64 * 1e-9)
    }

    /// The direct kernel on `d` (ReLU, no residual), its weights packed as `packed`.
    fn run_direct(g: &ConvGeom, packed: &[f32], d: &Data, out: &mut [f32]) {
        crate::conv::conv2d_dyn(g, packed, &d.bias, &d.input, None, Residual::None, out)
    }

    /// A speed report, not an assertion: with `RESNET_RUNTIME_BENCH=1`, times this kernel
    /// against the direct one ([`crate::conv::conv2d_dyn`]) on the ResNet 3x3 stride-1 shapes,
    /// one thread (its CPU time, on Linux), and prints effective GFLOP/s (`2 * direct MACs / s`). Run it as
    /// `RESNET_RUNTIME_BENCH=1 cargo test --release -p resnet-runtime winograd_bench -- --nocapture`.
    /// Without the variable it only checks, on the smallest shape, that both agree. With
    /// `RESNET_RUNTIME_WINOGRAD_BUDGETS` as well, it compares scratch budgets instead (below).
    #[test]
    fn winograd_bench() {
        use std::time::{Duration, Instant};
        if cfg!(miri) {
            return;
        }
        let report = std::env::var_os("RESNET_RUNTIME_BENCH").is_some_and(|v| v == "1");
        let time = |f: &mut dyn FnMut()| {
            let min = if report {
                Duration::from_millis(300)
            } else {
                Duration::ZERO
            };
            let mut best = f64::INFINITY;
            for _ in 0..if report { 7 } else { 1 } {
                let (mut reps, start, cpu) = (0u32, Instant::now(), thread_cpu_seconds());
                while start.elapsed() < min || reps == 0 {
                    f();
                    reps += 1;
                }
                // This thread's CPU time where Linux reports it (other processes on a busy
                // host then only disturb the caches), else the wall clock.
                let spent = match (cpu, thread_cpu_seconds()) {
                    (Some(a), Some(b)) => b - a,
                    _ => start.elapsed().as_secs_f64(),
                };
                best = best.min(spent / f64::from(reps));
            }
            best
        };
        // `RESNET_RUNTIME_WINOGRAD_BUDGETS=96,256`: instead, times the direct kernel and the
        // AVX-512 Winograd kernel with each scratch budget (thousands of floats, at most
        // `SCRATCH_FLOATS`), with 640 MB written before each call (more than this machine's
        // L3) as in a forward pass, where a layer's weights are in no cache; best of 25 calls
        // each, interleaved. (Weights within `L2_WEIGHTS`, as at 64 channels, keep
        // `L2_SCRATCH_FLOATS` whatever the budget.)
        let budgets_var = std::env::var("RESNET_RUNTIME_WINOGRAD_BUDGETS").ok();
        if let Some(b) = budgets_var.filter(|_| report && crate::isa::Isa::Avx512.is_available()) {
            let budgets: Vec<usize> = b
                .split(',')
                .filter_map(|x| x.trim().parse::<usize>().ok())
                .map(|x| x * 1024)
                .collect();
            let mut junk = vec![0.0f32; 160 << 20]; // 640 MB
            for &(c, hw) in &[(64, 56), (128, 28), (256, 28), (256, 14), (512, 14), (512, 7)] {
                let mut g = geom(1, c, (hw, hw), c, 1, 1);
                g.relu = true;
                let d0 = Data::resnet_like(g, &mut Rng(1));
                let mut runs: Vec<(Data, Vec<f32>, usize)> = Vec::new();
                for tile in [4, 2] {
                    let d = Data { tile, ..d0.clone() };
                    let packed = d.packed();
                    for &b in &budgets {
                        runs.push((d.clone(), packed.clone(), b));
                    }
                }
                let d = &d0;
                let mut out = vec![0.0; g.output_len()];
                let mut best = vec![f64::INFINITY; runs.len()];
                for _ in 0..25 {
                    for (i, (d, packed, b)) in runs.iter().enumerate() {
                        for (k, j) in junk.iter_mut().enumerate().step_by(16) {
                            *j += k as f32;
                        }
                        let t = Instant::now();
                        d.run_jobs(packed, Mode::None, Isa::Avx512, *b, 0..job_count(&g), &mut out);
                        best[i] = best[i].min(t.elapsed().as_secs_f64());
                    }
                }
                let mut direct_packed = vec![0.0; crate::pack::packed_conv_len(&g)];
                crate::pack::pack_conv(&g, &d.w, None, &mut direct_packed);
                let mut direct = vec![0.0; g.output_len()];
                let mut td = f64::INFINITY;
                for _ in 0..25 {
                    for (k, j) in junk.iter_mut().enumerate().step_by(16) {
                        *j += k as f32;
                    }
                    let t = Instant::now();
                    run_direct(&g, &direct_packed, d, &mut direct);
                    td = td.min(t.elapsed().as_secs_f64());
                }
                let mut line = std::format!("{c}@{hw}: direct {:.3} ms", td * 1e3);
                for ((d, _, b), t) in runs.iter().zip(&best) {
                    line += &std::format!("  F({0}x{0}) [{1}K] {2:.3} ms", d.tile, b / 1024, t * 1e3);
                }
                std::println!("{line}");
            }
            std::hint::black_box(&junk);
            return;
        }
        let shapes = [(64, 56), (128, 28), (256, 14), (512, 7)];
        for &(c, hw) in if report { &shapes[..] } else { &shapes[3..] } {
            let mut g = geom(1, c, (hw, hw), c, 1, 1);
            g.relu = true;
            let d = Data::resnet_like(g, &mut Rng(1));
            let mut direct_packed = vec![0.0; crate::pack::packed_conv_len(&g)];
            crate::pack::pack_conv(&g, &d.w, None, &mut direct_packed);
            let mut direct = vec![0.0; g.output_len()];
            let t_direct = time(&mut || run_direct(&g, &direct_packed, &d, &mut direct));
            let flop = 2.0 * g.macs() as f64;
            let mut line = std::format!(
                "{c:3}->{c:3} 3x3 {hw:2}x{hw:<2} {:6.1} MMAC  direct {:6.2} GFLOP/s ({:7.3} ms)",
                g.macs() as f64 / 1e6,
                flop / t_direct / 1e9,
                t_direct * 1e3
            );
            let scale = direct.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (tile, isa) in [4, 2].into_iter().flat_map(|t| isas().map(move |i| (t, i))) {
                let d = Data { tile, ..d.clone() };
                let packed = d.packed();
                let mut out = vec![0.0; g.output_len()];
                let t = time(&mut || {
                    d.run_jobs(
                        &packed,
                        Mode::None,
                        isa,
                        SCRATCH_FLOATS,
                        0..job_count(&g),
                        &mut out,
                    )
                });
                let diff = out
                    .iter()
                    .zip(&direct)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    diff <= 1e-4 * scale,
                    "F({tile}x{tile}) {isa:?}: {diff} vs {scale}"
                );
                line += &std::format!(
                    "  F{tile} {isa:?} {:6.1} GFLOP/s (x{:4.2})",
                    flop / t / 1e9,
                    t_direct / t
                );
            }
            if report {
                std::println!("{line}");
            }
        }
    }
}
