//! Static descriptions of kernel calls.
//!
//! Generated code describes each distinct conv by a zero-sized type implementing
//! [`ConvShape`]; [`crate::conv2d`] is generic over it, so every distinct geometry gets one
//! instantiation in which every size is a constant, and convs with identical geometry share it.

/// A projection shortcut computed as extra K-columns of a conv: a 1x1 conv with stride
/// `stride` over `c` channels of an `h` x `w` input, added into the same accumulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortcutGeom {
    /// Channels of the shortcut input.
    pub c: usize,
    /// Height of the shortcut input.
    pub h: usize,
    /// Width of the shortcut input.
    pub w: usize,
    /// Stride of the 1x1 conv: output pixel `(y, x)` reads input pixel `(y * stride, x * stride)`.
    pub stride: usize,
}

/// One 2-D convolution call: NCHW input `[n, c, h, w]`, NCHW output `[n, o, oh, ow]`, square
/// kernel `k` with `stride`, zero `pad` on every side, `dilation`, and `groups`.
///
/// `out[b, o, y, x] = relu?( bias[o] + sum_{ci, i, j} W[o, ci, i, j] * in[b, g*cg + ci, y*s - p + i*d, x*s - p + j*d]
///                           + sum_{cs} Ws[o, cs] * sc[b, cs, y*ss, x*ss] + res[b, o, y, x] )`
/// with `g = o / (o_total / groups)`, out-of-range input pixels reading zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    /// Batch.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Output height: `(h + 2 * pad - dilation * (k - 1) - 1) / stride + 1`.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Kernel height and width.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
    /// Dilation.
    pub dilation: usize,
    /// Groups: `c` and `o` are multiples of it. A conv with a shortcut has one group.
    pub groups: usize,
    /// A projection shortcut fused as extra K-columns.
    pub shortcut: Option<ShortcutGeom>,
    /// Whether an identity residual `[n, o, oh, ow]` is added before the ReLU.
    pub residual: bool,
    /// Whether the epilogue clamps at zero.
    pub relu: bool,
}

impl ConvGeom {
    /// Input elements.
    pub const fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Output elements.
    pub const fn output_len(&self) -> usize {
        self.n * self.o * self.oh * self.ow
    }

    /// Shortcut input elements (0 without a shortcut).
    pub const fn shortcut_len(&self) -> usize {
        match self.shortcut {
            Some(s) => self.n * s.c * s.h * s.w,
            None => 0,
        }
    }

    /// The GEMM depth of one group's main part: `c / groups * k * k`.
    pub const fn k_main(&self) -> usize {
        self.c / self.groups * self.k * self.k
    }

    /// The GEMM depth including the shortcut's extra columns.
    pub const fn k_total(&self) -> usize {
        self.k_main()
            + match self.shortcut {
                Some(s) => s.c,
                None => 0,
            }
    }

    /// Multiply-accumulates of one call (shortcut included).
    pub const fn macs(&self) -> usize {
        self.n * self.o * self.oh * self.ow * self.k_total()
    }
}

/// A conv geometry as a type, so that kernels are instantiated once per distinct geometry.
pub trait ConvShape {
    /// The geometry.
    const GEOM: ConvGeom;
}

/// A max pool: NCHW `[n, c, h, w]` to `[n, c, oh, ow]`, square window `k`, `stride`, `pad`
/// (padded cells never win), `ceil_mode=False`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolGeom {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Window height and width.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on each side.
    pub pad: usize,
}
