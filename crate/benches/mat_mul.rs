//! The CPU mat-vec (decode) and prompt mat-mat kernels alone, at the matrix shapes of
//! Qwen2.5-0.5B, in ns per weight and token: what the end-to-end figures of `tests/bench/` are
//! made of, measured without the model around them. Prints the fastest and the median of its
//! repetitions (the fastest is the least disturbed by a shared machine); checks nothing about
//! time. `scripts/bench-kernels.sh` runs it in Node (the simd128 build) and headless Chromium
//! (relaxed-SIMD); the native build has no SIMD kernels and no benchmark here.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::__rt::criterion::Criterion;
use wasm_bindgen_test::{console_log as say, wasm_bindgen_bench as bench, Instant};

#[path = "../tests/random_blocks/mod.rs"]
mod random_blocks;

use pocketlm::backend::cpu::acts::{ActKind, QuantizedActs};
use pocketlm::backend::cpu::{matmul_prequantized, row_order};
use pocketlm::model::forward::CPU_PREFILL_CHUNK;
use pocketlm::quant::{GgmlType, QMatrix, RowOrder};
use random_blocks::{random_acts, random_row, set_block_scales};

/// Qwen2.5-0.5B's mat-vec shapes (rows × columns) and how many of each a layer has: the
/// attention's query and output, its key and value, the MLP's gate and up, its down.
const SHAPES: [(&str, usize, usize, usize); 4] = [("q/o", 896, 896, 2), ("k/v", 128, 896, 2), ("gate/up", 4864, 896, 2), ("down", 896, 4864, 1)];
/// The benchmark's prompt (`tests/bench/`: 120 tokens, a multiple of the prompt tiles' 4).
const PROMPT_TOKENS: usize = 120;

/// Milliseconds per call of `f`, `reps` samples sorted, after calls to warm up. Each sample
/// times enough calls to last 10 ms (a browser's clock steps by 0.1 ms).
fn times(reps: usize, mut f: impl FnMut()) -> Vec<f64> {
    let start = Instant::now();
    let mut calls = 0;
    while calls < 3 || start.elapsed().as_secs_f64() < 0.01 {
        f();
        calls += 1;
    }
    let batch = (0.01 / (start.elapsed().as_secs_f64() / calls as f64)).ceil().max(1.0) as usize;
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            (0..batch).for_each(|_| f());
            start.elapsed().as_secs_f64() * 1e3 / batch as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

/// `note` follows the type's name in what it prints; the matrices lie in `order`.
fn run(ty: GgmlType, note: &str, order: RowOrder) {
    let mut rng = fastrand::Rng::with_seed(5);
    let (mut decode_ns, mut prompt_ns, mut weights) = (0.0, 0.0, 0usize);
    // V8 runs a function's first calls in its baseline compiler: warm every kernel up first.
    let (rows, cols) = (256, 896);
    let w = QMatrix::owned_in_order(ty, rows, cols, (0..rows).flat_map(|_| random_row(&mut rng, ty, cols)).collect(), order);
    let acts = random_acts(&mut rng, ActKind::for_weights(ty), cols, PROMPT_TOKENS);
    let mut out = vec![0f32; rows * PROMPT_TOKENS];
    times(20, || {
        matmul_prequantized(&w, &acts[..1], &mut out[..rows]);
        matmul_prequantized(&w, &acts, &mut out);
    });
    for (name, rows, cols, count) in SHAPES {
        let bytes: Vec<u8> = (0..rows).flat_map(|_| random_row(&mut rng, ty, cols)).collect();
        let w = QMatrix::owned_in_order(ty, rows, cols, bytes, order);
        let acts = random_acts(&mut rng, ActKind::for_weights(ty), cols, PROMPT_TOKENS);
        let per = |ms: f64, tokens: usize| ms * 1e6 / (rows * cols * tokens) as f64;
        let (decode, prompt) = decode_and_prompt_times(&w, &acts);
        say!(
            "{}{note} {name} {rows}x{cols}: decode {:.4} ns/weight (median {:.4}), prompt of {PROMPT_TOKENS} {:.4} ns/weight/token (median {:.4})",
            ty.name(),
            per(decode[0], 1),
            per(decode[decode.len() / 2], 1),
            per(prompt[0], PROMPT_TOKENS),
            per(prompt[prompt.len() / 2], PROMPT_TOKENS)
        );
        decode_ns += count as f64 * decode[0] * 1e6;
        prompt_ns += count as f64 * prompt[0] * 1e6;
        weights += count * rows * cols;
    }
    say!(
        "{}{note} a layer of Qwen2.5-0.5B: decode {:.4} ns/weight, prompt {:.4} ns/weight/token",
        ty.name(),
        decode_ns / weights as f64,
        prompt_ns / (weights * PROMPT_TOKENS) as f64
    );
}

/// The sorted times (ms) of `w` against the first token of `acts` (decode) and all of them.
fn decode_and_prompt_times(w: &QMatrix, acts: &[QuantizedActs]) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0f32; w.rows * acts.len()];
    let decode = times(15, || matmul_prequantized(w, &acts[..1], &mut out[..w.rows]));
    let prompt = times(7, || matmul_prequantized(w, acts, &mut out));
    (decode, prompt)
}

/// Qwen2.5-0.5B's FFN down shape in `ty` (the loader's row order) with every block's f16 scales
/// sane (0.001-0.051), then all 2.4e-5, an f16 subnormal as real files' Q6_K scales are (`d`: a
/// block's largest sub-block scale / 128, for weights of ~0.1; Q8_0's for blocks of weights
/// below 0.0078). x86 takes a microcode assist for each instruction with an f32 subnormal
/// operand, which the kernels' f16 conversion never makes. Chromium, the Xeon, 2026-12-07,
/// before it (the subnormal bit pattern scaled by 2^112), ns per weight, decode / prompt, sane →
/// subnormal: Q6_K 0.072 / 0.042 → 0.198 / 0.075, Q4_K 0.050 / 0.026 → 0.309 / 0.090, Q8_0
/// 0.036 / 0.019 → 0.323 / 0.093, Q4_0 0.029 / 0.017 → 0.319 / 0.081; after it, the same.
fn run_scales(ty: GgmlType) {
    let mut rng = fastrand::Rng::with_seed(9);
    let (rows, cols) = (896, 4864);
    let bytes: Vec<u8> = (0..rows).flat_map(|_| random_row(&mut rng, ty, cols)).collect();
    let acts = random_acts(&mut rng, ActKind::for_weights(ty), cols, PROMPT_TOKENS);
    let per = |ms: f64, tokens: usize| ms * 1e6 / (rows * cols * tokens) as f64;
    for (note, scale) in [("sane scales", None), ("subnormal f16 scales", Some(half::f16::from_f32(2.4e-5)))] {
        let mut bytes = bytes.clone();
        if let Some(scale) = scale {
            set_block_scales(ty, &mut bytes, scale);
        }
        let w = QMatrix::owned_in_order(ty, rows, cols, bytes, row_order(ty));
        let (decode, prompt) = decode_and_prompt_times(&w, &acts);
        say!("{} down {rows}x{cols}, {note}: decode {:.4} ns/weight, prompt of {PROMPT_TOKENS} {:.4} ns/weight/token", ty.name(), per(decode[0], 1), per(prompt[0], PROMPT_TOKENS));
    }
}

/// Layers of the model-sized run ([`run_layers`]): their weights (Q4_0: 8 × 8.4 MB) well past
/// a shared last-level cache, so each matrix comes from memory as in a forward pass.
const LAYERS: usize = 8;

/// A prompt of `PROMPT_TOKENS` through [`LAYERS`] layers of distinct matrices (copies of one
/// random layer), `tokens` at a time: what the prompt mat-mul costs when, as in the model, each
/// matrix was last read a whole pass ago, against the hot single matrices of [`run`]. Node,
/// the Zen 4 (2026-12-04): 16 tokens at a time (the forward's `CPU_PREFILL_CHUNK`) 0.042-0.046
/// ns/weight/token, 32 0.042-0.045, 64 0.043-0.051, 120 0.043-0.046, single matrices
/// 0.040-0.047 in the same minutes: the prompt mat-mul is bound by its instructions, not by
/// reading the weights once per chunk. The Xeon with AVX-VNNI (Chromium, relaxed-SIMD,
/// 2026-12-07), whose fused tiles run twice as fast: Q8_0 interleaved 16 at a time 0.0241, 120
/// 0.0194 (its 4-token tiles reading ~14 GB/s of weights, what a plain read of them reaches):
/// there the prompt reads from memory bind, hence the kernels' cache blocking and the
/// forward's 64-token chunks.
fn run_layers(ty: GgmlType, note: &str, order: RowOrder) {
    let mut rng = fastrand::Rng::with_seed(7);
    // Each matrix its own buffer (a clone of a QMatrix shares its bytes).
    let layer: Vec<(usize, usize, Vec<u8>)> = SHAPES
        .iter()
        .flat_map(|&(_, rows, cols, count)| {
            let bytes: Vec<u8> = (0..rows).flat_map(|_| random_row(&mut rng, ty, cols)).collect();
            (0..count).map(move |_| (rows, cols, bytes.clone()))
        })
        .collect();
    let model: Vec<QMatrix> = (0..LAYERS).flat_map(|_| layer.iter().map(|(rows, cols, bytes)| QMatrix::owned_in_order(ty, *rows, *cols, bytes.clone(), order))).collect();
    let weights: usize = model.iter().map(|w| w.rows * w.cols).sum();
    // The prompt's activations for each width of the shapes.
    let mut widths: Vec<usize> = SHAPES.iter().map(|&(_, _, cols, _)| cols).collect();
    widths.sort_unstable();
    widths.dedup();
    let acts: Vec<(usize, Vec<_>)> = widths.into_iter().map(|cols| (cols, random_acts(&mut rng, ActKind::for_weights(ty), cols, PROMPT_TOKENS))).collect();
    let acts_for = |cols: usize| &acts.iter().find(|(c, _)| *c == cols).expect("a width of SHAPES").1;
    let mut out = vec![0f32; model.iter().map(|w| w.rows).max().unwrap_or(0) * PROMPT_TOKENS];
    // Decode: one token through every matrix, as a forward pass reads them (each from memory);
    // beside it, the same bytes only read (16-byte loads and adds): the machine's bound.
    let bytes: usize = model.iter().map(|w| w.bytes().len()).sum();
    let read = times(9, || {
        use core::arch::wasm32::{i8x16_add, i8x16_splat, v128, v128_load};
        let mut acc = [i8x16_splat(0); 4];
        for c in model.iter().flat_map(|w| w.bytes().chunks_exact(64)) {
            // SAFETY: each chunk holds 64 bytes; unaligned v128 loads are allowed.
            (0..4).for_each(|k| acc[k] = i8x16_add(acc[k], unsafe { v128_load(c.as_ptr().add(16 * k) as *const v128) }));
        }
        core::hint::black_box(acc);
    });
    let t = times(9, || model.iter().for_each(|w| matmul_prequantized(w, &acts_for(w.cols)[..1], &mut out[..w.rows])));
    say!(
        "{}{note} {LAYERS} layers of Qwen2.5-0.5B, decode: {:.4} ns/weight (median {:.4}; {:.2} ms, {:.1} GB/s of weights; only reading them: {:.2} ms, {:.1} GB/s)",
        ty.name(),
        t[0] * 1e6 / weights as f64,
        t[t.len() / 2] * 1e6 / weights as f64,
        t[0],
        bytes as f64 / (t[0] * 1e6),
        read[0],
        bytes as f64 / (read[0] * 1e6)
    );
    for tokens in [16, CPU_PREFILL_CHUNK, PROMPT_TOKENS] {
        let t = times(5, || {
            for t0 in (0..PROMPT_TOKENS).step_by(tokens) {
                let t1 = (t0 + tokens).min(PROMPT_TOKENS);
                for w in &model {
                    matmul_prequantized(w, &acts_for(w.cols)[t0..t1], &mut out[..(t1 - t0) * w.rows]);
                }
            }
        });
        let per = |ms: f64| ms * 1e6 / (weights as f64 * PROMPT_TOKENS as f64);
        say!("{}{note} {LAYERS} layers of Qwen2.5-0.5B, a prompt of {PROMPT_TOKENS} {tokens} tokens at a time: {:.4} ns/weight/token (median {:.4}; {:.1} ms, {weights} weights)", ty.name(), per(t[0]), per(t[t.len() / 2]), t[0]);
    }
}

/// [`run`] of `ty` in the loader's order ([`row_order`]: Q4_0 and Q5_0 interleaved, Q4_K where the dot-add is fused, Q6_K in the file's order) with each way
/// of adding the block sums in relaxed-SIMD builds (then says which one this engine's probe picks), else once.
fn run_each_dot_add(ty: GgmlType) {
    #[cfg(target_feature = "relaxed-simd")]
    {
        use pocketlm::backend::cpu::simd128::{force_fused_dot_add, fused_dot_add};
        for (fused, note) in [(false, " (16-bit pairs)"), (true, " (fused dot-add)")] {
            force_fused_dot_add(Some(fused));
            run(ty, note, row_order(ty));
        }
        force_fused_dot_add(None);
        say!("{}: this engine's probe picks the {}", ty.name(), if fused_dot_add() { "fused dot-add" } else { "16-bit pairs" });
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    run(ty, "", row_order(ty));
}

#[bench]
fn q4_0(_: &mut Criterion) {
    run_each_dot_add(GgmlType::Q4_0);
    run_layers(GgmlType::Q4_0, "", row_order(GgmlType::Q4_0));
}

#[bench]
fn q8_0(_: &mut Criterion) {
    // In the file's order, and interleaved where this engine's loader interleaves Q8_0.
    let ty = GgmlType::Q8_0;
    let mut orders = vec![RowOrder::Plain];
    orders.extend(Some(row_order(ty)).filter(|&o| o != RowOrder::Plain));
    for order in orders {
        let note = if order == RowOrder::Plain { " (file order)" } else { " (interleaved)" };
        run(ty, note, order);
        run_layers(ty, note, order);
    }
}

#[bench]
fn q4_k(_: &mut Criterion) {
    // The 16-bit pairs in the file's order, the fused dot-add interleaved (the loader's orders).
    run_each_dot_add(GgmlType::Q4K);
}

/// 8 layers of Q4_K in either order by the way this engine's probe picks (the 16-bit pairs:
/// `q4_k_pairs`); benches of their own, as the page must answer the test runner within 20 s.
#[bench]
fn q4_k_layers_each_order(_: &mut Criterion) {
    q4_k_layers("");
}

/// 8 layers of Q4_K in either order, whichever order this engine's loader takes (`how`: a note
/// on the way of adding the sums).
fn q4_k_layers(how: &str) {
    for order in [RowOrder::Plain, RowOrder::Q4Kx4] {
        run_layers(GgmlType::Q4K, &format!(" ({}{how})", if order == RowOrder::Plain { "file order" } else { "interleaved" }), order);
    }
}

/// [`q4_k_layers`] by the 16-bit pairs (the relaxed-SIMD engines without the fused dot-add).
#[cfg(target_feature = "relaxed-simd")]
#[bench]
fn q4_k_pairs(_: &mut Criterion) {
    use pocketlm::backend::cpu::simd128::force_fused_dot_add;
    force_fused_dot_add(Some(false));
    q4_k_layers(", 16-bit pairs");
    force_fused_dot_add(None);
}

#[bench]
fn q5_0(_: &mut Criterion) {
    run_each_dot_add(GgmlType::Q5_0);
    run_layers(GgmlType::Q5_0, "", row_order(GgmlType::Q5_0));
}

#[bench]
fn q6_k(_: &mut Criterion) {
    run_each_dot_add(GgmlType::Q6K);
    run_layers(GgmlType::Q6K, "", RowOrder::Plain);
}

#[bench]
fn subnormal_scales(_: &mut Criterion) {
    // Q6_K's as in real files; Q8_0's for blocks of weights below 0.0078 (the scale amax / 127);
    // Q4_0's (interleaved) for blocks below 0.0005.
    for ty in [GgmlType::Q6K, GgmlType::Q4K, GgmlType::Q8_0, GgmlType::Q4_0] {
        run_scales(ty);
    }
}
