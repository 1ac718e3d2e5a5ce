//! Which instruction set the conv kernel runs on: chosen once per process.
//!
//! Without the `std` feature the choice is made at compile time from the enabled target
//! features (`-C target-cpu=...` or `-C target-feature=...`): AVX-512F, else AVX2 with FMA
//! on x86-64, NEON on AArch64, the portable kernel otherwise. With `std` (and in this
//! crate's tests), the CPU is also asked at run time, the first time [`isa`] is called, and
//! the answer is cached, so that every conv of the process runs on the same instruction set
//! and gives the same bits. Under Miri, which does not run most SIMD intrinsics, it is always
//! [`Isa::Portable`].
//!
//! The instruction sets differ in their numerics (see [`crate::conv`]): the SIMD kernels use
//! fused multiply-add, the portable one rounds each product.

use core::sync::atomic::{AtomicU8, Ordering};

/// An instruction set the conv kernel can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// The portable kernel: plain Rust, products rounded before they are added.
    Portable,
    /// x86-64 with AVX2 and FMA: 256-bit vectors, fused multiply-add.
    Avx2Fma,
    /// x86-64 with AVX-512F: 512-bit vectors, fused multiply-add.
    Avx512,
    /// AArch64 with NEON (Advanced SIMD): 128-bit vectors, fused multiply-add.
    Neon,
}

impl Isa {
    /// Every instruction set, in order of preference (best last).
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Neon, Isa::Avx2Fma, Isa::Avx512];

    /// Whether this CPU (at run time with `std`, else as compiled) can run `self`.
    pub fn is_available(self) -> bool {
        if cfg!(miri) {
            return self == Isa::Portable;
        }
        match self {
            Isa::Portable => true,
            Isa::Avx2Fma => x86_has(X86::Avx2Fma),
            Isa::Avx512 => x86_has(X86::Avx512),
            Isa::Neon => neon(),
        }
    }
}

/// 0 until decided, then `1 + ` the index of the choice in [`Isa::ALL`].
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// The instruction set the convs ([`crate::conv2d`], [`crate::conv::conv2d_dyn`] and the
/// Winograd ones) use in this process: the best available one, decided on the first call and
/// then fixed, unless [`set_isa`] chose another.
pub fn isa() -> Isa {
    match CHOSEN.load(Ordering::Relaxed) {
        0 => {
            let best = Isa::ALL
                .into_iter()
                .rev()
                .find(|i| i.is_available())
                .unwrap_or(Isa::Portable);
            // Every thread that races here computes the same answer; the first store wins.
            let _ = CHOSEN.compare_exchange(0, code(best), Ordering::Relaxed, Ordering::Relaxed);
            Isa::ALL[usize::from(CHOSEN.load(Ordering::Relaxed)) - 1]
        }
        n => Isa::ALL[usize::from(n) - 1],
    }
}

/// Makes the convs of this process run on `isa` from now on, if this CPU can run it (else
/// returns `false` and changes nothing). [`Isa::Portable`] gives the bits of the portable
/// order, which the C back end and a Cortex-M follow: a host reference for them. Call it before
/// the first forward; a forward running meanwhile may mix the two.
pub fn set_isa(isa: Isa) -> bool {
    if !isa.is_available() {
        return false;
    }
    CHOSEN.store(code(isa), Ordering::Relaxed);
    true
}

/// `1 + ` the index of `isa` in [`Isa::ALL`].
fn code(isa: Isa) -> u8 {
    Isa::ALL.iter().position(|&i| i == isa).unwrap_or(0) as u8 + 1
}

/// The x86-64 feature sets the kernels need.
#[derive(Clone, Copy)]
enum X86 {
    Avx2Fma,
    Avx512,
}

/// Whether the x86-64 feature set is enabled at compile time or, with `std`, present at run
/// time.
#[allow(unreachable_code)]
fn x86_has(set: X86) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let static_ = match set {
            X86::Avx2Fma => cfg!(all(target_feature = "avx2", target_feature = "fma")),
            X86::Avx512 => cfg!(target_feature = "avx512f"),
        };
        #[cfg(any(test, feature = "std"))]
        {
            return static_
                || match set {
                    X86::Avx2Fma => {
                        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
                    }
                    X86::Avx512 => std::is_x86_feature_detected!("avx512f"),
                };
        }
        return static_;
    }
    let _ = set;
    false
}

/// Whether NEON is enabled at compile time or, with `std`, present at run time.
#[allow(unreachable_code)]
fn neon() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        #[cfg(any(test, feature = "std"))]
        {
            return cfg!(target_feature = "neon") || std::arch::is_aarch64_feature_detected!("neon");
        }
        return cfg!(target_feature = "neon");
    }
    false
}

/// The transpose of a 16x16 block held as 16 rows: element `c` of row `r` becomes element `r`
/// of row `c` (unpacks, then 128-bit lane shuffles). Shared by the AVX-512 classifier and the
/// Winograd epilogue.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn transpose16(r: [core::arch::x86_64::__m512; 16]) -> [core::arch::x86_64::__m512; 16] {
    use core::arch::x86_64::*;
    // Pairs of rows interleaved by 32 bits, then by 64 bits: within each 128-bit lane, a 4x4
    // transpose of rows 4q .. 4q + 3.
    let mut t = [_mm512_setzero_ps(); 16];
    for q in 0..4 {
        let (a, b, c, d) = (r[4 * q], r[4 * q + 1], r[4 * q + 2], r[4 * q + 3]);
        let (ab_lo, ab_hi) = (_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        let (cd_lo, cd_hi) = (_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
        let (lo, hi) = (_mm512_castps_pd(ab_lo), _mm512_castps_pd(cd_lo));
        t[4 * q] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi));
        t[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi));
        let (lo, hi) = (_mm512_castps_pd(ab_hi), _mm512_castps_pd(cd_hi));
        t[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi));
        t[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi));
    }
    // Now lane `l` (128-bit) of `t[4q + k]` holds column `4l + k` of rows `4q .. 4q + 3`.
    // Gather the four row groups of each column: lanes `l` of `t[k]`, `t[4 + k]`, `t[8 + k]`,
    // `t[12 + k]` make column `4l + k`.
    let mut out = [_mm512_setzero_ps(); 16];
    for k in 0..4 {
        let (a, b, c, d) = (t[k], t[4 + k], t[8 + k], t[12 + k]);
        // Lanes 0,1 of a and b / 2,3 of a and b, then the same for c and d.
        let ab_01 = _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b); // a0 a1 b0 b1
        let ab_23 = _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b); // a2 a3 b2 b3
        let cd_01 = _mm512_shuffle_f32x4::<0b01_00_01_00>(c, d); // c0 c1 d0 d1
        let cd_23 = _mm512_shuffle_f32x4::<0b11_10_11_10>(c, d); // c2 c3 d2 d3
        out[k] = _mm512_shuffle_f32x4::<0b10_00_10_00>(ab_01, cd_01); // a0 b0 c0 d0
        out[4 + k] = _mm512_shuffle_f32x4::<0b11_01_11_01>(ab_01, cd_01); // a1 b1 c1 d1
        out[8 + k] = _mm512_shuffle_f32x4::<0b10_00_10_00>(ab_23, cd_23); // a2 b2 c2 d2
        out[12 + k] = _mm512_shuffle_f32x4::<0b11_01_11_01>(ab_23, cd_23); // a3 b3 c3 d3
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_is_available_and_fixed() {
        let first = isa();
        assert!(first.is_available());
        assert_eq!(isa(), first);
        assert!(Isa::Portable.is_available());
        if cfg!(miri) {
            assert_eq!(first, Isa::Portable);
        }
        // Nothing available ranks above the choice.
        let rank = |i: Isa| Isa::ALL.iter().position(|&j| j == i);
        assert!(
            Isa::ALL
                .iter()
                .all(|&i| !i.is_available() || rank(i) <= rank(first))
        );
    }
}
