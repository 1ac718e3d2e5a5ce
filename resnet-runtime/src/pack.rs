//! The packed weight layout the conv kernel reads. Owned by the kernels: the compiler and
//! the run-time loader only call [`packed_conv_len`] and [`pack_conv`].
//!
//! # Layout
//!
//! A conv with `o` output channels in `groups` groups has `og = o / groups` output channels
//! per group, cut into `panels = ceil(og / MR)` panels of [`MR`] channels; the last panel of
//! each group is padded with zero rows. The GEMM depth is `K = k_total` (see
//! [`ConvGeom::k_total`]): index `k < k_main` is the main part's tap
//! `k = (ci * kh + i) * kw + j` (`ci` the input channel within the group, `i`, `j` the kernel
//! row and column: torchvision's memory order), and index `k_main + cs` is the shortcut's input
//! channel `cs` (a conv with a shortcut has one group).
//!
//! The packed buffer is, for each group `gi` in `0..groups`, for each panel `p` in `0..panels`,
//! one `K x MR` block stored k-major:
//!
//! ```text
//! panel_base(gi, p) = (gi * panels + p) * K * MR
//! packed[panel_base(gi, p) + k * MR + r] = W'[gi * og + p * MR + r][k]   if p * MR + r < og
//!                                        = 0.0                           otherwise
//! W'[oc][k] = w[oc][k]               (k < k_main; w is [o, c / groups, kh, kw] row-major)
//! W'[oc][k] = shortcut_w[oc][k - k_main]  (k >= k_main; shortcut_w is [o, sc] row-major)
//! ```
//!
//! so the kernel reads one panel as a contiguous stream of `K` vectors of `MR` weights, one
//! per GEMM step, in the order it accumulates. The total length is
//! `groups * panels * K * MR` ([`packed_conv_len`]).

use crate::geom::ConvGeom;

/// Output channels per panel: the row count of the kernel's register tile and the width of
/// one packed weight vector.
pub const MR: usize = 8;

/// Panels of [`MR`] output channels per group: `ceil((o / groups) / MR)`.
pub const fn panels_per_group(g: &ConvGeom) -> usize {
    (g.o / g.groups).div_ceil(MR)
}

/// Elements of a conv's packed weights (padding included):
/// `groups * ceil((o / groups) / MR) * k_total * MR`.
pub const fn packed_conv_len(g: &ConvGeom) -> usize {
    g.groups * panels_per_group(g) * g.k_total() * MR
}

/// Packs a conv's weights for [`crate::conv2d`] in the layout the module documentation gives.
///
/// `w`: `[o, c / groups, k, k]` row-major (torchvision's layout, BatchNorm already folded);
/// `shortcut_w`: `[o, sc]` (the 1x1 projection's weights, folded) iff the geometry has a
/// shortcut; `out`: exactly [`packed_conv_len`] elements, fully written.
pub fn pack_conv(g: &ConvGeom, w: &[f32], shortcut_w: Option<&[f32]>, out: &mut [f32]) {
    let og = g.o / g.groups;
    let k_main = g.k_main();
    let k_total = g.k_total();
    let k_sc = k_total - k_main;
    debug_assert!(g.groups >= 1 && g.o.is_multiple_of(g.groups) && g.c.is_multiple_of(g.groups));
    debug_assert!(
        g.shortcut.is_none() || g.groups == 1,
        "a conv with a shortcut has one group"
    );
    debug_assert_eq!(w.len(), g.o * k_main);
    debug_assert_eq!(shortcut_w.map_or(0, <[f32]>::len), g.o * k_sc);
    debug_assert_eq!(shortcut_w.is_some(), g.shortcut.is_some());
    debug_assert_eq!(out.len(), packed_conv_len(g));
    let sw = shortcut_w.unwrap_or(&[]);

    // `out` is walked in storage order, so every element is written exactly once.
    let panels = panels_per_group(g);
    let mut blocks = out.chunks_exact_mut(k_total * MR);
    for gi in 0..g.groups {
        for p in 0..panels {
            let Some(block) = blocks.next() else { return };
            for (k, row) in block.chunks_exact_mut(MR).enumerate() {
                for (r, dst) in row.iter_mut().enumerate() {
                    let oc = p * MR + r;
                    *dst = if oc >= og {
                        0.0
                    } else if k < k_main {
                        w[(gi * og + oc) * k_main + k]
                    } else {
                        sw[(gi * og + oc) * k_sc + (k - k_main)]
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::ShortcutGeom;

    fn geom(c: usize, o: usize, k: usize, groups: usize, shortcut: Option<ShortcutGeom>) -> ConvGeom {
        ConvGeom {
            n: 1,
            c,
            h: 4,
            w: 4,
            o,
            oh: 4,
            ow: 4,
            k,
            stride: 1,
            pad: k / 2,
            dilation: 1,
            groups,
            shortcut,
            residual: false,
            relu: false,
        }
    }

    #[test]
    fn len_counts_padded_panels() {
        assert_eq!(packed_conv_len(&geom(3, 64, 7, 1, None)), 8 * 147 * 8);
        assert_eq!(packed_conv_len(&geom(4, 9, 1, 1, None)), 2 * 4 * 8);
        // 32 groups of 4 channels: one half-empty panel per group.
        assert_eq!(packed_conv_len(&geom(128, 128, 3, 32, None)), 32 * 36 * 8);
        let sc = ShortcutGeom {
            c: 5,
            h: 8,
            w: 8,
            stride: 2,
        };
        assert_eq!(packed_conv_len(&geom(2, 3, 1, 1, Some(sc))), 7 * 8);
    }

    /// Values chosen so each one names its source: `w[o][k] = 100 * (o + 1) + k`,
    /// `ws[o][cs] = -(100 * (o + 1) + cs)`.
    #[test]
    fn tiny_layout_by_hand() {
        // o = 9 (two panels, the second with one real row), c = 2, 1x1, shortcut of 3 channels.
        let sc = ShortcutGeom {
            c: 3,
            h: 4,
            w: 4,
            stride: 1,
        };
        let g = geom(2, 9, 1, 1, Some(sc));
        let w: Vec<f32> = (0..9)
            .flat_map(|o| (0..2).map(move |k| (100 * (o + 1) + k) as f32))
            .collect();
        let ws: Vec<f32> = (0..9)
            .flat_map(|o| (0..3).map(move |c| -((100 * (o + 1) + c) as f32)))
            .collect();
        let mut out = vec![f32::NAN; packed_conv_len(&g)];
        pack_conv(&g, &w, Some(&ws), &mut out);
        // K = 5, MR = 8: panel 0 at 0, panel 1 at 40.
        assert_eq!(out.len(), 80);
        assert_eq!(out[0..8], [100., 200., 300., 400., 500., 600., 700., 800.]);
        assert_eq!(out[8..16], [101., 201., 301., 401., 501., 601., 701., 801.]);
        assert_eq!(
            out[16..24],
            [-100., -200., -300., -400., -500., -600., -700., -800.]
        );
        assert_eq!(
            out[32..40],
            [-102., -202., -302., -402., -502., -602., -702., -802.]
        );
        assert_eq!(out[40..48], [900., 0., 0., 0., 0., 0., 0., 0.]);
        assert_eq!(out[48..56], [901., 0., 0., 0., 0., 0., 0., 0.]);
        assert_eq!(out[56..64], [-900., 0., 0., 0., 0., 0., 0., 0.]);
        assert_eq!(out[72..80], [-902., 0., 0., 0., 0., 0., 0., 0.]);
    }

    #[test]
    fn grouped_layout_by_hand() {
        // 2 groups, og = 3, c / groups = 1, 3x3: K = 9, one panel per group.
        let g = geom(2, 6, 3, 2, None);
        let w: Vec<f32> = (0..6)
            .flat_map(|o| (0..9).map(move |k| (100 * (o + 1) + k) as f32))
            .collect();
        let mut out = vec![f32::NAN; packed_conv_len(&g)];
        pack_conv(&g, &w, None, &mut out);
        assert_eq!(out.len(), 2 * 9 * 8);
        assert_eq!(out[0..8], [100., 200., 300., 0., 0., 0., 0., 0.]);
        assert_eq!(out[8 * 8..9 * 8], [108., 208., 308., 0., 0., 0., 0., 0.]);
        assert_eq!(out[9 * 8..10 * 8], [400., 500., 600., 0., 0., 0., 0., 0.]);
        assert_eq!(out[17 * 8..18 * 8], [408., 508., 608., 0., 0., 0., 0., 0.]);
    }
}
