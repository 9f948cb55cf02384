//! The CPU backend's ops on activations besides the mat-muls — SiLU, softmax, attention and the
//! activations' Q8_0 quantization — against plain f64 references and the scalar quantizer. In
//! the wasm builds (`scripts/test-wasm.sh`: Node and headless Chromium) they take the SIMD
//! code: an exponential of its own (within a few ulp of f64's), and a quantizer that must give
//! the scalar one's bits.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use pocketlm::backend::cpu::acts::{ActKind, QuantizedActs};
use half::f16;
use pocketlm::backend::cpu::{attention, silu_mul, softmax};
use pocketlm::quant::q8_0_block;

/// Within `ulps` units in the last place of `want` (plus `abs` for results near zero); NaN
/// only where the reference is NaN.
fn close(got: f32, want: f64, ulps: f64, abs: f64) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    (got as f64 - want).abs() <= ulps * f32::EPSILON as f64 * want.abs() + abs
}

/// Inputs of every magnitude an activation takes, the exponential's clamping bounds and the
/// values past them, zeros and NaN; 1031 values, so that the SIMD code's tail runs too.
fn inputs(rng: &mut fastrand::Rng) -> Vec<f32> {
    let mut x = vec![0.0, -0.0, 1e-30, -1e-30, 87.0, -87.0, 87.5, -87.5, 88.0, -88.0, 88.5, -88.5, 100.0, -100.0, 1e4, -1e4, f32::NAN];
    x.extend((0..1014).map(|i| match i % 3 {
        0 => (rng.f32() - 0.5) * 8.0,
        1 => (rng.f32() - 0.5) * 200.0,
        _ => (rng.f32() - 0.5) * 1e-3,
    }));
    x
}

#[test]
fn silu_times_up_is_within_a_few_ulp_of_f64() {
    let mut rng = fastrand::Rng::with_seed(17);
    let gate = inputs(&mut rng);
    let up: Vec<f32> = (0..gate.len()).map(|_| rng.f32() * 4.0 - 2.0).collect();
    let mut got = gate.clone();
    silu_mul(&mut got, &up);
    for (i, ((&g, &u), &o)) in gate.iter().zip(&up).zip(&got).enumerate() {
        let want = g as f64 / (1.0 + (-g as f64).exp()) * u as f64;
        // Under -88, e^-x overflows (to +∞ in the SIMD code from -88): silu(x) there is -0,
        // within 1e-35 of the exact value.
        assert!(close(o, want, 6.0, 1e-35), "silu({g}) · {u} at {i}: {o} vs {want}");
    }
}

#[test]
fn softmax_is_within_a_few_ulp_of_f64_and_sums_to_one() {
    let mut rng = fastrand::Rng::with_seed(23);
    for n in [1, 3, 4, 7, 64, 257] {
        for spread in [1.0f32, 30.0, 200.0] {
            let x: Vec<f32> = (0..n).map(|_| (rng.f32() - 0.5) * spread).collect();
            // The reference takes the f32 differences the code takes (their rounding is the
            // input's, not the exponential's).
            let max = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let e: Vec<f64> = x.iter().map(|&v| ((v - max) as f64).exp()).collect();
            let sum: f64 = e.iter().sum();
            let mut got = x.clone();
            softmax(&mut got);
            for (i, (&o, &e)) in got.iter().zip(&e).enumerate() {
                // Scores more than 87 under the maximum come out as e^-87 / Σ (≈ 1e-38).
                assert!(close(o, e / sum, 8.0, 2e-38), "softmax of {n} (spread {spread}) at {i}: {o} vs {}", e / sum);
            }
            let total: f64 = got.iter().map(|&v| v as f64).sum();
            assert!((total - 1.0).abs() <= 1e-5, "softmax of {n} sums to {total}");
        }
    }
    let mut with_nan = vec![1.0, f32::NAN, 2.0, 0.5, 3.0];
    softmax(&mut with_nan);
    // The scalar code's sum is then NaN, so every weight is.
    assert!(with_nan.iter().all(|v| v.is_nan()), "a NaN score makes every weight NaN: {with_nan:?}");
}

#[test]
fn q8_0_activations_have_the_scalar_quantizers_bits() {
    let mut rng = fastrand::Rng::with_seed(31);
    let mut x: Vec<f32> = (0..32 * 40).map(|_| (rng.f32() - 0.5) * 6.0).collect();
    // Blocks with an outlier, all zeros, ties (amax 127: scale 1, halves round to even),
    // NaN, an infinity, and values the maximum only reaches by its sign.
    x[40] = -90.0;
    x[64..96].fill(0.0);
    for (i, v) in x[96..128].iter_mut().enumerate() {
        *v = if i == 0 { 127.0 } else { i as f32 * 0.5 - 8.0 };
    }
    x[130] = f32::NAN;
    x[170] = f32::INFINITY;
    x[200] = -1e-3;
    x[192..224].iter_mut().for_each(|v| *v = -v.abs());
    for kind in [ActKind::Q8_0, ActKind::Q8_1] {
        let mut a = QuantizedActs::default();
        a.quantize(kind, &x);
        for (b, block) in x.chunks_exact(32).enumerate() {
            let (d, q) = q8_0_block(block);
            assert_eq!(a.q[32 * b..32 * (b + 1)], q, "{kind:?} block {b}: codes");
            assert_eq!(a.d[b].to_bits(), f16::from_f32(d).to_f32().to_bits(), "{kind:?} block {b}: scale");
            assert_eq!(a.bsums[b], q.iter().map(|&v| v as i32).sum::<i32>(), "{kind:?} block {b}: sum");
        }
    }
}

#[test]
fn attention_of_grouped_heads_matches_an_f64_reference() {
    // Grouped-query attention (heads sharing a key/value head read its rows once): 14 query
    // heads over 2 key/value heads (Qwen2.5's), 9 over 3 (SmolLM2's), 4 over 4; a window; a
    // soft cap; head widths of 64 and 12 (the SIMD helpers and the scalar tail); one position
    // and prompts of several, each token over the positions up to its own.
    let mut rng = fastrand::Rng::with_seed(41);
    let cases = [(14, 2, 64, 30..37, None, None), (9, 3, 64, 12..21, Some(16), Some(30.0f32)), (4, 4, 12, 0..9, None, None), (14, 2, 64, 0..1, None, None), (9, 3, 64, 20..21, Some(16), None)];
    for (nh, nkv, hd, positions, window, cap) in cases {
        let (kv_dim, n_ctx, n) = (nkv * hd, positions.end, positions.len());
        let q: Vec<f32> = (0..n * nh * hd).map(|_| rng.f32() * 2.0 - 1.0).collect();
        let kc: Vec<f16> = (0..n_ctx * kv_dim).map(|_| f16::from_f32(rng.f32() * 4.0 - 2.0)).collect();
        let vc: Vec<f16> = (0..n_ctx * kv_dim).map(|_| f16::from_f32(rng.f32() * 2.0 - 1.0)).collect();
        let scale = 1.0 / (hd as f32).sqrt();
        let mut got = vec![f32::NAN; n * nh * hd];
        attention(&q, &kc, &vc, nh, nkv, hd, positions.clone(), window, scale, cap, &mut got);
        for (t, pos) in positions.clone().enumerate() {
            // The token alone gives the same bits.
            let mut alone = vec![f32::NAN; nh * hd];
            attention(&q[t * nh * hd..(t + 1) * nh * hd], &kc, &vc, nh, nkv, hd, pos..pos + 1, window, scale, cap, &mut alone);
            let got = &got[t * nh * hd..(t + 1) * nh * hd];
            assert!(got.iter().zip(&alone).all(|(a, b)| a.to_bits() == b.to_bits()), "{nh}/{nkv} heads, token {t}: in the prompt vs alone");
            let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            for h in 0..nh {
                let kvh = h / (nh / nkv);
                let at = |c: &[f16], p: usize, i: usize| c[p * kv_dim + kvh * hd + i].to_f64();
                let qh: Vec<f64> = q[(t * nh + h) * hd..(t * nh + h + 1) * hd].iter().map(|&x| f16::from_f32(x).to_f64()).collect();
                let scores: Vec<f64> = (first..=pos)
                    .map(|p| {
                        let s = (0..hd).map(|i| qh[i] * at(&kc, p, i)).sum::<f64>() * scale as f64;
                        cap.map_or(s, |c| c as f64 * (s / c as f64).tanh())
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for i in 0..hd {
                    let want: f64 = (first..=pos).zip(&e).map(|(p, w)| w / sum * at(&vc, p, i)).sum();
                    // The weights are rounded to f16 (ggml's f16 mat-mul): 1e-3 of the values' scale.
                    assert!((got[h * hd + i] as f64 - want).abs() <= 2e-3, "{nh}/{nkv} heads, token {t}, head {h} value {i}: {} vs {want}", got[h * hd + i]);
                }
            }
        }
    }
}
