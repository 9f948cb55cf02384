//! Per-block reference code, bit for bit the layouts of ggml's `block_*` structs.

use super::{f16_at, GgmlType, RareCodes, QK_K};
use half::f16;

pub fn dequant_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..16 {
        let q = b[2 + j];
        y[j] = ((q & 0xF) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

pub fn dequant_q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for j in 0..16 {
        let q = b[4 + j];
        y[j] = (q & 0xF) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// The 32 five-bit values of a Q5_0 / Q5_1 block (0..=31), from `qh` (4 bytes) and `qs` (16 bytes).
#[inline]
pub fn q5_values(qh: &[u8], qs: &[u8]) -> [u8; 32] {
    let h = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let mut v = [0u8; 32];
    for j in 0..16 {
        let h0 = (((h >> j) << 4) & 0x10) as u8;
        let h1 = ((h >> (j + 12)) & 0x10) as u8;
        v[j] = (qs[j] & 0xF) | h0;
        v[j + 16] = (qs[j] >> 4) | h1;
    }
    v
}

pub fn dequant_q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, q) in y.iter_mut().zip(q5_values(&b[2..6], &b[6..22])) {
        *o = (q as i32 - 16) as f32 * d;
    }
}

pub fn dequant_q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (o, q) in y.iter_mut().zip(q5_values(&b[4..8], &b[8..24])) {
        *o = q as f32 * d + m;
    }
}

pub fn dequant_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        y[j] = (b[2 + j] as i8) as f32 * d;
    }
}

/// Whether some block of `blocks` (whole blocks of `ty`) has an infinite or NaN f16 scale, for
/// the types whose one scale leads the block (Q4_0, Q5_0, Q8_0; false for the others). Valid in
/// the format, never written by a quantizer: the SIMD kernels convert only finite scales.
pub fn has_nonfinite_block_scale(ty: GgmlType, blocks: &[u8]) -> bool {
    let bb = match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => ty.block_bytes(),
        _ => return false,
    };
    // The f16's exponent (bits 10..15) all ones: bits 2..7 of its high byte.
    blocks.chunks_exact(bb).fold(false, |seen, b| seen | (b[1] & 0x7C == 0x7C))
}

/// The [`RareCodes`] of whole blocks of `ty` in the file's order: Q8_0's by
/// [`q8_0_rare_codes`], the other types' by their scales alone (only Q8_0 has a code the SIMD
/// kernels leave out).
pub fn block_rare_codes(ty: GgmlType, blocks: &[u8]) -> RareCodes {
    if ty == GgmlType::Q8_0 {
        q8_0_rare_codes(blocks)
    } else {
        RareCodes { q8_0_min: false, nonfinite_scale: has_nonfinite_block_scale(ty, blocks) }
    }
}

/// The [`RareCodes`] of whole Q8_0 blocks, in one pass: a code of -128, a scale not finite.
pub fn q8_0_rare_codes(blocks: &[u8]) -> RareCodes {
    let blocks = &blocks[..blocks.len() / 34 * 34];
    RareCodes { q8_0_min: q8_0_has_min_code(blocks), nonfinite_scale: has_nonfinite_block_scale(GgmlType::Q8_0, blocks) }
}

/// Whether some Q8_0 block of `blocks` (whole blocks) holds the code -128: per block two
/// 16-byte compares ORed into one vector, tested once at the end (the first prefill of a model
/// waits on this scan of its Q8_0 matrices).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) fn q8_0_has_min_code(blocks: &[u8]) -> bool {
    use core::arch::wasm32::*;
    let min = u8x16_splat(0x80);
    let seen = blocks.chunks_exact(34).fold(u8x16_splat(0), |seen, b| {
        // SAFETY: bytes 2..18 and 18..34 of a 34-byte block (wasm loads need no alignment).
        let (lo, hi) = unsafe { (v128_load(b[2..18].as_ptr().cast()), v128_load(b[18..34].as_ptr().cast())) };
        v128_or(seen, v128_or(u8x16_eq(lo, min), u8x16_eq(hi, min)))
    });
    v128_any_true(seen)
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub(crate) fn q8_0_has_min_code(blocks: &[u8]) -> bool {
    blocks.chunks_exact(34).any(|b| codes_hold_min(&b[2..]))
}

/// Whether some byte of `codes` (Q8_0 codes, any length) is -128: 16 bytes to a compare ORed
/// into one vector, tested once at the end (as [`q8_0_has_min_code`]; the scalar search of
/// std's `contains` took 175 ms of a Qwen2.5-0.5B Q8_0 file's first prefill in Chromium).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) fn codes_hold_min(codes: &[u8]) -> bool {
    use core::arch::wasm32::*;
    let min = u8x16_splat(0x80);
    let vectors = codes.chunks_exact(16);
    let rest = vectors.remainder().contains(&0x80);
    // SAFETY: each chunk holds 16 bytes (wasm loads need no alignment).
    let seen = vectors.fold(u8x16_splat(0), |seen, v| v128_or(seen, u8x16_eq(unsafe { v128_load(v.as_ptr().cast()) }, min)));
    rest || v128_any_true(seen)
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub(crate) fn codes_hold_min(codes: &[u8]) -> bool {
    codes.iter().fold(false, |seen, &q| seen | (q == 0x80))
}

/// The 8 six-bit scales and 8 six-bit mins of a Q4_K / Q5_K super-block (`get_scale_min_k4`).
#[inline]
pub fn k4_scales_mins(q: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..8 {
        if j < 4 {
            sc[j] = q[j] & 63;
            mn[j] = q[j + 4] & 63;
        } else {
            sc[j] = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            mn[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
    (sc, mn)
}

/// The 256 four-bit values of a Q4_K block in element order.
#[inline]
pub fn q4_k_values(qs: &[u8]) -> [u8; QK_K] {
    let mut v = [0u8; QK_K];
    for c in 0..4 {
        for l in 0..32 {
            let q = qs[c * 32 + l];
            v[c * 64 + l] = q & 0xF;
            v[c * 64 + 32 + l] = q >> 4;
        }
    }
    v
}

/// The 256 five-bit values of a Q5_K block in element order.
#[inline]
pub fn q5_k_values(qh: &[u8], qs: &[u8]) -> [u8; QK_K] {
    let mut v = q4_k_values(qs);
    for c in 0..4 {
        for l in 0..32 {
            v[c * 64 + l] |= ((qh[l] >> (2 * c)) & 1) << 4;
            v[c * 64 + 32 + l] |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
        }
    }
    v
}

pub fn dequant_q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = k4_scales_mins(&b[4..16]);
    let v = q4_k_values(&b[16..144]);
    for (i, o) in y.iter_mut().enumerate() {
        let s = i / 32;
        *o = d * sc[s] as f32 * v[i] as f32 - dmin * mn[s] as f32;
    }
}

pub fn dequant_q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = k4_scales_mins(&b[4..16]);
    let v = q5_k_values(&b[16..48], &b[48..176]);
    for (i, o) in y.iter_mut().enumerate() {
        let s = i / 32;
        *o = d * sc[s] as f32 * v[i] as f32 - dmin * mn[s] as f32;
    }
}

/// The 256 signed six-bit values (-32..=31) of a Q6_K block in element order.
#[inline]
pub fn q6_k_values(ql: &[u8], qh: &[u8]) -> [i8; QK_K] {
    let mut v = [0i8; QK_K];
    for n in 0..2 {
        let (ql, qh) = (&ql[n * 64..], &qh[n * 32..]);
        let y = &mut v[n * 128..];
        for l in 0..32 {
            y[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
            y[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            y[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            y[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    v
}

pub fn dequant_q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    let v = q6_k_values(&b[0..128], &b[128..192]);
    for (i, o) in y.iter_mut().enumerate() {
        *o = d * (b[192 + i / 16] as i8) as f32 * v[i] as f32;
    }
}

/// llama.cpp's `quantize_row_q4_0_ref` for one block of 32.
pub fn quantize_q4_0_block(x: &[f32], out: &mut Vec<u8>) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    for j in 0..16 {
        let q0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
        let q1 = ((x[j + 16] * id + 8.5) as i8).min(15) as u8;
        out.push(q0 | (q1 << 4));
    }
}

/// llama.cpp's `quantize_row_q8_0_ref` for one block of 32 weights.
pub fn quantize_q8_0_block(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
}

/// One block of 32 activations as Q8_0: the scale and the 32 values, rounded as llama.cpp's
/// SIMD quantizers round them (`127 / amax`, ties to even).
#[inline]
pub fn q8_0_block(x: &[f32]) -> (f32, [i8; 32]) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut q = [0i8; 32];
    for (o, v) in q.iter_mut().zip(x) {
        *o = (v * id).round_ties_even() as i8;
    }
    (d, q)
}

/// One super-block of 256 activations as Q8_K (`quantize_row_q8_K_ref`): scale, values and the
/// sums of each 16 values.
#[inline]
pub fn q8_k_block(x: &[f32], q: &mut [i8], bsums: &mut [i32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        q.fill(0);
        bsums.fill(0);
        return 0.0;
    }
    let iscale = -127.0 / max;
    for (o, v) in q.iter_mut().zip(x) {
        *o = ((iscale * v).round() as i32).min(127) as i8;
    }
    for (s, c) in bsums.iter_mut().zip(q.chunks_exact(16)) {
        *s = c.iter().map(|&v| v as i32).sum();
    }
    1.0 / iscale
}
