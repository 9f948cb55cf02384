//! wasm SIMD (simd128) dot products of the hot block types, bit-equal to the scalar code in
//! `dot.rs`: the same integer sums per block, scaled in the same order.
//!
//! Builds with `+relaxed-simd` multiply 4-to-6-bit weights by the 8-bit activations with
//! `i32x4.relaxed_dot_i8x16_i7x16_add` (one instruction for 16 products): its result is exact
//! when the second operand is in 0..=127 (x86 engines treat it as unsigned, others as signed),
//! so weights enter as their unsigned codes (Q4_0's 0..15 rather than -8..7) and the offset is
//! taken back with the activations' block sums. Q8_0's weights do not fit, so it always takes
//! the simd128 path. (Node 20's V8 11.3 has relaxed-SIMD only behind a flag, and computes it
//! wrongly: the relaxed build is tested in Chromium, and Node loads the simd128 build.)

use core::arch::wasm32::*;

use super::acts::QuantizedActs;
use crate::quant::{f16_at, k4_scales_mins, QK_K};

/// Σ a[i]·b[i] of 16 signed bytes, as four i32 lanes.
#[inline(always)]
fn dot_i8x16(a: v128, b: v128) -> v128 {
    let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(a), i16x8_extend_low_i8x16(b));
    let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(a), i16x8_extend_high_i8x16(b));
    i32x4_add(lo, hi)
}

/// `acc + Σ w[i]·y[i]` in four i32 lanes, for weights `w` in 0..=127.
#[inline(always)]
fn dot_u7_add(w: v128, y: v128, acc: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        i32x4_relaxed_dot_i8x16_i7x16_add(y, w, acc)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        i32x4_add(acc, dot_i8x16(w, y))
    }
}

#[inline(always)]
fn hsum(v: v128) -> i32 {
    i32x4_extract_lane::<0>(v) + i32x4_extract_lane::<1>(v) + i32x4_extract_lane::<2>(v) + i32x4_extract_lane::<3>(v)
}

/// 16 bytes from `s[at..at + 16]`.
#[inline(always)]
fn load16(s: &[u8], at: usize) -> v128 {
    assert!(at + 16 <= s.len());
    // SAFETY: in bounds (checked above); wasm loads may be unaligned.
    unsafe { v128_load(s.as_ptr().add(at) as *const v128) }
}

#[inline(always)]
fn load16_i8(s: &[i8], at: usize) -> v128 {
    load16(bytemuck::cast_slice(s), at)
}

pub fn dot_q4_0(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    let mask = u8x16_splat(0x0F);
    for (((b, y), dy), ysum) in row.chunks_exact(18).zip(a.q.chunks_exact(32)).zip(&a.d).zip(&a.bsums) {
        let qs = load16(b, 2);
        let acc = dot_u7_add(v128_and(qs, mask), load16_i8(y, 0), i32x4_splat(0));
        // Σ (q - 8)·y = Σ q·y - 8·Σ y.
        let s = hsum(dot_u7_add(u8x16_shr(qs, 4), load16_i8(y, 16), acc)) - 8 * ysum;
        sum += s as f32 * f16_at(b, 0) * dy;
    }
    sum
}

pub fn dot_q8_0(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    for ((b, y), dy) in row.chunks_exact(34).zip(a.q.chunks_exact(32)).zip(&a.d) {
        let s = hsum(i32x4_add(dot_i8x16(load16(b, 2), load16_i8(y, 0)), dot_i8x16(load16(b, 18), load16_i8(y, 16))));
        sum += s as f32 * f16_at(b, 0) * dy;
    }
    sum
}

pub fn dot_q4_k(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    let mask = u8x16_splat(0x0F);
    for (((b, y), dy), bs) in row.chunks_exact(144).zip(a.q.chunks_exact(QK_K)).zip(&a.d).zip(a.bsums.chunks_exact(16)) {
        let (sc, mn) = k4_scales_mins(&b[4..16]);
        let mut total = i32x4_splat(0);
        // 32 bytes of nibbles per 64 values: low nibbles are sub-block 2c, high ones 2c + 1.
        for c in 0..4 {
            let (q0, q1) = (load16(b, 16 + c * 32), load16(b, 32 + c * 32));
            let y0 = c * 64;
            let lo = dot_u7_add(v128_and(q1, mask), load16_i8(y, y0 + 16), dot_u7_add(v128_and(q0, mask), load16_i8(y, y0), i32x4_splat(0)));
            let hi = dot_u7_add(u8x16_shr(q1, 4), load16_i8(y, y0 + 48), dot_u7_add(u8x16_shr(q0, 4), load16_i8(y, y0 + 32), i32x4_splat(0)));
            total = i32x4_add(total, i32x4_add(i32x4_mul(lo, i32x4_splat(sc[2 * c] as i32)), i32x4_mul(hi, i32x4_splat(sc[2 * c + 1] as i32))));
        }
        let mins: i32 = (0..8).map(|s| mn[s] as i32 * (bs[2 * s] + bs[2 * s + 1])).sum();
        sum += f16_at(b, 0) * dy * hsum(total) as f32 - f16_at(b, 2) * dy * mins as f32;
    }
    sum
}

pub fn dot_q6_k(row: &[u8], a: &QuantizedActs) -> f32 {
    let mut sum = 0.0f32;
    let (mask4, mask2) = (u8x16_splat(0x0F), u8x16_splat(0x03));
    for (((b, y), dy), bs) in row.chunks_exact(210).zip(a.q.chunks_exact(QK_K)).zip(&a.d).zip(a.bsums.chunks_exact(16)) {
        let scale = |sub: usize| (b[192 + sub] as i8) as i32;
        let mut total = i32x4_splat(0);
        // Two halves of 128 values; in each, 16 lanes `l` give values l, l+32, l+64, l+96, as
        // unsigned codes 0..63 (the value + 32).
        for n in 0..2 {
            for lc in [0, 16] {
                let ql0 = load16(b, n * 64 + lc);
                let ql1 = load16(b, n * 64 + 32 + lc);
                let qh = load16(b, 128 + n * 32 + lc);
                let high = |shift: u32| i8x16_shl(v128_and(u8x16_shr(qh, shift), mask2), 4);
                let codes = [
                    v128_or(v128_and(ql0, mask4), high(0)),
                    v128_or(v128_and(ql1, mask4), high(2)),
                    v128_or(u8x16_shr(ql0, 4), high(4)),
                    v128_or(u8x16_shr(ql1, 4), high(6)),
                ];
                for (k, c) in codes.into_iter().enumerate() {
                    let at = n * 128 + k * 32 + lc;
                    let d = dot_u7_add(c, load16_i8(y, at), i32x4_splat(0));
                    total = i32x4_add(total, i32x4_mul(d, i32x4_splat(scale(at / 16))));
                }
            }
        }
        // Σ scale·(code - 32)·y = Σ scale·code·y - 32·Σ scale·(Σ y of its 16 values).
        let offset: i32 = (0..16).map(|sub| scale(sub) * bs[sub]).sum();
        sum += f16_at(b, 208) * dy * (hsum(total) - 32 * offset) as f32;
    }
    sum
}
