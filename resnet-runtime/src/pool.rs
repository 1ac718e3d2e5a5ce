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
    for (plane, oplane) in input.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        for (y, orow) in oplane.chunks_exact_mut(ow).enumerate() {
            // The in-range rows of the window: [y*s - p, y*s - p + k) clamped to [0, h).
            let top = y * g.stride;
            let r0 = top.saturating_sub(g.pad);
            let r1 = (top + g.k).saturating_sub(g.pad).min(h);
            orow.fill(f32::NEG_INFINITY);
            // Row by row, then tap by tap, over the whole output row: each output cell sees its
            // window's cells in the same order as a cell-by-cell loop, with no branch on the
            // data (a compare and a select), which random data would mispredict.
            for r in r0..r1 {
                let row = &plane[r * w..][..w];
                for j in 0..g.k {
                    // Outputs whose column `x * s + j - p` is in [0, w).
                    let x0 = g.pad.saturating_sub(j).div_ceil(g.stride);
                    let x1 = (w + g.pad).saturating_sub(j).div_ceil(g.stride).min(ow);
                    if x0 >= x1 {
                        continue;
                    }
                    let (cells, outs) = (&row[x0 * g.stride + j - g.pad..], &mut orow[x0..x1]);
                    // ResNet's stride 2 as a constant, so that the loop is vectorized.
                    match g.stride {
                        2 => max_into::<2>(cells, outs),
                        1 => max_into::<1>(cells, outs),
                        s => {
                            for (o, &v) in outs.iter_mut().zip(cells.iter().step_by(s)) {
                                *o = if (v > *o) | v.is_nan() { v } else { *o };
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `outs[x] = max(outs[x], cells[x * S])` (NaN wins), every `x`.
#[inline(always)]
fn max_into<const S: usize>(cells: &[f32], outs: &mut [f32]) {
    let Some(last) = outs.len().checked_sub(1) else {
        return;
    };
    let cells = &cells[..last * S + 1];
    for (x, o) in outs.iter_mut().enumerate() {
        let v = cells[x * S];
        *o = if (v > *o) | v.is_nan() { v } else { *o };
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

    #[test]
    fn max_pool_matches_naive() {
        let mut rng = Rng::new(7);
        for &(n, c, h, w, k, s, p) in &[
            (1, 3, 112, 112, 3, 2, 1),
            (2, 5, 7, 9, 3, 2, 1),
            (1, 2, 5, 11, 3, 1, 1),
            (3, 1, 13, 7, 2, 2, 0),
            (1, 4, 1, 1, 3, 2, 1),
            (1, 1, 6, 6, 5, 1, 2),
            (1, 2, 8, 3, 1, 3, 0),
        ] {
            let g = pool_geom(n, c, h, w, k, s, p);
            if too_big_for_miri(n * c * g.oh * g.ow * k * k) {
                continue;
            }
            // Negative values everywhere make a zero from a padded cell visible.
            let input: Vec<f32> = (0..n * c * h * w).map(|_| rng.f32() - 2.0).collect();
            let mut out = vec![f32::NAN; n * c * g.oh * g.ow];
            max_pool2d(&g, &input, &mut out);
            assert_eq!(out, naive_max_pool(&g, &input), "{g:?}");
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
