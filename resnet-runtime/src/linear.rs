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
        // On AVX-512, blocks of 16 features first (vectors along the features), then the rest.
        #[cfg(target_arch = "x86_64")]
        let (w, bias, ob) = if crate::isa::isa() == crate::isa::Isa::Avx512 {
            let done = out_features / 16 * 16;
            // SAFETY: the process's instruction set is one this CPU runs; the slices hold
            // `done` features (`w`: `done * in_features` floats, `xb`: `in_features`).
            unsafe {
                rows16_avx512(
                    in_features,
                    &w[..done * in_features],
                    &bias[..done],
                    xb,
                    &mut ob[..done],
                )
            };
            let (_, ob) = ob.split_at_mut(done);
            (&w[done * in_features..], &bias[done..], ob)
        } else {
            (w, bias, ob)
        };
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

/// [`linear_here`] for one input row and a multiple of 16 features, with vectors along the
/// features: each block of 16 rows of `w` is read 16 columns at a time and transposed in
/// registers, then lane `j` adds `w[j, i] * x[i]` (a multiply, then an add: no fused
/// multiply-add) for `i` ascending, from `0.0`, then the bias: per feature exactly the
/// documented order, so the same bits as the scalar loop. A `w` row is read once, in order;
/// the scalar loop was bound by its instructions, this one by memory.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows16_avx512(len: usize, w: &[f32], bias: &[f32], x: &[f32], out: &mut [f32]) {
    use core::arch::x86_64::*;
    assert!(out.len().is_multiple_of(16) && bias.len() == out.len());
    assert!(x.len() == len && w.len() == out.len() * len);
    let full = len / 16 * 16;
    // Each block reads 16 rows at once, more streams than the hardware prefetchers follow:
    // each row's next kilobyte is asked for ahead (resnet50's fc, alternating runs: 0.96-0.98
    // -> 0.74-0.94 ms; resnet18's 0.20-0.34 -> 0.19-0.20).
    const PF: usize = 256;
    for ((wr, br), or) in w
        .chunks_exact(16 * len)
        .zip(bias.chunks_exact(16))
        .zip(out.chunks_exact_mut(16))
    {
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i < full {
            for r in 0..16 {
                // A prefetch never faults: past the last row it asks for nothing useful.
                _mm_prefetch::<_MM_HINT_T0>(wr.as_ptr().wrapping_add(r * len + i + PF).cast());
            }
            // SAFETY: rows `r < 16` of `wr` hold `len` floats, and `i + 16 <= full <= len`.
            let rows: [__m512; 16] =
                core::array::from_fn(|r| unsafe { _mm512_loadu_ps(wr.as_ptr().add(r * len + i)) });
            let cols = crate::isa::transpose16(rows);
            for (c, col) in cols.iter().enumerate() {
                let xi = _mm512_set1_ps(x[i + c]);
                acc = _mm512_add_ps(acc, _mm512_mul_ps(*col, xi));
            }
            i += 16;
        }
        let mut a = [0.0f32; 16];
        // SAFETY: `a` holds 16 floats.
        unsafe { _mm512_storeu_ps(a.as_mut_ptr(), acc) };
        for (j, (o, (a, &b))) in or.iter_mut().zip(a.iter_mut().zip(br)).enumerate() {
            for (&wji, &xi) in wr[j * len + full..(j + 1) * len].iter().zip(&x[full..]) {
                *a += wji * xi;
            }
            *o = *a + b;
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
            (1, 37, 33), // two blocks of 16 features, a column tail of 5, one more feature
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
