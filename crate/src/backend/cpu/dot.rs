//! Dot product of one quantized weight row with quantized activations: integer sums inside each
//! block, scaled once per block. The scalar code is the reference; `simd128` holds the wasm SIMD
//! kernels of the hot types and is checked against it.

use super::acts::QuantizedActs;
use crate::quant::{f16_at, k4_scales_mins, q4_k_values, q5_k_values, q5_values, q6_k_values, GgmlType, QK_K};
use half::{bf16, f16};

/// `row · acts` for a row of `ty` with `acts` quantized for `ty` (see [`super::acts::ActKind::for_weights`]).
/// wasm builds with simd128 take the SIMD kernels of the hot types (equal to the scalar code up
/// to f32 summation order: see `simd128`), but for rows with a non-finite block scale.
#[inline]
pub fn vec_dot(ty: GgmlType, row: &[u8], a: &QuantizedActs) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if super::simd128::handles(ty) && !crate::quant::has_nonfinite_block_scale(ty, row) {
        return super::simd128::dot(ty, row, a);
    }
    vec_dot_scalar(ty, row, a)
}

/// The portable reference of [`vec_dot`].
pub fn vec_dot_scalar(ty: GgmlType, row: &[u8], a: &QuantizedActs) -> f32 {
    match ty {
        GgmlType::Q4_0 => dot_q4_0_scalar(row, a),
        GgmlType::Q8_0 => dot_q8_0_scalar(row, a),
        GgmlType::Q4_1 => dot_q4_1(row, a),
        GgmlType::Q5_0 => dot_q5_0(row, a),
        GgmlType::Q5_1 => dot_q5_1(row, a),
        GgmlType::Q4K => dot_q4_k(row, a),
        GgmlType::Q5K => dot_q5_k(row, a),
        GgmlType::Q6K => dot_q6_k(row, a),
        GgmlType::F16 => row.chunks_exact(2).zip(&a.f).map(|(c, x)| f16::from_le_bytes([c[0], c[1]]).to_f32() * x).sum(),
        GgmlType::BF16 => row.chunks_exact(2).zip(&a.f).map(|(c, x)| bf16::from_le_bytes([c[0], c[1]]).to_f32() * x).sum(),
        GgmlType::F32 => row.chunks_exact(4).zip(&a.f).map(|(c, x)| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * x).sum(),
    }
}

pub fn dot_q4_0_scalar(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    for ((b, y), dy) in row.chunks_exact(18).zip(a.q.chunks_exact(32)).zip(&a.d) {
        let qs = &b[2..18];
        let mut s = 0i32;
        for j in 0..16 {
            s += ((qs[j] & 0xF) as i32 - 8) * y[j] as i32 + ((qs[j] >> 4) as i32 - 8) * y[j + 16] as i32;
        }
        sum += s as f32 * f16_at(b, 0) * dy;
    }
    sum
}

pub fn dot_q8_0_scalar(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    for ((b, y), dy) in row.chunks_exact(34).zip(a.q.chunks_exact(32)).zip(&a.d) {
        let s: i32 = b[2..34].iter().zip(y).map(|(&x, &y)| (x as i8) as i32 * y as i32).sum();
        sum += s as f32 * f16_at(b, 0) * dy;
    }
    sum
}

fn dot_q4_1(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    for (((b, y), dy), sy) in row.chunks_exact(20).zip(a.q.chunks_exact(32)).zip(&a.d).zip(&a.s) {
        let qs = &b[4..20];
        let mut s = 0i32;
        for j in 0..16 {
            s += (qs[j] & 0xF) as i32 * y[j] as i32 + (qs[j] >> 4) as i32 * y[j + 16] as i32;
        }
        sum += s as f32 * f16_at(b, 0) * dy + f16_at(b, 2) * sy;
    }
    sum
}

fn dot_q5_0(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    for ((b, y), dy) in row.chunks_exact(22).zip(a.q.chunks_exact(32)).zip(&a.d) {
        let v = q5_values(&b[2..6], &b[6..22]);
        let s: i32 = v.iter().zip(y).map(|(&x, &y)| (x as i32 - 16) * y as i32).sum();
        sum += s as f32 * f16_at(b, 0) * dy;
    }
    sum
}

fn dot_q5_1(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    for (((b, y), dy), sy) in row.chunks_exact(24).zip(a.q.chunks_exact(32)).zip(&a.d).zip(&a.s) {
        let v = q5_values(&b[4..8], &b[8..24]);
        let s: i32 = v.iter().zip(y).map(|(&x, &y)| x as i32 * y as i32).sum();
        sum += s as f32 * f16_at(b, 0) * dy + f16_at(b, 2) * sy;
    }
    sum
}

/// Shared by Q4_K and Q5_K: unsigned values with a 6-bit scale and min per 32.
#[inline]
fn dot_k_scale_min(v: &[u8; QK_K], scales: &[u8], y: &[i8], bsums: &[i32]) -> (i32, i32) {
    let (sc, mn) = k4_scales_mins(scales);
    let mut total = 0i32;
    let mut mins = 0i32;
    for s in 0..8 {
        let isum: i32 = v[s * 32..s * 32 + 32].iter().zip(&y[s * 32..s * 32 + 32]).map(|(&x, &y)| x as i32 * y as i32).sum();
        total += sc[s] as i32 * isum;
        mins += mn[s] as i32 * (bsums[2 * s] + bsums[2 * s + 1]);
    }
    (total, mins)
}

fn dot_q4_k(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    for (((b, y), dy), bs) in row.chunks_exact(144).zip(a.q.chunks_exact(QK_K)).zip(&a.d).zip(a.bsums.chunks_exact(16)) {
        let (total, mins) = dot_k_scale_min(&q4_k_values(&b[16..144]), &b[4..16], y, bs);
        sum += f16_at(b, 0) * dy * total as f32 - f16_at(b, 2) * dy * mins as f32;
    }
    sum
}

fn dot_q5_k(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    for (((b, y), dy), bs) in row.chunks_exact(176).zip(a.q.chunks_exact(QK_K)).zip(&a.d).zip(a.bsums.chunks_exact(16)) {
        let (total, mins) = dot_k_scale_min(&q5_k_values(&b[16..48], &b[48..176]), &b[4..16], y, bs);
        sum += f16_at(b, 0) * dy * total as f32 - f16_at(b, 2) * dy * mins as f32;
    }
    sum
}

fn dot_q6_k(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    for ((b, y), dy) in row.chunks_exact(210).zip(a.q.chunks_exact(QK_K)).zip(&a.d) {
        let v = q6_k_values(&b[0..128], &b[128..192]);
        let mut total = 0i32;
        for s in 0..16 {
            let isum: i32 = v[s * 16..s * 16 + 16].iter().zip(&y[s * 16..s * 16 + 16]).map(|(&x, &y)| x as i32 * y as i32).sum();
            total += (b[192 + s] as i8) as i32 * isum;
        }
        sum += f16_at(b, 208) * dy * total as f32;
    }
    sum
}
