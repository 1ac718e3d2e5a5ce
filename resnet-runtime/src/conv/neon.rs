//! The NEON (AArch64 Advanced SIMD) microkernel.
//!
//! Register tile: [`MR`] = 8 output channels x 12 pixels, as 8 x 3 `q` accumulators (24 of
//! the 32 registers), 3 pixel vectors and the 8 weights of the step in 2 registers: the FMA
//! takes its weight as a lane of a register (`fmla v.4s, v.4s, v.s[l]`), so no broadcast is
//! needed. Per `k`: 2 + 3 vector loads and 24 FMAs, enough independent accumulators for the
//! 4-cycle FMA latency on up to 4 FMA pipes (6 per pipe on 4 pipes of Neoverse V-class cores).
//!
//! Packing copies whole vectors where four contiguous lanes are in range and goes lane by
//! lane elsewhere (NEON has neither masked loads nor gathers).

use core::arch::aarch64::*;
use core::mem::MaybeUninit;
use core::ops::Range;

use super::Residual;
use super::simd::{Cols, Epi, GROUP, Rows, Simd, Src};
use crate::pack::MR;

/// Lanes per vector.
const LANES: usize = 4;
/// Pixels per tile: 3 vectors.
const NR: usize = 12;

/// NEON. A value proves that the CPU supports it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Neon(());

impl Neon {
    /// The token.
    ///
    /// # Safety
    /// The CPU must support NEON (every AArch64 Linux, macOS or Windows system does).
    pub(crate) unsafe fn new_unchecked() -> Self {
        Neon(())
    }
}

impl Simd for Neon {
    const NR: usize = NR;
    const LANES: usize = LANES;
    const ROWS: usize = MR;
    const MASKED: bool = false;

    unsafe fn pack(self, src: &Src<'_>, ks: Range<usize>, dst: &mut [f32]) {
        src.debug_check(&ks, LANES);
        let width = src.vectors * LANES;
        for (k, row) in ks.zip(dst.chunks_exact_mut(NR)) {
            let row = &mut row[..width];
            let (plane, off, m, main) = if k < src.k_main {
                let (ci, t) = (k / src.taps, k % src.taps);
                let plane = &src.input[ci * src.hw..][..src.hw];
                (plane, src.tap_off[t], src.tap_mask[t], true)
            } else {
                let plane = &src.shortcut[(k - src.k_main) * src.sc_hw..][..src.sc_hw];
                (plane, 0, src.valid, false)
            };
            let base = |l: usize| {
                if main {
                    src.lane_base(l)
                } else {
                    src.sc_lane_base(l)
                }
            };
            let contig = if main { src.contig } else { src.sc_contig };
            for (v, dst) in row.chunks_exact_mut(LANES).enumerate() {
                let bits = (m >> (LANES * v)) & 0xf;
                if contig && bits == 0xf {
                    // Every lane in range: four consecutive values.
                    let at = (base(LANES * v) + off) as usize;
                    dst.copy_from_slice(&plane[at..at + LANES]);
                } else {
                    for (l, d) in dst.iter_mut().enumerate() {
                        *d = if bits >> l & 1 == 1 {
                            plane[(base(LANES * v + l) + off) as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
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
        a.check(MR);
        b.check(vectors * LANES);
        // Blocks of `MR` rows are whole panels; unmasked: every lane of every row in bounds
        // (asserted by `check`).
        let ldb = b.stride;
        assert!(b.full && b.rows == kc && a.row == 0 && (1..=NR / LANES).contains(&vectors));
        assert!((first && epi.is_some()) || part.len() >= MR * NR);
        if let Some(e) = &epi {
            e.check(NR, LANES, vectors);
        }
        let (w, b, part) = (a.lo.as_ptr(), b.planes.as_ptr(), part.as_mut_ptr().cast::<f32>());
        // SAFETY: `self` proves NEON; `w` holds `kc * MR` floats, `b` `kc` rows, `part`
        // `MR * NR` when it is used, and the epilogue's lanes lie in `out` (all asserted).
        unsafe {
            match vectors {
                1 => kernel::<1>(w, b, ldb, kc, part, first, epi),
                2 => kernel::<2>(w, b, ldb, kc, part, first, epi),
                _ => kernel::<3>(w, b, ldb, kc, part, first, epi),
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
        let mut q = 0;
        // SAFETY (both): `self` proves NEON; the panels `q ..` are below `np` and the bounds
        // are asserted.
        while q + 4 <= np {
            unsafe {
                tail_block::<4>(
                    w.as_ptr().add(q * pstride),
                    pstride,
                    x.as_ptr(),
                    xstride,
                    kc,
                    &mut acc[q..q + 4],
                )
            };
            q += 4;
        }
        while q < np {
            unsafe {
                tail_block::<1>(
                    w.as_ptr().add(q * pstride),
                    pstride,
                    x.as_ptr(),
                    xstride,
                    kc,
                    &mut acc[q..q + 1],
                )
            };
            q += 1;
        }
    }
}

/// [`Simd::tail`] for `P` panels: 8 output channels as two `q` vectors each (`2 P`
/// independent accumulators).
///
/// # Safety
/// The CPU must support NEON; `w` holds `(P - 1) * pstride + kc * MR` floats, `x`
/// `(kc - 1) * xstride + 1`, `acc` `P` rows.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn tail_block<const P: usize>(
    w: *const f32,
    pstride: usize,
    x: *const f32,
    xstride: usize,
    kc: usize,
    acc: &mut [[f32; MR]],
) {
    // SAFETY: `acc` holds `P` rows of `MR` = 8 floats.
    let mut a: [[float32x4_t; 2]; P] =
        core::array::from_fn(|q| unsafe { [vld1q_f32(acc[q].as_ptr()), vld1q_f32(acc[q].as_ptr().add(4))] });
    for k in 0..kc {
        // SAFETY: `k < kc`: `x[k * xstride]` and each panel's weights for `k` are in bounds
        // (the caller's contract).
        unsafe {
            let xk = vdupq_n_f32(*x.add(k * xstride));
            for (q, a) in a.iter_mut().enumerate() {
                let wq = w.add(q * pstride + k * MR);
                a[0] = vfmaq_f32(a[0], vld1q_f32(wq), xk);
                a[1] = vfmaq_f32(a[1], vld1q_f32(wq.add(4)), xk);
            }
        }
    }
    for (q, a) in a.iter().enumerate() {
        // SAFETY: as above.
        unsafe {
            vst1q_f32(acc[q].as_mut_ptr(), a[0]);
            vst1q_f32(acc[q].as_mut_ptr().add(4), a[1]);
        }
    }
}

/// [`Simd::kernel`] with `NV` vectors of pixels, on raw pointers: `a` holds `kc * MR`
/// floats, `b` `kc` rows `ldb` apart, `part` `MR * NR` unless `first` and `epi` are both set.
#[target_feature(enable = "neon")]
unsafe fn kernel<const NV: usize>(
    mut a: *const f32,
    mut b: *const f32,
    ldb: usize,
    kc: usize,
    part: *mut f32,
    first: bool,
    epi: Option<&mut Epi<'_>>,
) {
    let mut acc = [[vdupq_n_f32(0.0); NV]; MR];
    if !first {
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `part` holds `MR * NR` floats.
                *acc = unsafe { vld1q_f32(part.add(r * NR + LANES * v)) };
            }
        }
    }
    for _ in 0..kc {
        // SAFETY: `k < kc`: row `k` of `b` (`NV` vectors) and of `a` (`MR` floats) are in
        // bounds.
        unsafe {
            let mut x = [vdupq_n_f32(0.0); NV];
            for (v, x) in x.iter_mut().enumerate() {
                *x = vld1q_f32(b.add(LANES * v));
            }
            let w0 = vld1q_f32(a);
            let w1 = vld1q_f32(a.add(4));
            // Row `r` takes its weight from lane `r % 4` of `w0` or `w1`.
            macro_rules! row {
                ($r:literal, $w:ident, $l:literal) => {
                    for (acc, &x) in acc[$r].iter_mut().zip(&x) {
                        *acc = vfmaq_laneq_f32::<$l>(*acc, x, $w);
                    }
                };
            }
            row!(0, w0, 0);
            row!(1, w0, 1);
            row!(2, w0, 2);
            row!(3, w0, 3);
            row!(4, w1, 0);
            row!(5, w1, 1);
            row!(6, w1, 2);
            row!(7, w1, 3);
            a = a.add(MR);
            b = b.wrapping_add(ldb);
        }
    }
    match epi {
        None => {
            for (r, acc) in acc.iter().enumerate() {
                for (v, &acc) in acc.iter().enumerate() {
                    // SAFETY: `part` holds `MR * NR` floats.
                    unsafe { vst1q_f32(part.add(r * NR + LANES * v), acc) };
                }
            }
        }
        Some(e) => epilogue::<NV>(e, acc),
    }
}

/// Stores the tile: `relu?(acc + bias (+ residual))`, for the real rows and lanes.
#[target_feature(enable = "neon")]
#[inline]
fn epilogue<const NV: usize>(e: &mut Epi<'_>, acc: [[float32x4_t; NV]; MR]) {
    let zero = vdupq_n_f32(0.0);
    for (r, acc) in acc.iter().enumerate() {
        if r >= e.bias.len() {
            break;
        }
        let bias = vdupq_n_f32(e.bias[r]);
        let at = (e.row0 + r) * e.ohw + e.p0;
        for (v, &acc) in acc.iter().enumerate() {
            let lanes = (e.nv - LANES * v).min(LANES);
            let i = at + LANES * v;
            let mut y = [0.0f32; LANES];
            // SAFETY: `y` holds one vector.
            unsafe { vst1q_f32(y.as_mut_ptr(), vaddq_f32(acc, bias)) };
            let mut y = if lanes == LANES {
                let res = match e.residual {
                    Residual::None => None,
                    // `i + LANES <= out.len()` (`Epi::check`).
                    Residual::InPlace => Some(e.out.as_ptr().cast_const().wrapping_add(i)),
                    Residual::Separate(r) => Some(r[i..i + LANES].as_ptr()),
                };
                // SAFETY: `y` and `res` hold one vector each (the in-place residual is
                // this tile's pixels of `out`, which no one else touches meanwhile).
                unsafe {
                    let mut v = vld1q_f32(y.as_ptr());
                    if let Some(res) = res {
                        v = vaddq_f32(v, vld1q_f32(res));
                    }
                    v
                }
            } else {
                for (l, y) in y.iter_mut().enumerate().take(lanes) {
                    match e.residual {
                        Residual::None => {}
                        // SAFETY: a lane of this tile, inside `out` (`Epi::check`).
                        Residual::InPlace => *y += unsafe { e.out.get(i + l) },
                        Residual::Separate(r) => *y += r[i + l],
                    }
                }
                // SAFETY: `y` holds one vector.
                unsafe { vld1q_f32(y.as_ptr()) }
            };
            if e.relu {
                y = vbslq_f32(vcltq_f32(y, zero), zero, y);
            }
            let mut o = [0.0f32; LANES];
            // SAFETY: `o` holds one vector.
            unsafe { vst1q_f32(o.as_mut_ptr(), y) };
            for (l, &o) in o.iter().enumerate().take(lanes) {
                // SAFETY: lanes of this tile, inside `out` (`Epi::check`); no one else
                // touches them meanwhile (`conv_run`'s contract).
                unsafe { e.out.set(i + l, o) };
            }
        }
    }
}
