//! The AVX-512F microkernel and packers.
//!
//! Register tile: [`MR`] = 8 output channels x 48 pixels, as 8 x 3 `zmm` accumulators (24 of
//! the 32 registers; 3 more hold the pixel vectors, 1 the broadcast weight). Per `k`: 3
//! vector loads, 8 broadcasts (load-port only) and 24 FMAs, 12 cycles on the two 512-bit FMA
//! ports, which is enough independent accumulators (24 > 2 ports x 4 cycles of latency) and
//! leaves the load ports half idle. Tails of 1 or 2 vectors use the same code with fewer
//! columns.
//!
//! Packing loads with zero-masking (`vmovups zmm{k}{z}`) where the lanes are contiguous and
//! gathers (`vgatherdps`) elsewhere; masked-off lanes are never read, so lanes in the padding
//! or past the last pixel need no bounds.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;
use core::ops::Range;

use super::OutPtr;
use super::Residual;
use super::TABLE_TAPS;
use super::simd::{BIG_PLANE_TILES, Cols, Epi, GROUP, MAX_LANES, Rows, Run, Simd, Src, row_len};
use crate::geom::ConvGeom;
use crate::pack::MR;

/// Lanes per vector.
const LANES: usize = 16;
/// Pixels per tile: 3 vectors.
const NR: usize = 48;

/// AVX-512F. A value proves that the CPU supports it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// The token.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (and the OS must save its registers: what
    /// `is_x86_feature_detected!("avx512f")` checks).
    pub(crate) unsafe fn new_unchecked() -> Self {
        Avx512(())
    }
}

impl Simd for Avx512 {
    const NR: usize = NR;
    const LANES: usize = LANES;
    const ROWS: usize = MR;
    const MASKED: bool = true;

    unsafe fn pack(self, src: &Src<'_>, ks: Range<usize>, dst: &mut [f32]) {
        src.debug_check(&ks, LANES);
        let rows = ks.end - ks.start;
        assert!(src.vectors <= NR / LANES + 1 && dst.len() >= rows * row_len::<Self>(src.vectors));
        // SAFETY: `self` proves AVX-512F; `dst` holds every row written (asserted); the
        // input reads are the caller's contract (`Src`'s), debug-checked above.
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
        a.check(MR);
        // The extra pixel's lane, `NR`, is the last one read.
        let extra = vectors > NR / LANES;
        b.check(if extra { NR + 1 } else { vectors * LANES });
        // Blocks of `MR` rows are whole panels.
        assert!(a.row == 0 && a.kc == b.rows && (1..=NR / LANES + 1).contains(&vectors));
        assert!(!extra || b.full);
        assert!((first && epi.is_some()) || part.len() >= MR * NR + if extra { MR } else { 0 });
        if let Some(e) = &epi {
            e.check(NR + 1, LANES, vectors);
        }
        let (w, part) = (a.lo.as_ptr(), part.as_mut_ptr().cast::<f32>());
        // SAFETY: `self` proves AVX-512F; `w` holds `kc * MR` floats, `b`'s enabled lanes
        // (and with the extra pixel its lane `NR`) lie in `b.planes`, `part` holds `MR * NR`
        // floats (`MR` more with the extra pixel) when it is used, and the epilogue's lanes
        // lie in `out` (all asserted).
        unsafe {
            match (vectors, b.full) {
                (1, true) => kernel::<1, false, false>(w, b, part, first, epi),
                (2, true) => kernel::<2, false, false>(w, b, part, first, epi),
                (3, true) => kernel::<3, false, false>(w, b, part, first, epi),
                (_, true) => kernel::<3, false, true>(w, b, part, first, epi),
                (1, false) => kernel::<1, true, false>(w, b, part, first, epi),
                (2, false) => kernel::<2, true, false>(w, b, part, first, epi),
                (_, false) => kernel::<3, true, false>(w, b, part, first, epi),
            }
        }
    }

    const EXTRA: bool = true;

    fn few_channels(
        self,
        g: &ConvGeom,
        run: &Run<'_>,
        input: &[f32],
        out: OutPtr<'_>,
        pixels: Range<usize>,
    ) -> bool {
        if !super::stem::applies(g) {
            return false;
        }
        // SAFETY: `self` proves AVX-512F.
        unsafe { super::stem::run(g, run, input, out, pixels) };
        true
    }

    const PREFETCHES_RESIDUAL: bool = true;
    const SPREADS_OUTPUT: bool = true;

    // resnet50's layer3.1-5.conv3 (K = 256 in rows of 64 floats: two chunks of 128 rather than
    // 96, 96 and 64) in the model (`resnet-bench --layers`, runs alternating): two threads
    // 0.335-0.357 -> 0.315-0.324 ms (five runs), one thread 0.56-0.62 -> 0.55-0.60 (four).
    // With the larger buffer for every K, layer2's conv1s (K = 512) took 1.05 of the time
    // before.
    const BUF_TWO: usize = super::simd::BUF_MAX;

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
        // SAFETY: `self` proves AVX-512F, and every CPU with AVX-512F has AVX2 and FMA; the
        // bounds are asserted.
        unsafe { super::avx2::tail(w.as_ptr(), pstride, np, x.as_ptr(), xstride, kc, acc) }
    }
}

/// [`Simd::pack`] on raw pointers; see the safety argument there.
#[target_feature(enable = "avx512f")]
unsafe fn pack(src: &Src<'_>, ks: Range<usize>, dst: *mut f32) {
    let main = ks.start..ks.end.min(src.k_main);
    let rl = row_len::<Avx512>(src.vectors);
    let mut row = dst;
    if !main.is_empty() {
        // SAFETY: the caller's contract.
        unsafe {
            match (src.contig, src.vectors) {
                (true, 1) => pack_main::<true, 1>(src, main.clone(), row),
                (true, 2) => pack_main::<true, 2>(src, main.clone(), row),
                (true, 3) => pack_main::<true, 3>(src, main.clone(), row),
                (true, _) => pack_main::<true, 4>(src, main.clone(), row),
                (false, 1) => pack_main::<false, 1>(src, main.clone(), row),
                (false, 2) => pack_main::<false, 2>(src, main.clone(), row),
                (false, 3) => pack_main::<false, 3>(src, main.clone(), row),
                (false, _) => pack_main::<false, 4>(src, main.clone(), row),
            }
            row = row.add(main.len() * rl);
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

/// One vector of lanes `16 v ..`: contiguous from `plane + base0 + off + 16 v` (`CONTIG`) or
/// gathered from `plane + off + idx[l]`; zero where `m` is clear.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load<const CONTIG: bool>(plane: *const f32, at: isize, idx: __m512i, m: __mmask16) -> __m512 {
    // SAFETY: the caller's contract: every lane enabled by `m` is inside the plane; the
    // pointer arithmetic wraps, so the disabled lanes' addresses are never formed as
    // in-bounds pointers, and masked loads and gathers do not access them.
    unsafe {
        if CONTIG {
            if m == u16::MAX {
                // Every lane in range: a plain load.
                _mm512_loadu_ps(plane.wrapping_offset(at))
            } else {
                _mm512_maskz_loadu_ps(m, plane.wrapping_offset(at))
            }
        } else {
            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m, idx, plane.wrapping_offset(at))
        }
    }
}

/// `SPREAD[b]` has bit `2 i` set where the byte `b` has bit `i`: the mask of the even
/// elements of 16 input columns that 8 lanes of stride 2 read.
const SPREAD: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut b = 0;
    while b < 256 {
        let mut i = 0;
        while i < 8 {
            if b >> i & 1 == 1 {
                t[b] |= 1 << (2 * i);
            }
            i += 1;
        }
        b += 1;
    }
    t
};

/// How one vector of a tile whose lanes are not consecutive pixels loads without a gather:
/// lanes that step by two input columns (stride 2 along an output row) in at most two runs
/// (the vector may cross one row boundary). Run `r` is lanes `runs[r].0` (a mask), lane `l`
/// reading column `runs[r].1 + 2 l` (plus the tap's offset). `n == 0`: gather instead.
#[derive(Clone, Copy)]
struct Pairs {
    n: usize,
    runs: [(u16, isize); 2],
}

impl Pairs {
    /// No runs: gather (or, for contiguous lanes, not used).
    const NONE: Pairs = Pairs {
        n: 0,
        runs: [(0, 0); 2],
    };
}

/// [`Pairs`] of vector `v` of a tile whose lane `l < nv` (bit `l` of `valid`) starts at
/// `base[l]`.
#[inline(always)]
fn pairs(base: &[i32; MAX_LANES], valid: u64, v: usize) -> Pairs {
    let lanes = (valid >> (LANES * v)) as u16;
    let at = |l: usize| base[LANES * v + l] as isize;
    let mut p = Pairs::NONE;
    // The valid lanes are `0..nv`: a prefix of the vector.
    let mut l = 0;
    while l < LANES && lanes >> l & 1 == 1 {
        let mut e = l + 1;
        while e < LANES && lanes >> e & 1 == 1 && at(e) == at(l) + 2 * (e - l) as isize {
            e += 1;
        }
        if p.n == 2 {
            return Pairs::NONE;
        }
        p.runs[p.n] = (
            (((1u32 << e) - 1) & !((1u32 << l) - 1)) as u16,
            at(l) - 2 * l as isize,
        );
        p.n += 1;
        l = e;
    }
    p
}

/// The load masks of [`load_pairs`] for the lanes `m` of a vector loaded as `p` says: per run,
/// the even elements of its two halves that the run's lanes in `m` read. Computed once per tap
/// and chunk (or per chunk) rather than per row: `perf` put the stride-2 packer's samples on
/// this arithmetic after its loads. resnet50 in the model, one thread, four runs alternating:
/// layer3.0.conv2 (3x3, stride 2) 1.57-1.69 -> 1.52-1.61 ms; layer2.0.conv2 the same
/// (1.47-1.52 against 1.44-1.52).
#[inline(always)]
fn spread(p: &Pairs, m: u16) -> [(u16, u16); 2] {
    core::array::from_fn(|r| {
        let lanes = m & p.runs[r].0;
        (SPREAD[lanes as u8 as usize], SPREAD[(lanes >> 8) as usize])
    })
}

/// One vector loaded as `p` says, at offset `off` into `plane`, the lanes of `m` only (zero
/// elsewhere), given as their [`spread`] masks `s`: per run, 32 consecutive columns in two
/// masked loads, their even elements picked out by one permute.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_pairs(plane: *const f32, off: isize, p: &Pairs, s: &[(u16, u16); 2]) -> __m512 {
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mut x = _mm512_setzero_ps();
    for (r, (&(run, start), &(lo, hi))) in p.runs[..p.n].iter().zip(s).enumerate() {
        let at = plane.wrapping_offset(start + off);
        // SAFETY: the caller's contract: lane `l` of the run reads `start + off + 2 l`, inside
        // the plane for every lane of the `m` that `s` was spread from; element `2 l` (low
        // half) or `2 l - 16` (high half) is enabled only for those (`spread`), and the masked
        // loads access nothing else.
        let y = unsafe {
            let lo = _mm512_maskz_loadu_ps(lo, at);
            let hi = _mm512_maskz_loadu_ps(hi, at.wrapping_add(LANES));
            _mm512_permutex2var_ps(lo, evens, hi)
        };
        // Each run's result is zero outside its lanes.
        x = if r == 0 {
            y
        } else {
            _mm512_mask_blend_ps(run, x, y)
        };
    }
    x
}

/// Main rows `ks` (all `< k_main`) from `row` on, `NV` vectors each.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pack_main<const CONTIG: bool, const NV: usize>(src: &Src<'_>, ks: Range<usize>, mut row: *mut f32) {
    let (mut ci, mut t) = (ks.start / src.taps, ks.start % src.taps);
    let base = src.base.as_ptr();
    // SAFETY: `base` holds `MAX_LANES` = 64 lanes.
    let idx: [__m512i; NV] =
        core::array::from_fn(|v| unsafe { _mm512_loadu_si512(base.add(LANES * v).cast()) });
    let pairs: [Pairs; NV] = core::array::from_fn(|v| {
        if CONTIG {
            Pairs::NONE
        } else {
            pairs(src.base, src.valid, v)
        }
    });
    // `load_pairs`'s masks per tap and vector, the same for every channel.
    let mut masks = [[[(0u16, 0u16); 2]; NV]; TABLE_TAPS];
    if !CONTIG {
        for (tm, &m) in masks.iter_mut().zip(src.tap_mask) {
            for (v, (tm, p)) in tm.iter_mut().zip(&pairs).enumerate() {
                *tm = spread(p, (m >> (LANES * v)) as u16);
            }
        }
    }
    let base0 = src.base[0] as isize;
    let mut left = ks.len();
    while left > 0 {
        // The taps `t ..` of channel `ci` (`< cg`, so the plane starts inside `input`).
        let n = if src.taps - t < left { src.taps - t } else { left };
        let plane = src.input[ci * src.hw..].as_ptr();
        let taps = src.tap_off[t..t + n]
            .iter()
            .zip(&src.tap_mask[t..t + n])
            .zip(&masks[t..t + n]);
        for ((&off, &m), masks) in taps {
            let off = off as isize;
            for (v, (&idx, p)) in idx.iter().zip(&pairs).enumerate() {
                let at = if CONTIG {
                    base0 + off + (LANES * v) as isize
                } else {
                    off
                };
                let m = (m >> (LANES * v)) as u16;
                // SAFETY: `load`'s and `load_pairs`'s contract is the caller's (the lanes of
                // `m` read inside the plane); `row` has a row's floats left.
                unsafe {
                    let x = if !CONTIG && p.n > 0 {
                        load_pairs(plane, at, p, &masks[v])
                    } else {
                        load::<CONTIG>(plane, at, idx, m)
                    };
                    _mm512_storeu_ps(row.add(LANES * v), x);
                }
            }
            // SAFETY: the caller's `dst` holds a row per `k`.
            row = unsafe { row.add(row_len::<Avx512>(NV)) };
        }
        left -= n;
        t = 0;
        ci += 1;
    }
}

/// Shortcut rows `ks` (all `>= k_main`) from `row` on.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pack_shortcut<const CONTIG: bool>(src: &Src<'_>, ks: Range<usize>, mut row: *mut f32) {
    let base = src.sc_base.as_ptr();
    // SAFETY: `sc_base` holds `MAX_LANES` = 64 lanes.
    let idx = unsafe { [0, 1, 2, 3].map(|v| _mm512_loadu_si512(base.add(LANES * v).cast())) };
    let pairs: [Pairs; 4] = core::array::from_fn(|v| {
        if CONTIG {
            Pairs::NONE
        } else {
            pairs(src.sc_base, src.valid, v)
        }
    });
    // `load_pairs`'s masks per vector, the same for every row.
    let masks: [[(u16, u16); 2]; 4] =
        core::array::from_fn(|v| spread(&pairs[v], (src.valid >> (LANES * v)) as u16));
    let base0 = src.sc_base[0] as isize;
    let rl = row_len::<Avx512>(src.vectors);
    for k in ks {
        // SAFETY: channel `k - k_main < sc` (the caller's contract): the plane starts
        // inside `shortcut`; the rest is `load`'s and `load_pairs`'s contract.
        unsafe {
            let plane = src.shortcut.as_ptr().add((k - src.k_main) * src.sc_hw);
            for (v, (&idx, p)) in idx.iter().zip(&pairs).enumerate().take(src.vectors) {
                let at = if CONTIG { base0 + (LANES * v) as isize } else { 0 };
                let m = (src.valid >> (LANES * v)) as u16;
                let x = if !CONTIG && p.n > 0 {
                    load_pairs(plane, at, p, &masks[v])
                } else {
                    load::<CONTIG>(plane, at, idx, m)
                };
                _mm512_storeu_ps(row.add(LANES * v), x);
            }
            row = row.add(rl);
        }
    }
}

/// [`Simd::kernel`] with `NV` vectors of pixels (and, with `EXTRA`, the pixel in lane `NR`), on
/// raw pointers: `w` holds `b.rows * MR` floats, `part` `MR * NR` (with `EXTRA`, `MR` more)
/// unless `first` and `epi` are both set, and `b`'s enabled lanes (its `mask`'s with `MASKED`,
/// else all up to `LANES * NV`, and lane `NR` with `EXTRA`) are in bounds.
///
/// The extra pixel's sums are one `ymm` along the block's `MR` rows: per `k`, the `MR` weights
/// (one load) times the pixel's input (one broadcast), a 25th multiply-add to the tile's 24
/// (and 29 of the 32 registers).
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const NV: usize, const MASKED: bool, const EXTRA: bool>(
    mut w: *const f32,
    b: &Cols<'_>,
    part: *mut f32,
    first: bool,
    epi: Option<&mut Epi<'_>>,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let mut extra = _mm256_setzero_ps();
    if !first {
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `part` holds `MR * NR` floats.
                *acc = unsafe { _mm512_loadu_ps(part.add(r * NR + LANES * v)) };
            }
        }
        if EXTRA {
            // SAFETY: with `EXTRA`, `part` holds `MR` more.
            extra = unsafe { _mm256_loadu_ps(part.add(MR * NR)) };
        }
    }
    if let Some(e) = &epi {
        prefetch_residual(e);
    }
    let mut row = b.planes.as_ptr();
    // Where this panel reads next: the same rows of its next chunk of K or, with one chunk,
    // the next panel (both `rows * MR` floats on). Prefetched into L2 while this chunk runs,
    // since the hardware prefetchers stop at each 4 KiB page of a weight stream.
    let ahead = b.rows * MR;
    let mut input_ahead = b.ahead;
    // One value of `k`: the weights' and (first) `b.ahead`'s prefetches (input or the next
    // group's weights to come), then the multiply-adds. Two loops, with and without the
    // second prefetch, rather than a branch in one: with the branch the extra pixel's sums
    // were kept in memory, not in a register.
    macro_rules! step {
        ($ask:expr) => {
            _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add(ahead).cast());
            if $ask {
                _mm_prefetch::<_MM_HINT_T1>(input_ahead.next().cast());
            }
            let mut x = [_mm512_setzero_ps(); NV];
            for (v, x) in x.iter_mut().enumerate() {
                // SAFETY: the caller's contract: every lane these loads enable is in
                // `b.planes`; masked-off lanes are not accessed.
                *x = unsafe {
                    if MASKED {
                        _mm512_maskz_loadu_ps(b.mask[v], row.wrapping_add(LANES * v))
                    } else {
                        _mm512_loadu_ps(row.wrapping_add(LANES * v))
                    }
                };
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `w` has `MR` floats per row of `b`.
                let w = _mm512_set1_ps(unsafe { *w.add(r) });
                for (acc, &x) in acc.iter_mut().zip(&x) {
                    *acc = _mm512_fmadd_ps(w, x, *acc);
                }
            }
            if EXTRA {
                // SAFETY: lane `NR` of the row is in bounds (the caller's contract); `w` has
                // `MR` floats for this `k`.
                unsafe {
                    let x = _mm256_set1_ps(*row.wrapping_add(NR));
                    extra = _mm256_fmadd_ps(_mm256_loadu_ps(w), x, extra);
                }
            }
            // SAFETY: as above.
            w = unsafe { w.add(MR) };
            row = row.wrapping_add(b.stride);
        };
    }
    let asks = input_ahead.count.min(b.rows);
    for _ in 0..asks {
        step!(true);
    }
    for _ in asks..b.rows {
        step!(false);
    }
    match epi {
        None => {
            for (r, acc) in acc.iter().enumerate() {
                for (v, &acc) in acc.iter().enumerate() {
                    // SAFETY: `part` holds `MR * NR` floats.
                    unsafe { _mm512_storeu_ps(part.add(r * NR + LANES * v), acc) };
                }
            }
            if EXTRA {
                // SAFETY: with `EXTRA`, `part` holds `MR` more.
                unsafe { _mm256_storeu_ps(part.add(MR * NR), extra) };
            }
        }
        Some(e) => {
            // SAFETY: the caller's contract (`Epi`'s indices are in bounds).
            unsafe { epilogue::<NV>(e, acc) };
            if EXTRA {
                // SAFETY: as above; the tile's lane `NR` is its last (`nv = NR + 1`).
                unsafe { epilogue_extra(e, extra) };
            }
        }
    }
}

/// On large planes ([`BIG_PLANE_TILES`]), asks for the residual lines the epilogue `e` will read to be
/// brought into L1 while the kernel runs, so that the epilogue's loads do not wait for them at
/// the end (a large plane's residual is in no cache). Measured on one thread, alternating with
/// and without in one process (best of 15 rounds, twice): resnet50's layer1.1.conv3 with its
/// residual (56x56) 109 -> 114-116 GFLOP/s, layer2.1.conv3 (28x28) 146 -> 150-151;
/// layer3.1.conv3 (14x14) 158 -> 155-157, hence the bound.
#[target_feature(enable = "avx512f")]
#[inline]
fn prefetch_residual(e: &Epi<'_>) {
    if e.ohw < BIG_PLANE_TILES * NR {
        return;
    }
    let res = match e.residual {
        Residual::None => return,
        Residual::InPlace => e.out.as_ptr(),
        Residual::Separate(r) => r.as_ptr(),
    };
    for r in 0..e.bias.len().min(MR) {
        let at = (e.row0 + r) * e.ohw + e.p0;
        // One address per line the lanes `at .. at + nv` touch (lines of 16 floats counted
        // from `at`, plus the last lane's); a prefetch never faults, and these are in bounds.
        let mut l = 0;
        while l < e.nv {
            _mm_prefetch::<_MM_HINT_T0>(res.wrapping_add(at + l).cast());
            l += LANES;
        }
        _mm_prefetch::<_MM_HINT_T0>(res.wrapping_add(at + e.nv.max(1) - 1).cast());
    }
}

/// Stores the extra pixel (lane `NR`) of the tile: `relu?(extra + bias (+ residual))` for the
/// real rows, as [`epilogue`] computes its lanes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn epilogue_extra(e: &mut Epi<'_>, extra: __m256) {
    let mut sums = [0.0f32; MR];
    // SAFETY: `sums` holds `MR` = 8 floats.
    unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), extra) };
    debug_assert_eq!(e.nv, NR + 1);
    for (r, (&sum, &bias)) in sums.iter().zip(e.bias).enumerate() {
        let at = (e.row0 + r) * e.ohw + e.p0 + NR;
        let mut y = sum + bias;
        // SAFETY: `at` is lane `nv - 1` of row `r < bias.len()`, inside `out` and the
        // residual (`Epi::check`); this tile's pixel, which no other part touches.
        unsafe {
            match e.residual {
                Residual::None => {}
                Residual::InPlace => y += e.out.get(at),
                Residual::Separate(res) => y += *res.get_unchecked(at),
            }
            if e.relu && 0.0 > y {
                y = 0.0;
            }
            e.out.set(at, y);
        }
    }
}

/// Stores the tile: `relu?(acc + bias (+ residual))`, for the real rows and lanes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn epilogue<const NV: usize>(e: &mut Epi<'_>, acc: [[__m512; NV]; MR]) {
    let zero = _mm512_setzero_ps();
    let out = e.out.as_ptr();
    let res: Option<*const f32> = match e.residual {
        Residual::None => None,
        Residual::InPlace => Some(out),
        Residual::Separate(r) => Some(r.as_ptr()),
    };
    for (r, acc) in acc.iter().enumerate() {
        if r >= e.bias.len() {
            break;
        }
        let bias = _mm512_set1_ps(e.bias[r]);
        let at = (e.row0 + r) * e.ohw + e.p0;
        for (v, &acc) in acc.iter().enumerate() {
            let lanes = (e.nv - LANES * v).min(LANES);
            let m = (u32::MAX >> (32 - lanes)) as u16;
            // SAFETY: lanes `at + 16 v ..` up to `at + nv` are inside `out` (and the residual,
            // indexed alike): `(row0 + r) * ohw + p0 + nv <= out.len()`; the masked-off
            // lanes past `nv` are not accessed.
            unsafe {
                let mut y = _mm512_add_ps(acc, bias);
                if let Some(res) = res {
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, res.add(at + LANES * v)));
                }
                if e.relu {
                    // `max(0, y)` returns `y` when it is NaN or -0.0, as `y < 0 ? 0 : y` does.
                    y = _mm512_max_ps(zero, y);
                }
                _mm512_mask_storeu_ps(out.add(at + LANES * v), m, y);
            }
        }
    }
}
