//! Pooling.

use crate::geom::PoolGeom;

/// `nn.MaxPool2d`: `out[b, c, y, x] = max` over the window's in-range cells.
///
/// The window of output `(y, x)` is rows `y * stride - pad + i`, columns
/// `x * stride - pad + j` for `i, j` in `0..k`; cells outside the input are skipped (padded
/// cells never win), and for valid geometries every window holds at least one real cell.
/// Cells are visited row by row; a NaN wins over every number and the first NaN seen is
/// kept, as in PyTorch's CPU kernel (`val > max || isnan(val)`).
///
/// `input`: `[n, c, h, w]`; `out`: `[n, c, oh, ow]`, fully overwritten.
pub fn max_pool2d(g: &PoolGeom, input: &[f32], out: &mut [f32]) {
    let (h, w, oh, ow) = (g.h, g.w, g.oh, g.ow);
    debug_assert_eq!(input.len(), g.n * g.c * h * w);
    debug_assert_eq!(out.len(), g.n * g.c * oh * ow);
    debug_assert!(g.pad < g.k || g.k == 0, "a window must reach the input");
    if h == 0 || w == 0 {
        return;
    }
    #[cfg(feature = "std")]
    {
        // Planes split across threads, as conv jobs are: each plane by the same code.
        let planes = g.n * g.c;
        let threads = crate::threads::threads()
            .min(planes)
            .min(planes * h * w / crate::threads::MIN_ELEMENTS_PER_THREAD)
            .max(1);
        if threads > 1 {
            let output = |p: core::ops::Range<usize>| p.start * oh * ow..p.end * oh * ow;
            return crate::threads::run_job_ranges(planes, threads, out, &output, &|p, mine| {
                max_pool_planes(g, &input[p.start * h * w..p.end * h * w], mine)
            });
        }
    }
    max_pool_planes(g, input, out);
}

/// [`max_pool2d`] of whole planes, on this thread.
fn max_pool_planes(g: &PoolGeom, input: &[f32], out: &mut [f32]) {
    let (h, w, oh, ow) = (g.h, g.w, g.oh, g.ow);
    #[cfg(target_arch = "x86_64")]
    if crate::isa::isa() == crate::isa::Isa::Avx512
        && g.stride <= 2
        && g.k <= MAX_K
        && ow <= 16 * PLANE_VECTORS
    {
        for (plane, oplane) in input.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
            // SAFETY (each): the process's instruction set is one this CPU runs; the
            // geometry is one the kernel takes (just checked).
            unsafe {
                if g.k == 3 && g.stride == 2 && g.pad < 3 {
                    max_plane_3x3s2(g, plane, oplane)
                } else {
                    max_plane_avx512(g, plane, oplane)
                }
            };
        }
        return;
    }
    for (plane, oplane) in input.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        for (y, orow) in oplane.chunks_exact_mut(ow).enumerate() {
            // The in-range rows of the window: [y*s - p, y*s - p + k) clamped to [0, h).
            let top = y * g.stride;
            let r0 = top.saturating_sub(g.pad);
            let r1 = (top + g.k).saturating_sub(g.pad).min(h);
            let rows = plane[r0 * w..r1 * w].chunks_exact(w);
            if g.stride <= MAX_STRIDE && g.k <= MAX_K {
                max_row_fast(g, rows, orow);
            } else {
                max_row(g, rows, orow);
            }
        }
    }
}

/// `a` or `b`, whichever `max` keeps when `b` comes after `a`: `b` if it is larger or NaN.
#[inline(always)]
fn later_max(a: f32, b: f32) -> f32 {
    if (b > a) | b.is_nan() { b } else { a }
}

/// Output columns per pass of [`max_row_fast`].
const CHUNK: usize = 128;
/// The largest stride [`max_row_fast`] takes.
const MAX_STRIDE: usize = 4;
/// The largest window [`max_row_fast`] takes.
const MAX_K: usize = 16;

/// One output row from its window's input rows, by the definition: each output cell folds
/// its cells with [`later_max`] row by row, column by column.
fn max_row<'a>(g: &PoolGeom, rows: impl Iterator<Item = &'a [f32]>, orow: &mut [f32]) {
    orow.fill(f32::NEG_INFINITY);
    for row in rows {
        for (x, o) in orow.iter_mut().enumerate() {
            let left = x * g.stride;
            let c0 = left.saturating_sub(g.pad);
            let c1 = (left + g.k).saturating_sub(g.pad).min(g.w);
            for &v in &row[c0..c1.max(c0)] {
                *o = later_max(*o, v);
            }
        }
    }
}

/// [`max_row`] with contiguous, vectorizable loops: for a chunk of output columns, `acc[i]`
/// folds the window that starts at input column `start + i`, for every `i` (not only every
/// `stride`-th): each row's `k` taps in order into `hk`, then `hk` into `acc`; the outputs
/// then pick every `stride`-th. The cells of each window are folded in the same order as in
/// [`max_row`] (a row's first maximum, then the rows in order; the last NaN), so the bits
/// are the same.
fn max_row_fast<'a>(g: &PoolGeom, rows: impl Iterator<Item = &'a [f32]> + Clone, orow: &mut [f32]) {
    let (s, k, w) = (g.stride, g.k as isize, g.w as isize);
    #[cfg(target_arch = "x86_64")]
    let avx512 = crate::isa::isa() == crate::isa::Isa::Avx512;
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = false;
    let mut acc = [0.0f32; CHUNK * MAX_STRIDE];
    let mut hk = [0.0f32; CHUNK * MAX_STRIDE];
    for (c, ochunk) in orow.chunks_mut(CHUNK).enumerate() {
        // Window starts `start + i` for `i < span`: output `c * CHUNK + x` at `i = x * s`.
        let start = (c * CHUNK * s) as isize - g.pad as isize;
        let span = (ochunk.len() - 1) * s + 1;
        let acc = &mut acc[..span];
        acc.fill(f32::NEG_INFINITY);
        for row in rows.clone() {
            let hk = &mut hk[..span];
            hk.fill(f32::NEG_INFINITY);
            for j in 0..k {
                // `i` with `0 <= start + i + j < w`.
                let i0 = (-(start + j)).clamp(0, span as isize) as usize;
                let i1 = (w - start - j).clamp(0, span as isize) as usize;
                if i0 >= i1 {
                    continue;
                }
                let cells = &row[(start + i0 as isize + j) as usize..][..i1 - i0];
                fold(&mut hk[i0..i1], cells, avx512);
            }
            fold(acc, hk, avx512);
        }
        for (o, &a) in ochunk.iter_mut().zip(acc.iter().step_by(s)) {
            *o = a;
        }
    }
}

/// The most vectors of 16 output columns a row of [`max_plane_avx512`] has.
#[cfg(target_arch = "x86_64")]
const PLANE_VECTORS: usize = 16;

/// One plane of [`max_pool2d`] for strides 1 and 2 with AVX-512F, 16 output columns per
/// vector, each row as [`max_row_fast`] computes it: only the windows of the output columns
/// are folded (a stride-2 tap loads 32 input columns and keeps the even ones). Cells outside
/// the row load as `-inf`, which [`later_max`] never takes over a cell already folded (and
/// `-inf` over `-inf` is the same bits), so they are skipped as in [`max_row`]. Each output
/// folds its window's taps row by row into `hk`, then `hk` into `acc`, as [`max_row_fast`]
/// does: the same bits. Up to four vectors at a time, so that their chains of folds overlap.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_plane_avx512(g: &PoolGeom, plane: &[f32], oplane: &mut [f32]) {
    use core::arch::x86_64::*;
    const V: usize = 4;
    // Output rows ahead whose new input rows are asked for into L1: the stem's output (3.2 MB
    // for ResNet's 64 x 112 x 112) is past L2 when the pool reads it. resnet18's maxpool, one
    // thread, six `--layers` runs alternating with builds without: 0.34-0.39 -> 0.27-0.28 ms
    // (8 rows ahead: 0.27-0.29).
    const AHEAD: usize = 4;
    let (s, k, pad) = (g.stride, g.k, g.pad as isize);
    let (w, ow) = (g.w as isize, g.ow);
    assert!((s == 1 || s == 2) && k <= MAX_K && ow <= 16 * PLANE_VECTORS);
    assert!(plane.len() == g.h * g.w && oplane.len() == g.oh * ow);
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let in_row = |c: isize| lanes_in_row(c, w);
    // Columns `c ..` of `row` in the lanes of `m`, `-inf` in the others.
    let load = |row: &[f32], c: isize, m: __mmask16| -> __m512 {
        debug_assert_eq!(row.len() as isize, w);
        // SAFETY: the lanes of `m` are columns inside `0..w` (`in_row`); the others are
        // not accessed.
        unsafe { _mm512_mask_loadu_ps(ninf, m, row.as_ptr().wrapping_offset(c)) }
    };
    // Per vector and tap `j`: the column of lane 0 (or of element 0 of the first of two
    // loads) and the lanes (elements) inside the row: the same for every row.
    let nvec = ow.div_ceil(16);
    let mut col = [[0isize; MAX_K]; PLANE_VECTORS];
    let mut masks = [[[0 as __mmask16; 2]; MAX_K]; PLANE_VECTORS];
    for v in 0..nvec {
        for j in 0..k {
            let c = (16 * v * s) as isize - pad + j as isize;
            col[v][j] = c;
            masks[v][j] = [in_row(c), if s == 2 { in_row(c + 16) } else { 0 }];
        }
    }
    for (y, orow) in oplane.chunks_exact_mut(ow).enumerate() {
        // The in-range rows of the window: [y*s - p, y*s - p + k) clamped to [0, h).
        let top = y * s;
        let r0 = top.saturating_sub(g.pad);
        let r1 = (top + k).saturating_sub(g.pad).min(g.h);
        let rows = &plane[r0 * g.w..r1 * g.w];
        // The rows the window of output row `y + AHEAD` adds to its predecessor's, into L1.
        let ahead = ((y + AHEAD) * s + k).saturating_sub(g.pad).min(g.h);
        let from = ahead.saturating_sub(s).max(r1);
        for at in (from * g.w..ahead * g.w).step_by(16) {
            // SAFETY: a prefetch does not fault or change memory; `at < h * w`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(plane.as_ptr().add(at).cast()) };
        }
        for v0 in (0..nvec).step_by(V) {
            let nv = (nvec - v0).min(V);
            let mut acc = [ninf; V];
            for row in rows.chunks_exact(g.w) {
                let mut hk = [ninf; V];
                for j in 0..k {
                    for (v, hk) in hk.iter_mut().enumerate().take(nv) {
                        let (c, [m0, m1]) = (col[v0 + v][j], masks[v0 + v][j]);
                        let taps = if s == 1 {
                            load(row, c, m0)
                        } else {
                            _mm512_permutex2var_ps(load(row, c, m0), evens, load(row, c + 16, m1))
                        };
                        *hk = later16(*hk, taps);
                    }
                }
                for (acc, &hk) in acc.iter_mut().zip(&hk).take(nv) {
                    *acc = later16(*acc, hk);
                }
            }
            for (v, &acc) in acc.iter().enumerate().take(nv) {
                let x0 = 16 * (v0 + v);
                let n = (ow - x0).min(16);
                let m = ((1u32 << n) - 1) as __mmask16;
                // SAFETY: lanes `0..n` are output columns `x0 .. x0 + n`, inside `orow`.
                unsafe { _mm512_mask_storeu_ps(orow.as_mut_ptr().add(x0), m, acc) };
            }
        }
    }
}

/// The lanes of the 16 columns `c .. c + 16` that lie inside a row `0..w`.
#[cfg(target_arch = "x86_64")]
fn lanes_in_row(c: isize, w: isize) -> u16 {
    let lo = (-c).clamp(0, 16);
    let hi = (w - c).clamp(0, 16);
    if lo >= hi {
        0
    } else {
        ((1u32 << hi) - (1u32 << lo)) as u16
    }
}

/// [`later_max`] in every lane: `b` where it is larger than `a` or NaN.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn later16(a: core::arch::x86_64::__m512, b: core::arch::x86_64::__m512) -> core::arch::x86_64::__m512 {
    use core::arch::x86_64::*;
    let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(b, a) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b, b);
    _mm512_mask_blend_ps(take, a, b)
}

/// [`max_plane_avx512`] for ResNet's pool, 3x3 with stride 2 (padding up to 2): each input
/// row's horizontal maxima (the three taps of every output column, folded in tap order) are
/// computed once and kept for the two output rows whose windows share the row, and the three
/// taps of 16 output columns come from two loads: the even columns of 32 from the window's
/// left edge (tap 0), the odd ones (tap 1), and tap 0 shifted by a lane, the next vector's
/// first (tap 2). The same folds in the same order as [`max_plane_avx512`], hence the same
/// bits. resnet50's maxpool (64 x 112 x 112) in the model, three `--layers` runs alternating
/// with the general kernel: one thread 0.30-0.32 -> 0.20-0.21 ms, two 0.145-0.148 -> 0.098-0.100
/// (ONNX Runtime's, one thread, in its profiler: 0.16). (Without a NaN in a plane, each fold
/// could be one `vmaxps(b, a)`, which keeps `a` for `-0.0` against `0.0` as `later_max` does;
/// checking each plane for NaNs first cost more than that saved: 0.37 ms against 0.21-0.24.)
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_plane_3x3s2(g: &PoolGeom, plane: &[f32], oplane: &mut [f32]) {
    use core::arch::x86_64::*;
    assert!(g.k == 3 && g.stride == 2 && g.pad < 3 && g.ow <= 16 * PLANE_VECTORS);
    assert!(plane.len() == g.h * g.w && oplane.len() == g.oh * g.ow && g.w > 0);
    let (w, ow, pad) = (g.w as isize, g.ow, g.pad as isize);
    let nvec = ow.div_ceil(16);
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let in_row = |c: isize| lanes_in_row(c, w);
    // Per vector `v` (and one past the last, for its tap 2): the lanes of its two loads, from
    // column `32 v - pad` (tap 0 of its first output column).
    let mut masks = [[0 as __mmask16; 2]; PLANE_VECTORS + 1];
    for (v, m) in masks.iter_mut().enumerate().take(nvec + 1) {
        let c = 32 * v as isize - pad;
        *m = [in_row(c), in_row(c + 16)];
    }
    // The horizontal maxima of the last three input rows, row `r` at `r % 3`.
    let mut hrows = [[ninf; PLANE_VECTORS]; 3];
    // The next input row to fold into `hrows`.
    let mut next = 0;
    for (y, orow) in oplane.chunks_exact_mut(ow).enumerate() {
        // The in-range rows of the window: [2y - p, 2y - p + 3) clamped to [0, h).
        let r0 = (2 * y).saturating_sub(g.pad);
        let r1 = (2 * y + 3).saturating_sub(g.pad).min(g.h);
        while next < r1 {
            let row = &plane[next * g.w..][..g.w];
            // The row 8 below, into L1 (the input is often past L2: the stem's output).
            if let Some(ahead) = plane.get((next + 8) * g.w..(next + 9) * g.w) {
                for at in (0..ahead.len()).step_by(16) {
                    // SAFETY: a prefetch does not fault or change memory; `at` is in `ahead`.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.as_ptr().add(at).cast()) };
                }
            }
            // Taps 0 and 1 of vector `v`'s 16 output columns.
            let taps = |v: usize| -> (__m512, __m512) {
                let c = 32 * v as isize - pad;
                let [m0, m1] = masks[v];
                // SAFETY: the lanes of each mask are columns inside `0..w` (`in_row`); the
                // others are not accessed.
                let (a, b) = unsafe {
                    (
                        _mm512_mask_loadu_ps(ninf, m0, row.as_ptr().wrapping_offset(c)),
                        _mm512_mask_loadu_ps(ninf, m1, row.as_ptr().wrapping_offset(c + 16)),
                    )
                };
                (
                    _mm512_permutex2var_ps(a, evens, b),
                    _mm512_permutex2var_ps(a, odds, b),
                )
            };
            let (mut t0, mut t1) = taps(0);
            for (v, h) in hrows[next % 3].iter_mut().take(nvec).enumerate() {
                let (n0, n1) = taps(v + 1);
                // Tap 2: tap 0 of the next column, lanes 1..16 of `t0` then lane 0 of `n0`.
                let t2 = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(
                    _mm512_castps_si512(n0),
                    _mm512_castps_si512(t0),
                ));
                // `later_max(-inf, t0)` is `t0`'s bits: the first fold of a window's row.
                *h = later16(later16(t0, t1), t2);
                (t0, t1) = (n0, n1);
            }
            next += 1;
        }
        for (v, cols) in orow.chunks_mut(16).enumerate() {
            // The first row's maxima as they are (`later_max(-inf, x)` is `x`), then the others.
            let mut acc = hrows[r0 % 3][v];
            for r in r0 + 1..r1 {
                acc = later16(acc, hrows[r % 3][v]);
            }
            let m = (u32::MAX >> (32 - cols.len())) as __mmask16;
            // SAFETY: lanes `0..cols.len()` are inside `cols`.
            unsafe { _mm512_mask_storeu_ps(cols.as_mut_ptr(), m, acc) };
        }
    }
}

/// `dst[i] = later_max(dst[i], src[i])` for every `i` (the slices have the same length),
/// with AVX-512 if `avx512` (the process's instruction set, [`crate::isa::isa`]).
#[inline(always)]
fn fold(dst: &mut [f32], src: &[f32], avx512: bool) {
    assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        // SAFETY: the process's instruction set is one this CPU runs.
        return unsafe { fold_avx512(dst, src) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = avx512;
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = later_max(*d, v);
    }
}

/// [`fold`] with AVX-512F: 16 lanes at a time, the last ones masked.
///
/// # Safety
/// The CPU must support AVX-512F; `src` is at least as long as `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fold_avx512(dst: &mut [f32], src: &[f32]) {
    use core::arch::x86_64::*;
    let n = dst.len();
    let mut i = 0;
    while i < n {
        let m: __mmask16 = if n - i >= 16 {
            u16::MAX
        } else {
            ((1u32 << (n - i)) - 1) as u16
        };
        // SAFETY: lanes `i ..` enabled by `m` are below `n`, inside both slices; the others
        // are not accessed.
        unsafe {
            let a = _mm512_maskz_loadu_ps(m, dst.as_ptr().add(i));
            let b = _mm512_maskz_loadu_ps(m, src.as_ptr().add(i));
            // `later_max`: `b` where `b > a` (ordered, false for NaN) or `b` is NaN.
            let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(b, a) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b, b);
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), m, _mm512_mask_blend_ps(take, a, b));
        }
        i += 16;
    }
}

/// `nn.AdaptiveAvgPool2d((1, 1))` and flatten: `[n, c, hw]` to `[n, c]`, the mean of each
/// channel summed in index order.
///
/// `out[b, c] = (((0 + x[0]) + x[1]) + ... + x[hw - 1]) / hw`: the sum accumulated in f32 in
/// ascending index order, then divided (not multiplied by a reciprocal) by `hw as f32`. For a
/// `(1, 1)` output PyTorch's `adaptive_avg_pool2d` computes `input.mean((-1, -2))`, a sum
/// divided once by the element count, so only the summation order differs (PyTorch sums in
/// vectorized partial sums): results agree to rounding, not bit for bit.
pub fn global_avg_pool(n: usize, c: usize, hw: usize, input: &[f32], out: &mut [f32]) {
    debug_assert_eq!(input.len(), n * c * hw);
    debug_assert_eq!(out.len(), n * c);
    if hw == 0 {
        return;
    }
    let div = hw as f32;
    for (plane, o) in input.chunks_exact(hw).zip(out.iter_mut()) {
        let mut s = 0.0f32;
        for &v in plane {
            s += v;
        }
        *o = s / div;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::reference::{Rng, too_big_for_miri};

    /// The definition, written independently: signed window coordinates, every cell checked.
    fn naive_max_pool(g: &PoolGeom, input: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        for bc in 0..g.n * g.c {
            for y in 0..g.oh {
                for x in 0..g.ow {
                    let mut m: Option<f32> = None;
                    for i in 0..g.k {
                        for j in 0..g.k {
                            let iy = (y * g.stride + i) as isize - g.pad as isize;
                            let ix = (x * g.stride + j) as isize - g.pad as isize;
                            if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                continue;
                            }
                            let v = input[(bc * g.h + iy as usize) * g.w + ix as usize];
                            m = Some(match m {
                                Some(m) if m.is_nan() || m >= v => m,
                                _ => v,
                            });
                        }
                    }
                    out.push(m.expect("every window holds a real cell"));
                }
            }
        }
        out
    }

    fn pool_geom(n: usize, c: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> PoolGeom {
        let oh = (h + 2 * pad - k) / stride + 1;
        let ow = (w + 2 * pad - k) / stride + 1;
        PoolGeom {
            n,
            c,
            h,
            w,
            oh,
            ow,
            k,
            stride,
            pad,
        }
    }

    /// Split across threads by planes: the same bits as on one thread.
    #[cfg(feature = "std")]
    #[test]
    fn max_pool_threads_agree() {
        if cfg!(miri) {
            return;
        }
        let g = pool_geom(2, 24, 56, 61, 3, 2, 1);
        let mut rng = Rng::new(11);
        let input: Vec<f32> = (0..2 * 24 * 56 * 61).map(|_| rng.f32() - 0.5).collect();
        let mut one = vec![f32::NAN; 2 * 24 * g.oh * g.ow];
        max_pool_planes(&g, &input, &mut one);
        for threads in [2, 3, 5] {
            crate::threads::set_threads(threads);
            let mut many = vec![f32::NAN; one.len()];
            max_pool2d(&g, &input, &mut many);
            crate::threads::set_threads(1);
            assert!(
                many.iter().zip(&one).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{threads}"
            );
        }
    }

    #[test]
    fn max_pool_matches_naive() {
        let mut rng = Rng::new(7);
        for &(n, c, h, w, k, s, p) in &[
            (1, 3, 112, 112, 3, 2, 1),
            (2, 5, 7, 9, 3, 2, 1),
            (1, 2, 5, 11, 3, 1, 1),
            (2, 3, 9, 41, 3, 1, 1), // stride 1, several vectors of output columns
            (1, 2, 6, 70, 3, 2, 1), // stride 2, several vectors of output columns
            (1, 1, 5, 40, 4, 2, 3), // stride 2, a pad past the row on both sides
            (3, 1, 13, 7, 2, 2, 0),
            (1, 4, 1, 1, 3, 2, 1),
            (1, 1, 6, 6, 5, 1, 2),
            (1, 2, 8, 3, 1, 3, 0),
            (1, 1, 4, 300, 3, 2, 1),  // several chunks of output columns
            (1, 1, 4, 600, 3, 2, 1),  // rows too long for the AVX-512 plane kernel
            (1, 1, 3, 700, 4, 4, 2),  // the largest stride of the fast path, several chunks
            (1, 2, 9, 23, 3, 5, 1),   // past it: the definition
            (1, 1, 20, 20, 17, 1, 8), // a window past the fast path's
        ] {
            let g = pool_geom(n, c, h, w, k, s, p);
            if too_big_for_miri(n * c * g.oh * g.ow * k * k) {
                continue;
            }
            // Negative values everywhere make a zero from a padded cell visible.
            let input: Vec<f32> = (0..n * c * h * w).map(|_| rng.f32() - 2.0).collect();
            let mut out = vec![f32::NAN; n * c * g.oh * g.ow];
            max_pool2d(&g, &input, &mut out);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&naive_max_pool(&g, &input)), "{g:?}");
        }
    }

    #[test]
    fn max_pool_special_values() {
        // NaNs (in one plane of three), zeros of both signs and infinities (in two), whose
        // results depend on the order of the folds, for the 3x3 stride-2 kernel (pads 0 to 2,
        // one to five vectors of output columns, odd and even sizes) and the general one (4x4,
        // stride 2).
        let mut rng = Rng::new(3);
        let specials = [f32::NAN, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY];
        for &(h, w, k, p) in &[
            (9, 9, 3, 1),
            (8, 33, 3, 0),
            (11, 70, 3, 2),
            (6, 160, 3, 1),
            (7, 31, 4, 1),
        ] {
            let g = pool_geom(1, 3, h, w, k, 2, p);
            let mut input: Vec<f32> = (0..3 * h * w).map(|_| rng.f32() - 2.0).collect();
            for (i, x) in input.iter_mut().enumerate() {
                // Plane 0 gets every kind of special value, plane 1 the signed zeros and the
                // infinities only, plane 2 none.
                let kinds = [5, 4, 0][i / (h * w)];
                if kinds > 0 && rng.below(6) == 0 {
                    *x = specials[5 - kinds + rng.below(kinds)];
                }
            }
            if too_big_for_miri(3 * g.oh * g.ow * k * k) {
                continue;
            }
            let mut out = vec![1.0; 3 * g.oh * g.ow];
            max_pool2d(&g, &input, &mut out);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&naive_max_pool(&g, &input)), "{g:?}");
        }
    }

    #[test]
    fn max_pool_nan_wins() {
        let g = pool_geom(1, 1, 2, 2, 2, 1, 0);
        let mut out = [0.0];
        max_pool2d(&g, &[1.0, f32::NAN, 3.0, 2.0], &mut out);
        assert!(out[0].is_nan());
    }

    #[test]
    fn global_avg_pool_matches_naive() {
        let mut rng = Rng::new(8);
        for &(n, c, hw) in &[(1, 2048, 49), (3, 5, 1), (2, 7, 13), (1, 1, 3136)] {
            if too_big_for_miri(n * c * hw) {
                continue;
            }
            let input: Vec<f32> = (0..n * c * hw).map(|_| rng.f32()).collect();
            let mut out = vec![f32::NAN; n * c];
            global_avg_pool(n, c, hw, &input, &mut out);
            for (i, &o) in out.iter().enumerate() {
                let plane = &input[i * hw..(i + 1) * hw];
                // Bit-exact against the documented order.
                let s = plane.iter().fold(0.0f32, |s, &v| s + v);
                assert_eq!(o.to_bits(), (s / hw as f32).to_bits());
                // And close to the exact mean.
                let exact = plane.iter().map(|&v| f64::from(v)).sum::<f64>() / hw as f64;
                assert!(
                    (f64::from(o) - exact).abs() <= 1e-6 * hw as f64 * 4.0,
                    "{o} vs {exact}"
                );
            }
        }
    }
}
