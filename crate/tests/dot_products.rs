//! The CPU backend's quantized dot products for every weight type, against a plain f64 sum of
//! the dequantized weights times the dequantized activations; and the dispatching `vec_dot`
//! (simd128 / relaxed-SIMD in wasm builds) bit-equal to the scalar reference.
//!
//! This file runs natively under `cargo test` and in Node under wasm-bindgen-test
//! (`scripts/test-wasm.sh`), where `vec_dot` takes the SIMD paths.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod random_blocks;

use random_blocks::{random_row, ALL_TYPES};
use pocketlm::backend::cpu::acts::{ActKind, QuantizedActs};
use pocketlm::backend::cpu::dot::{vec_dot, vec_dot_scalar};
use pocketlm::quant::{dequantize, GgmlType};

/// The activations as the dot product sees them, dequantized.
fn dequantized_acts(a: &QuantizedActs, n: usize) -> Vec<f64> {
    match a.kind.unwrap() {
        ActKind::Q8_0 | ActKind::Q8_1 => (0..n).map(|i| a.q[i] as f64 * a.d[i / 32] as f64).collect(),
        ActKind::Q8K => (0..n).map(|i| a.q[i] as f64 * a.d[i / 256] as f64).collect(),
        ActKind::F16 | ActKind::F32 => a.f.iter().map(|&v| v as f64).collect(),
    }
}

#[test]
fn every_weight_type_matches_an_f64_reference_and_simd_equals_scalar() {
    let mut rng = fastrand::Rng::with_seed(42);
    let n = 1024;
    for ty in ALL_TYPES {
        for r in 0..6 {
            let row = random_row(&mut rng, ty, n);
            // Activations of a real model's scale, with an outlier, as residual streams have.
            let mut x: Vec<f32> = (0..n).map(|_| (rng.f32() - 0.5) * 4.0).collect();
            x[rng.usize(..n)] = 40.0;
            let mut acts = QuantizedActs::default();
            acts.quantize(ActKind::for_weights(ty), &x);

            let mut w = vec![0f32; n];
            dequantize(ty, &row, &mut w);
            let y = dequantized_acts(&acts, n);
            let want: f64 = w.iter().zip(&y).map(|(&a, &b)| a as f64 * b).sum();
            let scale: f64 = w.iter().zip(&y).map(|(&a, &b)| (a as f64 * b).abs()).sum();

            let scalar = vec_dot_scalar(ty, &row, &acts);
            let got = vec_dot(ty, &row, &acts);
            assert!(((scalar as f64) - want).abs() <= 1e-5 * scale + 1e-6, "{} row {r}: scalar {scalar} vs f64 {want} (Σ|w·x| {scale})", ty.name());
            assert_eq!(got.to_bits(), scalar.to_bits(), "{} row {r}: dispatched dot {got} is not bit-equal to the scalar {scalar}", ty.name());
        }
    }
}

#[test]
fn the_dispatched_dot_takes_the_simd_path_in_simd_builds() {
    // Sanity of the harness itself: in a wasm build with simd128 the SIMD code must be compiled
    // in; natively the scalar path is the only one.
    let simd = cfg!(all(target_arch = "wasm32", target_feature = "simd128"));
    assert_eq!(simd, cfg!(target_arch = "wasm32"), "wasm tests must be built with +simd128 (scripts/test-wasm.sh)");
    if option_env!("POCKETLM_EXPECT_RELAXED_SIMD").is_some() {
        assert!(cfg!(target_feature = "relaxed-simd"), "this build was meant to have relaxed-SIMD");
    }
}
