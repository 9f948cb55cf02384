//! wasm SIMD (simd128) dot products of the hottest block types, bit-equal to the scalar code in
//! `dot.rs`: the same integer sums per block, scaled in the same order.

use core::arch::wasm32::*;

use super::acts::QuantizedActs;
use crate::quant::f16_at;

/// Σ a[i]·b[i] of 16 signed bytes, as four i32 lanes.
#[inline(always)]
fn dot_i8x16(a: v128, b: v128) -> v128 {
    let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(a), i16x8_extend_low_i8x16(b));
    let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(a), i16x8_extend_high_i8x16(b));
    i32x4_add(lo, hi)
}

#[inline(always)]
fn hsum(v: v128) -> i32 {
    i32x4_extract_lane::<0>(v) + i32x4_extract_lane::<1>(v) + i32x4_extract_lane::<2>(v) + i32x4_extract_lane::<3>(v)
}

pub fn dot_q4_0(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    for ((b, y), dy) in row.chunks_exact(18).zip(a.q.chunks_exact(32)).zip(&a.d) {
        // SAFETY: `b` holds 18 bytes (16 loaded from offset 2) and `y` 32; wasm loads may be unaligned.
        let (qs, y0, y1) = unsafe { (v128_load(b.as_ptr().add(2) as *const v128), v128_load(y.as_ptr() as *const v128), v128_load(y.as_ptr().add(16) as *const v128)) };
        let eight = i8x16_splat(8);
        let lo = i8x16_sub(v128_and(qs, u8x16_splat(0x0F)), eight);
        let hi = i8x16_sub(u8x16_shr(qs, 4), eight);
        let s = hsum(i32x4_add(dot_i8x16(lo, y0), dot_i8x16(hi, y1)));
        sum += s as f32 * f16_at(b, 0) * dy;
    }
    sum
}

pub fn dot_q8_0(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    for ((b, y), dy) in row.chunks_exact(34).zip(a.q.chunks_exact(32)).zip(&a.d) {
        // SAFETY: `b` holds 34 bytes (32 loaded from offset 2) and `y` 32; wasm loads may be unaligned.
        let (x0, x1, y0, y1) = unsafe {
            (
                v128_load(b.as_ptr().add(2) as *const v128),
                v128_load(b.as_ptr().add(18) as *const v128),
                v128_load(y.as_ptr() as *const v128),
                v128_load(y.as_ptr().add(16) as *const v128),
            )
        };
        let s = hsum(i32x4_add(dot_i8x16(x0, y0), dot_i8x16(x1, y1)));
        sum += s as f32 * f16_at(b, 0) * dy;
    }
    sum
}
