//! The AVX-512 kernel for convs with few input channels (a ResNet's stem: 3 -> 64 channels,
//! 7x7, stride 2 on 224x224): vectors along output channels, no packing.
//!
//! The tile kernel ([`super::simd`]) packs each tile's `K = c * k * k` input columns before
//! broadcasting weights over them; with 3 input channels and stride 2, that packing (two
//! loads and a permute per vector, K = 147 rows per 48 pixels) and each tile's set-up cost
//! about a fifth of the conv. Here a block is up to [`PIXELS`] consecutive output pixels of
//! one row. Its taps are read where they are in the image, or, for a block whose window
//! reaches into the padding, from a copy of that window with zeros outside the image. For
//! each two vectors of 16 output channels, 28 accumulators (two per pixel) take
//! `W[k][channels] * x[k][pixel]` for each `k`: two weight loads and 14 broadcasts per 28
//! multiply-adds. Each 16 x 14 result is transposed and stored a channel row at a time.
//!
//! The sums are the tile kernel's to the bit: the same `k` order (channel, then tap), the
//! same fused multiply-adds (padding taps add `w * 0`), then `+ bias` and `max(0, y)`; only
//! the vector lanes they run in differ. resnet18's conv1 in the model, runs alternating with
//! the tile kernel: 1.59-1.68 -> 1.32-1.46 ms on one thread, 0.84-0.93 -> 0.73-0.77 ms on two
//! (hot, `RESNET_RUNTIME_BENCH`: 144-150 -> 164-183 GFLOP/s). A last pair with one vector
//! (16 or 48 output channels: CIFAR stems) runs with 14 accumulators.

use core::arch::x86_64::*;
use core::ops::Range;

use super::OutPtr;
use super::simd::Run;
use crate::geom::ConvGeom;
use crate::pack::MR;

/// Output channels per vector.
const LANES: usize = 16;
/// Output pixels per block: 2 vectors of channels x 14 pixels are 28 accumulators, with the
/// two weight vectors and a broadcast 31 of the 32 registers; per `k`, 2 loads and 14
/// broadcasts for 28 multiply-adds (112 = 8 x 14: a stem's output rows are whole blocks).
const PIXELS: usize = 14;
/// The most output channels of one call ([`applies`]).
const MAX_O: usize = 64;
/// The longest `K` ([`applies`]).
const MAX_K: usize = 256;
/// Floats of the input window (`c * k` rows of [`window_cols`] columns).
const WINDOW: usize = 4096;

/// Columns of a block's input window, rounded up to whole vectors.
const fn window_cols(g: &ConvGeom) -> usize {
    ((PIXELS - 1) * g.stride + (g.k - 1) * g.dilation + 1).next_multiple_of(LANES)
}

/// Whether this kernel runs the conv `g`: one group of at most 4 input channels, no shortcut
/// and no residual, at most [`MAX_O`] output channels and `K <= MAX_K`, a window that fits.
pub(super) fn applies(g: &ConvGeom) -> bool {
    g.groups == 1
        && g.c <= 4
        && g.shortcut.is_none()
        && !g.residual
        && g.o <= MAX_O
        && g.k_total() <= MAX_K
        && g.stride <= 4
        && g.c * g.k * window_cols(g) <= WINDOW
}

/// Output pixels `pixels` (flattened, of image `input`'s planes) of the output channels of
/// the run `r`, whose weights are its panels as [`crate::pack::pack_conv`] laid them out (`MR` rows
/// each, `k_total` values of `k`), into `out`, their planes (`rows * oh * ow`).
///
/// # Panics
/// If `g` does not [`apply`](applies) or a slice is shorter than that says.
#[target_feature(enable = "avx512f")]
pub(super) fn run(g: &ConvGeom, r: &Run<'_>, input: &[f32], out: OutPtr<'_>, pixels: Range<usize>) {
    let (weights, bias, rows) = (r.weights, r.bias, r.rows);
    let (k_total, ohw) = (g.k_total(), g.oh * g.ow);
    assert!(applies(g) && rows <= g.o && bias.len() == rows);
    assert!(input.len() == g.c * g.h * g.w && weights.len() >= rows.div_ceil(MR) * k_total * MR);
    assert!(out.len() == rows * ohw && pixels.start <= pixels.end && pixels.end <= ohw);
    let vectors = rows.div_ceil(LANES);
    // The weights as `[k][vector][16 channels]` per pair of vectors (`pair * 2 + v` below),
    // zero past the last channel: one pair's two vectors for one `k` are 128 contiguous bytes.
    let mut wk = [0.0f32; MAX_O * MAX_K];
    for co in 0..rows {
        let (panel, row) = (co / MR, co % MR);
        let (pair, v) = (co / (2 * LANES), co / LANES % 2);
        for k in 0..k_total {
            let at = ((pair * k_total + k) * 2 + v) * LANES + co % LANES;
            wk[at] = weights[(panel * k_total + k) * MR + row];
        }
    }
    let mut b16 = [0.0f32; MAX_O];
    b16[..rows].copy_from_slice(bias);
    let mut window = Window([0.0; WINDOW]);
    let mut p = pixels.start;
    while p < pixels.end {
        let (y, x0) = (p / g.ow, p % g.ow);
        let nv = (g.ow - x0).min(pixels.end - p).min(PIXELS);
        // The block's taps: in the image (read in place), or the window with its zeros.
        let (r0, col0) = (
            (y * g.stride) as isize - g.pad as isize,
            (x0 * g.stride) as isize - g.pad as isize,
        );
        let span = |n: usize| ((n - 1) * g.stride + (g.k - 1) * g.dilation) as isize;
        let inside =
            r0 >= 0 && col0 >= 0 && r0 + span(1) < g.h as isize && col0 + span(PIXELS) < g.w as isize;
        let taps = if inside {
            let at = r0 as usize * g.w + col0 as usize;
            Taps {
                base: input[at..].as_ptr(),
                channel: g.h * g.w,
                row: g.dilation * g.w,
            }
        } else {
            fill_window(g, input, y, x0, &mut window.0);
            let cols = window_cols(g);
            Taps {
                base: window.0.as_ptr(),
                channel: g.k * cols,
                row: cols,
            }
        };
        // The output lines of the block after next, which no cache holds (a stem's output is
        // megabytes): asked for now so that its stores do not wait for them. resnet18's conv1
        // in the model, two alternating runs: without prefetching 1.53-1.63 ms (1 thread),
        // 1.13-1.17 (2 threads); the next block's 1.31-1.36, 0.92-0.94; the block after
        // next's 1.32-1.46, 0.75-0.77 (three blocks ahead: no better).
        let next = p + nv + PIXELS;
        if next < pixels.end {
            for co in 0..rows {
                _mm_prefetch::<_MM_HINT_T0>(out.as_ptr().wrapping_add(co * ohw + next).cast());
            }
        }
        for pair in 0..vectors.div_ceil(2) {
            let w = &wk[pair * k_total * 2 * LANES..][..k_total * 2 * LANES];
            // A last pair with one vector (16 or 48 channels) computes only that one.
            let one = pair * 2 + 1 == vectors;
            // SAFETY (each): `taps` reads the image inside its bounds (`inside`) or the window.
            let acc = match (g.stride, one) {
                (1, false) => unsafe { block::<1, 2>(g, &taps, w) },
                (2, false) => unsafe { block::<2, 2>(g, &taps, w) },
                (_, false) => unsafe { block::<0, 2>(g, &taps, w) },
                (1, true) => unsafe { block::<1, 1>(g, &taps, w) },
                (2, true) => unsafe { block::<2, 1>(g, &taps, w) },
                (_, true) => unsafe { block::<0, 1>(g, &taps, w) },
            };
            for (v, mut acc) in acc.into_iter().enumerate() {
                let v = pair * 2 + v;
                if v >= vectors {
                    break;
                }
                // SAFETY: `b16` holds `MAX_O >= vectors * 16` floats.
                let bias = unsafe { _mm512_loadu_ps(b16[v * LANES..].as_ptr()) };
                let zero = _mm512_setzero_ps();
                for a in &mut acc {
                    let y = _mm512_add_ps(*a, bias);
                    *a = if g.relu { _mm512_max_ps(zero, y) } else { y };
                }
                let t = crate::isa::transpose16(acc);
                let m = (u32::MAX >> (32 - nv)) as u16;
                for (c, &t) in t.iter().enumerate().take(rows - v * LANES) {
                    let at = (v * LANES + c) * ohw + p;
                    // SAFETY: channel `v * 16 + c < rows` and pixels `p .. p + nv <= ohw`:
                    // inside `out` (`rows * ohw`, asserted in `run`); the masked-off lanes are
                    // not accessed. These pixels are this call's (`OutPtr`'s contract).
                    unsafe { _mm512_mask_storeu_ps(out.as_ptr().add(at), m, t) };
                }
            }
        }
        p += nv;
    }
}

/// The window buffer, aligned to a cache line.
#[repr(C, align(64))]
struct Window([f32; WINDOW]);

/// Copies the input window of the block of output row `y` from column `x0`: row `ci * k + i`
/// of `window` holds input row `y * stride - pad + i * dilation` of channel `ci`, columns
/// from `x0 * stride - pad` on, zero outside the image.
#[target_feature(enable = "avx512f")]
fn fill_window(g: &ConvGeom, input: &[f32], y: usize, x0: usize, window: &mut [f32; WINDOW]) {
    let cols = window_cols(g);
    let col0 = (x0 * g.stride) as isize - g.pad as isize;
    for ci in 0..g.c {
        for i in 0..g.k {
            let dst = &mut window[(ci * g.k + i) * cols..][..cols];
            let r = (y * g.stride + i * g.dilation) as isize - g.pad as isize;
            if r < 0 || r >= g.h as isize {
                dst.fill(0.0);
                continue;
            }
            let row = &input[ci * g.h * g.w + r as usize * g.w..][..g.w];
            for (q, dst) in dst.chunks_exact_mut(LANES).enumerate() {
                let first = col0 + (q * LANES) as isize;
                // Lanes `l` with `0 <= first + l < w`.
                let lo = (-first).clamp(0, LANES as isize) as u32;
                let hi = (g.w as isize - first).clamp(0, LANES as isize) as u32;
                let m = if lo < hi {
                    ((u32::MAX >> (32 - hi)) & !((1u32 << lo) - 1)) as u16
                } else {
                    0
                };
                // SAFETY: the lanes of `m` read `row[first + l]` with `0 <= first + l < w`; the
                // pointer arithmetic wraps, and masked-off lanes are not accessed.
                let x = unsafe { _mm512_maskz_loadu_ps(m, row.as_ptr().wrapping_offset(first)) };
                // SAFETY: `dst` holds 16 floats.
                unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), x) };
            }
        }
    }
}

/// Where a block reads tap `(ci, i, j)` of pixel `l`: `base[ci * channel + i * row + j *
/// dilation + l * stride]`.
struct Taps {
    base: *const f32,
    channel: usize,
    row: usize,
}

/// `V` (1 or 2) vectors of 16 output channels for the block's pixels: element `l < PIXELS` of
/// vector `v` holds pixel `l`'s channels `16 v ..` (the other two elements, and the vectors
/// past `V`, zero), before the bias. `w` holds `[k][2][16]`.
///
/// # Safety
/// Every tap `taps` addresses for `ci < c`, `i, j < k` and `l < PIXELS` is readable.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn block<const S: usize, const V: usize>(g: &ConvGeom, taps: &Taps, w: &[f32]) -> [[__m512; 16]; 2] {
    // The stride as a constant where it is one, so that the broadcasts address the window
    // with constant offsets from one pointer.
    let stride = if S == 0 { g.stride } else { S };
    debug_assert_eq!(stride, g.stride);
    let mut acc = [[_mm512_setzero_ps(); PIXELS]; V];
    let mut k = 0;
    for ci in 0..g.c {
        for i in 0..g.k {
            let row = taps.base.wrapping_add(ci * taps.channel + i * taps.row);
            for j in 0..g.k {
                // SAFETY: `w` holds `k_total * 32` floats, `k < k_total` and `v < V <= 2`.
                let wv: [__m512; V] =
                    core::array::from_fn(|v| unsafe { _mm512_loadu_ps(w.as_ptr().add((k * 2 + v) * LANES)) });
                let at = row.wrapping_add(j * g.dilation);
                for l in 0..PIXELS {
                    // SAFETY: a tap of the block: readable (the caller's contract).
                    let x = _mm512_set1_ps(unsafe { *at.wrapping_add(l * stride) });
                    for (acc, &wv) in acc.iter_mut().zip(&wv) {
                        acc[l] = _mm512_fmadd_ps(wv, x, acc[l]);
                    }
                }
                k += 1;
            }
        }
    }
    let zero = _mm512_setzero_ps();
    let mut full = [[zero; 16]; 2];
    for (full, acc) in full.iter_mut().zip(&acc) {
        full[..PIXELS].copy_from_slice(acc);
    }
    full
}
