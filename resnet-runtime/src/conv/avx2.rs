//! The AVX2 + FMA microkernel and packers.
//!
//! Register tile: 6 output channels x 16 pixels, BLIS's Haswell shape: 6 x 2 `ymm`
//! accumulators, 2 pixel vectors and 1 broadcast weight (15 of the 16 registers). Per `k`:
//! 2 vector loads, 6 broadcasts and 12 FMAs, 6 cycles on two FMA ports, with 12 independent
//! accumulators to cover the FMA latency (2 ports x 4 or 5 cycles). Blocks of 6 rows cross
//! the 8-row panels of the packed layout, so each row has its own weight stream. (A 4 x 24
//! tile needs a 17th register and spills: measured 81 GFLOP/s in L1 here against 124.)
//!
//! Packing loads whole vectors where every lane is in range, `vmaskmovps` where some are
//! not, and gathers (`vgatherdps`) where the lanes are not contiguous; masked-off lanes are
//! never read.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;
use core::ops::Range;

use super::Residual;
use super::simd::{Ahead, Cols, Epi, GROUP, Rows, Simd, Src};
use crate::pack::MR;

/// Lanes per vector.
const LANES: usize = 8;
/// Pixels per tile: 2 vectors.
const NR: usize = 16;
/// Output channels per tile.
const ROWS: usize = 6;

/// AVX2 with FMA. A value proves that the CPU supports both.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2Fma(());

impl Avx2Fma {
    /// The token.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    pub(crate) unsafe fn new_unchecked() -> Self {
        Avx2Fma(())
    }
}

impl Simd for Avx2Fma {
    const NR: usize = NR;
    const LANES: usize = LANES;
    const ROWS: usize = ROWS;
    const MASKED: bool = false;

    unsafe fn pack(self, src: &Src<'_>, ks: Range<usize>, dst: &mut [f32]) {
        src.debug_check(&ks, LANES);
        assert!(dst.len() >= (ks.end - ks.start) * NR && src.vectors <= NR / LANES);
        // SAFETY: `self` proves AVX2; `dst` holds every row written (asserted); the input
        // reads are the caller's contract (`Src`'s), debug-checked above.
        unsafe { pack(src, ks, dst.as_mut_ptr()) }
    }

    fn kernel(
        self,
        a: &Rows<'_>,
        b: &Cols<'_>,
        vectors: usize,
        part: &mut [MaybeUninit<f32>],
        first: bool,
        epi: Option<&mut Epi<'_>>,
    ) {
        let kc = a.kc;
        a.check(ROWS);
        b.check(vectors * LANES);
        // Unmasked: every lane of every row in bounds (asserted by `check`).
        let ldb = b.stride;
        assert!(b.full && b.rows == kc && (1..=NR / LANES).contains(&vectors));
        assert!((first && epi.is_some()) || part.len() >= ROWS * NR);
        if let Some(e) = &epi {
            e.check(NR, LANES, vectors);
        }
        // Row `j`'s weight stream: `MR` floats apart in its panel.
        let w: [*const f32; ROWS] = core::array::from_fn(|j| {
            let r = a.row + j;
            if r < MR {
                a.lo[r..].as_ptr()
            } else {
                a.hi[r - MR..].as_ptr()
            }
        });
        let ahead = b.ahead;
        let (b, part) = (b.planes.as_ptr(), part.as_mut_ptr().cast::<f32>());
        // SAFETY: `self` proves AVX2 and FMA; each `w[j]` has `kc` weights `MR` apart, `b`
        // `kc` rows, `part` `ROWS * NR` floats when it is used, and the epilogue's lanes lie
        // in `out` (all asserted).
        unsafe {
            match vectors {
                1 => kernel::<1>(&w, b, ldb, kc, part, first, epi, ahead),
                _ => kernel::<2>(&w, b, ldb, kc, part, first, epi, ahead),
            }
        }
    }

    const TAIL: bool = true;

    fn tail(
        self,
        w: &[f32],
        pstride: usize,
        np: usize,
        x: &[f32],
        xstride: usize,
        kc: usize,
        acc: &mut [[f32; MR]; GROUP],
    ) {
        assert!(np <= GROUP && kc > 0 && x.len() > (kc - 1) * xstride);
        assert!(np == 0 || w.len() >= (np - 1) * pstride + kc * MR);
        // SAFETY: `self` proves AVX2 and FMA; the bounds are asserted.
        unsafe { tail(w.as_ptr(), pstride, np, x.as_ptr(), xstride, kc, acc) }
    }
}

/// [`Simd::tail`] on raw pointers (for AVX2 and AVX-512 alike: 8 output channels per `ymm`): blocks of 8 panels (8 independent accumulators, enough to
/// cover the FMA latency), then one by one.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `w` holds `(np - 1) * pstride + kc * MR` floats and `x`
/// `(kc - 1) * xstride + 1`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tail(
    w: *const f32,
    pstride: usize,
    np: usize,
    x: *const f32,
    xstride: usize,
    kc: usize,
    acc: &mut [[f32; MR]; GROUP],
) {
    let mut q = 0;
    // SAFETY (both): the panels `q ..` are below `np`; the rest is the caller's contract.
    while q + 8 <= np {
        unsafe { tail_block::<8>(w.add(q * pstride), pstride, x, xstride, kc, &mut acc[q..q + 8]) };
        q += 8;
    }
    while q < np {
        unsafe { tail_block::<1>(w.add(q * pstride), pstride, x, xstride, kc, &mut acc[q..q + 1]) };
        q += 1;
    }
}

/// [`tail`] for `P` panels.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tail_block<const P: usize>(
    w: *const f32,
    pstride: usize,
    x: *const f32,
    xstride: usize,
    kc: usize,
    acc: &mut [[f32; MR]],
) {
    let mut a: [__m256; P] = core::array::from_fn(|q| {
        // SAFETY: `acc` holds `P` rows of `MR` = 8 floats.
        unsafe { _mm256_loadu_ps(acc[q].as_ptr()) }
    });
    for k in 0..kc {
        // SAFETY: `k < kc`: `x[k * xstride]` and each panel's weights for `k` are in bounds
        // (the caller's contract).
        unsafe {
            let xk = _mm256_set1_ps(*x.add(k * xstride));
            for (q, a) in a.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(w.add(q * pstride + k * MR)), xk, *a);
            }
        }
    }
    for (q, a) in a.iter().enumerate() {
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(acc[q].as_mut_ptr(), *a) };
    }
}

/// The lanes of a vector whose bit is set in `m`, as an all-ones/zero mask per lane.
#[target_feature(enable = "avx2")]
#[inline]
fn lane_mask(m: u8) -> __m256i {
    let bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(i32::from(m)), bits), bits)
}

/// [`Simd::pack`] on raw pointers; see the safety argument there.
#[target_feature(enable = "avx2")]
unsafe fn pack(src: &Src<'_>, ks: Range<usize>, dst: *mut f32) {
    let main = ks.start..ks.end.min(src.k_main);
    let mut row = dst;
    if !main.is_empty() {
        // SAFETY: the caller's contract.
        unsafe {
            if src.contig {
                pack_main::<true>(src, main.clone(), row);
            } else {
                pack_main::<false>(src, main.clone(), row);
            }
            row = row.add(main.len() * NR);
        }
    }
    let sc = ks.start.max(src.k_main)..ks.end;
    if !sc.is_empty() {
        // SAFETY: the caller's contract.
        unsafe {
            if src.sc_contig {
                pack_shortcut::<true>(src, sc, row);
            } else {
                pack_shortcut::<false>(src, sc, row);
            }
        }
    }
}

/// One vector of lanes: contiguous from `plane + at` (`CONTIG`) or gathered from
/// `plane + at + idx[l]`; zero where `m` is clear.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load<const CONTIG: bool>(plane: *const f32, at: isize, idx: __m256i, m: u8) -> __m256 {
    let p = plane.wrapping_offset(at);
    // SAFETY: the caller's contract: every lane enabled by `m` is inside the plane; the
    // pointer arithmetic wraps, and neither `vmaskmovps` nor `vgatherdps` accesses the
    // disabled lanes. A full mask means every lane is in range.
    unsafe {
        if CONTIG {
            match m {
                0xff => _mm256_loadu_ps(p),
                0 => _mm256_setzero_ps(),
                _ => _mm256_maskload_ps(p, lane_mask(m)),
            }
        } else {
            let mask = _mm256_castsi256_ps(lane_mask(m));
            _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), p, idx, mask)
        }
    }
}

/// Main rows `ks` (all `< k_main`) from `row` on.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn pack_main<const CONTIG: bool>(src: &Src<'_>, ks: Range<usize>, mut row: *mut f32) {
    let (mut ci, mut t) = (ks.start / src.taps, ks.start % src.taps);
    let base = src.base.as_ptr();
    // SAFETY: `base` holds `MAX_NR` >= 16 lanes.
    let idx = unsafe { [0, 1].map(|v| _mm256_loadu_si256(base.add(LANES * v).cast())) };
    let base0 = src.base[0] as isize;
    for _ in ks {
        // SAFETY: `ci < cg`: the plane starts inside `input`; the rest is `load`'s contract.
        unsafe {
            let plane = src.input.as_ptr().add(ci * src.hw);
            let (off, m) = (src.tap_off[t] as isize, src.tap_mask[t]);
            for (v, &idx) in idx.iter().enumerate().take(src.vectors) {
                let at = if CONTIG {
                    base0 + off + (LANES * v) as isize
                } else {
                    off
                };
                let x = load::<CONTIG>(plane, at, idx, (m >> (LANES * v)) as u8);
                _mm256_storeu_ps(row.add(LANES * v), x);
            }
            row = row.add(NR);
        }
        t += 1;
        if t == src.taps {
            t = 0;
            ci += 1;
        }
    }
}

/// Shortcut rows `ks` (all `>= k_main`) from `row` on.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn pack_shortcut<const CONTIG: bool>(src: &Src<'_>, ks: Range<usize>, mut row: *mut f32) {
    let base = src.sc_base.as_ptr();
    // SAFETY: `sc_base` holds `MAX_NR` >= 16 lanes.
    let idx = unsafe { [0, 1].map(|v| _mm256_loadu_si256(base.add(LANES * v).cast())) };
    let base0 = src.sc_base[0] as isize;
    for k in ks {
        // SAFETY: channel `k - k_main < sc` (the caller's contract): the plane starts
        // inside `shortcut`; the rest is `load`'s contract.
        unsafe {
            let plane = src.shortcut.as_ptr().add((k - src.k_main) * src.sc_hw);
            for (v, &idx) in idx.iter().enumerate().take(src.vectors) {
                let at = if CONTIG { base0 + (LANES * v) as isize } else { 0 };
                let x = load::<CONTIG>(plane, at, idx, (src.valid >> (LANES * v)) as u8);
                _mm256_storeu_ps(row.add(LANES * v), x);
            }
            row = row.add(NR);
        }
    }
}

/// [`Simd::kernel`] with `NV` vectors of pixels, on raw pointers: `w[j]` holds row `j`'s
/// `kc` weights `MR` apart, `b` `kc` rows `ldb` apart, `part` `ROWS * NR` floats unless
/// `first` and `epi` are both set.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const NV: usize>(
    w: &[*const f32; ROWS],
    mut b: *const f32,
    ldb: usize,
    kc: usize,
    part: *mut f32,
    first: bool,
    epi: Option<&mut Epi<'_>>,
    ahead: Ahead,
) {
    let mut ahead = ahead;
    let mut acc = [[_mm256_setzero_ps(); NV]; ROWS];
    if !first {
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `part` holds `ROWS * NR` floats.
                *acc = unsafe { _mm256_loadu_ps(part.add(r * NR + LANES * v)) };
            }
        }
    }
    // One value of `k`: the prefetches (the next tile's input only in the first loop below,
    // so that the loop without them has no branch), then the multiply-adds.
    macro_rules! step {
        ($k:expr, $ask:expr) => {
            let k = $k;
            // Where these rows read next: the same rows of their panels' next chunk of K or,
            // with one chunk, the next panels (`kc * MR` floats on). Prefetched into L2 while
            // this chunk runs, since the hardware prefetchers stop at each 4 KiB page of a
            // weight stream. The first and last rows cover both panels a block of rows may
            // span.
            _mm_prefetch::<_MM_HINT_T1>(w[0].wrapping_add((kc + k) * MR).cast());
            _mm_prefetch::<_MM_HINT_T1>(w[ROWS - 1].wrapping_add((kc + k) * MR).cast());
            // The lines this call asks for (input or weights to come: see `Ahead`).
            if $ask {
                _mm_prefetch::<_MM_HINT_T1>(ahead.next().cast());
            }
            // SAFETY: `k < kc`: row `k` of `b` (`NV` vectors) and each row's weight `k` are in
            // bounds.
            unsafe {
                let mut x = [_mm256_setzero_ps(); NV];
                for (v, x) in x.iter_mut().enumerate() {
                    *x = _mm256_loadu_ps(b.add(LANES * v));
                }
                for (acc, w) in acc.iter_mut().zip(w) {
                    let w = _mm256_broadcast_ss(&*w.add(k * MR));
                    for (acc, &x) in acc.iter_mut().zip(&x) {
                        *acc = _mm256_fmadd_ps(w, x, *acc);
                    }
                }
                b = b.wrapping_add(ldb);
            }
        };
    }
    let asks = ahead.count.min(kc);
    for k in 0..asks {
        step!(k, true);
    }
    for k in asks..kc {
        step!(k, false);
    }
    match epi {
        None => {
            for (r, acc) in acc.iter().enumerate() {
                for (v, &acc) in acc.iter().enumerate() {
                    // SAFETY: `part` holds `ROWS * NR` floats.
                    unsafe { _mm256_storeu_ps(part.add(r * NR + LANES * v), acc) };
                }
            }
        }
        Some(e) => {
            // SAFETY: the caller's contract (`Epi`'s lanes are in bounds).
            unsafe { epilogue::<NV>(e, acc) }
        }
    }
}

/// Stores the tile: `relu?(acc + bias (+ residual))`, for the real rows and lanes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn epilogue<const NV: usize>(e: &mut Epi<'_>, acc: [[__m256; NV]; ROWS]) {
    let zero = _mm256_setzero_ps();
    let out = e.out.as_ptr();
    let res: Option<*const f32> = match e.residual {
        Residual::None => None,
        Residual::InPlace => Some(out),
        Residual::Separate(r) => Some(r.as_ptr()),
    };
    let first_lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (r, acc) in acc.iter().enumerate() {
        if r >= e.bias.len() {
            break;
        }
        let bias = _mm256_set1_ps(e.bias[r]);
        let at = (e.row0 + r) * e.ohw + e.p0;
        for (v, &acc) in acc.iter().enumerate() {
            let lanes = (e.nv - LANES * v).min(LANES);
            let m = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), first_lane);
            // SAFETY: lanes `at + 8 v ..` up to `at + nv` are inside `out` (and the residual,
            // indexed alike); the masked-off lanes past `nv` are not accessed.
            unsafe {
                let dst = out.add(at + LANES * v);
                let mut y = _mm256_add_ps(acc, bias);
                if let Some(res) = res {
                    let rp = res.add(at + LANES * v);
                    let rv = if lanes == LANES {
                        _mm256_loadu_ps(rp)
                    } else {
                        _mm256_maskload_ps(rp, m)
                    };
                    y = _mm256_add_ps(y, rv);
                }
                if e.relu {
                    // `max(0, y)` returns `y` when it is NaN or -0.0, as `y < 0 ? 0 : y` does.
                    y = _mm256_max_ps(zero, y);
                }
                if lanes == LANES {
                    _mm256_storeu_ps(dst, y);
                } else {
                    _mm256_maskstore_ps(dst, m, y);
                }
            }
        }
    }
}
