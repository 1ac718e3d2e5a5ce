//! 2-D convolution over weights packed by [`crate::pack`].
//!
//! # Algorithm
//!
//! An implicit GEMM per image and group: `out[M x N] = W[M x K] * X[K x N]` with
//! `M` = the group's output channels (in panels of [`MR`], the packed layout),
//! `N` = the image's output pixels flattened as `y * ow + x` (in tiles of [`NR`] that may wrap
//! from one output row to the next), and `K` = [`ConvGeom::k_total`]: the main taps
//! `(ci, i, j)` followed by the shortcut's channels. `X` is never materialized: for each `k`
//! the kernel loads the [`NR`] input values of its tile straight from the NCHW input, with
//! zero at padded positions, and adds the `MR x NR` outer product of the weight vector and
//! those values into an `MR x NR` accumulator tile. The tile's full-`K` sum stays in
//! registers, then the epilogue (bias, residual, ReLU) stores it.
//!
//! Input loads take the cheapest form the tile allows, decided once per tile: contiguous (the
//! lanes read consecutive input pixels: stride 1 within a row, any 1x1 stride-1 unpadded conv,
//! and "same" stride-1 convs even across a row wrap), strided (one output row, stride > 1), or
//! gathered through per-lane offsets. Tiles whose windows reach the padding (border tiles)
//! precompute, per kernel tap, which lanes read padding (a tap table), since that pattern is
//! the same for every input channel.
//!
//! # Blocking
//!
//! Per image and group, the output pixels are cut into blocks whose input footprint is about
//! [`BLOCK_BYTES`]. For each block, each panel of weights (`K x MR` floats) is streamed once
//! per tile of the block, so it stays in cache across the block's tiles, while the block's
//! input stays in cache across the panels.
//!
//! # Specialization
//!
//! [`conv2d`] instantiates the kernel once per [`ConvShape`], with every size a constant (loop
//! bounds, strides, `k == 1`, whether a shortcut exists); [`conv2d_dyn`] runs one shared
//! instance that reads the geometry at run time. The per-tile `K` loop of each load form is a
//! separate, non-inlined function, so that its accumulators get the whole register file.
//!
//! # Accumulation order (the numeric contract)
//!
//! The value of an output element depends only on the geometry and the operands, never on
//! [`NR`], tiling, blocking or how the work is split. For output `(b, o, y, x)`, in f32, with
//! every product rounded to f32 before it is added (no fused multiply-add):
//!
//! ```text
//! acc = +0.0
//! for ci in 0..c/groups, for i in 0..k, for j in 0..k (this nesting, each ascending):
//!     acc = acc + W[o, ci, i, j] * v      v = in[b, g*cg + ci, y*s - p + i*d, x*s - p + j*d],
//!                                         or +0.0 at a padded position (the term is still added)
//! for cs in 0..sc (ascending; only with a shortcut):
//!     acc = acc + Ws[o, cs] * sc[b, cs, y*ss, x*ss]
//! v = acc + bias[o]
//! v = v + res[b, o, y, x]                 (only with a residual)
//! v = if v < 0.0 { 0.0 } else { v }       (only with relu; NaN passes through)
//! out[b, o, y, x] = v
//! ```

use core::marker::PhantomData;
use core::ops::Range;

use crate::geom::{ConvGeom, ConvShape};
use crate::pack::{MR, panels_per_group};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
mod simd;
#[cfg(target_arch = "x86_64")]
mod stem;

pub(crate) use simd::Engine;

#[cfg(test)]
#[path = "reference.rs"]
pub(crate) mod reference;

#[cfg(test)]
#[path = "bench.rs"]
mod bench;

/// Output pixels per register tile: the column count of the kernel's `MR x NR` accumulator.
///
/// Chosen per target so the accumulator fits the vector registers: 8 with AVX (one 256-bit
/// register of [`MR`] channels per pixel: 8 accumulators out of 16 registers), 4 otherwise
/// (SSE2 and NEON: two 128-bit registers per pixel, 8 accumulators). Measured on x86-64,
/// larger tiles spill. Results do not depend on it.
pub const NR: usize = if cfg!(target_feature = "avx") { 8 } else { 4 };

/// The input footprint (bytes) of one block of output pixels; see the module docs.
pub const BLOCK_BYTES: usize = 256 * 1024;

/// The identity shortcut of a conv's epilogue.
#[derive(Debug, Clone, Copy)]
pub enum Residual<'a> {
    /// No residual (`ConvGeom::residual == false`).
    None,
    /// The residual is the output buffer's previous contents: each element is read once, at
    /// the index the result is then written to.
    InPlace,
    /// The residual is this `[n, o, oh, ow]` tensor.
    Separate(&'a [f32]),
}

/// Computes the conv `S::GEOM` (see [`ConvGeom`]) into `out`.
///
/// - `packed`: the weights as [`crate::pack::pack_conv`] laid them out, shortcut columns
///   included; `bias`: `o` values (the folded BatchNorm bias, shortcut bias added).
/// - `input`: `[n, c, h, w]`; `shortcut`: `[n, sc, sh, sw]` iff the geometry has a shortcut.
/// - `out`: `[n, o, oh, ow]`, fully overwritten (read first when `residual` is `InPlace`).
///
/// The arithmetic of each element is given in the [module docs](self); the kernel is
/// instantiated for `S` with every size a constant.
pub fn conv2d<S: ConvShape>(
    packed: &[f32],
    bias: &[f32],
    input: &[f32],
    shortcut: Option<&[f32]>,
    residual: Residual<'_>,
    out: &mut [f32],
) {
    let ops = Operands::new(packed, bias, input, shortcut, residual);
    run_all_jobs(Const::<S>(PhantomData), &ops, out);
}

/// [`conv2d`] with the geometry as a value: one shared instance of the kernel for every
/// geometry (smaller code, somewhat slower), with results identical to [`conv2d`]'s.
#[inline(always)]
pub fn conv2d_dyn(
    g: &ConvGeom,
    packed: &[f32],
    bias: &[f32],
    input: &[f32],
    shortcut: Option<&[f32]>,
    residual: Residual<'_>,
    out: &mut [f32],
) {
    let ops = Operands::new(packed, bias, input, shortcut, residual);
    run_all_jobs(Dyn(g), &ops, out);
}

/// [`conv2d_dyn`] on the portable kernel whatever the CPU: the bits of the documented
/// portable order (see the [module docs](self)), which the C back end also follows.
pub fn conv2d_dyn_portable(
    g: &ConvGeom,
    packed: &[f32],
    bias: &[f32],
    input: &[f32],
    shortcut: Option<&[f32]>,
    residual: Residual<'_>,
    out: &mut [f32],
) {
    let ops = Operands {
        engine: Engine::Portable,
        ..Operands::new(packed, bias, input, shortcut, residual)
    };
    run_all_jobs(Dyn(g), &ops, out);
}

/// Runs every job of the call, split across [`crate::threads::threads`] threads under `std`.
#[inline(always)]
fn run_all_jobs<G: Geom>(gg: G, ops: &Operands<'_>, out: &mut [f32]) {
    let g = gg.get();
    let total = job_count(&g);
    #[cfg(feature = "std")]
    {
        let threads = crate::threads::threads()
            .min(total)
            .min(g.macs() / crate::threads::MIN_MACS_PER_THREAD)
            .max(1);
        if threads > 1 {
            if split_by_pixels(&g, ops, threads) {
                return run_tiles_threaded(gg, ops, out, threads);
            }
            return run_jobs_threaded(gg, ops, out, total, threads);
        }
    }
    conv_jobs(gg, ops, 0..total, out)
}

/// Whether a call split across `threads` threads is split by output pixels (each thread
/// every output channel of its share of the tiles: [`conv_tiles`]) rather than by jobs (each
/// thread its output channels, all pixels): on a SIMD engine, with fewer images than threads
/// (else the jobs of different images split with no data read twice), and when the weights
/// take at most 4x the bytes of the input: split by channels, every thread reads (and packs)
/// the whole input; split by pixels, every thread reads all the weights, the second mostly
/// from the shared cache after the first. Each thread gets at least two tiles. resnet50 on two
/// threads (`--layers`, three runs alternating): with the bound at 1x, layer3.1-5.conv1
/// (1024 -> 256 on 14x14, weights 1.3x the input) took 0.32-0.36 ms, at 2x 0.30-0.33; at 4x
/// layer3.0.conv2 (stride 2, 2.9x) 0.78-0.82 -> 0.67-0.74 (measured with the bound at 6x,
/// where layer3's conv3, 256 -> 1024 at 5.2x, went from 0.35-0.39 to 0.38-0.43 ms); whole
/// forward pass, three runs alternating: 22.7-23.3 -> 21.9-22.4 ms.
///
/// Except a stem on AVX-512 ([`stem`]), which reads its taps in place (nothing packed, so
/// nothing packed twice) and whose threads, split by channels, each store into half of the
/// output planes (presumably the point: one block's lines of 64 planes 12544 floats apart fall
/// in few L1 sets). resnet50's conv1 on two threads (`--layers`, four runs alternating):
/// 0.82-0.94 -> 0.75-0.83 ms.
#[cfg(feature = "std")]
fn split_by_pixels(g: &ConvGeom, ops: &Operands<'_>, threads: usize) -> bool {
    let Some(nr) = ops.engine.nr() else {
        return false;
    };
    #[cfg(target_arch = "x86_64")]
    if matches!(ops.engine, Engine::Avx512(_)) && stem::applies(g) {
        return false;
    }
    let per_image_input = (g.input_len() + g.shortcut_len()) / g.n.max(1);
    g.n < threads && ops.packed.len() <= 4 * per_image_input && (g.oh * g.ow).div_ceil(nr) >= 2 * threads
}

/// Runs the call as `threads` parts of [`conv_tiles`] on the thread pool.
#[cfg(feature = "std")]
#[inline(never)]
fn run_tiles_threaded<G: Geom>(gg: G, ops: &Operands<'_>, out: &mut [f32], threads: usize) {
    let out = OutPtr::new(out);
    crate::threads::run_parts(threads, &|t| conv_tiles(gg, ops, out, t, threads));
}

/// Part `part` of `parts` of a call split by output pixels: every job (every image, group and
/// panel) for the `part`-th share of each plane's tiles (in tiles of the engine's width), so
/// the same tiles and the same bits as in one call. `out` is the whole output; parts write
/// disjoint pixels. Only on a SIMD engine ([`Engine::nr`]).
#[cfg(any(feature = "std", test))]
pub(crate) fn conv_tiles<G: Geom>(gg: G, ops: &Operands<'_>, out: OutPtr<'_>, part: usize, parts: usize) {
    match ops.engine {
        Engine::Portable => {
            let _ = (gg, out, part, parts);
            panic!("the portable kernel splits by jobs only")
        }
        #[cfg(target_arch = "x86_64")]
        Engine::Avx2Fma(s) => simd::conv_tiles(s, gg, ops, out, part, parts),
        #[cfg(target_arch = "x86_64")]
        Engine::Avx512(s) => simd::conv_tiles(s, gg, ops, out, part, parts),
        #[cfg(target_arch = "aarch64")]
        Engine::Neon(s) => simd::conv_tiles(s, gg, ops, out, part, parts),
    }
}

/// Cuts the jobs into `threads` contiguous ranges of (nearly) equal size and runs each, with
/// its own slice of `out`, on the thread pool (see [`crate::threads`]).
#[cfg(feature = "std")]
#[inline(never)]
fn run_jobs_threaded<G: Geom>(gg: G, ops: &Operands<'_>, out: &mut [f32], total: usize, threads: usize) {
    let g = gg.get();
    crate::threads::run_job_ranges(
        total,
        threads,
        out,
        &|jobs| jobs_output_range(&g, jobs),
        &|jobs, mine| conv_jobs(gg, ops, jobs, mine),
    );
}

/// A conv's output as the SIMD kernels write it: a pointer and a length rather than a
/// `&mut [f32]`, so that the parts of a call split by pixels (see [`run_tiles_threaded`]) can
/// each write their own pixels of every channel: interleaved pieces of one buffer, which
/// disjoint slices cannot express.
///
/// Created from a `&'a mut [f32]`, which stays borrowed for `'a`. Reading and writing are
/// `unsafe`: the caller keeps to the bounds, and parts that run at the same time never touch
/// the same element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutPtr<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: an `OutPtr` is a `&mut [f32]` whose accesses are `unsafe`, with the contract that
// concurrent users touch disjoint elements; `f32` is `Send` and `Sync`.
unsafe impl Send for OutPtr<'_> {}
// SAFETY: as above.
unsafe impl Sync for OutPtr<'_> {}

// Without a SIMD engine for this architecture, only the portable kernel (slices) writes.
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
impl<'a> OutPtr<'a> {
    /// The whole of `out`.
    pub(crate) fn new(out: &'a mut [f32]) -> Self {
        OutPtr {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _borrow: PhantomData,
        }
    }

    /// Elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first element's address.
    pub(crate) fn as_ptr(&self) -> *mut f32 {
        self.ptr
    }

    /// Elements `range` (bounds checked).
    pub(crate) fn sub(&self, range: Range<usize>) -> OutPtr<'a> {
        assert!(range.start <= range.end && range.end <= self.len);
        OutPtr {
            ptr: self.ptr.wrapping_add(range.start),
            len: range.len(),
            _borrow: PhantomData,
        }
    }

    /// Element `i`.
    ///
    /// # Safety
    /// `i < len`, and no other user writes element `i` meanwhile.
    #[inline(always)]
    pub(crate) unsafe fn get(&self, i: usize) -> f32 {
        debug_assert!(i < self.len);
        // SAFETY: the caller's contract.
        unsafe { self.ptr.add(i).read() }
    }

    /// Writes element `i`.
    ///
    /// # Safety
    /// `i < len`, and no other user reads or writes element `i` meanwhile.
    #[inline(always)]
    pub(crate) unsafe fn set(&self, i: usize, v: f32) {
        debug_assert!(i < self.len);
        // SAFETY: the caller's contract.
        unsafe { self.ptr.add(i).write(v) }
    }
}

/// Asks for the cache lines of `data[range]` to be brought into L2: a hint, for data a
/// kernel will read or overwrite soon (on other architectures than x86-64, nothing). Indices
/// past `data` are left out.
#[inline(always)]
pub(crate) fn prefetch_l2(data: &[f32], range: Range<usize>) {
    prefetch_l2_raw(data.as_ptr(), data.len(), range)
}

/// [`prefetch_l2`] of elements `range` of the `len` floats from `data`.
#[inline(always)]
pub(crate) fn prefetch_l2_raw(data: *const f32, len: usize, range: Range<usize>) {
    #[cfg(target_arch = "x86_64")]
    {
        // One address per cache line of 16 floats, counted from the start of `data` (which
        // need not be aligned: then a range may touch one line more than this counts, and
        // that line goes without).
        let end = range.end.min(len);
        if range.start >= end {
            return;
        }
        for line in range.start / 16..=(end - 1) / 16 {
            let at = (line * 16).max(range.start);
            // A prefetch does not fault or change memory; the address is inside `data`
            // (`at < end <= len`).
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T1 }>(
                    data.wrapping_add(at).cast(),
                )
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, len, range);
}

/// Where a kernel (this one or [`crate::winograd`]'s) reads the geometry: a constant
/// ([`Const`]) or a value ([`Dyn`]).
pub(crate) trait Geom: Copy + Send + Sync {
    /// The geometry; for [`Const`], a constant the optimizer folds into the code.
    fn get(self) -> ConvGeom;
}

/// The geometry of a [`ConvShape`], as a constant. (`fn() -> S`: a marker that is `Send` and
/// `Sync` whatever `S` is, since no `S` is ever held.)
#[derive(Debug)]
pub(crate) struct Const<S>(pub(crate) PhantomData<fn() -> S>);

impl<S> Clone for Const<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Const<S> {}

impl<S: ConvShape> Geom for Const<S> {
    #[inline(always)]
    fn get(self) -> ConvGeom {
        S::GEOM
    }
}

/// A geometry read at run time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dyn<'a>(pub(crate) &'a ConvGeom);

impl Geom for Dyn<'_> {
    #[inline(always)]
    fn get(self) -> ConvGeom {
        *self.0
    }
}

/// The read-only operands of a call, as [`conv2d`] takes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operands<'a> {
    packed: &'a [f32],
    bias: &'a [f32],
    input: &'a [f32],
    /// Empty without a shortcut.
    shortcut: &'a [f32],
    residual: Residual<'a>,
    /// The kernel to run on: the process's choice ([`crate::isa::isa`]) unless forced.
    engine: Engine,
}

impl<'a> Operands<'a> {
    pub(crate) fn new(
        packed: &'a [f32],
        bias: &'a [f32],
        input: &'a [f32],
        shortcut: Option<&'a [f32]>,
        residual: Residual<'a>,
    ) -> Self {
        Self {
            packed,
            bias,
            input,
            shortcut: shortcut.unwrap_or(&[]),
            residual,
            engine: Engine::chosen(),
        }
    }
}

/// Units of work: one panel of [`MR`] output channels of one group of one image, ordered
/// `(b, group, panel)`. Each writes output channels `[gi*og + p*MR, gi*og + min((p+1)*MR, og))`
/// of image `b`, and consecutive jobs write consecutive memory, so a range of jobs owns one
/// contiguous slice of `out` ([`jobs_output_range`]): the unit a threaded caller splits.
pub(crate) const fn job_count(g: &ConvGeom) -> usize {
    g.n * g.groups * panels_per_group(g)
}

/// The `(b, gi, p)` of job `q`.
const fn job_coords(g: &ConvGeom, q: usize) -> (usize, usize, usize) {
    panel_job_coords(g, MR, q)
}

/// The output element range that jobs `jobs` write.
pub(crate) const fn jobs_output_range(g: &ConvGeom, jobs: Range<usize>) -> Range<usize> {
    panel_jobs_output_range(g, MR, jobs)
}

/// For jobs ordered `(b, group, panel)` with panels of `mr` output channels (the last of a
/// group may be partial), as this kernel's and [`crate::winograd`]'s are: the `(b, gi, p)` of
/// job `q`.
pub(crate) const fn panel_job_coords(g: &ConvGeom, mr: usize, q: usize) -> (usize, usize, usize) {
    let ppg = (g.o / g.groups).div_ceil(mr);
    (q / (g.groups * ppg), q / ppg % g.groups, q % ppg)
}

/// For jobs laid out as in [`panel_job_coords`]: the output element range jobs `jobs` write
/// (consecutive jobs write consecutive memory).
pub(crate) const fn panel_jobs_output_range(g: &ConvGeom, mr: usize, jobs: Range<usize>) -> Range<usize> {
    let ohw = g.oh * g.ow;
    let og = g.o / g.groups;
    let count = g.n * g.groups * og.div_ceil(mr);
    let start = if jobs.start >= count {
        g.output_len()
    } else {
        let (b, gi, p) = panel_job_coords(g, mr, jobs.start);
        (b * g.o + gi * og + p * mr) * ohw
    };
    let end = if jobs.end <= jobs.start {
        start
    } else {
        let (b, gi, p) = panel_job_coords(g, mr, jobs.end - 1);
        let rows = if (p + 1) * mr < og { (p + 1) * mr } else { og };
        (b * g.o + gi * og + rows) * ohw
    };
    start..end
}

/// Runs jobs `jobs` (see [`job_count`]); `out` is exactly their [`jobs_output_range`] of the
/// output, and `ops.residual`, when `Separate`, is the whole `[n, o, oh, ow]` tensor.
pub(crate) fn conv_jobs<G: Geom>(gg: G, ops: &Operands<'_>, jobs: Range<usize>, out: &mut [f32]) {
    let g = gg.get();
    let ohw = g.oh * g.ow;
    let og = g.o / g.groups;
    let ppg = panels_per_group(&g);
    debug_assert!(g.groups >= 1 && g.o.is_multiple_of(g.groups) && g.c.is_multiple_of(g.groups));
    debug_assert!(g.k >= 1 && g.stride >= 1 && g.dilation >= 1 && g.h >= 1 && g.w >= 1);
    debug_assert!(g.c >= g.groups && g.o >= g.groups, "every group has channels");
    debug_assert!(
        g.shortcut.is_none() || g.groups == 1,
        "a conv with a shortcut has one group"
    );
    debug_assert!(g.h + 2 * g.pad > g.dilation * (g.k - 1) && g.w + 2 * g.pad > g.dilation * (g.k - 1));
    debug_assert_eq!(
        g.oh,
        (g.h + 2 * g.pad - g.dilation * (g.k - 1) - 1) / g.stride + 1
    );
    debug_assert_eq!(
        g.ow,
        (g.w + 2 * g.pad - g.dilation * (g.k - 1) - 1) / g.stride + 1
    );
    if let Some(s) = g.shortcut {
        debug_assert!(s.stride >= 1 && (g.oh - 1) * s.stride < s.h && (g.ow - 1) * s.stride < s.w);
    }
    debug_assert_eq!(ops.packed.len(), crate::pack::packed_conv_len(&g));
    debug_assert_eq!(ops.bias.len(), g.o);
    debug_assert_eq!(ops.input.len(), g.input_len());
    debug_assert_eq!(ops.shortcut.len(), g.shortcut_len());
    debug_assert!(jobs.start <= jobs.end && jobs.end <= job_count(&g));
    let range = jobs_output_range(&g, jobs.clone());
    debug_assert_eq!(out.len(), range.len());
    debug_assert_eq!(g.residual, !matches!(ops.residual, Residual::None));
    if let Residual::Separate(r) = ops.residual {
        debug_assert_eq!(r.len(), g.output_len());
    }
    if ohw == 0 {
        return;
    }

    // Split the job range into runs that share (b, gi) and hand each its slice of `out`.
    let mut rest = out;
    let mut abs = range.start;
    let mut q = jobs.start;
    while q < jobs.end {
        let (b, gi, p_lo) = job_coords(&g, q);
        let p_hi = if jobs.end - q < ppg - p_lo {
            p_lo + (jobs.end - q)
        } else {
            ppg
        };
        let rows = if p_hi * MR < og { p_hi * MR } else { og } - p_lo * MR;
        let (run, tail) = rest.split_at_mut(rows * ohw);
        let residual = match ops.residual {
            Residual::Separate(r) => Residual::Separate(&r[abs..abs + run.len()]),
            other => other,
        };
        let run_ops = Operands { residual, ..*ops };
        conv_run(gg, &run_ops, b, gi, p_lo..p_hi, run);
        abs += run.len();
        rest = tail;
        q += p_hi - p_lo;
    }
}

/// The accumulator tile: `acc[j][r]` is output channel `r` of the panel at pixel `j` of the
/// tile, so one `[f32; MR]` row is one vector register (two with 128-bit vectors).
type Acc = [[f32; MR]; NR];

/// Panels `panels` of group `gi` of image `b`; `out` (and a `Separate` residual) are exactly
/// the output channels those panels write.
#[inline(always)]
fn conv_run<G: Geom>(gg: G, ops: &Operands<'_>, b: usize, gi: usize, panels: Range<usize>, out: &mut [f32]) {
    // Every pixel of the planes (SIMD engines).
    #[allow(unused_variables)]
    let all = 0..gg.get().oh * gg.get().ow;
    match ops.engine {
        Engine::Portable => conv_run_portable(gg, ops, b, gi, panels, out),
        #[cfg(target_arch = "x86_64")]
        Engine::Avx2Fma(s) => simd::conv_run(s, gg, ops, b, gi, panels, OutPtr::new(out), all),
        #[cfg(target_arch = "x86_64")]
        Engine::Avx512(s) => simd::conv_run(s, gg, ops, b, gi, panels, OutPtr::new(out), all),
        #[cfg(target_arch = "aarch64")]
        Engine::Neon(s) => simd::conv_run(s, gg, ops, b, gi, panels, OutPtr::new(out), all),
    }
}

/// [`conv_run`] on the portable kernel.
#[inline(always)]
fn conv_run_portable<G: Geom>(
    gg: G,
    ops: &Operands<'_>,
    b: usize,
    gi: usize,
    panels: Range<usize>,
    out: &mut [f32],
) {
    let g = gg.get();
    let ohw = g.oh * g.ow;
    let hw = g.h * g.w;
    let og = g.o / g.groups;
    let cg = g.c / g.groups;
    let k_total = g.k_total();
    let k_main = g.k_main();
    let ppg = panels_per_group(&g);
    let input = &ops.input[(b * g.c + gi * cg) * hw..][..cg * hw];
    let (sc_c, sc_hw, sc_stride) = match g.shortcut {
        Some(s) => (s.c, s.h * s.w, s.stride),
        None => (0, 0, 0),
    };
    let shortcut = &ops.shortcut[b * sc_c * sc_hw..][..sc_c * sc_hw];
    let (all_a, _) = ops.packed.as_chunks::<MR>();

    // Pixels per block: the block's input footprint (each output pixel owns about
    // `stride^2` input pixels per channel) near BLOCK_BYTES, at least one tile.
    let px_bytes = 4 * (cg * g.stride * g.stride + sc_c * sc_stride * sc_stride);
    let block = (BLOCK_BYTES / px_bytes.max(1)).max(NR) / NR * NR;

    let mut blk = 0;
    while blk < ohw {
        let blk_end = if ohw - blk < block { ohw } else { blk + block };
        for p in panels.clone() {
            let local = (p - panels.start) * MR;
            let rows = if og - p * MR < MR { og - p * MR } else { MR };
            let a = &all_a[(gi * ppg + p) * k_total..][..k_total];
            let (a_main, a_sc) = a.split_at(k_main);
            let bias = &ops.bias[gi * og + p * MR..][..rows];
            let mut p0 = blk;
            while p0 < blk_end {
                let nv = if blk_end - p0 < NR { blk_end - p0 } else { NR };
                let tile = Tile::new(&g, p0, nv);
                let mut acc = tile.main(gg, a_main, input);
                if sc_c > 0 {
                    acc = tile.shortcut(gg, acc, a_sc, shortcut);
                }
                epilogue(&g, &acc, bias, ops.residual, out, local, p0, nv);
                p0 += NR;
            }
        }
        blk = blk_end;
    }
}

/// `acc[j][r] += a[r] * b[j]`: the rank-1 update of the accumulator tile, one GEMM step.
/// Written over fixed-size arrays so that LLVM keeps `acc` in registers and vectorizes over
/// `r` (a weight vector times a broadcast input value).
#[inline(always)]
fn step(acc: &mut Acc, a: &[f32; MR], b: &[f32; NR]) {
    for j in 0..NR {
        let bj = b[j];
        for r in 0..MR {
            acc[j][r] += a[r] * bj;
        }
    }
}

/// `NR` consecutive values of `plane` from `off`.
#[inline(always)]
fn load(plane: &[f32], off: usize) -> [f32; NR] {
    let mut v = [0.0; NR];
    v.copy_from_slice(&plane[off..off + NR]);
    v
}

/// `NR` values of `plane` from `off`, `s` apart.
#[inline(always)]
fn load_strided(plane: &[f32], off: usize, s: usize) -> [f32; NR] {
    let mut v = [0.0; NR];
    for (d, &x) in v
        .iter_mut()
        .zip(plane[off..off + (NR - 1) * s + 1].iter().step_by(s))
    {
        *d = x;
    }
    v
}

/// The geometry of one tile's `NR` lanes. Lanes past the image's last pixel (`j >= nv`)
/// repeat the last real lane, so they read valid memory; their results are not stored.
#[derive(Debug)]
struct Tile {
    /// Top-left input coordinates of each lane's window: `y*s - p`, `x*s - p`.
    iy0: [isize; NR],
    ix0: [isize; NR],
    /// `iy0 * w + ix0`: the window origin as an offset in an input plane (may be negative).
    base: [isize; NR],
    /// Extremes of `iy0` and `ix0` over the lanes: a tap `(i, j)` is in range for every
    /// lane iff `iy_min + i*d >= 0`, `iy_max + i*d < h` and likewise for columns.
    iy_min: isize,
    iy_max: isize,
    ix_min: isize,
    ix_max: isize,
    /// `base[j] == base[0] + j` for all lanes: the tile reads consecutive input pixels.
    contig: bool,
    /// `base[j] == base[0] + j * stride` for all lanes (one output row).
    strided: bool,
    /// The shortcut pixel of each lane as an offset in a shortcut plane.
    sc: [usize; NR],
    /// `sc[j] == sc[0] + j` for all lanes.
    sc_contig: bool,
}

impl Tile {
    /// The tile of output pixels `p0 .. p0 + nv` (flattened `y * ow + x`), `1 <= nv <= NR`.
    #[inline(always)]
    fn new(g: &ConvGeom, p0: usize, nv: usize) -> Self {
        let (sc_s, sc_w) = g.shortcut.map_or((0, 0), |s| (s.stride, s.w));
        let (mut y, mut x) = (p0 / g.ow, p0 % g.ow);
        let mut t = Tile {
            iy0: [0; NR],
            ix0: [0; NR],
            base: [0; NR],
            iy_min: isize::MAX,
            iy_max: isize::MIN,
            ix_min: isize::MAX,
            ix_max: isize::MIN,
            contig: nv == NR,
            strided: nv == NR,
            sc: [0; NR],
            sc_contig: nv == NR,
        };
        for j in 0..NR {
            let iy = (y * g.stride) as isize - g.pad as isize;
            let ix = (x * g.stride) as isize - g.pad as isize;
            t.iy0[j] = iy;
            t.ix0[j] = ix;
            t.base[j] = iy * g.w as isize + ix;
            t.iy_min = t.iy_min.min(iy);
            t.iy_max = t.iy_max.max(iy);
            t.ix_min = t.ix_min.min(ix);
            t.ix_max = t.ix_max.max(ix);
            t.contig &= t.base[j] == t.base[0] + j as isize;
            t.strided &= t.base[j] == t.base[0] + (j * g.stride) as isize;
            t.sc[j] = y * sc_s * sc_w + x * sc_s;
            t.sc_contig &= t.sc[j] == t.sc[0] + j;
            if j + 1 < nv {
                x += 1;
                if x == g.ow {
                    x = 0;
                    y += 1;
                }
            }
        }
        t
    }

    /// The main part's sum, `K = (ci, i, j)` ascending, from a zero tile.
    #[inline(always)]
    fn main<G: Geom>(&self, gg: G, a: &[[f32; MR]], input: &[f32]) -> Acc {
        let g = gg.get();
        let (h, w) = (g.h as isize, g.w as isize);
        let reach = (g.k as isize - 1) * g.dilation as isize;
        let interior =
            self.iy_min >= 0 && self.iy_max + reach < h && self.ix_min >= 0 && self.ix_max + reach < w;
        if interior {
            // Every tap of every lane is in range: offsets are non-negative and in bounds.
            let base = self.base[0] as usize;
            if self.contig {
                taps(gg, a, input, &Contig { base })
            } else if self.strided {
                taps(gg, a, input, &Strided { base })
            } else {
                taps(
                    gg,
                    a,
                    input,
                    &Gather {
                        base: core::array::from_fn(|l| self.base[l] as usize),
                    },
                )
            }
        } else if g.k * g.k <= TABLE_TAPS && g.h * g.w <= i32::MAX as usize {
            taps(gg, a, input, &TapTable::new(self, &g))
        } else {
            // Kernels too large for a table: bounds per tap and lane.
            taps(gg, a, input, &OnTheFly { tile: self })
        }
    }

    /// Lane `l`'s input offset for the tap at `(dy, dx) = (i*d, j*d)`, `None` in the padding.
    #[inline(always)]
    fn tap_offset(&self, g: &ConvGeom, l: usize, dy: isize, dx: isize) -> Option<usize> {
        // A negative coordinate becomes a huge `usize` and fails the bound test.
        let (iy, ix) = ((self.iy0[l] + dy) as usize, (self.ix0[l] + dx) as usize);
        if iy < g.h && ix < g.w {
            Some(iy * g.w + ix)
        } else {
            None
        }
    }

    /// Adds the shortcut's columns, `cs` ascending, to `acc`.
    #[inline(always)]
    fn shortcut<G: Geom>(&self, gg: G, acc: Acc, a: &[[f32; MR]], sc: &[f32]) -> Acc {
        if self.sc_contig {
            shortcut_contig(gg, acc, a, sc, self.sc[0])
        } else {
            shortcut_gather(gg, acc, a, sc, &self.sc)
        }
    }
}

/// The shortcut columns of a tile whose lanes read consecutive shortcut pixels from `off`.
#[inline(never)]
fn shortcut_contig<G: Geom>(gg: G, mut acc: Acc, a: &[[f32; MR]], sc: &[f32], off: usize) -> Acc {
    let g = gg.get();
    let sc_hw = g.shortcut.map_or(1, |s| s.h * s.w);
    for (a, plane) in a.iter().zip(sc.chunks_exact(sc_hw)) {
        step(&mut acc, a, &load(plane, off));
    }
    acc
}

/// The shortcut columns of a tile whose lanes read shortcut pixels `off[l]`.
#[inline(never)]
fn shortcut_gather<G: Geom>(gg: G, mut acc: Acc, a: &[[f32; MR]], sc: &[f32], off: &[usize; NR]) -> Acc {
    let g = gg.get();
    let sc_hw = g.shortcut.map_or(1, |s| s.h * s.w);
    for (a, plane) in a.iter().zip(sc.chunks_exact(sc_hw)) {
        step(&mut acc, a, &core::array::from_fn(|l| plane[off[l]]));
    }
    acc
}

/// Loads the tile's input values of one main tap.
trait Fetch {
    /// The `NR` lane values of tap `(i, j)` (`t = i * k + j`) in the channel plane `plane`.
    fn fetch(&self, g: &ConvGeom, plane: &[f32], i: usize, j: usize, t: usize) -> [f32; NR];
}

/// Interior tile, consecutive lanes from `base`: one contiguous load per tap.
struct Contig {
    base: usize,
}

impl Fetch for Contig {
    #[inline(always)]
    fn fetch(&self, g: &ConvGeom, plane: &[f32], i: usize, j: usize, _: usize) -> [f32; NR] {
        load(plane, self.base + (i * g.w + j) * g.dilation)
    }
}

/// Interior tile within one output row: lanes `stride` apart from `base`.
struct Strided {
    base: usize,
}

impl Fetch for Strided {
    #[inline(always)]
    fn fetch(&self, g: &ConvGeom, plane: &[f32], i: usize, j: usize, _: usize) -> [f32; NR] {
        load_strided(plane, self.base + (i * g.w + j) * g.dilation, g.stride)
    }
}

/// Interior tile, any lanes: one load per lane, from `base[l]`.
struct Gather {
    base: [usize; NR],
}

impl Fetch for Gather {
    #[inline(always)]
    fn fetch(&self, g: &ConvGeom, plane: &[f32], i: usize, j: usize, _: usize) -> [f32; NR] {
        let off = (i * g.w + j) * g.dilation;
        core::array::from_fn(|l| plane[self.base[l] + off])
    }
}

/// Border tile of a kernel too large for a [`TapTable`]: bounds per tap and lane.
struct OnTheFly<'a> {
    tile: &'a Tile,
}

impl Fetch for OnTheFly<'_> {
    #[inline(always)]
    fn fetch(&self, g: &ConvGeom, plane: &[f32], i: usize, j: usize, _: usize) -> [f32; NR] {
        let (dy, dx) = ((i * g.dilation) as isize, (j * g.dilation) as isize);
        core::array::from_fn(|l| self.tile.tap_offset(g, l, dy, dx).map_or(0.0, |o| plane[o]))
    }
}

/// The main part's sum for one tile, from a zero tile: for each input channel `ci` (one plane
/// of `input`), kernel rows `i`, kernel columns `j`, one [`step`] with the tap's weights and
/// the values `f` loads. Not inlined: each load form gets its own tight loop nest.
#[inline(never)]
fn taps<G: Geom, F: Fetch>(gg: G, a: &[[f32; MR]], input: &[f32], f: &F) -> Acc {
    let g = gg.get();
    let (k, hw) = (g.k, g.h * g.w);
    let mut acc = [[0.0f32; MR]; NR];
    if k == 1 {
        for (a, plane) in a.iter().zip(input.chunks_exact(hw)) {
            step(&mut acc, a, &f.fetch(&g, plane, 0, 0, 0));
        }
    } else {
        for (a_ci, plane) in a.chunks_exact(k * k).zip(input.chunks_exact(hw)) {
            for (i, a_i) in a_ci.chunks_exact(k).enumerate() {
                for (j, a) in a_i.iter().enumerate() {
                    step(&mut acc, a, &f.fetch(&g, plane, i, j, i * k + j));
                }
            }
        }
    }
    acc
}

/// Kernel taps (`k * k`) up to which a border tile precomputes its [`TapTable`]: 7x7, the
/// largest ResNet kernel. The table takes about `TABLE_TAPS * (4 * NR + 5)` bytes of stack
/// (1.8 KB with `NR = 8`).
const TABLE_TAPS: usize = 49;

/// How one tap `t = i * k + j` of a border tile loads its lanes, the same for every channel.
#[derive(Debug, Clone, Copy)]
enum TapKind {
    /// Every lane in range, consecutive: `NR` values from `start`.
    Contig,
    /// Each lane from `off[l]`, zero where `off[l] < 0`.
    Gather,
}

/// A border tile's per-tap load plan, built once per tile and reused for every channel.
#[derive(Debug)]
struct TapTable {
    /// Lane offsets in the plane per tap, `-1` for padding.
    off: [[i32; NR]; TABLE_TAPS],
    /// The contiguous window's start per tap (meaningful for the `Contig*` kinds).
    start: [u32; TABLE_TAPS],
    kind: [TapKind; TABLE_TAPS],
}

impl TapTable {
    /// Needs `k * k <= TABLE_TAPS` and `h * w <= i32::MAX`.
    #[inline(always)]
    fn new(t: &Tile, g: &ConvGeom) -> Self {
        let d = g.dilation as isize;
        let mut tab = TapTable {
            off: [[-1; NR]; TABLE_TAPS],
            start: [0; TABLE_TAPS],
            kind: [TapKind::Gather; TABLE_TAPS],
        };
        for i in 0..g.k {
            for j in 0..g.k {
                let ti = i * g.k + j;
                let (dy, dx) = (i as isize * d, j as isize * d);
                let mut full = true;
                for l in 0..NR {
                    let o = t.tap_offset(g, l, dy, dx);
                    full &= o.is_some();
                    tab.off[ti][l] = o.map_or(-1, |o| o as i32);
                }
                // With consecutive lanes the window is `base[0] + dy*w + dx ..` even where a
                // lane's own coordinates fall in the padding.
                let start = t.base[0] + dy * g.w as isize + dx;
                tab.start[ti] = start.max(0) as u32;
                tab.kind[ti] = if t.contig && full {
                    TapKind::Contig
                } else {
                    TapKind::Gather
                };
            }
        }
        tab
    }
}

impl Fetch for TapTable {
    #[inline(always)]
    fn fetch(&self, _: &ConvGeom, plane: &[f32], _: usize, _: usize, t: usize) -> [f32; NR] {
        let off = &self.off[t];
        match self.kind[t] {
            TapKind::Contig => load(plane, self.start[t] as usize),
            // A padding lane's offset, -1, becomes `usize::MAX` and misses the plane: it reads
            // a zero from elsewhere instead. Selecting the address rather than the value keeps
            // each lane a load that the step can broadcast straight from memory.
            TapKind::Gather => core::array::from_fn(|l| *plane.get(off[l] as usize).unwrap_or(&0.0)),
        }
    }
}

/// Stores the tile: `v = acc + bias`, `+ residual`, ReLU, for the `bias.len()` real rows and
/// `nv` real lanes. `out` holds the run's channels; `row0` is the panel's first row in it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn epilogue(
    g: &ConvGeom,
    acc: &Acc,
    bias: &[f32],
    residual: Residual<'_>,
    out: &mut [f32],
    row0: usize,
    p0: usize,
    nv: usize,
) {
    let ohw = g.oh * g.ow;
    let relu = |v: f32| if g.relu && v < 0.0 { 0.0 } else { v };
    for (r, &bo) in bias.iter().enumerate() {
        let at = (row0 + r) * ohw + p0;
        let dst = &mut out[at..at + nv];
        match residual {
            Residual::None => {
                for (j, o) in dst.iter_mut().enumerate() {
                    *o = relu(acc[j][r] + bo);
                }
            }
            Residual::InPlace => {
                for (j, o) in dst.iter_mut().enumerate() {
                    *o = relu(acc[j][r] + bo + *o);
                }
            }
            Residual::Separate(res) => {
                for ((j, o), &rv) in dst.iter_mut().enumerate().zip(&res[at..at + nv]) {
                    *o = relu(acc[j][r] + bo + rv);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reference::*;
    use super::*;

    /// `(n, c, (h, w), o, k, stride, pad, dilation, groups)`.
    type Case = (
        usize,
        usize,
        (usize, usize),
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
    );

    /// `(n, c, (h, w), o, k, stride, pad, (shortcut channels, shortcut stride, extra))`.
    type ScCase = (
        usize,
        usize,
        (usize, usize),
        usize,
        usize,
        usize,
        usize,
        (usize, usize, usize),
    );

    /// Runs `d` on `engine`, with the geometry read through `gg`, on one thread.
    fn run_on<G: Geom>(gg: G, d: &ConvData, mode: ResMode, engine: Engine) -> Vec<f32> {
        run_with(d, mode, |packed, bias, input, sc, res, out| {
            let ops = Operands {
                engine,
                ..Operands::new(packed, bias, input, sc, res)
            };
            conv_jobs(gg, &ops, 0..job_count(&d.g), out)
        })
    }

    /// Checks every engine this machine runs against the f64 reference (tolerance from the
    /// error bound of f32 recursive summation, which fused multiply-adds only tighten) and
    /// bit for bit against its documented f32 order.
    fn check(g: ConvGeom, mode: ResMode, seed: u64) {
        if too_big_for_miri(g.macs()) {
            return;
        }
        let mut rng = Rng::new(seed);
        let d = ConvData::random(g, &mut rng);
        let refs = conv_f64(&d);
        let k = g.k_total() as f64 + 3.0;
        for engine in engines() {
            let got = run_on(Dyn(&g), &d, mode, engine);
            let exact = conv_f32_for(&d, engine);
            assert_eq!(got.len(), g.output_len());
            for (i, ((&v, &e), &(r, mag))) in got.iter().zip(&exact).zip(&refs).enumerate() {
                let r = if g.relu && r < 0.0 { 0.0 } else { r };
                let tol = k * f64::from(f32::EPSILON) * mag + 1e-30;
                assert!(
                    (f64::from(v) - r).abs() <= tol,
                    "{engine:?} {g:?} {mode:?} at {i}: {v} vs {r} (tol {tol})"
                );
                assert_eq!(
                    v.to_bits(),
                    e.to_bits(),
                    "{engine:?} {g:?} {mode:?} at {i}: {v} vs documented order {e}"
                );
            }
        }
    }

    /// The public entry points run the process's engine ([`conv2d_dyn`]) and the portable
    /// one ([`conv2d_dyn_portable`]).
    #[test]
    fn entry_points_pick_their_engine() {
        let g = conv_geom(1, 5, (6, 7), 11, 3, 1, 1, 1, 1, Some((3, 2, 1)), true, true);
        let d = ConvData::random(g, &mut Rng::new(3));
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
        let chosen = conv_f32_for(&d, Engine::chosen());
        assert!(same(&run_kernel(&d, ResMode::InPlace), &chosen));
        let portable = run_with(&d, ResMode::InPlace, |p, b, i, sc, r, out| {
            conv2d_dyn_portable(&g, p, b, i, sc, r, out)
        });
        assert!(same(&portable, &conv_f32_exact(&d)));
        assert_eq!(Engine::chosen().isa(), crate::isa::isa());
    }

    #[test]
    fn hand_picked_geometries() {
        let nr = NR;
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // n, c, (h, w), o, k, s, pad, dil, groups
            (1, 3, (16, 16), 8, 7, 2, 3, 1, 1),      // stem-like
            // Few input channels (AVX-512: the stem kernel), planes wide enough for blocks read
            // in place as well as through the zero-padded window; 24 and 40 channels: a vector
            // partly used, a pair of vectors with one.
            (1, 3, (40, 64), 24, 7, 2, 3, 1, 1),
            (1, 4, (20, 40), 40, 3, 1, 2, 2, 1),
            (1, 3, (13, 7), 9, 7, 2, 3, 1, 1),
            (1, 8, (5, 11), 8, 3, 1, 1, 1, 1),
            (3, 9, (13, 7), 17, 3, 1, 1, 1, 1),
            (1, 7, (7, 7), 7, 3, 2, 1, 1, 1),
            (1, 17, (9, 9), 9, 1, 1, 0, 1, 1),
            (2, 1, (1, nr), 1, 1, 1, 0, 1, 1),
            (1, 4, (3, nr - 1), 8, 1, 1, 0, 1, 1),
            (1, 4, (3, nr + 1), 9, 1, 1, 0, 1, 1),
            (1, 4, (2, 2 * nr + 1), 16, 1, 2, 0, 1, 1),
            (1, 5, (1, 1), 3, 3, 1, 1, 1, 1),        // every tap but the centre is padding
            (1, 6, (2, 3), 5, 3, 1, 1, 1, 1),
            (1, 8, (12, 12), 8, 3, 1, 2, 2, 1),      // dilated
            (1, 8, (17, 9), 8, 3, 1, 4, 4, 1),
            (1, 2, (11, 10), 4, 3, 2, 4, 4, 1),
            (2, 8, (9, 9), 8, 3, 1, 1, 1, 2),        // groups, og = 4
            (1, 16, (7, 5), 16, 3, 2, 1, 1, 4),      // og = 4
            (1, 64, (6, 6), 64, 3, 1, 1, 1, 32),     // resnext-like: og = 2
            (1, 128, (5, 5), 128, 3, 2, 1, 1, 32),   // og = 4
            (1, 32, (4, 9), 288, 3, 1, 1, 1, 32),    // og = 9
            (1, 32, (3, 3), 256, 1, 1, 0, 1, 32),    // og = 8
            (1, 4, (6, 6), 4, 3, 1, 1, 1, 4),        // depthwise, og = 1
            (1, 16, (7, 7), 16, 7, 1, 3, 1, 1),
            (1, 3, (4, 4), 5, 3, 3, 0, 1, 1),        // stride larger than kernel reach
            (1, 2, (5, 6), 3, 5, 1, 0, 1, 1),        // no padding, kernel larger than stride
            (1, 2, (12, 11), 3, 9, 1, 4, 1, 1),      // too many taps for a tap table
            (2, 3, (10, 19), 4, 9, 2, 8, 2, 1),
            (1, 9, (9, 2 * nr + 5), 9, 3, 2, 1, 1, 1), // interior tiles within a row, stride 2
            // A last tile of 1 or 2 pixels after whole ones (49 and 50 pixels: 48 + 1, 4 x 12 + 2, ...),
            // which the SIMD engines run along output channels, or, one pixel after a whole
            // AVX-512 tile, with it (`Simd::EXTRA`): K chunked, a partial panel, groups, in
            // place, more panels than one block of 8.
            (1, 40, (7, 7), 20, 3, 1, 1, 1, 1),
            (1, 24, (5, 10), 12, 1, 1, 0, 1, 1),
            (1, 32, (7, 7), 64, 3, 1, 1, 1, 4),
            (1, 8, (7, 7), 136, 1, 1, 0, 1, 1),
            (1, 130, (5, 7), 272, 1, 1, 0, 1, 1),   // K chunked, more panels than a group
            (1, 300, (7, 7), 24, 1, 1, 0, 1, 1),    // read in place: K in one chunk (AVX-512)
            (2, 16, (14, 14), 24, 3, 2, 1, 1, 1),
            (1, 20, (4, 13), 40, 3, 1, 1, 1, 1),     // last tiles of 4 (kernel): 48 + 4, 4 x 12 + 4, 3 x 16 + 4
            (1, 36, (14, 14), 16, 1, 1, 0, 1, 1),    // 196 = 4 x 49 (AVX-512), 16 x 12 + 4, as resnet's layer3
            (1, 240, (14, 14), 16, 1, 1, 0, 1, 1),   // K = 240 in two chunks of 128 rows, not three of 96 (AVX-512: `BUF_TWO`)
            // Groups of blocks whose next group's weights have fewer lines than the tiles that
            // share out their prefetch (`NextWeights`): K = 2, 256 rows then 8 (AVX-512), 64 tiles.
            (1, 2, (24, 128), 264, 1, 1, 0, 1, 1),
            // Small enough for Miri, one per load form:
            (1, 1, (2, 3), 1, 9, 1, 4, 1, 1),        // on-the-fly bounds (k * k > TABLE_TAPS)
            (1, 1, (5, 3 * nr), 2, 3, 1, 0, 1, 1),   // interior: contiguous and wrapped tiles
            (1, 1, (5, 4 * nr + 3), 2, 3, 2, 0, 1, 1), // interior, strided
        ];
        for (t, &(n, c, hw, o, k, s, pad, dil, groups)) in cases.iter().enumerate() {
            for relu in [false, true] {
                let g = conv_geom(n, c, hw, o, k, s, pad, dil, groups, None, false, relu);
                check(g, ResMode::None, t as u64);
                let g = conv_geom(n, c, hw, o, k, s, pad, dil, groups, None, true, relu);
                check(g, ResMode::InPlace, t as u64 + 100);
                check(g, ResMode::Separate, t as u64 + 200);
            }
        }
    }

    #[test]
    fn shortcut_geometries() {
        #[rustfmt::skip]
        let cases: &[ScCase] = &[
            // n, c, (h, w), o, k, s, pad, (sc channels, sc stride, extra)
            (1, 4, (7, 7), 16, 1, 1, 0, (8, 2, 0)),      // bottleneck conv3 after a stride-2 conv2
            (1, 4, (7, 7), 16, 1, 1, 0, (8, 2, 1)),
            (2, 130, (7, 7), 24, 1, 1, 0, (100, 2, 1)),  // both read in place (AVX-512), K > a chunk
            (2, 40, (14, 14), 24, 1, 1, 0, (70, 2, 1)),  // 14x14: subsampled, then packed
            (1, 6, (10, 13), 9, 3, 1, 1, (11, 2, 0)),    // 130 pixels, 3x3: subsampled, packed
            (3, 8, (5, 11), 9, 1, 1, 0, (7, 1, 0)),      // stride-1 projection
            (1, 8, (5, 11), 17, 3, 1, 1, (3, 2, 1)),     // basic block conv2 with projection
            (2, 9, (13, 7), 8, 3, 1, 1, (5, 2, 0)),
            (1, 3, (1, 9), 1, 1, 1, 0, (1, 3, 2)),
            (1, 5, (4, 4), 7, 3, 2, 1, (4, 1, 0)),
            (1, 2, (2, 2 * NR), 3, 1, 1, 0, (2, 1, 0)),  // contiguous shortcut, small for Miri
            (1, 3, (3, 2 * NR + 1), 5, 1, 1, 0, (4, 1, 0)), // contiguous, but packed: over two tiles
        ];
        for (t, &(n, c, hw, o, k, s, pad, sc)) in cases.iter().enumerate() {
            for (residual, mode) in [
                (false, ResMode::None),
                (true, ResMode::InPlace),
                (true, ResMode::Separate),
            ] {
                for relu in [false, true] {
                    let g = conv_geom(n, c, hw, o, k, s, pad, 1, 1, Some(sc), residual, relu);
                    check(g, mode, t as u64 + 300);
                }
            }
        }
    }

    /// Random geometries over the parameters the brief lists, each combination drawn
    /// independently, so that interactions (tails x wraps x padding x groups) get covered.
    #[test]
    fn random_geometries() {
        let mut rng = Rng::new(42);
        let count = if cfg!(miri) { 4 } else { 400 };
        let nr = NR;
        let mut done = 0;
        while done < count {
            let k: usize = rng.pick(&[1, 1, 3, 3, 5, 7]);
            let s = rng.pick(&[1, 1, 2, 3]);
            let pad = rng.pick(&[0, 1, 1, 2, 3]);
            let dil = if k > 1 { rng.pick(&[1, 1, 1, 2, 4]) } else { 1 };
            let groups = rng.pick(&[1, 1, 1, 2, 4, 32]);
            let cg = rng.pick(&[1, 2, 3, 4, 7, 8, 9, 17]);
            let og = rng.pick(&[1, 4, 7, 8, 9, 16, 17]);
            let ow_target = rng.pick(&[1, nr - 1, nr, nr + 1, 2 * nr + 3, 5, 11]);
            let h = rng.pick(&[1, 2, 5, 7, 11, 13]);
            // Input width giving roughly the target output width.
            let w = ow_target * s + (dil * (k - 1) + 1).saturating_sub(2 * pad);
            let n = rng.pick(&[1, 1, 3]);
            if h + 2 * pad < dil * (k - 1) + 1 || w + 2 * pad < dil * (k - 1) + 1 {
                continue;
            }
            if groups > 8 && cg * og > 16 {
                continue; // keep the naive reference fast
            }
            let shortcut = if groups == 1 && rng.below(3) == 0 {
                Some((rng.pick(&[1, 3, 8, 9]), rng.pick(&[1, 2]), rng.below(2)))
            } else {
                None
            };
            let shortcut = shortcut.map(|(c, ss, e)| (c, ss, e.min(ss - 1)));
            let mode = rng.pick(&[ResMode::None, ResMode::InPlace, ResMode::Separate]);
            let relu = rng.below(2) == 0;
            let g = conv_geom(
                n,
                cg * groups,
                (h, w),
                og * groups,
                k,
                s,
                pad,
                dil,
                groups,
                shortcut,
                mode != ResMode::None,
                relu,
            );
            check(g, mode, done as u64);
            done += 1;
        }
    }

    /// On every SIMD engine, a call split by output pixels into any number of parts, run one
    /// after the other in any order, writes the same bits as one call; and so does a call the
    /// thread pool splits by pixels (stride 2, a shortcut, an in-place residual, groups, two
    /// images, K long enough to be chunked).
    #[test]
    fn pixel_splits_agree() {
        let mut rng = Rng::new(6);
        for (g, mode) in [
            (
                conv_geom(1, 3, (30, 34), 16, 7, 2, 3, 1, 1, None, false, true),
                ResMode::None,
            ),
            (
                conv_geom(1, 24, (13, 11), 12, 1, 1, 0, 1, 1, None, true, true),
                ResMode::InPlace,
            ),
            (
                conv_geom(2, 9, (12, 10), 17, 3, 1, 1, 1, 1, Some((5, 2, 0)), true, false),
                ResMode::Separate,
            ),
            (
                conv_geom(1, 16, (9, 14), 16, 3, 2, 1, 1, 4, None, false, true),
                ResMode::None,
            ),
            (
                conv_geom(1, 150, (8, 15), 8, 1, 1, 0, 1, 1, Some((40, 1, 0)), false, true),
                ResMode::None,
            ),
            // Few input channels: the AVX-512 stem kernel, whose blocks of 14 pixels do not
            // line up with the parts' tiles.
            (
                conv_geom(1, 3, (40, 64), 24, 7, 2, 3, 1, 1, None, false, true),
                ResMode::None,
            ),
            // 145 pixels: three AVX-512 tiles, the first with one pixel more; K chunked.
            (
                conv_geom(1, 12, (5, 29), 20, 3, 1, 1, 1, 1, None, true, true),
                ResMode::Separate,
            ),
            // 196 pixels (resnet's 14x14): four AVX-512 tiles of 49.
            (
                conv_geom(1, 40, (14, 14), 24, 1, 1, 0, 1, 1, None, true, true),
                ResMode::InPlace,
            ),
        ] {
            if too_big_for_miri(g.macs()) {
                continue;
            }
            let d = ConvData::random(g, &mut rng);
            for engine in engines().filter(|e| e.nr().is_some()) {
                let whole = run_on(Dyn(&g), &d, mode, engine);
                for parts in [2, 3, 7] {
                    let split = run_with(&d, mode, |packed, bias, input, sc, res, out| {
                        let ops = Operands {
                            engine,
                            ..Operands::new(packed, bias, input, sc, res)
                        };
                        let out = OutPtr::new(out);
                        for part in (0..parts).rev() {
                            conv_tiles(Dyn(&g), &ops, out, part, parts);
                        }
                    });
                    let same = split.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{engine:?} {g:?} in {parts} parts");
                }
            }
        }
        // Through the pool: a geometry whose weights are smaller than its input.
        #[cfg(feature = "std")]
        if !cfg!(miri) {
            let g = conv_geom(1, 64, (40, 40), 16, 1, 1, 0, 1, 1, None, true, true);
            let d = ConvData::random(g, &mut rng);
            let ops = Operands::new(&[0.0; 64 * 16], &[], &d.input, None, Residual::None);
            assert!(split_by_pixels(&g, &ops, 2) && !split_by_pixels(&g, &ops, 1));
            let one = run_kernel(&d, ResMode::InPlace);
            for threads in [2, 3] {
                crate::threads::set_threads(threads);
                let many = run_kernel(&d, ResMode::InPlace);
                crate::threads::set_threads(1);
                assert!(
                    one.iter().zip(&many).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{threads}"
                );
            }
        }
    }

    /// On every engine, any split of the job range across calls writes the same bits as
    /// one call.
    #[test]
    fn job_splits_agree() {
        let mut rng = Rng::new(5);
        for g in [
            conv_geom(3, 6, (5, 11), 19, 3, 1, 1, 1, 1, Some((5, 1, 0)), true, true),
            conv_geom(2, 8, (9, 7), 12, 3, 2, 1, 2, 4, None, true, false),
            conv_geom(1, 16, (4, 4), 16, 1, 1, 0, 1, 2, None, false, true),
            conv_geom(2, 2, (3, 3), 10, 3, 1, 1, 1, 1, Some((2, 2, 0)), true, false),
            // K long enough to be chunked, with more panels than a group.
            conv_geom(1, 120, (5, 13), 80, 3, 1, 1, 1, 1, Some((70, 2, 0)), true, true),
        ] {
            if too_big_for_miri(g.macs()) {
                continue;
            }
            let d = ConvData::random(g, &mut rng);
            let mut packed = vec![0.0; crate::pack::packed_conv_len(&g)];
            crate::pack::pack_conv(&g, &d.w, g.shortcut.map(|_| &d.ws[..]), &mut packed);
            let mode = if g.residual {
                ResMode::Separate
            } else {
                ResMode::None
            };
            for engine in engines() {
                let whole = run_on(Dyn(&g), &d, mode, engine);
                let ops = Operands {
                    engine,
                    ..Operands::new(
                        &packed,
                        &d.bias,
                        &d.input,
                        g.shortcut.map(|_| &d.shortcut[..]),
                        if g.residual {
                            Residual::Separate(&d.residual)
                        } else {
                            Residual::None
                        },
                    )
                };
                let jobs = job_count(&g);
                for step in [1, 2, 3, 5, 9, jobs] {
                    let mut out = vec![f32::NAN; g.output_len()];
                    let mut q = 0;
                    while q < jobs {
                        let end = (q + step).min(jobs);
                        let r = jobs_output_range(&g, q..end);
                        conv_jobs(Dyn(&g), &ops, q..end, &mut out[r]);
                        q = end;
                    }
                    let same = out.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{engine:?} {g:?} split by {step}");
                }
                assert_eq!(jobs_output_range(&g, 0..jobs), 0..g.output_len());
            }
        }
    }

    /// The per-shape instances ([`conv2d`]) agree bit for bit with the documented order, on
    /// shapes that reach every load form (border tables, contiguous, strided, gathered, both
    /// shortcut forms) with constant geometry.
    #[test]
    fn constant_geometries() {
        macro_rules! check_const {
            ($($name:ident = $geom:expr, $mode:expr;)*) => {$('case: {
                struct $name;
                impl ConvShape for $name {
                    const GEOM: ConvGeom = $geom;
                }
                let g = $name::GEOM;
                if too_big_for_miri(g.macs()) {
                    break 'case;
                }
                let d = ConvData::random(g, &mut Rng::new(9));
                for engine in engines() {
                    let out = run_on(Const::<$name>(PhantomData), &d, $mode, engine);
                    let exact = conv_f32_for(&d, engine);
                    let same = out.iter().zip(&exact).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{engine:?} {g:?}");
                    let dynamic = run_on(Dyn(&g), &d, $mode, engine);
                    assert!(out.iter().zip(&dynamic).all(|(a, b)| a.to_bits() == b.to_bits()));
                }
                // The public instance runs the process's engine.
                let out = run_with(&d, $mode, conv2d::<$name>);
                let exact = conv_f32_for(&d, Engine::chosen());
                assert!(out.iter().zip(&exact).all(|(a, b)| a.to_bits() == b.to_bits()), "{g:?}");
            })*};
        }
        check_const! {
            Stem = conv_geom(1, 3, (23, 21), 9, 7, 2, 3, 1, 1, None, false, true), ResMode::None;
            Same = conv_geom(2, 5, (9, 13), 17, 3, 1, 1, 1, 1, None, true, true), ResMode::InPlace;
            Down = conv_geom(1, 4, (17, 20), 8, 3, 2, 1, 1, 1, None, false, false), ResMode::None;
            Dil = conv_geom(1, 8, (12, 12), 8, 3, 1, 2, 2, 2, None, true, false), ResMode::Separate;
            Big = conv_geom(1, 2, (12, 11), 3, 9, 1, 4, 1, 1, None, false, true), ResMode::None;
            Proj = conv_geom(3, 9, (7, 9), 16, 1, 1, 0, 1, 1, Some((5, 2, 1)), false, true), ResMode::None;
            ProjS1 = conv_geom(1, 6, (5, 11), 9, 3, 1, 1, 1, 1, Some((7, 1, 0)), true, true), ResMode::InPlace;
            Next = conv_geom(1, 64, (6, 5), 64, 3, 1, 1, 1, 32, None, false, true), ResMode::None;
            Tiny = conv_geom(1, 2, (3, 5), 3, 3, 1, 1, 1, 1, Some((3, 2, 0)), true, true), ResMode::InPlace;
            TinyK1 = conv_geom(1, 2, (2, 2 * NR + 1), 3, 1, 1, 0, 1, 1, Some((2, 1, 0)), false, true), ResMode::None;
        }
    }
}
