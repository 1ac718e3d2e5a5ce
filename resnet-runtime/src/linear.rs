//! The classifier.

/// Output features computed together: each has its own accumulator, so the loop over `i`
/// carries `ROWS` independent dependency chains (hiding the add latency) and reads each
/// `x[i]` once for all of them, while every single sum keeps its sequential order.
const ROWS: usize = 8;

/// `nn.Linear`: `out[b, j] = bias[j] + sum_i w[j, i] * x[b, i]`, `w` in torchvision's
/// `[out_features, in_features]` layout.
///
/// Accumulation order, per output element: `s = 0.0f32`, then `s = s + w[j, i] * x[b, i]`
/// for `i` ascending (each product rounded to f32, no fused multiply-add), then
/// `out[b, j] = s + bias[j]`. `x`: `[n, in_features]`; `out`: `[n, out_features]`, fully
/// overwritten.
pub fn linear(
    n: usize,
    in_features: usize,
    out_features: usize,
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    out: &mut [f32],
) {
    debug_assert_eq!(w.len(), out_features * in_features);
    debug_assert_eq!(bias.len(), out_features);
    debug_assert_eq!(x.len(), n * in_features);
    debug_assert_eq!(out.len(), n * out_features);
    if out_features == 0 {
        return;
    }
    if in_features == 0 {
        // Every sum is empty: the output is the bias.
        for orow in out.chunks_exact_mut(out_features) {
            orow.copy_from_slice(&bias[..orow.len()]);
        }
        return;
    }
    for (xb, ob) in x
        .chunks_exact(in_features)
        .zip(out.chunks_exact_mut(out_features))
    {
        let mut wb = w.chunks_exact(ROWS * in_features);
        let mut bb = bias.chunks_exact(ROWS);
        let mut obb = ob.chunks_exact_mut(ROWS);
        for ((wr, br), or) in (&mut wb).zip(&mut bb).zip(&mut obb) {
            rows::<ROWS>(wr, br, xb, or);
        }
        // The last `out_features % ROWS` features, one at a time.
        for ((wr, &b), o) in wb
            .remainder()
            .chunks_exact(in_features)
            .zip(bb.remainder())
            .zip(obb.into_remainder())
        {
            rows::<1>(wr, &[b], xb, core::slice::from_mut(o));
        }
    }
}

/// `R` consecutive output features of one sample: `w` is their `[R, in]` rows.
#[inline(always)]
fn rows<const R: usize>(w: &[f32], bias: &[f32], x: &[f32], out: &mut [f32]) {
    let len = x.len();
    debug_assert_eq!(w.len(), R * len);
    let wr: [&[f32]; R] = core::array::from_fn(|r| &w[r * len..(r + 1) * len]);
    let mut acc = [0.0f32; R];
    for (i, &xi) in x.iter().enumerate() {
        for r in 0..R {
            acc[r] += wr[r][i] * xi;
        }
    }
    for ((o, a), &b) in out.iter_mut().zip(acc).zip(bias) {
        *o = a + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::reference::Rng;

    #[test]
    fn matches_naive() {
        let mut rng = Rng::new(3);
        for &(n, fin, fout) in &[
            (1, 2048, 1000),
            (3, 5, 7),
            (2, 1, 9),
            (1, 17, 8),
            (2, 16, 17),
            (1, 0, 3),
        ] {
            if crate::conv::reference::too_big_for_miri(n * fin * fout) {
                continue;
            }
            let w: Vec<f32> = (0..fin * fout).map(|_| rng.f32()).collect();
            let b: Vec<f32> = (0..fout).map(|_| rng.f32()).collect();
            let x: Vec<f32> = (0..n * fin).map(|_| rng.f32()).collect();
            let mut out = vec![f32::NAN; n * fout];
            linear(n, fin, fout, &w, &b, &x, &mut out);
            for bi in 0..n {
                for j in 0..fout {
                    // Bit-exact against the documented order.
                    let mut s = 0.0f32;
                    let mut exact = f64::from(b[j]);
                    let mut mag = f64::from(b[j].abs());
                    for i in 0..fin {
                        s += w[j * fin + i] * x[bi * fin + i];
                        exact += f64::from(w[j * fin + i]) * f64::from(x[bi * fin + i]);
                        mag += f64::from((w[j * fin + i] * x[bi * fin + i]).abs());
                    }
                    let got = out[bi * fout + j];
                    assert_eq!(
                        got.to_bits(),
                        (s + b[j]).to_bits(),
                        "n={n} in={fin} out={fout} [{bi},{j}]"
                    );
                    let tol = (fin as f64 + 2.0) * f64::from(f32::EPSILON) * mag;
                    assert!((f64::from(got) - exact).abs() <= tol, "{got} vs {exact}");
                }
            }
        }
    }
}
