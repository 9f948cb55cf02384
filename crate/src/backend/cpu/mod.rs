//! The CPU backend: every op of the forward pass on f32 activations, with quantized weights
//! read through integer dot products.

pub mod acts;
pub mod dot;
mod matmul;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod simd128;
pub mod threads;

pub use matmul::{matmul_prequantized, matvec, matvec_prequantized, TokenRows};

use crate::quant::{f16_bits_to_f32, GgmlType, RowOrder};
use half::f16;
use std::ops::Range;

/// The row order the CPU kernels read a matrix of `ty` fastest in, which the loaders put it in:
/// Q4_0 and Q5_0 interleaved four rows at a time ([`RowOrder::interleaved`]) in the wasm SIMD
/// builds, whose kernels then need no reduction across a block's lanes, and Q8_0 too where the
/// engine fuses the relaxed dot-add (its interleaved kernel multiplies `w + 128` by it; without
/// it, widening to 16 bits, the file order's kernels are as fast), and Q4_K's there and in the
/// builds without relaxed-SIMD (its sub-blocks as interleaved Q4_0 blocks); the file's order
/// elsewhere.
pub fn row_order(ty: GgmlType) -> RowOrder {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let reads_interleaved = match ty {
        GgmlType::Q8_0 => simd128::fused_dot_add(),
        // By the 16-bit pairs (forced on the Xeon, 8 layers of Qwen2.5's shapes) the interleaved
        // Q4_K decodes faster (0.057 -> 0.032 ns per weight) but prompts slower (0.023 ->
        // 0.029); by the widening of the simd128 build (Node) both are faster (0.159 -> 0.082,
        // 0.060 -> 0.052), by the fused dot-add too (0.040 -> 0.030, 0.024 -> 0.018).
        GgmlType::Q4K => simd128::fused_dot_add() || cfg!(not(target_feature = "relaxed-simd")),
        _ => true,
    };
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let reads_interleaved = false;
    match RowOrder::interleaved(ty) {
        Some(order) if reads_interleaved => order,
        _ => RowOrder::Plain,
    }
}

/// RMSNorm: `out = x / sqrt(mean(x²) + eps) * weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let ss: f32 = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (ss + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// RMSNorm in place, per head of `head_dim` values (Qwen3 / Gemma 3 Q/K norm).
pub fn rms_norm_heads(x: &mut [f32], weight: &[f32], eps: f32, head_dim: usize) {
    for h in x.chunks_exact_mut(head_dim) {
        let ss: f32 = h.iter().map(|v| v * v).sum::<f32>() / head_dim as f32;
        let scale = 1.0 / (ss + eps).sqrt();
        for (v, w) in h.iter_mut().zip(weight) {
            *v *= scale * w;
        }
    }
}

/// Rotary position embedding in place over `x` (`n_heads × head_dim`), first `rot_dims` of each
/// head. `inv_freq[i]` is the angle per position of pair `i`. `interleaved`: pairs are adjacent
/// values (GGUF `llama`), else the two halves (rotate-half, NeoX / Hugging Face).
pub fn rope(x: &mut [f32], head_dim: usize, rot_dims: usize, pos: usize, inv_freq: &[f32], attn_factor: f32, interleaved: bool) {
    let (half, pairs) = (rot_dims / 2, (rot_dims / 2).min(inv_freq.len()));
    assert!(pairs <= 512, "rope: {rot_dims} rotated dimensions");
    // The angles' cosines and sines once for all the heads.
    let mut cos_sin = [(0.0f32, 0.0f32); 512];
    for (cs, &f) in cos_sin.iter_mut().zip(&inv_freq[..pairs]) {
        let (sin, cos) = (pos as f32 * f).sin_cos();
        *cs = (cos * attn_factor, sin * attn_factor);
    }
    for h in x.chunks_exact_mut(head_dim) {
        for (i, &(cos, sin)) in cos_sin[..pairs].iter().enumerate() {
            let (a, b) = if interleaved { (2 * i, 2 * i + 1) } else { (i, i + half) };
            let (x0, x1) = (h[a], h[b]);
            h[a] = x0 * cos - x1 * sin;
            h[b] = x0 * sin + x1 * cos;
        }
    }
}

/// Softmax in place (in wasm SIMD builds by [`simd128::softmax`]: the sum in another order).
pub fn softmax(x: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd128::softmax(x);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let max = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0;
        for v in x.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        x.iter_mut().for_each(|v| *v *= inv);
    }
}

/// `gate = silu(gate) * up` (in wasm SIMD builds four at a time by [`simd128::silu_mul`]).
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let done = simd128::silu_mul(gate, up);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = 0;
    for (g, u) in gate[done..].iter_mut().zip(&up[done..]) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `gate = gelu_tanh(gate) * up` (Gemma).
pub fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    for (g, u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = 0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh()) * u;
    }
}

/// `x = cap * tanh(x / cap)`.
pub fn soft_cap(x: &mut [f32], cap: f32) {
    x.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
}

pub fn add_assign(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// Attention of the query tokens at positions `positions` (`q`: `positions.len()` tokens of
/// `n_heads × head_dim` values, `out` as many) over the cached keys/values: each token over the
/// positions up to its own (causal), the last `window` of them when given (a sliding window).
/// `k_cache`/`v_cache` are f16 `[pos][kv_head][head_dim]`, holding the tokens' own rows.
///
/// The query and the attention weights are rounded to f16 before their dot products with the
/// f16 cache, accumulating in f32 (what ggml's f16 mat-muls do). Each key/value head's rows are
/// converted to f32 once for all the tokens and the heads of the group that read them. The heads
/// are split across the threads of a running crew ([`threads::for_row_ranges`]); each token's
/// and head's arithmetic is the same whatever the tokens run with it and on every thread: a
/// prompt's tokens get the bits they get one at a time, and every thread count the same bits.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k_cache: &[f16],
    v_cache: &[f16],
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    positions: Range<usize>,
    window: Option<usize>,
    scale: f32,
    soft_cap_value: Option<f32>,
    out: &mut [f32],
) {
    let (kv_dim, n, q_dim) = (n_kv_heads * head_dim, positions.len(), n_heads * head_dim);
    assert!(n > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, "attention: {n} tokens, {n_heads} heads over {n_kv_heads}");
    assert!(q.len() >= n * q_dim && out.len() >= n * q_dim && k_cache.len().min(v_cache.len()) >= positions.end * kv_dim, "attention: buffers too short");
    let group = n_heads / n_kv_heads;
    // The positions token `p` reads, and those some token reads.
    let seen = |p: usize| window.map_or(0, |w| (p + 1).saturating_sub(w))..p + 1;
    let read = seen(positions.start).start..positions.end;
    // Head `h` of token `t` is "token" t·n_heads + h of rows `head_dim` (the threads own
    // disjoint heads).
    let out = TokenRows::new(&mut out[..n * q_dim], head_dim);
    let work = 2 * q_dim * read.len() * n;
    threads::for_row_ranges(n_heads, work, 1, |heads| {
        let (mut keys, mut values, mut q16, mut scores) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut h0 = heads.start;
        while h0 < heads.end {
            let kvh = h0 / group;
            let h1 = ((kvh + 1) * group).min(heads.end);
            let m = h1 - h0;
            let rows_f32 = |cache: &[f16], rows: &mut Vec<f32>| {
                rows.resize(read.len() * head_dim, 0.0);
                for (p, row) in read.clone().zip(rows.chunks_exact_mut(head_dim)) {
                    f16_to_f32(&cache[p * kv_dim + kvh * head_dim..][..head_dim], row);
                }
            };
            rows_f32(k_cache, &mut keys);
            rows_f32(v_cache, &mut values);
            for (t, pos) in positions.clone().enumerate() {
                let ctx = seen(pos);
                let len = ctx.len();
                let rows = (ctx.start - read.start) * head_dim..(ctx.end - read.start) * head_dim;
                q16.clear();
                q16.extend_from_slice(&q[t * q_dim + h0 * head_dim..t * q_dim + h1 * head_dim]);
                round_to_f16(&mut q16);
                scores.clear();
                scores.resize(m * len, 0.0);
                for (qh, s) in q16.chunks_exact(head_dim).zip(scores.chunks_exact_mut(len)) {
                    for (s, k) in s.iter_mut().zip(keys[rows.clone()].chunks_exact(head_dim)) {
                        *s = dot_f32(qh, k) * scale;
                    }
                    if let Some(cap) = soft_cap_value {
                        soft_cap(s, cap);
                    }
                    softmax(s);
                    // The weights rounded to f16, as the value rows are.
                    round_to_f16(s);
                }
                // SAFETY: this range owns heads `heads` of every token.
                let o = unsafe { out.tokens_mut(t * n_heads + h0..t * n_heads + h1) };
                for (oh, w) in o.chunks_exact_mut(head_dim).zip(scores.chunks_exact(len)) {
                    weighted_rows_sum(w, &values[rows.clone()], oh);
                }
            }
            h0 = h1;
        }
    });
}

/// Values rounded to the nearest f16 (ties to even), in place, as f32 (in wasm SIMD builds four
/// at a time, the same bits).
pub fn round_to_f16(x: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let done = simd128::round_to_f16(x);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = 0;
    x[done..].iter_mut().for_each(|v| *v = f16::from_f32(*v).to_f32());
}

/// `out[d] = Σ_i w[i] · rows[i][d]` for rows of `out.len()` values, each value summed in row
/// order (in wasm SIMD builds four values at a time, the same bits).
pub fn weighted_rows_sum(w: &[f32], rows: &[f32], out: &mut [f32]) {
    let width = out.len();
    assert!(rows.len() >= w.len() * width, "weighted_rows_sum: {} rows of {width} in {} values", w.len(), rows.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let done = simd128::weighted_rows_sum(w, rows, out);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = 0;
    for (d, o) in out.iter_mut().enumerate().skip(done) {
        *o = w.iter().zip(rows[d..].iter().step_by(width)).fold(0.0, |acc, (&wi, &v)| acc + wi * v);
    }
}

/// f16 values as f32, exactly (in wasm SIMD builds eight at a time).
#[inline]
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32 of {} values into {}", src.len(), dst.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let done = simd128::f16_to_f32(src, dst);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = 0;
    dst[done..].iter_mut().zip(&src[done..]).for_each(|(o, h)| *o = f16_bits_to_f32(h.to_bits()));
}

/// f32 values as f16, rounded to nearest even (in wasm SIMD builds eight at a time, the bits of
/// `half`'s conversion).
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_f16 of {} values into {}", src.len(), dst.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let done = simd128::f32_to_f16(src, dst);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = 0;
    dst[done..].iter_mut().zip(&src[done..]).for_each(|(o, &x)| *o = f16::from_f32(x));
}

/// `Σ a[i]·b[i]` in f32 (in wasm SIMD builds, for lengths that are multiples of 8, in four
/// lanes of pairs summed at the end).
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if a.len() % 8 == 0 {
        return simd128::dot_f32(a, b);
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
