//! The CPU backend's quantized dot products for every weight type, against a plain f64 sum of
//! the dequantized weights times the dequantized activations; the dispatching `vec_dot`
//! (simd128 / relaxed-SIMD kernels in wasm builds) against the same sum and within f32 rounding
//! of the scalar reference; the mat-vec (the kernels' multi-row tiles) bit-equal to `vec_dot`
//! row by row.
//!
//! This file runs natively under `cargo test` and in Node under wasm-bindgen-test
//! (`scripts/test-wasm.sh`), where `vec_dot` takes the SIMD paths.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod random_blocks;

use random_blocks::{random_acts, random_row, ALL_TYPES};
use pocketlm::backend::cpu::acts::{ActKind, QuantizedActs};
use pocketlm::backend::cpu::dot::{vec_dot, vec_dot_scalar};
use pocketlm::backend::cpu::{dot_f32, f16_to_f32, f32_to_f16, matmul_prequantized, matvec_prequantized, round_to_f16, weighted_rows_sum};
use half::f16;
use pocketlm::quant::{dequantize, q8_0_rare_codes, GgmlType, QMatrix, RareCodes, RowOrder};

/// The activations as the dot product sees them, dequantized.
fn dequantized_acts(a: &QuantizedActs, n: usize) -> Vec<f64> {
    match a.kind.unwrap() {
        ActKind::Q8_0 | ActKind::Q8_1 => (0..n).map(|i| a.q[i] as f64 * a.d[i / 32] as f64).collect(),
        ActKind::Q8K => (0..n).map(|i| a.q[i] as f64 * a.d[i / 256] as f64).collect(),
        ActKind::F16 | ActKind::F32 => a.f.iter().map(|&v| v as f64).collect(),
    }
}

#[test]
fn every_weight_type_matches_an_f64_reference_and_simd_agrees_with_scalar() {
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
            assert!(((got as f64) - want).abs() <= 1e-5 * scale + 1e-6, "{} row {r}: dispatched {got} vs f64 {want} (Σ|w·x| {scale})", ty.name());
            // The same block sums in another f32 order: a few ulps of the row's magnitude.
            assert!(((got - scalar) as f64).abs() <= 4.0 * f32::EPSILON as f64 * scale, "{} row {r}: dispatched {got} vs scalar {scalar}", ty.name());
        }
    }
}

/// Runs `f` once per way the interleaved Q4_0, the Q5_0, the K-quant and the Q8_0 kernels can
/// add their block sums on this engine: in relaxed-SIMD builds forced to the fused dot-add and to the 16-bit pairs
/// where the probe finds the dot-add fused, else to the pairs alone (Q8_0's fused kernel feeds
/// the instruction all 8 bits, exact only where it does not saturate: the probe's engines);
/// else once.
fn each_dot_add_kernel(mut f: impl FnMut(&str)) {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    {
        use pocketlm::backend::cpu::simd128::{force_fused_dot_add, fused_dot_add};
        force_fused_dot_add(None);
        let kernels: &[(bool, &str)] = if fused_dot_add() { &[(true, "fused dot-add"), (false, "16-bit pairs")] } else { &[(false, "16-bit pairs")] };
        for &(fused, name) in kernels {
            force_fused_dot_add(Some(fused));
            f(name);
        }
        force_fused_dot_add(None);
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
    f("")
}

#[test]
fn the_mat_vec_equals_the_dot_of_each_row() {
    // 11 rows: two full tiles of four and a remainder of three.
    let mut rng = fastrand::Rng::with_seed(7);
    let (rows, n) = (11, 512);
    for ty in ALL_TYPES {
        let bytes: Vec<u8> = (0..rows).flat_map(|_| random_row(&mut rng, ty, n)).collect();
        let w = QMatrix::owned(ty, rows, n, bytes);
        let x: Vec<f32> = (0..n).map(|_| (rng.f32() - 0.5) * 4.0).collect();
        let mut acts = QuantizedActs::default();
        acts.quantize(ActKind::for_weights(ty), &x);
        // (`vec_dot` adds Q5_0's block sums and the K-quants' sub-blocks by the 16-bit pairs: the
        // fused dot-add's must agree.)
        each_dot_add_kernel(|kernel| {
            let mut out = vec![0f32; rows];
            matvec_prequantized(&w, &acts, &mut out);
            for (r, &o) in out.iter().enumerate() {
                let want = vec_dot(ty, &w.row(r), &acts);
                assert_eq!(o.to_bits(), want.to_bits(), "{} row {r} {kernel}: mat-vec {o} vs dot {want}", ty.name());
            }
        });
    }
}

/// Asserts that the mat-mat of a random `rows × n` matrix of `ty` and `tokens` random tokens
/// equals the lone dot product of each row and token, bit for bit: in the file's order and, for
/// the interleaved types, interleaved, by every dot-add kernel.
fn assert_mat_mat_equals_the_dots(rng: &mut fastrand::Rng, ty: GgmlType, rows: usize, n: usize, tokens: usize) {
    let bytes: Vec<u8> = (0..rows).flat_map(|_| random_row(rng, ty, n)).collect();
    let acts = random_acts(rng, ActKind::for_weights(ty), n, tokens);
    let plain = QMatrix::owned(ty, rows, n, bytes.clone());
    let want: Vec<Vec<f32>> = acts.iter().map(|a| (0..rows).map(|r| vec_dot(ty, &plain.row(r), a)).collect()).collect();
    let mut matrices = vec![("plain", plain)];
    if let Some(order) = RowOrder::interleaved(ty) {
        matrices.push(("interleaved", QMatrix::owned_in_order(ty, rows, n, bytes, order)));
    }
    for (order, w) in &matrices {
        each_dot_add_kernel(|kernel| {
            let mut out = vec![f32::NAN; rows * tokens];
            matmul_prequantized(w, &acts, &mut out);
            for (t, want) in want.iter().enumerate() {
                let got = &out[t * rows..(t + 1) * rows];
                let bad = (0..rows).find(|&r| got[r].to_bits() != want[r].to_bits());
                assert!(bad.is_none(), "{} {rows} rows, {order}, token {t} {kernel}: row {bad:?} mat-mat {:?} vs dot {:?}", ty.name(), bad.map(|r| got[r]), bad.map(|r| want[r]));
            }
        });
    }
}

#[test]
fn the_mat_mat_equals_the_dot_of_each_row_and_token() {
    // × 13 tokens: full tiles and a remainder of tokens (Q5_0: a tile of 8 tokens, one of 4 and
    // one left over). 11 rows × 512 values: full tiles and a remainder of rows; 203 × 2048: many
    // tiles a stride apart in each of their row streams, and rows left over. Plain and, for the
    // interleaved types, interleaved (groups of four, and the rows past the last in file order).
    let mut rng = fastrand::Rng::with_seed(9);
    for (rows, n) in [(11, 512), (203, 2048)] {
        for ty in ALL_TYPES {
            assert_mat_mat_equals_the_dots(&mut rng, ty, rows, n, 13);
        }
    }
}

#[test]
fn a_prompt_over_several_chunks_of_rows_and_batches_of_tiles_equals_the_dot_of_each_row_and_token() {
    // The prompt mat-mul runs chunks of about 256 KB of rows against batches of about 512 KB of
    // prepared token tiles (the SIMD kernels' cache blocking): 140 rows × 4096 values (Q8_0:
    // 609 KB, three chunks; Q4_0 two) × 70 tokens (17 tiles of four, two tokens left over; the
    // Q8_0 activations packed 32 KB a tile, two batches; Q5_0 interleaved: eight tiles of
    // eight, one of four, two left over), plain and interleaved.
    let mut rng = fastrand::Rng::with_seed(31);
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q4K] {
        assert_mat_mat_equals_the_dots(&mut rng, ty, 140, 4096, 70);
    }
}

#[test]
fn interleaved_tiles_of_several_groups_give_the_plain_rows_results_bit_for_bit() {
    // Enough groups for decode's tiles of several groups a stride apart (`DECODE_GROUPS`) and
    // the groups left over after them: 23 rows (5 groups + 3 rows) and 37 (9 + 1), × 9 tokens
    // (two prompt tiles and one token left over) and × 1.
    let mut rng = fastrand::Rng::with_seed(29);
    let (n, tokens) = (256, 9);
    for (ty, rows) in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4K].into_iter().flat_map(|ty| [(ty, 23), (ty, 37)]) {
        let bytes: Vec<u8> = (0..rows).flat_map(|_| random_row(&mut rng, ty, n)).collect();
        let plain = QMatrix::owned(ty, rows, n, bytes.clone());
        let x4 = QMatrix::owned_in_order(ty, rows, n, bytes, RowOrder::interleaved(ty).unwrap());
        assert_ne!(x4.order(), RowOrder::Plain);
        let acts = random_acts(&mut rng, ActKind::for_weights(ty), n, tokens);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let (mut want, mut want1) = (vec![0f32; rows * tokens], vec![0f32; rows]);
        matmul_prequantized(&plain, &acts, &mut want);
        matvec_prequantized(&plain, &acts[3], &mut want1);
        each_dot_add_kernel(|kernel| {
            let (mut got, mut got1) = (vec![0f32; rows * tokens], vec![0f32; rows]);
            matmul_prequantized(&x4, &acts, &mut got);
            assert_eq!(bits(&got), bits(&want), "{} {rows} rows, mat-mat {kernel}", ty.name());
            matvec_prequantized(&x4, &acts[3], &mut got1);
            assert_eq!(bits(&got1), bits(&want1), "{} {rows} rows, mat-vec {kernel}", ty.name());
            assert_eq!(bits(&got1), bits(&want[3 * rows..4 * rows]), "{} {rows} rows: the mat-vec's token vs the prompt's", ty.name());
        });
    }
}

#[test]
fn interleaved_rows_give_the_plain_rows_results_bit_for_bit() {
    // 11 rows (two groups of four and three rows left in the file's order) × 1 and 5 tokens
    // (a prompt tile of four and one left over): the interleaved kernel against the plain one,
    // and the rows read back in the file's order. Then with small scales, half of them
    // subnormal f16s, which the interleaved order holds multiplied by a power of two (Q4_K:
    // its `d` and `dmin` so, which its kernels convert exactly as they are).
    let mut rng = fastrand::Rng::with_seed(13);
    let (rows, tokens) = (11, 5);
    for (ty, small_scales) in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4K].into_iter().flat_map(|ty| [(ty, false), (ty, true)]) {
        let n = if ty == GgmlType::Q4K { 512 } else { 320 };
        let order = RowOrder::interleaved(ty).unwrap();
        let mut bytes: Vec<u8> = (0..rows).flat_map(|_| random_row(&mut rng, ty, n)).collect();
        if small_scales {
            for (i, block) in bytes.chunks_exact_mut(ty.block_bytes()).enumerate() {
                let h = if i % 2 == 0 { rng.u16(1..0x400) } else { rng.u16(0x400..0x2000) };
                block[..2].copy_from_slice(&(h | if rng.bool() { 0x8000 } else { 0 }).to_le_bytes());
                if ty == GgmlType::Q4K {
                    block[2..4].copy_from_slice(&rng.u16(1..0x400).to_le_bytes());
                }
            }
        }
        let plain = QMatrix::owned(ty, rows, n, bytes.clone());
        let x4 = QMatrix::owned_in_order(ty, rows, n, bytes.clone(), order);
        assert_eq!(x4.order(), order);
        assert_eq!(x4.scale_shift() > 0, small_scales && ty != GgmlType::Q4K, "{}: scales shifted", ty.name());
        assert_ne!(x4.bytes(), plain.bytes(), "the rows were interleaved");
        assert_eq!(*x4.plain_rows(0, rows), bytes[..]);
        let acts = random_acts(&mut rng, ActKind::for_weights(ty), n, tokens);
        let (mut want, mut want1) = (vec![0f32; rows * tokens], vec![0f32; rows]);
        matmul_prequantized(&plain, &acts, &mut want);
        matvec_prequantized(&plain, &acts[4], &mut want1);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        each_dot_add_kernel(|kernel| {
            let (mut got, mut got1) = (vec![0f32; rows * tokens], vec![0f32; rows]);
            matmul_prequantized(&x4, &acts, &mut got);
            assert_eq!(bits(&got), bits(&want), "{} mat-mat {kernel}: interleaved {got:?} vs plain {want:?}", ty.name());
            matvec_prequantized(&x4, &acts[4], &mut got1);
            assert_eq!(bits(&got1), bits(&want1), "{} mat-vec {kernel}: interleaved {got1:?} vs plain {want1:?}", ty.name());
            assert_eq!(bits(&got1), bits(&want[4 * rows..]), "{} the lone token of the mat-vec vs the prompt's", ty.name());
        });
        for r in 0..rows {
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            x4.dequantize_row(r, &mut a);
            plain.dequantize_row(r, &mut b);
            assert_eq!(bits(&a), bits(&b), "{} row {r} dequantized", ty.name());
            assert_eq!(vec_dot(ty, &x4.row(r), &acts[0]).to_bits(), want[r].to_bits(), "{} row {r}: dot of the row read back", ty.name());
        }
        // Fused tensors split by rows: on group bounds a view in the same order, else a copy in the
        // file's order; the same results either way.
        for (start, len) in [(0, 8), (4, 7), (2, 5), (8, 3)] {
            let part = x4.rows_range(start, len);
            assert_eq!(*part.plain_rows(0, len), bytes[start * plain.row_bytes()..(start + len) * plain.row_bytes()], "{} rows {start}+{len}", ty.name());
            let mut out = vec![0f32; len * tokens];
            matmul_prequantized(&part, &acts, &mut out);
            for t in 0..tokens {
                assert_eq!(bits(&out[t * len..(t + 1) * len]), bits(&want[t * rows + start..t * rows + start + len]), "{} rows {start}+{len}, token {t}", ty.name());
            }
        }
    }
}

#[test]
fn activations_of_the_largest_scales_give_the_plain_rows_results_in_the_interleaved_order() {
    // Activations of up to ±8e6: block scales near f16's largest (65504), which the interleaved
    // decode tiles multiply by 2^112 (by 2^(112 - k) where the matrix's scales were shifted),
    // below f32's largest: finite, the plain kernels' bits.
    let mut rng = fastrand::Rng::with_seed(17);
    let rows = 8;
    for ty in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4K] {
        let n = ty.block_size();
        let bytes: Vec<u8> = (0..rows).flat_map(|_| random_row(&mut rng, ty, n)).collect();
        let plain = QMatrix::owned(ty, rows, n, bytes.clone());
        let x4 = QMatrix::owned_in_order(ty, rows, n, bytes, RowOrder::interleaved(ty).unwrap());
        let x: Vec<f32> = (0..n).map(|_| (rng.f32() - 0.5) * 1.6e7).collect();
        let mut acts = QuantizedActs::default();
        acts.quantize(ActKind::for_weights(ty), &x);
        let (mut want, mut got) = (vec![0f32; rows], vec![0f32; rows]);
        matvec_prequantized(&plain, &acts, &mut want);
        matvec_prequantized(&x4, &acts, &mut got);
        assert!(want.iter().all(|v| v.is_finite()), "{}: {want:?}", ty.name());
        assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{}: {got:?} vs {want:?}", ty.name());
    }
}

#[test]
fn the_largest_five_bit_codes_against_the_largest_activations_sum_exactly() {
    // Every Q5_0 code 31 (value 15: nibbles 0xF, every fifth bit set), scale 1, against
    // activations of ±127 with a scale of 1: the interleaved kernels' 16-bit pair sums would
    // overflow past two vectors of codes; each result must be 15 · Σ y exactly.
    let (rows, n, tokens) = (8, 256, 5);
    let block: Vec<u8> = [0x3C00u16.to_le_bytes().to_vec(), vec![0xFF; 20]].concat();
    let bytes: Vec<u8> = (0..rows * n / 32).flat_map(|_| block.clone()).collect();
    let w = QMatrix::owned_in_order(GgmlType::Q5_0, rows, n, bytes, RowOrder::Q5_0x4);
    assert_eq!(w.order(), RowOrder::Q5_0x4);
    let acts: Vec<QuantizedActs> = [127.0f32, -127.0]
        .iter()
        .cycle()
        .take(tokens)
        .map(|&v| {
            let mut a = QuantizedActs::default();
            a.quantize(ActKind::Q8_0, &vec![v; n]);
            a
        })
        .collect();
    each_dot_add_kernel(|kernel| {
        let mut out = vec![0f32; rows * tokens];
        matmul_prequantized(&w, &acts, &mut out);
        for (t, o) in out.chunks_exact(rows).enumerate() {
            let want = 15.0 * n as f32 * if t % 2 == 0 { 127.0 } else { -127.0 };
            assert!(o.iter().all(|&v| v == want), "token {t} {kernel}: {o:?}, want {want}");
        }
    });
}

#[test]
fn the_largest_k_quant_codes_against_the_largest_activations_sum_exactly() {
    // Q4_K: every nibble 15, every scale 63, mins 0; Q6_K: every code 63 (value 31), every
    // scale 127; d = 1. Constant activations quantize to Q8_K codes of ±127 (the largest this
    // quantizer writes): the fused dot-add's sums of four or eight products are then at their
    // bound (4·63·127, 8·15·127; 128 would still fit) before they are packed into i16 lanes.
    // Every result must be the scalar dot's, and the mat-vec's and the prompt tiles' the lone
    // dot's bits.
    let one = f16::from_f32(1.0).to_le_bytes();
    let q4_k: Vec<u8> = [&one[..], &[0, 0], &[0xFF; 4], &[0; 4], &[0x0F; 4], &[0xFF; 128]].concat();
    let q6_k: Vec<u8> = [&[0xFF; 192][..], &[127; 16], &one].concat();
    let (rows, n, tokens) = (8, 512, 5);
    for (ty, block) in [(GgmlType::Q4K, q4_k), (GgmlType::Q6K, q6_k)] {
        assert_eq!(block.len(), ty.block_bytes());
        let bytes: Vec<u8> = (0..rows * n / 256).flat_map(|_| block.clone()).collect();
        let w = QMatrix::owned(ty, rows, n, bytes.clone());
        let acts: Vec<QuantizedActs> = (0..tokens)
            .map(|t| {
                let mut a = QuantizedActs::default();
                a.quantize(ActKind::Q8K, &vec![if t % 2 == 0 { 3.0 } else { -3.0 }; n]);
                a
            })
            .collect();
        assert!(acts.iter().all(|a| a.q.iter().all(|&q| q.unsigned_abs() >= 127)), "{}: the activations' codes {:?}", ty.name(), &acts[0].q[..4]);
        let lone: Vec<f32> = acts.iter().map(|a| vec_dot(ty, &w.row(0), a)).collect();
        for (t, (&d, a)) in lone.iter().zip(&acts).enumerate() {
            let scalar = vec_dot_scalar(ty, &w.row(0), a);
            assert!((d - scalar).abs() <= 1e-6 * scalar.abs(), "{} token {t}: dot {d} vs scalar {scalar}", ty.name());
        }
        // In the file's order and, Q4_K, interleaved.
        let interleaved = RowOrder::interleaved(ty).map(|order| QMatrix::owned_in_order(ty, rows, n, bytes.clone(), order));
        for w in std::iter::once(&w).chain(&interleaved) {
            each_dot_add_kernel(|kernel| {
                let mut out = vec![0f32; rows * tokens];
                matmul_prequantized(w, &acts, &mut out);
                for (t, a) in acts.iter().enumerate() {
                    let mut one_token = vec![0f32; rows];
                    matvec_prequantized(w, a, &mut one_token);
                    for (r, (&p, &v)) in out[t * rows..(t + 1) * rows].iter().zip(&one_token).enumerate() {
                        assert_eq!((p.to_bits(), v.to_bits()), (lone[t].to_bits(), lone[t].to_bits()), "{} {:?} row {r} token {t} {kernel}: prompt {p}, mat-vec {v}, dot {}", ty.name(), w.order(), lone[t]);
                    }
                }
            });
        }
    }
}

#[test]
fn q8_0_weights_of_minus_128_are_exact_in_every_kernel() {
    // llama.cpp's quantizer writes codes -127..=127; the format allows -128, which the
    // relaxed-SIMD kernel's sign trick cannot negate: such a matrix must take the exact path.
    let mut rng = fastrand::Rng::with_seed(11);
    let (rows, n) = (9, 256);
    let mut bytes: Vec<u8> = (0..rows * n / 32 * 34).map(|_| rng.u8(..)).collect();
    for (i, block) in bytes.chunks_exact_mut(34).enumerate() {
        block[..2].copy_from_slice(&f16::from_f32(0.01 + 0.001 * (i % 7) as f32).to_le_bytes());
        block[2 + i % 32] = 0x80; // -128 in every block
    }
    // In the file's order and interleaved (two groups, and a row left in the file's order).
    for w in [QMatrix::owned(GgmlType::Q8_0, rows, n, bytes.clone()), QMatrix::owned_in_order(GgmlType::Q8_0, rows, n, bytes.clone(), RowOrder::Q8_0x4)] {
        let order = w.order();
        assert!(w.has_q8_0_min(), "{order:?}");
        let x: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
        let mut acts = QuantizedActs::default();
        acts.quantize(ActKind::Q8_0, &x);
        assert!(acts.q[..n].iter().filter(|&&q| q < 0).count() > n / 4, "the activations have negative values");
        let y = dequantized_acts(&acts, n);
        each_dot_add_kernel(|kernel| {
            let mut out = vec![0f32; rows];
            matvec_prequantized(&w, &acts, &mut out);
            for r in 0..rows {
                let mut wr = vec![0f32; n];
                dequantize(w.ty, &w.row(r), &mut wr);
                let want: f64 = wr.iter().zip(&y).map(|(&a, &b)| a as f64 * b).sum();
                let scale: f64 = wr.iter().zip(&y).map(|(&a, &b)| (a as f64 * b).abs()).sum();
                assert!((out[r] as f64 - want).abs() <= 1e-5 * scale, "{order:?} {kernel} row {r}: mat-vec {} vs f64 {want}", out[r]);
                assert_eq!(out[r].to_bits(), vec_dot(w.ty, &w.row(r), &acts).to_bits(), "{order:?} {kernel} row {r}: mat-vec vs dot");
            }
            // A prompt (two tiles of four tokens and one left over) through the same rows: each
            // token's result the bits of the dot.
            let tokens = 9;
            let prompt = random_acts(&mut fastrand::Rng::with_seed(12), ActKind::Q8_0, n, tokens);
            let mut out = vec![0f32; rows * tokens];
            matmul_prequantized(&w, &prompt, &mut out);
            for (t, a) in prompt.iter().enumerate() {
                for r in 0..rows {
                    assert_eq!(out[t * rows + r].to_bits(), vec_dot(w.ty, &w.row(r), a).to_bits(), "{order:?} {kernel} token {t} row {r}: mat-mat vs dot");
                }
            }
        });
    }
    // Interleaved, a -128 found in a group's codes alone, and in the rows past the groups alone.
    let no_min: Vec<u8> = bytes.iter().enumerate().map(|(i, &b)| if i % 34 >= 2 && b == 0x80 { 0x7F } else { b }).collect();
    assert!(!QMatrix::owned_in_order(GgmlType::Q8_0, rows, n, no_min.clone(), RowOrder::Q8_0x4).has_q8_0_min());
    for at in [5 * 8 * 34 + 2 + 31, 8 * 8 * 34 + 7 * 34 + 2] {
        let mut one = no_min.clone();
        one[at] = 0x80;
        assert!(QMatrix::owned_in_order(GgmlType::Q8_0, rows, n, one, RowOrder::Q8_0x4).has_q8_0_min(), "a -128 at byte {at}");
    }
    let x: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
    // A matrix of quantized values holds no -128.
    let q = pocketlm::quant::quantize(GgmlType::Q8_0, &x);
    assert!(!QMatrix::owned(GgmlType::Q8_0, 1, n, q).has_q8_0_min());
}

#[test]
fn q8_0_rare_codes_find_one_rare_code_wherever_it_lies() {
    // The scan that sends a matrix to the exact kernels (SIMD in wasm builds), over 600 blocks.
    let mut rng = fastrand::Rng::with_seed(5);
    let mut blocks: Vec<u8> = (0..600 * 34).map(|_| rng.u8(..)).collect();
    for b in blocks.chunks_exact_mut(34) {
        b[1] &= !0x40; // finite scales
        b[2..].iter_mut().filter(|q| **q == 0x80).for_each(|q| *q = 0x7F);
    }
    assert_eq!(q8_0_rare_codes(&blocks), RareCodes::default());
    for block in [0, 255, 256, 511, 599] {
        for byte in [2, 17, 33] {
            let mut b = blocks.clone();
            b[block * 34 + byte] = 0x80;
            assert_eq!(q8_0_rare_codes(&b), RareCodes { q8_0_min: true, nonfinite_scale: false }, "-128 at block {block} byte {byte}");
        }
        let mut b = blocks.clone();
        b[block * 34 + 1] |= 0x7C; // exponent all ones: an infinity or a NaN
        assert_eq!(q8_0_rare_codes(&b), RareCodes { q8_0_min: false, nonfinite_scale: true }, "scale of block {block}");
    }
}

#[test]
fn the_scalar_f16_conversion_of_block_scales_equals_half_for_every_f16() {
    // wasm's own conversion (natively it is half's): subnormals, zeros, signs, infinities, NaNs.
    for h in 0..=u16::MAX {
        let (got, want) = (pocketlm::quant::f16_bits_to_f32(h), f16::from_bits(h).to_f32());
        assert!(got.is_nan() && want.is_nan() || got.to_bits() == want.to_bits(), "f16 {h:#06x}: {got} vs {want}");
    }
}

#[test]
fn f16_attention_helpers_convert_every_f16_exactly_and_sum_within_rounding() {
    // Every f16 bit pattern, as the SIMD conversion reads it, equals half's (the tail of 7 past
    // the last 8 by the scalar code).
    let all: Vec<f16> = (0..=u16::MAX).chain(0x7C00..0x7C07).map(f16::from_bits).collect();
    let mut out = vec![0f32; all.len()];
    f16_to_f32(&all, &mut out);
    for (h, o) in all.iter().zip(&out) {
        let want = h.to_f32();
        assert!(o.is_nan() && want.is_nan() || o.to_bits() == want.to_bits(), "f16 {:#06x}: {o} vs {want}", h.to_bits());
    }
    let mut rng = fastrand::Rng::with_seed(3);
    for n in [8, 64, 128, 20] {
        let a: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
        let b: Vec<f32> = (0..n).map(|_| (rng.f32() - 0.5) * 8.0).collect();
        let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        let scale: f64 = a.iter().zip(&b).map(|(&x, &y)| (x as f64 * y as f64).abs()).sum();
        let got = dot_f32(&a, &b);
        assert!((got as f64 - want).abs() <= 1e-6 * scale + 1e-7, "dot_f32 of {n}: {got} vs {want}");
    }
    // The weighted sum of rows (attention's values): each value summed in row order from zero,
    // bit for bit, for widths of whole 32-value blocks, of 4-value ones past them, and a tail.
    for (width, n_rows) in [(64, 37), (96, 5), (44, 9), (13, 3), (8, 1)] {
        let w: Vec<f32> = (0..n_rows).map(|_| rng.f32()).collect();
        let rows: Vec<f32> = (0..n_rows * width).map(|_| rng.f32() * 4.0 - 2.0).collect();
        let mut out = vec![f32::NAN; width];
        weighted_rows_sum(&w, &rows, &mut out);
        for (d, &o) in out.iter().enumerate() {
            let mut want = 0.0f32;
            (0..n_rows).for_each(|i| want += w[i] * rows[i * width + d]);
            assert_eq!(o.to_bits(), want.to_bits(), "weighted_rows_sum, width {width}, value {d}");
        }
    }
}

#[test]
fn rounding_and_converting_to_f16_give_the_bits_of_half() {
    // Every 61st f32 bit pattern (both signs, subnormals, the overflow to infinity at 65520,
    // NaNs), plus the edges of f16's ranges and their neighbours, as the SIMD rounding (four at
    // a time, the tail by the scalar code) makes them.
    let edges = [0x3880_0000u32, 0x3380_0000, 0x477F_E000, 0x477F_F000, 0x477F_EFFF, 0x7F80_0000, 0x3300_0000, 0x3F80_1000, 0x3F80_3000];
    let mut bits: Vec<u32> = (0..=u32::MAX / 61).map(|i| i * 61).collect();
    bits.extend(edges.iter().flat_map(|&e| (e - 2..=e + 2).flat_map(|b| [b, b | 0x8000_0000])));
    bits.push(7);
    let mut x: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    // The conversion to f16 (the KV cache's), NaNs' bits included.
    let mut h = vec![f16::ZERO; x.len()];
    f32_to_f16(&x, &mut h);
    for (&b, &got) in bits.iter().zip(&h) {
        let want = f16::from_f32(f32::from_bits(b));
        assert_eq!(got.to_bits(), want.to_bits(), "f32 {b:#010x} to f16: {got} vs half's {want}");
    }
    round_to_f16(&mut x);
    for (&b, &got) in bits.iter().zip(&x) {
        let want = f16::from_f32(f32::from_bits(b)).to_f32();
        assert!(got.to_bits() == want.to_bits() || got.is_nan() && want.is_nan(), "f32 {b:#010x}: {got:e} vs half's {want:e}");
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

#[test]
fn every_f16_block_scale_gives_the_scalar_result_and_non_finite_ones_take_the_scalar_code() {
    // One block per row, each row's scale one f16 bit pattern; activations quantized with a
    // scale of exactly 1 (integer values, the largest 127), so that the SIMD tile's
    // `sum · (dw · 1)` and the scalar `(sum · dw) · 1` round alike: the results must be the same
    // bits, which checks the kernels' f16 conversion of every scale (subnormals, zeros, signs).
    // Scales that are infinite or NaN put their matrix (and their rows in `vec_dot`) on the
    // scalar code.
    let mut rng = fastrand::Rng::with_seed(5);
    let mut x: Vec<f32> = (0..32).map(|_| rng.i32(-127..=127) as f32).collect();
    x[3] = 127.0;
    for ty in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
        let mut acts = QuantizedActs::default();
        acts.quantize(ActKind::for_weights(ty), &x);
        assert_eq!(acts.d[0], 1.0, "{}: the activations' scale", ty.name());
        let bb = ty.block_bytes();
        let block = |h: u16, rng: &mut fastrand::Rng| {
            let mut b: Vec<u8> = (0..bb).map(|_| rng.u8(..)).collect();
            b[..2].copy_from_slice(&h.to_le_bytes());
            if ty == GgmlType::Q8_0 {
                // No code -128, so that relaxed-SIMD builds take their fast Q8_0 kernel.
                b[2..].iter_mut().filter(|q| **q == 0x80).for_each(|q| *q = 0x81);
            }
            b
        };
        let (finite, special): (Vec<u16>, Vec<u16>) = (0..=u16::MAX).partition(|&h| f16::from_bits(h).is_finite());
        for (scales, nonfinite) in [(finite, false), (special, true)] {
            let bytes: Vec<u8> = scales.iter().flat_map(|&h| block(h, &mut rng)).collect();
            // Q4_0 and Q5_0 also interleaved, as the wasm loaders keep them.
            let order = RowOrder::interleaved(ty).unwrap_or(RowOrder::Plain);
            let w = QMatrix::owned_in_order(ty, scales.len(), 32, bytes, order);
            assert_eq!(w.order(), order);
            assert_eq!(w.rare_codes().nonfinite_scale, nonfinite, "{}", ty.name());
            let mut out = vec![0f32; w.rows];
            matvec_prequantized(&w, &acts, &mut out);
            for (r, (&o, &h)) in out.iter().zip(&scales).enumerate() {
                let want = vec_dot_scalar(ty, &w.row(r), &acts);
                let dot = vec_dot(ty, &w.row(r), &acts);
                let same = |a: f32| a.to_bits() == want.to_bits() || a.is_nan() && want.is_nan();
                assert!(same(o) && same(dot), "{} scale {h:#06x}: mat-vec {o}, dot {dot}, scalar {want}", ty.name());
            }
        }
    }
}
