//! The SIMD path of the conv: what the AVX-512, AVX2 and NEON kernels share.
//!
//! # Algorithm
//!
//! The same implicit GEMM as the portable path (`out[M x N] = W[M x K] * X[K x N]` per image
//! and group), blocked the other way round, BLIS-style: the vectors run along the output
//! pixels and the weights are broadcast.
//!
//! - A tile is [`Simd::NR`] consecutive output pixels (flattened `y * ow + x`, wrapping from
//!   row to row). Its input columns `X[k][tile]` are **packed** once into a stack buffer,
//!   `NR` floats per `k`, zero where the window reads padding and in lanes past the last
//!   pixel; the packers load with masks (contiguous lanes) or gathers (any lanes: stride 2,
//!   rows that do not line up), so every load form costs one pass over the tile's input.
//! - Then, for every panel of [`MR`] output channels the job owns, the microkernel adds
//!   `W[panel][k] (x) X[k][tile]` for each `k` into an `MR x NR` register tile: one broadcast
//!   weight times one vector of pixels per fused multiply-add. The packed columns stay in L1
//!   across the panels; the weights stream in the order they are stored.
//! - K longer than a buffer ([`BUF`] floats) is cut into chunks (rows read in place are not:
//!   [`IN_PLACE_PLANE`]): for each group of up to
//!   [`GROUP`] panels, each chunk is packed, then every panel of the group continues its sum
//!   from partial sums kept in a stack buffer (stored and reloaded exactly, so chunking does
//!   not change a bit).
//! - The last chunk ends with the epilogue (bias, residual, ReLU), stored with lane masks.
//! - A plane's last tile of one or two pixels runs along output channels ([`Simd::tail`]);
//!   on AVX-512, a few pixels past the whole tiles go one each with the first tiles
//!   ([`Simd::EXTRA`], [`Tiling`]: 7x7 is 48 + 1, 14x14 four tiles of 49): either way the
//!   same sums in the same order.
//!
//! Stack: the packed buffer ([`BUF_MAX`] floats, 32 KiB) and the partial sums of a chunked K
//! (`GROUP * MR * (MAX_NR + 1)` floats, 196 KiB, never zeroed: each chunk's first kernel
//! calls write what the later ones read).

// Without a SIMD instruction set for this architecture, only `Engine::Portable` is used.
#![cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]

use core::mem::MaybeUninit;
use core::ops::Range;

#[cfg(target_arch = "x86_64")]
use super::avx2::Avx2Fma;
#[cfg(target_arch = "x86_64")]
use super::avx512::Avx512;
#[cfg(target_arch = "aarch64")]
use super::neon::Neon;
use super::{Geom, Operands, OutPtr, Residual, TABLE_TAPS, prefetch_l2, prefetch_l2_raw};
use crate::geom::ConvGeom;
use crate::isa::Isa;
use crate::pack::{MR, panels_per_group};

/// The kernel a conv runs on: an [`Isa`] with, for the SIMD ones, the proof that the CPU
/// supports it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Engine {
    /// The portable kernel.
    Portable,
    /// [`Isa::Avx2Fma`].
    #[cfg(target_arch = "x86_64")]
    Avx2Fma(Avx2Fma),
    /// [`Isa::Avx512`].
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
    /// [`Isa::Neon`].
    #[cfg(target_arch = "aarch64")]
    Neon(Neon),
}

impl Engine {
    /// The engine of `isa`, if this CPU can run it.
    pub(crate) fn new(isa: Isa) -> Option<Self> {
        if !isa.is_available() {
            return None;
        }
        match isa {
            Isa::Portable => Some(Engine::Portable),
            // SAFETY (each token): `is_available` just said that the CPU supports it.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => Some(Engine::Avx2Fma(unsafe { Avx2Fma::new_unchecked() })),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Some(Engine::Avx512(unsafe { Avx512::new_unchecked() })),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Some(Engine::Neon(unsafe { Neon::new_unchecked() })),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Its instruction set.
    #[cfg(test)]
    pub(crate) fn isa(self) -> Isa {
        match self {
            Engine::Portable => Isa::Portable,
            #[cfg(target_arch = "x86_64")]
            Engine::Avx2Fma(_) => Isa::Avx2Fma,
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512(_) => Isa::Avx512,
            #[cfg(target_arch = "aarch64")]
            Engine::Neon(_) => Isa::Neon,
        }
    }

    /// Output pixels per tile ([`Simd::NR`]) of a SIMD engine; `None` for the portable one.
    #[cfg(any(feature = "std", test))]
    pub(crate) fn nr(self) -> Option<usize> {
        match self {
            Engine::Portable => None,
            #[cfg(target_arch = "x86_64")]
            Engine::Avx2Fma(_) => Some(Avx2Fma::NR),
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512(_) => Some(Avx512::NR),
            #[cfg(target_arch = "aarch64")]
            Engine::Neon(_) => Some(Neon::NR),
        }
    }

    /// The engine of the process's instruction set, [`crate::isa::isa`].
    #[inline]
    pub(crate) fn chosen() -> Self {
        Self::new(crate::isa::isa()).unwrap_or(Engine::Portable)
    }
}

/// The most lanes a tile has (AVX-512: three vectors of 16).
pub(super) const MAX_NR: usize = 48;

/// The most lanes a tile's plan and packed rows have: [`MAX_NR`] and a vector for an extra
/// pixel ([`Simd::EXTRA`]).
pub(super) const MAX_LANES: usize = MAX_NR + 16;

/// Floats of partial sums per block of rows of a chunked K: `[ROWS][NR]`, then (with
/// [`Simd::EXTRA`]) the extra pixel's `MR`.
const fn part_len<S: Simd>() -> usize {
    S::ROWS * S::NR + if S::EXTRA { MR } else { 0 }
}

/// Floats per packed row of a tile of `vectors` vectors: [`Simd::NR`], or `NR + LANES` for a
/// tile with the extra pixel ([`Simd::EXTRA`]).
pub(super) const fn row_len<S: Simd>(vectors: usize) -> usize {
    if S::EXTRA && vectors * S::LANES > S::NR {
        S::NR + S::LANES
    } else {
        S::NR
    }
}

/// Floats of the packed-input buffer: 24 KiB, half of this machine's 48 KiB L1 data cache, so
/// that it stays there with the weights streaming past. A chunk holds `BUF / NR` values of `k`
/// (but see [`Simd::BUF_TWO`] and [`chunk_rows`]).
pub(super) const BUF: usize = 6144;

/// Floats of the packed-input buffer as allocated: the most that any instruction set's
/// [`Simd::BUF_TWO`] lets a chunk use.
pub(super) const BUF_MAX: usize = 8192;

/// Rows of `k` per chunk where the packed rows are `rl` floats long and K is `k_total` rows:
/// as many as [`BUF`] holds, or as [`Simd::BUF_TWO`] holds where that makes two chunks of a K
/// that `BUF` cuts into three or more.
fn chunk_rows<S: Simd>(k_total: usize, rl: usize) -> usize {
    let (kc, two) = (BUF / rl, S::BUF_TWO / rl);
    if k_total > 2 * kc && k_total <= 2 * two {
        two
    } else {
        kc
    }
}

/// The weights (bytes) a group of blocks of rows keeps in L2 while the tiles of the run go
/// past: about half a typical L2, so that the input stays there too.
pub(super) const WEIGHTS_BYTES: usize = 1 << 20;

/// The packed-input buffer, aligned to a cache line so that its vector rows are too.
#[repr(C, align(64))]
pub(super) struct Buf(pub(super) [f32; BUF_MAX]);

/// Blocks of rows that share one packing of each chunk when K is chunked, at most (their partial
/// sums live on the stack meanwhile, 196 KiB for 128 blocks): see `conv_run`.
pub(super) const GROUP: usize = 128;

/// Blocks of rows that share one packing of each chunk at least where the packing reads
/// strided input, and at most elsewhere: 32 panels, 256 output channels, so that a wide conv
/// packs each chunk of its input once per 256 channels (with 16, resnet50's layer3.0 block,
/// whose conv3 has K = 256 + 512 strided shortcut rows and 1024 channels, took 5.36 ms instead
/// of 4.97 on one thread).
const SHARED: usize = 32;

/// Blocks of rows that share one packing of each chunk when the run is one tile (see
/// `conv_run`).
const ONE_TILE: usize = 16;

/// One instruction set's microkernel and packers. A value is a proof that the CPU supports
/// the instruction set (see [`crate::isa`]).
pub(super) trait Simd: Copy {
    /// Output pixels per tile: the columns of the register tile.
    const NR: usize;
    /// Lanes per vector.
    const LANES: usize;
    /// Output channels per kernel call: the rows of the register tile (at most [`MR`]).
    const ROWS: usize;

    /// Writes rows `ks` of the tile's packed input, row `k` at `dst[(k - ks.start) * n..]`
    /// (`src.vectors * LANES` floats of it), `n` = [`row_len`]`(src.vectors)`.
    ///
    /// # Safety
    /// `src` keeps its documented invariants: every lane a mask enables reads inside its
    /// plane, and the rows `ks` are the channels of `input` and `shortcut`
    /// ([`Src::debug_check`] checks this in debug builds).
    unsafe fn pack(self, src: &Src<'_>, ks: Range<usize>, dst: &mut [f32]);

    /// Whether [`Simd::kernel`] takes masked columns ([`Cols::full`] false).
    const MASKED: bool;

    /// Floats of the packed buffer (at most [`BUF_MAX`]) that a K may use where that makes it
    /// two chunks rather than three or more ([`chunk_rows`]): each block's partial sums then go
    /// to the stack and back once per tile rather than twice or more.
    const BUF_TWO: usize = BUF;

    /// For one block of [`Simd::ROWS`] rows: `acc[j][l] = fma(W_j[k], X[k][l], acc[j][l])`
    /// for each `k` of the chunk ascending (`a.kc` of them), where `W_j` is row `j` of `a` and
    /// `X` is `b` (see [`Cols`]), over `vectors` vectors of lanes. `acc` starts at zero if
    /// `first`, else from `part` (`[ROWS][NR]`, which a call before wrote: `part` may be
    /// uninitialized until then); it ends in `part`, or, with `epi`, goes through the epilogue
    /// to the output.
    ///
    /// With [`Simd::EXTRA`], `vectors` may be `NR / LANES + 1`: the tile is `NR` pixels and one
    /// more, lane `NR` of each row of `b` (full); its sums are `part[ROWS * NR..][..MR]`.
    #[allow(clippy::too_many_arguments)]
    fn kernel(
        self,
        a: &Rows<'_>,
        b: &Cols<'_>,
        vectors: usize,
        part: &mut [MaybeUninit<f32>],
        first: bool,
        epi: Option<&mut Epi<'_>>,
    );

    /// Whether [`Simd::kernel`] takes a tile of `NR + 1` pixels ([`Tiling`]): a pixel past the
    /// whole tiles (the 49th of 7x7) in the same pass over the weights as a tile, rather than
    /// in a second one through [`Simd::tail`] (which, on resnet50's 7x7 convs, took a quarter
    /// of their time for 1/49 of their multiply-adds: it reads every weight again).
    const EXTRA: bool = false;

    /// Runs the pixels `pixels` of `run` (image `input`'s planes of the group, into `out`)
    /// on a kernel of its own for convs with few input channels (a stem: AVX-512's
    /// `super::stem`, vectors along output channels, no packing) if it has one that applies;
    /// returns whether it did.
    fn few_channels(
        self,
        g: &ConvGeom,
        run: &Run<'_>,
        input: &[f32],
        out: OutPtr<'_>,
        pixels: Range<usize>,
    ) -> bool {
        let _ = (g, run, input, out, pixels);
        false
    }

    /// Whether [`Simd::kernel`] asks for a large plane's residual lines itself, block by
    /// block, while it runs (AVX-512's `prefetch_residual`): then the output of a conv whose
    /// residual is in place, which is those lines, is not also asked for a tile ahead
    /// ([`prefetch_out`]).
    const PREFETCHES_RESIDUAL: bool = false;

    /// Whether a 1x1 conv or a conv with shortcut rows on a large plane has the next tile's
    /// output lines asked for by kernel calls, a line per `k` (see `chunked`), rather than in
    /// a burst before the tile ([`prefetch_out`]). On AVX2, for the convs with shortcut
    /// rows, the calls measured no faster (resnet50, one thread, five runs alternating:
    /// layer1.0.conv3 with its downsample 2.78-2.84 -> 2.64-2.73 ms, but layer2.0.conv3's
    /// 2.95-3.02 -> 3.06-3.14 and layer3.0.conv3's 3.16-3.25 -> 3.27-3.35).
    const SPREADS_OUTPUT: bool = false;

    /// Whether a last tile of at most [`TAIL_LANES`] pixels runs through [`Simd::tail`]
    /// (vectors along output channels) rather than [`Simd::kernel`] (vectors along pixels,
    /// nearly all lanes idle).
    const TAIL: bool = false;

    /// For one pixel and panels `0..np` of one chunk of `kc` values of `k`:
    /// `acc[q][r] = fma(W_q[k][r], x[k * xstride], acc[q][r])` for each `k` ascending, where
    /// `W_q[k][r] = w[q * pstride + k * MR + r]`: the sums [`Simd::kernel`] computes for that
    /// pixel, in the same order, so the same bits.
    #[allow(clippy::too_many_arguments)]
    fn tail(
        self,
        w: &[f32],
        pstride: usize,
        np: usize,
        x: &[f32],
        xstride: usize,
        kc: usize,
        acc: &mut [[f32; MR]; GROUP],
    );
}

/// The most pixels a last tile may have to run through [`Simd::tail`]: `tail` reads each
/// weight once per pixel, the kernel once per tile, so it pays only for a pixel or two (the
/// 49th of a 7x7 plane after tiles of 16 or 12; AVX-512 takes it with its tile of 48,
/// [`Simd::EXTRA`]).
pub(super) const TAIL_LANES: usize = 2;

/// Planes of at least this many tiles are "large": their next tile's lines are prefetched, and
/// (AVX-512) the epilogue's residual lines too; on smaller planes the hardware prefetchers keep up.
pub(super) const BIG_PLANE_TILES: usize = 8;

/// The largest plane, in tiles ([`Simd::NR`] pixels), whose rows a 1x1 conv reads in place
/// rather than packing them: up to two tiles, a chunk's rows lie a plane apart (196 bytes on
/// 7x7), close enough to read where they are; on larger planes each row is a different stretch
/// of memory (12.5 KB apart on 56x56), and copying the chunk into the packed buffer once costs
/// less than reading the scattered rows once per panel. Measured on AVX-512, one thread, each
/// conv alternately both ways (best of 15 rounds, three runs, GFLOP/s in place -> packed):
/// resnet50's layer1.0.conv1 (56x56) 117-128 -> 126-141, layer1.0.conv3 with its downsample
/// 130-134 -> 143-148, layer3.0.conv1 (28x28) 156-172 -> 161-180, layer3.1.conv1 (14x14)
/// 150-151 -> 153-156; layer4.1.conv1 (7x7) 156-166 -> 145-158, hence the bound.
const IN_PLACE_PLANE: usize = 2;

/// The input columns of one chunk of `k` as a kernel reads them: row `k` of the chunk is
/// `X[k][l] = planes[k * stride + l]` for the enabled lanes `l` (every lane with `full`,
/// else those whose bit of `mask` is set) and zero for the others: packed columns (rows
/// `NR` apart, full) or a chunk of input channels read in place.
#[derive(Debug)]
pub(super) struct Cols<'a> {
    pub(super) planes: &'a [f32],
    pub(super) stride: usize,
    /// Rows: values of `k`.
    pub(super) rows: usize,
    /// The enabled lanes, by groups of 16 (ignored with `full`).
    pub(super) mask: [u16; 4],
    pub(super) full: bool,
    /// Lines a kernel call asks into L2 ahead of their use, of input ([`NextIn`]) or of the
    /// next group's weights ([`NextWeights`]) (see [`Ahead`]; the x86-64 kernels only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) ahead: Ahead,
}

/// A 1x1 conv's input lines that the kernel calls of a tile ask for ([`chunked`]): `lines`
/// lines of each input channel from `at` (a pixel of the group's channel 0), of the rows of
/// each chunk or, with `next_chunk`, of the rows of the next chunk. (Also the next tile's
/// output lines, or a residual's read in place, likewise per output channel: see `conv_run`.)
///
/// The next chunk's rows on small planes whose input does not stay in L2 ([`INPUT_IN_L2`]):
/// the packing of each chunk otherwise waits for its lines (in `perf`, the packer's stores
/// after its loads took most of its samples). resnet50's layer3.1-5.conv1 (1024 -> 256 on
/// 14x14, 784 KiB of input) in the model (`resnet-bench --layers`, three runs alternating):
/// one thread 0.64-0.68 -> 0.59-0.64 ms, two threads 0.34-0.41 -> 0.33-0.39. Not where the
/// input fits (layer3's conv3, 256 channels, 196 KiB: with the prefetch, on two threads
/// 0.41-0.43 -> 0.41-0.46 ms).
#[derive(Debug, Clone, Copy)]
struct NextIn {
    at: *const f32,
    /// Floats from one channel's plane to the next.
    stride: usize,
    lines: usize,
    next_chunk: bool,
}

impl NextIn {
    /// The lines holding pixels `p .. p + n` of each channel plane (`hw` floats) of `input`:
    /// one more where a row does not start a line.
    fn lines(input: &[f32], hw: usize, p: usize, n: usize, next_chunk: bool) -> NextIn {
        Self::at(input.as_ptr(), hw, p, n, next_chunk)
    }

    /// [`NextIn::lines`] of the planes from `planes` (a pointer: a prefetch never faults).
    fn at(planes: *const f32, hw: usize, p: usize, n: usize, next_chunk: bool) -> NextIn {
        let at = planes.wrapping_add(p);
        let aligned = hw.is_multiple_of(16) && (at as usize).is_multiple_of(64);
        NextIn {
            at,
            stride: hw,
            lines: n.div_ceil(16) + usize::from(!aligned),
            next_chunk,
        }
    }

    /// Call `j` of `calls`' share of these lines of the channels `channels`, at most `max`
    /// ([`Ahead::share`]).
    fn share(self, channels: Range<usize>, (j, calls): (usize, usize), max: usize) -> Ahead {
        Ahead::share((self.at, self.stride, self.lines), channels, (j, calls), max)
    }
}

/// Lines of weights that the kernel calls of a tile prefetch into L2 ([`Ahead`]): `lines` lines
/// (16 floats each, at least one) from `at`, this tile's share of the next group of blocks'
/// weights.
///
/// A group's first tile reads its weights from memory (a forward pass reads each layer's
/// weights once), faster than the hardware prefetchers bring them when the tile's multiply-adds
/// per weight are few; its later tiles read them from L2 and leave the memory idle. So those
/// later tiles fetch the next group's weights, a share each, and only the first group waits
/// for memory. resnet50 in the model, one thread (`resnet-bench --layers`, four runs
/// alternating): layer3.1.conv3 (256 -> 1024 on 14x14, four groups of 256 KiB) 0.63-0.64 ->
/// 0.59-0.60 ms, layer3.0.conv3 with its downsample 1.99-2.01 -> 1.86-1.97, layer2.1.conv3
/// (two groups) 0.58-0.62 -> 0.58-0.60; whole forward pass 43.0-43.7 -> 42.1-43.1 ms. Two
/// threads: layer3.1.conv3 0.351-0.357 -> 0.340-0.363 ms, the whole pass unchanged.
#[derive(Debug, Clone, Copy)]
struct NextWeights {
    at: *const f32,
    lines: usize,
}

impl NextWeights {
    /// Call `j` of `calls`' share of the lines, at most `max` (one per value of `k`).
    fn share(self, j: usize, calls: usize, max: usize) -> Ahead {
        Ahead::share((self.at, 0, self.lines), 0..1, (j, calls), max)
    }
}

/// Kernel calls per chunk (blocks of rows) from which a 1x1 conv's calls share their prefetch
/// slots between the next tile's input and output lines (see `chunked`): half of them hold the
/// input lines of a chunk, at most four lines per row.
const HALF_CALLS: usize = 8;

/// The input (bytes of the group's channels) above which a 1x1 conv's input is taken not to
/// stay in L2 while its weights go past ([`NextIn`]): a quarter of this machine's 2 MiB L2.
const INPUT_IN_L2: usize = 512 << 10;

/// Lines a kernel call prefetches into L2 (of input or weights), one per value of `k` from the
/// first until `count` are asked: line `line` (of `lines`, 16 floats each) of the row at
/// `row`, then the next line, wrapping to the next row (`stride` floats on). A prefetch never
/// faults: the addresses need not be valid.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) struct Ahead {
    pub(super) row: *const f32,
    pub(super) stride: usize,
    pub(super) lines: usize,
    pub(super) line: usize,
    pub(super) count: usize,
}

impl Ahead {
    /// Nothing to prefetch.
    pub(super) const NONE: Ahead = Ahead {
        row: core::ptr::null(),
        stride: 0,
        lines: 1,
        line: 0,
        count: 0,
    };

    /// Call `j` of `calls`' share of the lines `lines` of each of `rows` (row `r` at `base + r
    /// * stride`): the `j`-th of `calls` nearly equal runs of the `rows.len() * lines` lines in
    /// row-major order, at most `max` of them (a call asks for one line per `k`).
    pub(super) fn share(
        (base, stride, lines): (*const f32, usize, usize),
        rows: Range<usize>,
        (j, calls): (usize, usize),
        max: usize,
    ) -> Ahead {
        let total = lines * rows.len();
        let (l0, l1) = (total * j / calls, total * (j + 1) / calls);
        Ahead {
            row: base.wrapping_add((rows.start + l0 / lines) * stride),
            stride,
            lines,
            line: l0 % lines,
            count: (l1 - l0).min(max),
        }
    }

    /// The address of the next line, and moves past it (`count` must be positive).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    #[inline(always)]
    pub(super) fn next(&mut self) -> *const f32 {
        let at = self.row.wrapping_add(self.line * 16);
        self.count -= 1;
        self.line += 1;
        if self.line == self.lines {
            self.line = 0;
            self.row = self.row.wrapping_add(self.stride);
        }
        at
    }
}

impl Cols<'_> {
    /// Packed columns: `rows` rows of `nr` floats.
    fn packed(planes: &[f32], rows: usize, nr: usize) -> Cols<'_> {
        Cols {
            planes,
            stride: nr,
            rows,
            mask: [u16::MAX; 4],
            full: true,
            ahead: Ahead::NONE,
        }
    }

    /// Columns read in place, with the lanes of `mask` (which all lie in every row).
    fn in_place(planes: &[f32], stride: usize, rows: usize, mask: u64, full: bool) -> Cols<'_> {
        Cols {
            planes,
            stride,
            rows,
            mask: [0, 1, 2, 3].map(|v| (mask >> (16 * v)) as u16),
            full,
            ahead: Ahead::NONE,
        }
    }

    /// Whether lane `l` is enabled.
    #[inline(always)]
    fn enabled(&self, l: usize) -> bool {
        self.full || self.mask[l / 16] >> (l % 16) & 1 == 1
    }

    /// Asserts that every lane below `width` that is enabled lies in `planes` in every row:
    /// the kernels' loads of those lanes are then in bounds.
    #[inline(always)]
    pub(super) fn check(&self, width: usize) {
        assert!(self.rows > 0 && width <= MAX_LANES);
        let last = (self.rows - 1) * self.stride;
        // Every enabled lane is at most the highest one.
        let top = (0..width).rev().find(|&l| self.enabled(l)).map_or(0, |l| l + 1);
        assert!(last + top <= self.planes.len());
    }
}

/// The weights of one block of rows over one chunk of `k`: row `j` of the block is row
/// `row + j` of the panel whose weights from the chunk's first `k` on are `lo` (`MR` per
/// `k`, k-major), or row `row + j - MR` of the next panel's, `hi`, past the first panel's
/// last row. Rows past the block's real rows read anything in bounds and are not stored.
#[derive(Debug)]
pub(super) struct Rows<'a> {
    pub(super) lo: &'a [f32],
    /// `lo` again when the block does not reach the next panel.
    pub(super) hi: &'a [f32],
    pub(super) row: usize,
    /// Values of `k` in the chunk.
    pub(super) kc: usize,
}

impl Rows<'_> {
    /// Asserts that every row `row .. row + rows` reads inside `lo` and `hi`.
    #[inline(always)]
    pub(super) fn check(&self, rows: usize) {
        assert!(self.kc > 0 && self.row + rows <= 2 * MR);
        assert!(self.lo.len() >= self.kc * MR && self.hi.len() >= self.kc * MR);
    }
}

/// Where one tile of one block of rows goes: `out[(row0 + r) * ohw + p0 + l] =
/// relu?(acc[r][l] + bias[r] (+ residual at the same index))` for `r < bias.len()`, `l < nv`.
#[derive(Debug)]
pub(super) struct Epi<'a> {
    /// The run's output channels, `ohw` floats each.
    pub(super) out: OutPtr<'a>,
    /// The residual, indexed like `out` (`InPlace`: `out` itself, read before written).
    pub(super) residual: Residual<'a>,
    pub(super) ohw: usize,
    pub(super) row0: usize,
    pub(super) p0: usize,
    pub(super) nv: usize,
    /// The block's real rows' biases (1 to [`Simd::ROWS`]).
    pub(super) bias: &'a [f32],
    pub(super) relu: bool,
}

impl Epi<'_> {
    /// Asserts that the epilogue's lanes lie in `out` (and the residual), for a kernel of
    /// `nr` pixels in `vectors` vectors of `lanes`.
    #[inline(always)]
    pub(super) fn check(&self, nr: usize, lanes: usize, vectors: usize) {
        let rows = self.bias.len();
        assert!((1..=MR).contains(&rows) && (1..=nr).contains(&self.nv));
        assert!(self.nv.div_ceil(lanes) == vectors && self.p0 + self.nv <= self.ohw);
        assert!((self.row0 + rows - 1) * self.ohw + self.p0 + self.nv <= self.out.len());
        if let Residual::Separate(r) = self.residual {
            assert_eq!(r.len(), self.out.len());
        }
    }
}

/// What the packers read for one tile: lane `l` of row `k < k_main` (channel `ci`, tap `t`)
/// is `input[ci * hw + base[l] + tap_off[t]]` if bit `l` of `tap_mask[t]` is set, else zero;
/// lane `l` of row `k_main + cs` is `shortcut[cs * sc_hw + sc_base[l]]` if bit `l` of
/// `valid` is set, else zero.
#[derive(Debug)]
pub(super) struct Src<'a> {
    /// The group's input channels, `hw` floats each.
    pub(super) input: &'a [f32],
    pub(super) hw: usize,
    /// Kernel taps `k * k`.
    pub(super) taps: usize,
    pub(super) k_main: usize,
    /// Per tap `(i, j)`: `(i * w + j) * dilation`.
    pub(super) tap_off: &'a [i32],
    /// Per tap: the lanes whose input is in range (and `< nv`).
    pub(super) tap_mask: &'a [u64],
    /// Per lane: the window origin `iy0 * w + ix0` (may be negative), for lanes `< nv`;
    /// only `base[0]` is set when `contig` (see [`Src::lane_base`]).
    pub(super) base: &'a [i32; MAX_LANES],
    /// Lane `l`'s origin is `base[0] + l` for the lanes `< nv`: loads can be contiguous.
    pub(super) contig: bool,
    /// The image's shortcut channels, `sc_hw` floats each (empty without a shortcut).
    pub(super) shortcut: &'a [f32],
    pub(super) sc_hw: usize,
    /// Per lane: the shortcut pixel, likewise ([`Src::sc_lane_base`]).
    pub(super) sc_base: &'a [i32; MAX_LANES],
    pub(super) sc_contig: bool,
    /// Lanes `< nv`.
    pub(super) valid: u64,
    /// Vectors that cover the `nv` lanes.
    pub(super) vectors: usize,
}

impl Src<'_> {
    /// Lane `l`'s window origin in the input planes.
    #[inline(always)]
    pub(super) fn lane_base(&self, l: usize) -> i32 {
        if self.contig {
            self.base[0] + l as i32
        } else {
            self.base[l]
        }
    }

    /// Lane `l`'s pixel in the shortcut planes.
    #[inline(always)]
    pub(super) fn sc_lane_base(&self, l: usize) -> i32 {
        if self.sc_contig {
            self.sc_base[0] + l as i32
        } else {
            self.sc_base[l]
        }
    }

    /// Checks, in debug builds, that every lane a mask enables reads inside its plane, so
    /// that masked loads and gathers touch only the operands' memory.
    #[inline(always)]
    pub(super) fn debug_check(&self, ks: &Range<usize>, lanes: usize) {
        let width = (self.vectors * lanes) as u32;
        debug_assert!(width as usize <= MAX_LANES && self.valid.checked_shr(width).unwrap_or(0) == 0);
        debug_assert!(ks.start <= ks.end && self.input.len() * self.taps >= self.k_main * self.hw);
        debug_assert_eq!(self.tap_off.len(), self.taps);
        debug_assert_eq!(self.tap_mask.len(), self.taps);
        if cfg!(debug_assertions) {
            for (&off, &m) in self.tap_off.iter().zip(self.tap_mask) {
                for l in (0..64).filter(|l| m >> l & 1 == 1) {
                    let at = i64::from(self.lane_base(l)) + i64::from(off);
                    debug_assert!(at >= 0 && (at as usize) < self.hw, "lane {l} at {at}");
                }
            }
            if ks.end > self.k_main {
                for l in (0..64).filter(|l| self.valid >> l & 1 == 1) {
                    debug_assert!((self.sc_lane_base(l) as usize) < self.sc_hw);
                }
                debug_assert!(self.shortcut.len() >= (ks.end - self.k_main) * self.sc_hw);
            }
        }
    }
}

/// One tile's lanes: window origins, which taps each lane reads in range, shortcut pixels.
#[derive(Debug)]
struct Plan {
    nv: usize,
    /// Window origins `y * stride - pad`, `x * stride - pad`, and shortcut pixels
    /// `y * ss * sw + x * ss`: for the on-the-fly packer, filled only without `table`.
    iy0: [isize; MAX_LANES],
    ix0: [isize; MAX_LANES],
    sc_px: [usize; MAX_LANES],
    /// The tap table's view ([`Src`]), filled only with `table`; `base` and `sc_base` only
    /// past lane 0 when their lanes are not contiguous.
    base: [i32; MAX_LANES],
    contig: bool,
    tap_mask: [u64; TABLE_TAPS],
    sc_base: [i32; MAX_LANES],
    sc_contig: bool,
    valid: u64,
}

/// Bits `lo .. hi` (`hi - lo < 64`).
#[inline(always)]
fn bits(lo: usize, hi: usize) -> u64 {
    ((1u64 << (hi - lo)) - 1) << lo
}

impl Plan {
    /// The tile of output pixels `p0 .. p0 + nv`; the tap table only with `table`.
    ///
    /// The tile is cut into segments, one per output row it touches; within a segment the
    /// lanes in range for a kernel row or column form one run of bits, computed directly.
    #[inline(always)]
    fn new(g: &ConvGeom, p0: usize, nv: usize, table: bool) -> Self {
        debug_assert!((1..=MAX_LANES).contains(&nv));
        let (sc_s, sc_w) = g.shortcut.map_or((0, 0), |s| (s.stride, s.w));
        let mut p = Plan {
            nv,
            iy0: [0; MAX_LANES],
            ix0: [0; MAX_LANES],
            sc_px: [0; MAX_LANES],
            base: [0; MAX_LANES],
            contig: true,
            tap_mask: [0; TABLE_TAPS],
            sc_base: [0; MAX_LANES],
            sc_contig: true,
            valid: bits(0, nv),
        };
        let (s, pad, d) = (g.stride, g.pad, g.dilation);
        let (mut y, mut x) = (p0 / g.ow, p0 % g.ow);
        if !table {
            for l in 0..nv {
                p.iy0[l] = (y * s) as isize - pad as isize;
                p.ix0[l] = (x * s) as isize - pad as isize;
                p.sc_px[l] = y * sc_s * sc_w + x * sc_s;
                x += 1;
                if x == g.ow {
                    x = 0;
                    y += 1;
                }
            }
            return p;
        }
        // The lanes that read an in-range row for kernel row `i` (`rows[i]`), an in-range
        // column for kernel column `j` (`cols[j]`); `table` implies `k <= 7`.
        let mut rows = [0u64; 7];
        let mut cols = [0u64; 7];
        // Output columns `x` whose input column `x s - pad + j d` is in range, per `j`:
        // `x_lo[j] .. x_hi[j]`.
        let mut x_lo = [0usize; 7];
        let mut x_hi = [0usize; 7];
        for j in 0..g.k {
            let shift = j * d;
            x_lo[j] = pad.saturating_sub(shift).div_ceil(s);
            x_hi[j] = if g.w + pad > shift {
                (g.w + pad - shift - 1) / s + 1
            } else {
                0
            };
        }
        // `table_fits` guarantees that offsets fit an `i32`.
        let (w, pad_i) = (g.w as i32, pad as i32);
        let origin = |y: usize, x: usize| (y * s) as i32 * w - pad_i * w + (x * s) as i32 - pad_i;
        let sc_origin = |y: usize, x: usize| (y * sc_s * sc_w + x * sc_s) as i32;
        p.base[0] = origin(y, x);
        p.sc_base[0] = sc_origin(y, x);
        let mut l = 0;
        while l < nv {
            let len = if g.ow - x < nv - l { g.ow - x } else { nv - l };
            let seg = bits(l, l + len);
            let iy = (y * s) as isize - pad as isize;
            for (i, rows) in rows.iter_mut().enumerate().take(g.k) {
                let r = iy + (i * d) as isize;
                if r >= 0 && r < g.h as isize {
                    *rows |= seg;
                }
            }
            for j in 0..g.k {
                let (lo, hi) = (x_lo[j].max(x), x_hi[j].min(x + len));
                if lo < hi {
                    cols[j] |= bits(l + lo - x, l + hi - x);
                }
            }
            // Lanes `l + 1 ..` continue lane `l`'s window by one input column (stride 1)
            // within the segment, and across a row change only if `ow == w`.
            if l > 0 {
                p.contig &= origin(y, x) == p.base[0] + l as i32;
                p.sc_contig &= sc_origin(y, x) == p.sc_base[0] + l as i32;
            }
            p.contig &= s == 1 || len == 1;
            p.sc_contig &= sc_s == 1 || len == 1;
            l += len;
            x = 0;
            y += 1;
        }
        // Without a shortcut its lanes are never read.
        p.sc_contig |= g.shortcut.is_none();
        if !p.contig || !p.sc_contig {
            let (mut y, mut x) = (p0 / g.ow, p0 % g.ow);
            for l in 0..nv {
                p.base[l] = origin(y, x);
                p.sc_base[l] = sc_origin(y, x);
                x += 1;
                if x == g.ow {
                    x = 0;
                    y += 1;
                }
            }
        }
        for (i, &row) in rows[..g.k].iter().enumerate() {
            for (j, &col) in cols[..g.k].iter().enumerate() {
                p.tap_mask[i * g.k + j] = row & col;
            }
        }
        p
    }
}

/// Whether a geometry fits the tap table: a kernel of at most [`TABLE_TAPS`] taps, and
/// planes whose offsets (negative ones in the padding included) fit an `i32`.
fn table_fits(g: &ConvGeom) -> bool {
    let limit = (i32::MAX / 4) as usize;
    let span = |len: usize| len + 2 * g.pad + g.dilation * g.k;
    g.k * g.k <= TABLE_TAPS
        && span(g.h).saturating_mul(span(g.w)) < limit
        && g.shortcut.is_none_or(|s| s.h.saturating_mul(s.w) < limit)
}

/// What every tile of a run shares.
pub(super) struct Run<'a> {
    ops: Operands<'a>,
    /// The packed weights of the run's panels.
    pub(super) weights: &'a [f32],
    k_total: usize,
    /// The run's real output channels (its last panel may be padded).
    pub(super) rows: usize,
    /// The biases of the run's real output channels.
    pub(super) bias: &'a [f32],
    ohw: usize,
    relu: bool,
}

impl<'a> Run<'a> {
    /// The weights of the block of rows `r0 ..` (of the run) for chunk `ks`, and its real
    /// rows' biases.
    #[inline(always)]
    fn block(&self, r0: usize, rows: usize, ks: &Range<usize>) -> (Rows<'a>, &'a [f32]) {
        let panel = |p: usize| &self.weights[(p * self.k_total + ks.start) * MR..][..ks.len() * MR];
        let (p, row) = (r0 / MR, r0 % MR);
        let real = if self.rows - r0 < rows {
            self.rows - r0
        } else {
            rows
        };
        let lo = panel(p);
        // The rows past the real ones need not exist: they read `lo` again.
        let hi = if row + real > MR { panel(p + 1) } else { lo };
        let a = Rows {
            lo,
            hi,
            row,
            kc: ks.len(),
        };
        (a, &self.bias[r0..r0 + real])
    }

    /// Where the tile of pixels `p0 .. p0 + nv` of the block of rows from `r0` goes.
    #[inline(always)]
    fn epi<'o>(&self, out: OutPtr<'o>, r0: usize, bias: &'o [f32], p0: usize, nv: usize) -> Epi<'o>
    where
        'a: 'o,
    {
        Epi {
            out,
            residual: self.ops.residual,
            ohw: self.ohw,
            row0: r0,
            p0,
            nv,
            bias,
            relu: self.relu,
        }
    }
}

/// Where one tile reads its input columns from: packed into the stack buffer, or straight
/// from the planes where every row's lanes are consecutive pixels read without padding.
struct TileSrc<'t, S> {
    s: S,
    src: Src<'t>,
    g: &'t ConvGeom,
    plan: &'t Plan,
    table: bool,
    /// The main rows are read in place (a 1x1 conv with stride 1 and no padding, on planes
    /// of at most [`IN_PLACE_PLANE`] tiles).
    direct_main: bool,
    /// The shortcut rows are read in place (consecutive shortcut pixels, likewise).
    direct_sc: bool,
    /// The tile has all `NR` lanes (else the direct reads are masked).
    whole: bool,
}

impl<'t, S: Simd> TileSrc<'t, S> {
    /// The chunks of K the tile runs in, `kc` rows at most where they are packed (the buffer
    /// holds `kc`), and all in one where they are read in place: the main rows of a 7x7 1x1
    /// conv then take one kernel call per block, which reads the block's weights in one pass
    /// (no partial sums either). Weights flushed from the caches before each call
    /// (a forward pass reads them from memory), median of 31 calls, one thread, AVX-512,
    /// three alternating runs: resnet50's layer4.1.conv1 (K = 2048) 145-151 -> 161-166
    /// GFLOP/s, layer4.1.conv3 (K = 512, with its residual) 124-128 -> 152-160. In the model
    /// (`resnet-bench --layers resnet50`, three alternating runs), layer4.1-2's conv1 and conv3
    /// 0.69-0.77 -> 0.62-0.65 ms each.
    fn chunks(&self, kc: usize) -> impl Iterator<Item = Range<usize>> + Clone {
        let (k_main, k_total) = (self.src.k_main, self.g.k_total());
        let kc_main = if self.direct_main { k_main.max(1) } else { kc };
        let kc_sc = if self.direct_sc {
            (k_total - k_main).max(1)
        } else {
            kc
        };
        chunks(k_main, k_total, kc_main, kc_sc)
    }

    /// Rows `ks` of the tile's columns (all main or all shortcut rows).
    #[inline(always)]
    fn cols<'b>(&self, ks: Range<usize>, buf: &'b mut Buf) -> Cols<'b>
    where
        't: 'b,
    {
        let src = &self.src;
        let (valid, whole) = (src.valid, self.whole);
        if ks.start < src.k_main && self.direct_main {
            let planes = &src.input[ks.start * src.hw + src.base[0] as usize..];
            return Cols::in_place(planes, src.hw, ks.len(), valid, whole);
        }
        if ks.start >= src.k_main && self.direct_sc {
            let at = (ks.start - src.k_main) * src.sc_hw + src.sc_base[0] as usize;
            return Cols::in_place(&src.shortcut[at..], src.sc_hw, ks.len(), valid, whole);
        }
        let rl = row_len::<S>(src.vectors);
        let dst = &mut buf.0[..ks.len() * rl];
        if self.table {
            // SAFETY: `Plan::new` set exactly the lanes `< nv` whose tap reads an in-range
            // row and column (so `base + tap_off` is in the plane), and every shortcut lane
            // `< nv` (a pixel `(y ss, x ss)` of the shortcut input, in range by the
            // geometry's contract); `ks` are rows of this geometry's K.
            unsafe { self.s.pack(src, ks.clone(), dst) };
        } else {
            pack_on_the_fly(self.g, self.plan, src, ks.clone(), dst, rl, S::LANES);
        }
        Cols::packed(dst, ks.len(), rl)
    }
}

/// Asks for the output of the next tile (pixels `p1 .. p1 + nr` of each of `rows`, planes of
/// `ohw`) to be brought into L2 while this tile runs, so that its epilogue's stores do not
/// wait for the lines: a layer's output is often in no cache (the weights streamed since it
/// was last used evict it), and the stores go to many planes at once, more streams than the
/// hardware prefetchers follow.
#[inline(always)]
fn prefetch_out(out: OutPtr<'_>, ohw: usize, rows: Range<usize>, p1: usize, nr: usize) {
    let end = if ohw.saturating_sub(p1) < nr { ohw } else { p1 + nr };
    for r in rows {
        prefetch_l2_raw(out.as_ptr(), out.len(), r * ohw + p1..r * ohw + end);
    }
}

/// Asks for the input rows the tile of output pixels `p1 .. p1 + nr` reads (every channel of
/// `input`, the group's, whole rows) to be brought into L2 while this tile runs: the packers
/// read a few rows of every channel, more streams than the hardware prefetchers follow.
/// Rows below `*done` were asked for already (by the tiles before, whose windows overlap this
/// one's); `*done` moves past this tile's rows.
#[inline(always)]
fn prefetch_in(g: &ConvGeom, input: &[f32], p1: usize, nr: usize, done: &mut usize) {
    let ohw = g.oh * g.ow;
    if p1 >= ohw {
        return;
    }
    let last = if ohw - p1 < nr { ohw } else { p1 + nr } - 1;
    let (ya, yb) = (p1 / g.ow, last / g.ow);
    // Input rows `ya s - pad ..= yb s - pad + (k - 1) d`, clamped to the plane.
    let r0 = (ya * g.stride).saturating_sub(g.pad).max(*done);
    let r1 = (yb * g.stride + (g.k - 1) * g.dilation + 1)
        .saturating_sub(g.pad)
        .min(g.h);
    if r0 >= r1 {
        return;
    }
    *done = r1;
    let hw = g.h * g.w;
    for plane in (0..input.len()).step_by(hw.max(1)) {
        prefetch_l2(input, plane + r0 * g.w..plane + r1 * g.w);
    }
}

/// The chunks of `0..k_total`: the main rows `0..k_main` cut into pieces of at most `kc_main`,
/// then the shortcut rows into pieces of at most `kc_sc` (both at least 1).
fn chunks(
    k_main: usize,
    k_total: usize,
    kc_main: usize,
    kc_sc: usize,
) -> impl Iterator<Item = Range<usize>> + Clone {
    let cut = move |r: Range<usize>, kc: usize| {
        (r.start..r.end)
            .step_by(kc)
            .map(move |k0| k0..if r.end - k0 < kc { r.end } else { k0 + kc })
    };
    cut(0..k_main, kc_main).chain(cut(k_main..k_total, kc_sc))
}

/// How a plane of `ohw` pixels is cut into tiles: `count` tiles of [`Simd::NR`] pixels but
/// for the first `long`, which take one pixel more ([`Simd::EXTRA`]).
#[derive(Debug, Clone, Copy)]
struct Tiling {
    /// Read by the split into parts (`conv_tiles`, under `std`).
    #[cfg_attr(not(any(feature = "std", test)), allow(dead_code))]
    count: usize,
    long: usize,
    nr: usize,
}

impl Tiling {
    /// With [`Simd::EXTRA`], a plane whose pixels past its whole tiles are no more than those
    /// tiles gives them one each (7x7: 48 + 1; 14x14: 4 x 49) rather than run them as a last
    /// tile of a few lanes, which reads every weight once more (from L2) for them and packs
    /// its own input, when that costs fewer multiply-adds: a tile's extra pixel is one more
    /// per `k` and block, the last tile `ROWS` per vector (so 28x28, 16 x 48 + 16, and 56x56
    /// keep their last tile). resnet50's layer3 in the model (`resnet-bench --layers`, one
    /// thread, four alternating runs): 16.25-17.01 -> 16.00-16.86 ms, by -0.67 to +0.04 ms
    /// a pair.
    fn new<S: Simd>(ohw: usize) -> Tiling {
        let (whole, rest) = (ohw / S::NR, ohw % S::NR);
        if S::EXTRA && rest <= whole && whole <= S::ROWS * rest.div_ceil(S::LANES) {
            Tiling {
                count: whole,
                long: rest,
                nr: S::NR,
            }
        } else {
            Tiling {
                count: ohw.div_ceil(S::NR),
                long: 0,
                nr: S::NR,
            }
        }
    }

    /// The first pixel of tile `i` (`oh * ow` for `i == count`, clamped).
    #[cfg(any(feature = "std", test))]
    fn start(self, i: usize, ohw: usize) -> usize {
        (i * self.nr + i.min(self.long)).min(ohw)
    }

    /// The pixels of the tile that starts at `p0`.
    fn len_at(self, p0: usize, ohw: usize) -> usize {
        let nv = if p0 < self.long * (self.nr + 1) {
            self.nr + 1
        } else {
            self.nr
        };
        nv.min(ohw - p0)
    }

    /// The index of the tile that starts at `p` (`count` at the plane's end); `p` is a tile's
    /// start ([`Tiling::is_start`]).
    fn index(self, p: usize, ohw: usize) -> usize {
        let l = self.long * (self.nr + 1);
        if p == ohw {
            self.count
        } else if p < l {
            p / (self.nr + 1)
        } else {
            self.long + (p - l) / self.nr
        }
    }

    /// Whether `p` is where a tile starts (or the plane's end).
    fn is_start(self, p: usize, ohw: usize) -> bool {
        let l = self.long * (self.nr + 1);
        p == ohw
            || if p < l {
                p.is_multiple_of(self.nr + 1)
            } else {
                (p - l).is_multiple_of(self.nr)
            }
    }
}

/// [`super::conv_tiles`] on the instruction set `s`: part `part` of `parts` of the tiles of
/// every plane, for every image, group and panel.
#[cfg(any(feature = "std", test))]
pub(super) fn conv_tiles<G: Geom, S: Simd>(
    s: S,
    gg: G,
    ops: &Operands<'_>,
    out: OutPtr<'_>,
    part: usize,
    parts: usize,
) {
    let g = gg.get();
    let ohw = g.oh * g.ow;
    let tiling = Tiling::new::<S>(ohw);
    let at = |q: usize| {
        if q == parts {
            ohw
        } else {
            tiling.start(tiling.count * q / parts, ohw)
        }
    };
    let pixels = at(part)..at(part + 1);
    assert!(part < parts && out.len() == g.output_len());
    if pixels.is_empty() {
        return;
    }
    let og = g.o / g.groups;
    for b in 0..g.n {
        for gi in 0..g.groups {
            let first = (b * g.o + gi * og) * ohw;
            let run = first..first + og * ohw;
            let residual = match ops.residual {
                Residual::Separate(r) => Residual::Separate(&r[run.clone()]),
                other => other,
            };
            let run_ops = Operands { residual, ..*ops };
            let panels = 0..panels_per_group(&g);
            conv_run(s, gg, &run_ops, b, gi, panels, out.sub(run), pixels.clone());
        }
    }
}

/// Panels `panels` of group `gi` of image `b` on the instruction set `s`, output pixels
/// `pixels` only (a range of whole tiles of the plane's [`Tiling`]); `out` (and a `Separate`
/// residual) are exactly the output channels those panels write, and no one else writes these
/// pixels of them meanwhile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_run<G: Geom, S: Simd>(
    s: S,
    gg: G,
    ops: &Operands<'_>,
    b: usize,
    gi: usize,
    panels: Range<usize>,
    out: OutPtr<'_>,
    pixels: Range<usize>,
) {
    let g = gg.get();
    let ohw = g.oh * g.ow;
    if let Some(sc) = g.shortcut
        && sc.stride > 1
        && ohw <= SUBSAMPLED_PLANE
        && sc.c * ohw <= SUBSAMPLED
    {
        return subsampled(s, &g, ops, b, gi, panels, out, pixels);
    }
    let hw = g.h * g.w;
    let cg = g.c / g.groups;
    let k_total = g.k_total();
    let k_main = g.k_main();
    let ppg = panels_per_group(&g);
    let taps = g.k * g.k;
    let input = &ops.input[(b * g.c + gi * cg) * hw..][..cg * hw];
    let (sc_c, sc_hw) = g.shortcut.map_or((0, 0), |s| (s.c, s.h * s.w));
    let shortcut = &ops.shortcut[b * sc_c * sc_hw..][..sc_c * sc_hw];
    let og = g.o / g.groups;
    let rows = if panels.end * MR < og { panels.end * MR } else { og } - panels.start * MR;
    let tiling = Tiling::new::<S>(ohw);
    assert!(pixels.start <= pixels.end && pixels.end <= ohw);
    assert!(tiling.is_start(pixels.start, ohw) && tiling.is_start(pixels.end, ohw));
    assert_eq!(out.len(), rows * ohw);
    let run = Run {
        ops: *ops,
        weights: &ops.packed[(gi * ppg + panels.start) * k_total * MR..][..panels.len() * k_total * MR],
        k_total,
        rows,
        bias: &ops.bias[gi * og + panels.start * MR..][..rows],
        ohw,
        relu: g.relu,
    };
    if s.few_channels(&g, &run, input, out, pixels.clone()) {
        return;
    }
    let table = table_fits(&g);
    let mut tap_off = [0i32; TABLE_TAPS];
    if table {
        for i in 0..g.k {
            for j in 0..g.k {
                tap_off[i * g.k + j] = ((i * g.w + j) * g.dilation) as i32;
            }
        }
    }
    let tab = if table { taps } else { 0 };
    let mut buf = Buf([0.0; BUF_MAX]);
    // 1x1, stride 1, no padding: every lane of every channel reads in range.
    let pointwise = g.k == 1 && g.stride == 1 && g.pad == 0 && table;

    // Planes of many tiles: the next tile's output and input are prefetched (see
    // `prefetch_out`); on small planes a run is a few tiles, whose lines the hardware
    // prefetchers bring. A 1x1 conv's next tile of input rows is not asked for all at once
    // before the tile (that measured no gain once those rows are packed: resnet50's 1x1 convs
    // on 56x56 and 28x28, -10% to +4%) but a line per `k` by the tile's kernel calls of K in
    // chunks, shared out among them ([`Ahead`]): the hundreds of lines of one tile (three per
    // channel, a plane apart) are more streams than the hardware prefetchers follow, and a
    // burst of prefetches presumably waits for the same few fill buffers as the packing.
    // resnet50 in the model, one thread, three runs alternating: layer1.1-2.conv1 (256 -> 64
    // on 56x56) 0.68-0.69 -> 0.60-0.63 ms, layer2.0.conv1 (256 -> 128) 1.18-1.21 -> 1.11-1.16,
    // layer2.1-3.conv1 (512 -> 128 on 28x28) 0.56-0.59 -> 0.54-0.57. (Two tiles ahead: no
    // better.)
    let big = ohw >= BIG_PLANE_TILES * S::NR;
    // With the residual in place, whose lines the kernel asks for itself, asking for the
    // output lines a tile ahead as well measured slower: resnet50 in the model
    // (`resnet-bench --layers`, alternating), one thread, five runs: layer1.1.conv3 (56x56)
    // 0.68-0.75 -> 0.64-0.71 ms, layer2.1.conv3 (28x28) 0.57-0.62 -> 0.54-0.59, layer2.0.conv3
    // with its downsample 1.68-1.79 -> 1.66-1.72; two threads, three runs: 0.30-0.31 -> 0.29
    // ms, 0.89-0.90 -> 0.85-0.87 ms. (Without a residual, as for the conv1s, it made no clear
    // difference.)
    let ask_out = big && !(S::PREFETCHES_RESIDUAL && matches!(ops.residual, Residual::InPlace));

    // Groups of blocks of rows whose weights stay in L2 while the tiles go past, except where
    // the packing reads strided input (permutes or gathers): there at least `SHARED` blocks
    // share each packing, which costs more than reading the weights again per tile (and up to
    // `GROUP` while their weights fit in `WEIGHTS_BYTES`: resnet50's layer2.0.conv3 with its
    // stride-2 downsample, 64 panels, one group instead of two, three runs in the model
    // alternating with two groups: 1.93-2.00 -> 1.82-1.88 ms, layer3.0.conv3 (3 groups, not 4)
    // 2.26-2.36 -> 2.21-2.25 ms; more blocks than that, as one group for layer4.0.conv3's 256
    // panels, measured slower: 2.52-2.61 -> 2.60-3.03). Measured on one
    // thread, wide_resnet50_2's stride-2 3x3 convs: layer2.0 (256 channels, 56x56 -> 28x28)
    // 6.4-6.8 -> 5.5-6.0 ms, layer3.0 7.9-8.6 -> 6.3-6.4 ms, layer4.0 10.8 -> 8.1 ms;
    // resnet50's layer3.0.conv2 1.70 -> 1.54 ms, layer4.0.conv2 2.2 -> 2.0 ms. (For stride-1
    // convs on 14x14 planes, the same measured no gain.) Nor is there anything to keep in L2
    // when the run is one tile (a 7x7 plane on AVX-512): each weight is read once whatever the
    // groups, and fewer groups pack the tile fewer times; but each block's partial sums go
    // to the stack and back per chunk, 1.5 KiB a block, which for `SHARED` blocks (48 KiB)
    // cannot stay in L1 with the packed chunk, and the weights stream from that many places
    // at once (presumably why fewer measured faster). Hence `ONE_TILE` blocks. Hot, one
    // thread, alternating in one process, resnet50's layer4.1.conv2 (K = 4608) went 1299-1308 -> 1247-1275 us from 10 groups to 2
    // (32 blocks); in the model (weights from memory, `resnet-bench --layers`, runs
    // alternating), layer4.1-2's conv2 with 32 blocks against 16 (4 groups): one thread
    // 1.57-1.66 -> 1.50-1.61 ms (six runs each), two threads 0.78-0.84 -> 0.75-0.81 ms (three);
    // with 8 blocks 1.60-1.65 ms on one thread.
    let per_block = S::ROWS * k_total * 4;
    let strided = g.stride > 1 || g.shortcut.is_some_and(|s| s.stride > 1);
    let one_tile = pixels.end - pixels.start <= S::NR + usize::from(S::EXTRA);
    let blocks = if strided {
        (WEIGHTS_BYTES / per_block).clamp(SHARED, GROUP)
    } else if one_tile {
        ONE_TILE
    } else {
        (WEIGHTS_BYTES / per_block).clamp(1, SHARED)
    };
    // Written by each chunk's first kernel calls before any reads it (`Simd::kernel`).
    let mut part = [const { MaybeUninit::<f32>::uninit() }; GROUP * MR * (MAX_NR + 1)];

    let group_end = |g0: usize| {
        if rows - g0 < blocks * S::ROWS {
            rows
        } else {
            g0 + blocks * S::ROWS
        }
    };
    // Tiles in the run: the later tiles of a group prefetch the next group's weights.
    let tiles = tiling.index(pixels.end, ohw) - tiling.index(pixels.start, ohw);
    let mut g0 = 0;
    while g0 < rows {
        let g1 = group_end(g0);
        let mut p0 = pixels.start;
        // Input rows prefetched for the tiles so far (`prefetch_in`).
        let mut rows_asked = 0;
        let mut t = 0;
        while p0 < pixels.end {
            let nv = tiling.len_at(p0, ohw);
            // The next group's weights, into L2 over this group's tiles after the first
            // (which reads this group's weights from memory): this tile's share of their
            // lines ([`NextWeights`]), if any (there may be fewer lines than tiles).
            let next_w = if t >= 1 && g1 < rows {
                let w = &run.weights[g1 / MR * k_total * MR..group_end(g1).div_ceil(MR) * k_total * MR];
                let lines = w.len().div_ceil(16);
                let (l0, l1) = (lines * (t - 1) / (tiles - 1), lines * t / (tiles - 1));
                (l1 > l0).then(|| NextWeights {
                    at: w.as_ptr().wrapping_add(l0 * 16),
                    lines: l1 - l0,
                })
            } else {
                None
            };
            t += 1;
            // The input lines of a 1x1 conv that the kernel calls of this tile ask for a line
            // at a time ([`NextIn`]): on a large plane, the next tile's; on a small one whose
            // input does not stay in L2, this tile's next chunk.
            let mut next_in = None;
            // The next tile's output lines (with a residual in place, the residual's) that
            // kernel calls ask for a line at a time, where their prefetch slot has room: see
            // the one-chunk calls below and `chunked` (not where the next group's weights take
            // the slot, nor for a conv that packs a window: then the output lines go in a
            // burst; spread over a stride-2 3x3 conv's calls they measured no faster).
            let mut next_out = None;
            if big && p0 + nv < pixels.end {
                let next = tiling.len_at(p0 + nv, ohw);
                let spread = S::SPREADS_OUTPUT
                    && next_w.is_none()
                    && (g.shortcut.is_some() || pointwise && (g1 - g0).div_ceil(S::ROWS) >= HALF_CALLS);
                if ask_out && !spread {
                    prefetch_out(out, ohw, g0..g1, p0 + nv, next);
                } else if ask_out || matches!(ops.residual, Residual::InPlace) {
                    next_out = Some(NextIn::at(out.as_ptr().cast_const(), ohw, p0 + nv, next, false));
                }
                if !pointwise {
                    prefetch_in(&g, input, p0 + nv, next, &mut rows_asked);
                } else {
                    next_in = Some(NextIn::lines(input, hw, p0 + nv, next, false));
                }
            } else if !big && pointwise && input.len() * 4 > INPUT_IN_L2 {
                next_in = Some(NextIn::lines(input, hw, p0, nv, true));
            }
            let plan = Plan::new(&g, p0, nv, table);
            let whole = nv >= S::NR;
            let vectors = nv.div_ceil(S::LANES);
            let kc = chunk_rows::<S>(k_total, row_len::<S>(vectors));
            let tile = TileSrc {
                s,
                src: Src {
                    input,
                    hw,
                    taps,
                    k_main,
                    tap_off: &tap_off[..tab],
                    tap_mask: &plan.tap_mask[..tab],
                    base: &plan.base,
                    contig: plan.contig,
                    shortcut,
                    sc_hw,
                    sc_base: &plan.sc_base,
                    sc_contig: plan.sc_contig,
                    valid: plan.valid,
                    vectors,
                },
                g: &g,
                plan: &plan,
                table,
                direct_main: pointwise && hw <= IN_PLACE_PLANE * S::NR && (S::MASKED || whole),
                direct_sc: table
                    && g.shortcut.is_some()
                    && plan.sc_contig
                    && sc_hw <= IN_PLACE_PLANE * S::NR
                    && (S::MASKED || whole),
                whole,
            };
            // One chunk; with a shortcut, the main and shortcut rows are separate chunks.
            let single = tile.chunks(kc).nth(1).is_none();
            if S::TAIL && nv <= TAIL_LANES && p0 > 0 && g0 % MR == 0 {
                tail(&tile, &run, g0..g1, (p0, nv), kc, &mut buf, out);
            } else if single {
                let b = tile.cols(0..k_total, &mut buf);
                let calls = (g1 - g0).div_ceil(S::ROWS);
                for (j, r0) in (g0..g1).step_by(S::ROWS).enumerate() {
                    let (a, bias) = run.block(r0, S::ROWS, &(0..k_total));
                    let mut epi = run.epi(out, r0, bias, p0, nv);
                    // The next group's weights or, where there are none to fetch, the next
                    // tile's residual lines of the group's rows, a share per call: each call's
                    // own residual prefetch (`Simd::PREFETCHES_RESIDUAL`) comes one call before
                    // its epilogue, too late for lines that are in no cache, which on a large
                    // plane the hardware prefetchers do not bring (a few lines from each of
                    // hundreds of planes). Into L2 a tile ahead, on AVX-512: resnet50's
                    // layer1.1-2.conv3 (64 -> 256 on 56x56, one chunk, 3.2 MB of residual) in
                    // the model (`resnet-bench --layers`, four runs alternating), one thread
                    // 0.69-0.72 -> 0.62-0.68 ms, two threads 0.353-0.379 -> 0.325-0.354 ms; the
                    // conv3s on 28x28 and smaller unchanged. (In place of a chunked tile's input
                    // lines, [`NextIn`], the next tile's residual lines measured no gain:
                    // layer2's conv3s on 28x28, 0.99-1.01 of the time before.)
                    let ahead = match (next_w, next_out) {
                        (Some(n), _) => n.share(j, calls, k_total),
                        (None, Some(r)) => r.share(g0..g1, (j, calls), k_total),
                        (None, None) => Ahead::NONE,
                    };
                    s.kernel(
                        &a,
                        &Cols { ahead, ..b },
                        tile.src.vectors,
                        &mut [],
                        true,
                        Some(&mut epi),
                    );
                }
            } else {
                chunked(
                    &tile,
                    &run,
                    g0..g1,
                    (p0, nv),
                    kc,
                    &mut buf,
                    &mut part,
                    out,
                    next_in,
                    next_w,
                    next_out,
                );
            }
            p0 += nv;
        }
        g0 = g1;
    }
}

/// Floats of the stack buffer a strided shortcut is subsampled into ([`subsampled`]): 392 KiB,
/// resnet50's layer3.0 (512 channels of 14x14) and layer4.0 (1024 of 7x7).
const SUBSAMPLED: usize = 512 * 14 * 14;

/// The largest output plane (pixels) whose strided shortcut is subsampled first
/// ([`subsampled`]): 14x14. On 28x28 (resnet50's layer2.0.conv3, 800 KB of copy) it measured
/// slower: 175-189 -> 168-172 GFLOP/s.
const SUBSAMPLED_PLANE: usize = 14 * 14;

/// [`conv_run`] for a conv with a strided shortcut on a small plane ([`SUBSAMPLED_PLANE`]): the
/// image's shortcut pixels are first copied out (`sc.c * oh * ow` floats, at most
/// [`SUBSAMPLED`]), so that the shortcut rows are contiguous: read in place where the main
/// rows are too ([`IN_PLACE_PLANE`]), in one chunk, else packed with plain loads, rather than
/// packed with strided loads chunk by chunk for every group of blocks. Same rows of K in the
/// same order: the same sums, the same bits. With the main rows read in place as well, each
/// block then runs its whole K before the next (`chunked`). Weights flushed before each call
/// (`RESNET_RUNTIME_BENCH_COLD`), three alternating runs, resnet50's layer4.0.conv3 with its
/// downsample: 129-131 -> 141-148 GFLOP/s; in the model (`resnet-bench --layers`, three
/// alternating runs) 2.36-2.44 -> 2.04-2.22 ms. layer3.0.conv3 (14x14, 512 shortcut channels
/// from 28x28), in the model, one thread, seven alternating runs: 2.28-2.60 -> 2.14-2.32 ms;
/// two threads, three runs: 1.27-1.43 -> 1.21-1.26.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn subsampled<S: Simd>(
    s: S,
    g: &ConvGeom,
    ops: &Operands<'_>,
    b: usize,
    gi: usize,
    panels: Range<usize>,
    out: OutPtr<'_>,
    pixels: Range<usize>,
) {
    let sc = g.shortcut.expect("a shortcut");
    let (ohw, sc_hw) = (g.oh * g.ow, sc.h * sc.w);
    // Not zeroed first (392 KiB, for a copy often smaller): every element of `copy` is
    // written below before it is read.
    let mut buf = [const { MaybeUninit::<f32>::uninit() }; SUBSAMPLED];
    let n = sc.c * ohw;
    let copy = &mut buf[..n];
    let planes = &ops.shortcut[b * sc.c * sc_hw..][..sc.c * sc_hw];
    assert!(ohw > 0 && n <= SUBSAMPLED && sc.c * sc_hw == planes.len());
    for (dst, src) in copy.chunks_exact_mut(ohw).zip(planes.chunks_exact(sc_hw)) {
        for (y, dst) in dst.chunks_exact_mut(g.ow).enumerate() {
            let row = &src[y * sc.stride * sc.w..];
            for (x, d) in dst.iter_mut().enumerate() {
                d.write(row[x * sc.stride]);
            }
        }
    }
    // SAFETY: the loops above wrote all `n` elements: `sc.c` planes of `ohw = oh * ow` (the
    // zip stops at the shorter, and both have `sc.c`), each `oh` rows of `ow`; `MaybeUninit<f32>`
    // has the layout of `f32`.
    let copy: &[f32] = unsafe { core::slice::from_raw_parts(copy.as_ptr().cast::<f32>(), n) };
    // The same conv on image `b` alone, its shortcut the copy: stride 1 on the output plane.
    let g1 = ConvGeom {
        n: 1,
        shortcut: Some(crate::geom::ShortcutGeom {
            c: sc.c,
            h: g.oh,
            w: g.ow,
            stride: 1,
        }),
        ..*g
    };
    let image = g.c * g.h * g.w;
    let ops1 = Operands {
        input: &ops.input[b * image..][..image],
        shortcut: copy,
        ..*ops
    };
    conv_run(s, super::Dyn(&g1), &ops1, 0, gi, panels, out, pixels);
}

/// The blocks of rows `rows` (at most [`GROUP`] blocks) of one tile when K takes several
/// chunks: for each chunk, pack it (once) and continue each block's partial sums with it.
/// With `next_in`, the calls of each chunk also prefetch the lines it names of the chunk's
/// main rows, or of the next chunk's ([`Ahead::share`]); the calls of a last chunk of
/// shortcut rows prefetch the next group's weights (`next_w`) or else the `next_out` lines of
/// the blocks' output channels; with both `next_in` and `next_out` (no `next_w`), the first
/// half of each chunk's calls ask for the input lines and, in the last chunk, the second half
/// for the output lines.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn chunked<S: Simd>(
    tile: &TileSrc<'_, S>,
    run: &Run<'_>,
    rows: Range<usize>,
    (p0, nv): (usize, usize),
    kc: usize,
    buf: &mut Buf,
    part: &mut [MaybeUninit<f32>; GROUP * MR * (MAX_NR + 1)],
    out: OutPtr<'_>,
    next_in: Option<NextIn>,
    next_w: Option<NextWeights>,
    next_out: Option<NextIn>,
) {
    let k_total = run.k_total;
    let (s, vectors) = (tile.s, tile.src.vectors);
    // Block `r0`'s kernel call on chunk `ks` (columns `b`), with the epilogue after the last.
    let call = |r0: usize, ks: &Range<usize>, b: &Cols<'_>, part: &mut [MaybeUninit<f32>]| {
        let (a, bias) = run.block(r0, S::ROWS, ks);
        let first = ks.start == 0;
        if ks.end == k_total {
            let mut epi = run.epi(out, r0, bias, p0, nv);
            s.kernel(&a, b, vectors, part, first, Some(&mut epi));
        } else {
            s.kernel(&a, b, vectors, part, first, None);
        }
    };
    if tile.direct_main && (tile.src.k_main == k_total || tile.direct_sc) {
        // Nothing packed, nothing to share: block by block, each reading its weights in one
        // pass, its partial sums staying in L1.
        let part = &mut part[..part_len::<S>()];
        for r0 in rows.step_by(S::ROWS) {
            for ks in tile.chunks(kc) {
                call(r0, &ks, &tile.cols(ks.clone(), buf), part);
            }
        }
        return;
    }
    let calls = rows.len().div_ceil(S::ROWS);
    let chunks = tile.chunks(kc).count();
    for (c, ks) in tile.chunks(kc).enumerate() {
        let b = tile.cols(ks.clone(), buf);
        // The lines of the main rows to come (this chunk's of the next tile, or the next
        // chunk's of this one), shared out evenly among this chunk's calls.
        let k_main = tile.src.k_main;
        let main = match next_in {
            Some(NextIn { next_chunk: true, .. }) => ks.end.min(k_main)..(ks.end + kc).min(k_main),
            _ => ks.start..ks.end.min(k_main),
        };
        let blocks = rows.clone().step_by(S::ROWS);
        for (j, (r0, part)) in blocks.zip(part.chunks_exact_mut(part_len::<S>())).enumerate() {
            let last = c + 1 == chunks;
            let ahead = match (next_in, next_w, next_out) {
                // A chunk's input lines, three or four per row, fill the prefetch slots (one per
                // `k`) of at most four calls: with `HALF_CALLS` or more, the first half ask for
                // them and, in the last chunk, the second half for the output lines (rather
                // than a burst before the tile; with a residual in place, its lines). In the
                // model (`resnet-bench --layers`, five runs alternating), AVX-512, one thread:
                // layer1.1-2.conv1 (256 -> 64 on 56x56) 0.636-0.664 -> 0.621-0.647 ms,
                // layer2.0.conv1 (256 -> 128 on 56x56) 1.18-1.23 -> 1.14-1.20; two threads
                // 0.334-0.347 -> 0.324-0.341 and 0.620-0.649 -> 0.594-0.629; layer1.0.conv1
                // (one chunk, the output lines from every call) 0.252-0.269 -> 0.242-0.255 and
                // 0.130-0.135 -> 0.126-0.133; on 28x28, 0.97-1.02 of the time before.
                (Some(i), None, Some(o)) if !main.is_empty() && calls >= HALF_CALLS => {
                    let half = calls.div_ceil(2);
                    if j < half {
                        i.share(main.clone(), (j, half), ks.len())
                    } else if last {
                        o.share(rows.clone(), (j - half, calls - half), ks.len())
                    } else {
                        Ahead::NONE
                    }
                }
                (Some(i), ..) if !main.is_empty() => i.share(main.clone(), (j, calls), ks.len()),
                (_, Some(n), _) => n.share(c * calls + j, chunks * calls, ks.len()),
                // The next tile's output lines, rather than a burst of prefetches before
                // the tile (`prefetch_out`): the calls of a conv's last chunk, the shortcut
                // rows, have their prefetch slot free. resnet50 in the model
                // (`resnet-bench --layers`, five runs alternating), AVX-512:
                // layer1.0.conv3 with its downsample (56x56) one thread 1.18-1.29 ->
                // 1.08-1.19 ms, two threads 0.608-0.622 -> 0.570-0.578 ms; layer2.0.conv3
                // with its stride-2 downsample (28x28) 1.70-1.79 -> 1.63-1.71 ms and
                // 0.86-0.95 -> 0.83-0.88 ms. (A 1x1 conv's last chunk, of main rows, gives
                // its output lines half its calls, above; giving them all the calls, none to
                // the input lines, measured slower: layer1.1-2.conv1, 56x56, 1.02-1.06 of
                // the time before.)
                (_, None, Some(o)) if last && main.is_empty() => o.share(rows.clone(), (j, calls), ks.len()),
                _ => Ahead::NONE,
            };
            call(r0, &ks, &Cols { ahead, ..b }, part);
        }
    }
}

/// The rows `rows` (from a panel's first row) of a last tile of `nv <= TAIL_LANES` pixels,
/// pixel by pixel through [`Simd::tail`], then the epilogue as the kernels do it:
/// `y = acc + bias`, `y = y + residual`, `y = 0 > y ? 0 : y` with ReLU.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn tail<S: Simd>(
    tile: &TileSrc<'_, S>,
    run: &Run<'_>,
    rows: Range<usize>,
    (p0, nv): (usize, usize),
    kc: usize,
    buf: &mut Buf,
    out: OutPtr<'_>,
) {
    let k_total = run.k_total;
    let (q0, np) = (rows.start / MR, (rows.end - rows.start).div_ceil(MR));
    assert!(rows.start.is_multiple_of(MR) && np <= GROUP && nv <= TAIL_LANES);
    let pstride = k_total * MR;
    let mut acc = [[[0.0f32; MR]; GROUP]; TAIL_LANES];
    for ks in tile.chunks(kc) {
        let b = tile.cols(ks.clone(), buf);
        let w = &run.weights[q0 * pstride + ks.start * MR..];
        for (l, acc) in acc.iter_mut().enumerate().take(nv) {
            tile.s
                .tail(w, pstride, np, &b.planes[l..], b.stride, ks.len(), acc);
        }
    }
    assert!(rows.end * run.ohw <= out.len() && p0 + nv <= run.ohw);
    for r in rows.clone() {
        let (q, j) = ((r - rows.start) / MR, (r - rows.start) % MR);
        for (l, acc) in acc.iter().enumerate().take(nv) {
            let at = r * run.ohw + p0 + l;
            let mut y = acc[q][j] + run.bias[r];
            match run.ops.residual {
                Residual::None => {}
                // SAFETY: `at < out.len()` (asserted above), a pixel of this tile: no one
                // else touches it (`conv_run`'s contract).
                Residual::InPlace => y += unsafe { out.get(at) },
                Residual::Separate(res) => y += res[at],
            }
            if run.relu && 0.0 > y {
                y = 0.0;
            }
            // SAFETY: as above.
            unsafe { out.set(at, y) };
        }
    }
}

/// The packer for kernels too large for a tap table (or planes too large for `i32` offsets):
/// bounds per lane and tap.
#[inline(never)]
fn pack_on_the_fly(
    g: &ConvGeom,
    plan: &Plan,
    src: &Src<'_>,
    ks: Range<usize>,
    dst: &mut [f32],
    nr: usize,
    lanes: usize,
) {
    let (taps, hw) = (g.k * g.k, g.h * g.w);
    for (k, row) in ks.zip(dst.chunks_exact_mut(nr)) {
        let row = &mut row[..src.vectors * lanes];
        row.fill(0.0);
        if k < src.k_main {
            let (ci, t) = (k / taps, k % taps);
            let plane = &src.input[ci * hw..][..hw];
            let (dy, dx) = ((t / g.k * g.dilation) as isize, (t % g.k * g.dilation) as isize);
            for (l, d) in row[..plan.nv].iter_mut().enumerate() {
                // A negative coordinate wraps to a huge `usize` and fails the test too.
                let (iy, ix) = ((plan.iy0[l] + dy) as usize, (plan.ix0[l] + dx) as usize);
                if iy < g.h && ix < g.w {
                    *d = plane[iy * g.w + ix];
                }
            }
        } else {
            let plane = &src.shortcut[(k - src.k_main) * src.sc_hw..][..src.sc_hw];
            for (l, d) in row[..plan.nv].iter_mut().enumerate() {
                *d = plane[plan.sc_px[l]];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Ahead, Tiling};

    /// A tile's index, from its first pixel, is its place in the walk of the plane by
    /// [`Tiling::len_at`], with and without the long tiles of [`Simd::EXTRA`].
    #[test]
    fn tile_indices_follow_the_walk() {
        for nr in [12usize, 16, 48] {
            for ohw in 1..400usize {
                let (whole, rest) = (ohw / nr, ohw % nr);
                let mut tilings = vec![Tiling {
                    count: ohw.div_ceil(nr),
                    long: 0,
                    nr,
                }];
                if rest <= whole {
                    tilings.push(Tiling {
                        count: whole,
                        long: rest,
                        nr,
                    });
                }
                for tiling in tilings {
                    let (mut p, mut i) = (0, 0);
                    while p < ohw {
                        assert!(tiling.is_start(p, ohw));
                        assert_eq!(tiling.index(p, ohw), i, "{tiling:?} {ohw} {p}");
                        p += tiling.len_at(p, ohw);
                        i += 1;
                    }
                    assert_eq!((i, tiling.index(ohw, ohw)), (tiling.count, i), "{tiling:?} {ohw}");
                }
            }
        }
    }

    /// The calls of a chunk, each asking for its share through [`Ahead::next`], ask for every
    /// line of every main row exactly once, in row-major order; a share never exceeds the
    /// call's `k`s.
    #[test]
    fn ahead_shares_cover_each_line_once() {
        let base = core::ptr::null::<f32>().wrapping_add(1 << 20);
        let stride = 3136; // a 56x56 plane
        for (rows, lines, calls) in [(0..128, 3, 8), (5..37, 4, 7), (128..256, 3, 16), (0..1, 2, 5)] {
            let mut asked = Vec::new();
            for j in 0..calls {
                let mut a = Ahead::share((base, stride, lines), rows.clone(), (j, calls), usize::MAX);
                while a.count > 0 {
                    asked.push(a.next() as usize);
                }
            }
            let want: Vec<usize> = rows
                .clone()
                .flat_map(|r| (0..lines).map(move |l| base.wrapping_add(r * stride + l * 16) as usize))
                .collect();
            assert_eq!(asked, want, "{rows:?} x {lines} lines in {calls} calls");
            // Capped at `max` per call.
            let capped = Ahead::share((base, stride, lines), rows.clone(), (0, calls), 2);
            assert_eq!(capped.count, (want.len() / calls).min(2));
        }
    }
}
