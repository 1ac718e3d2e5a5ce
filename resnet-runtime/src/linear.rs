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
    #[cfg(feature = "std")]
    {
        // Split across threads: one sample's blocks of `ROWS` features, or whole samples.
        // Each output element is computed by the same code on any thread: the same bits.
        let threads = crate::threads::threads()
            .min(n * out_features * in_features / crate::threads::MIN_ELEMENTS_PER_THREAD)
            .max(1);
        if threads > 1 && n == 1 {
            let blocks = out_features.div_ceil(ROWS);
            let features = |r: core::ops::Range<usize>| r.start * ROWS..(r.end * ROWS).min(out_features);
            return crate::threads::run_job_ranges(
                blocks,
                threads.min(blocks),
                out,
                &features,
                &|r, mine| {
                    let f = features(r);
                    let wf = &w[f.start * in_features..f.end * in_features];
                    linear_here(in_features, f.len(), wf, &bias[f], x, mine);
                },
            );
        }
        if threads > 1 {
            let outputs = |r: core::ops::Range<usize>| r.start * out_features..r.end * out_features;
            return crate::threads::run_job_ranges(n, threads.min(n), out, &outputs, &|r, mine| {
                let xr = &x[r.start * in_features..r.end * in_features];
                linear_here(in_features, out_features, w, bias, xr, mine);
            });
        }
    }
    linear_here(in_features, out_features, w, bias, x, out);
}

/// [`linear`] on this thread (`in_features` and `out_features` not zero; `x` holds the
/// samples, `x.len() / in_features` of them).
fn linear_here(in_features: usize, out_features: usize, w: &[f32], bias: &[f32], x: &[f32], out: &mut [f32]) {
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

    /// Split across threads (by blocks of features for one sample, by samples for more):
    /// the same bits as on one thread.
    #[cfg(feature = "std")]
    #[test]
    fn threads_agree() {
        if cfg!(miri) {
            return;
        }
        let mut rng = Rng::new(5);
        for &(n, fin, fout) in &[(1, 2048, 1000), (3, 1024, 700), (1, 4096, 13)] {
            let w: Vec<f32> = (0..fin * fout).map(|_| rng.f32()).collect();
            let b: Vec<f32> = (0..fout).map(|_| rng.f32()).collect();
            let x: Vec<f32> = (0..n * fin).map(|_| rng.f32()).collect();
            let mut one = vec![f32::NAN; n * fout];
            linear_here(fin, fout, &w, &b, &x, &mut one);
            for threads in [2, 3, 7] {
                crate::threads::set_threads(threads);
                let mut many = vec![f32::NAN; n * fout];
                linear(n, fin, fout, &w, &b, &x, &mut many);
                crate::threads::set_threads(1);
                let same = many.iter().zip(&one).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "n={n} in={fin} out={fout}, {threads} threads");
            }
        }
    }

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
