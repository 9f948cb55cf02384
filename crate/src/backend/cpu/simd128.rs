//! wasm SIMD (simd128) mat-vec and mat-mat kernels of the hot block types.
//!
//! Every kernel computes a tile: `R` weight rows × `T` token activations over a row's blocks,
//! so that each activation vector loaded serves `R` rows and each weight block decoded serves
//! `T` tokens. Decode runs `R = 4, T = 1`; prompts run tiles of [`PREFILL_ROWS`] ×
//! [`PREFILL_TOKENS`]. The integer sums inside a block are exact; per block, the rows' sums are
//! reduced into one vector (lane `r` row `r`: [`row_sums`]), which is converted to f32, scaled by
//! the rows' weight scales (four f16 converted at once, [`finite_f16_lanes_to_f32`]) times the
//! activation scale and added to the token's accumulator:
//! the f32 work of a block is done once for up to four rows. Each row's arithmetic (its exact
//! integer block sum, then `acc + sum·(dw·dy)` in block order) is the same in every tile shape
//! and kernel, so a tile's results equal the single-row dot (`vec_dot`) bit for bit; against the
//! scalar reference of `dot.rs` they differ only by f32 rounding (tested against both and
//! against an f64 sum).
//!
//! Q4_0 and Q5_0 matrices are loaded with their rows interleaved four at a time
//! ([`crate::quant::row_order`]), and Q8_0's and Q4_K's where the engine fuses the dot-add
//! (below; Q4_K's sub-blocks as interleaved Q4_0 blocks, [`q4_k_x4_tile`]): a
//! 16-byte load then holds four bytes of each of four rows, dotted with four activations
//! broadcast, so each row's block sum lands in its own lane and the reduction across lanes
//! ([`row_sums`]) and the four scale loads go ([`matmul_x4`]); Q5_0's fifth bits, laid out for
//! it, join their nibbles by a shift, a mask and an or.
//!
//! Builds with `+relaxed-simd` multiply 4-to-6-bit weights by the 8-bit activations with the
//! relaxed dot products, whose results are exact when the second operand is in 0..=127 (x86
//! engines treat it as unsigned, others as signed): `i16x8.relaxed_dot_i8x16_i7x16` (x86's
//! `pmaddubsw`), two of them added in 16 bits and widened once, or widened by `i32x4.dot_i16x8_s`
//! against a sub-block scale ([`dot2_u6`], [`scaled_dot2_u6`]). Weights enter as their unsigned
//! codes (Q4_0's 0..15 rather than -8..7) and the offset is
//! taken back with the activations' block sums. Q8_0 moves the activations' signs onto its
//! weights and multiplies by |y| ([`q8_0_tile_relaxed`]); a matrix holding the code -128 takes
//! the widening kernel. Where the engine runs `i32x4.relaxed_dot_i8x16_i7x16_add` as one
//! instruction (AVX-VNNI's `vpdpbusd`, found by a probe: [`fused_dot_add`]), the interleaved
//! Q4_0 and the Q5_0 kernels add their block sums by it instead of 16-bit pairs ([`X4Dots`],
//! [`dot2_u6`]): the same exact sums; and Q8_0 enters as `w + 128`, the instruction's unsigned
//! operand ([`X4Bytes`] of its interleaved rows; [`q8_0_tile_fused`] of rows in the file's
//! order). Elsewhere Q8_0 prompts widen each quad of
//! tokens' activations to i16 once and multiply by `i32x4.dot_i16x8_s` ([`q8_0_prompt_tile`]).
//! (Node 20's V8 11.3 has
//! relaxed-SIMD only behind a flag, and computes it wrongly: the relaxed build is tested in
//! Chromium, and Node loads the simd128 build.)

use core::arch::wasm32::*;

use core::ops::Range;

use super::acts::QuantizedActs;
use super::TokenRows;
use crate::quant::row_order::GROUP_ROWS;
use crate::quant::{f16_bits_to_f32, GgmlType, QK_K};
use half::f16;

/// Weight rows per tile in decode: each activation load serves this many rows.
pub const DECODE_ROWS: usize = 4;
/// The tile of prompt tokens: rows × tokens. Each weight block is unpacked once per
/// `PREFILL_TOKENS` tokens, so more tokens per tile means fewer instructions per product:
/// Chromium (V8 15, relaxed-SIMD), Qwen2.5-0.5B prefill, against 2 × 2: Q4_0 44 → 69 tok/s,
/// Q8_0 48 → 59, Q4_K_M 27 → 41 with 3 × 4; 2 × 4 60, 2 × 8 48, 1 × 4 32, 4 × 4 77 (within
/// noise of 3 × 4, with more accumulators live).
pub const PREFILL_ROWS: usize = 3;
pub const PREFILL_TOKENS: usize = 4;

/// Σ a[i]·b[i] of 16 signed bytes, as four i32 lanes.
#[inline(always)]
fn dot_i8x16(a: v128, b: v128) -> v128 {
    let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(a), i16x8_extend_low_i8x16(b));
    let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(a), i16x8_extend_high_i8x16(b));
    i32x4_add(lo, hi)
}

/// `Σ w0[i]·y0[i] + Σ w1[i]·y1[i]` in four i32 lanes, for weight codes in 0..=63 (so that the
/// relaxed path's 16-bit pair sums, `2·63·128` each, and their sum fit in i16). Relaxed-SIMD:
/// two `i16x8.relaxed_dot_i8x16_i7x16` (`pmaddubsw` on x86), added, widened once — x86 without
/// AVX-VNNI lowers each `i32x4.relaxed_dot_i8x16_i7x16_add` to that multiply, a widening
/// multiply by ones and an add.
/// `FUSED` (relaxed-SIMD; where the engine fuses it, [`fused_dot_add`]): two
/// `i32x4.relaxed_dot_i8x16_i7x16_add` instead, exact in either lowering for such codes.
#[inline(always)]
fn dot2_u6<const FUSED: bool>(w0: v128, y0: v128, w1: v128, y1: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        if FUSED {
            i32x4_relaxed_dot_i8x16_i7x16_add(y1, w1, i32x4_relaxed_dot_i8x16_i7x16_add(y0, w0, i32x4_splat(0)))
        } else {
            i32x4_extadd_pairwise_i16x8(pair_sums2_u6(w0, y0, w1, y1))
        }
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        i32x4_add(dot_i8x16(w0, y0), dot_i8x16(w1, y1))
    }
}

/// `scale · (Σ w0[i]·y0[i] + Σ w1[i]·y1[i])` in four i32 lanes, codes as [`dot2_u6`], `scale`
/// in i16: relaxed-SIMD widens the 16-bit sums by `i32x4.dot_i16x8_s` against the scale
/// (`pmaddwd`: the widening and the multiply in one, no 32-bit multiply).
#[inline(always)]
fn scaled_dot2_u6(w0: v128, y0: v128, w1: v128, y1: v128, scale: i16) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        i32x4_dot_i16x8(pair_sums2_u6(w0, y0, w1, y1), i16x8_splat(scale))
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        i32x4_mul(dot2_u6::<false>(w0, y0, w1, y1), i32x4_splat(scale as i32))
    }
}

/// `scale · Σ w[i]·y[i]` in four i32 lanes, codes in 0..=63, as [`scaled_dot2_u6`].
#[inline(always)]
fn scaled_dot_u6(w: v128, y: v128, scale: i16) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        i32x4_dot_i16x8(i16x8_relaxed_dot_i8x16_i7x16(y, w), i16x8_splat(scale))
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        i32x4_mul(dot_i8x16(w, y), i32x4_splat(scale as i32))
    }
}

/// Eight i16 lanes, lane `k` the products of bytes `2k` and `2k + 1` of both pairs, summed.
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
fn pair_sums2_u6(w0: v128, y0: v128, w1: v128, y1: v128) -> v128 {
    i16x8_add(i16x8_relaxed_dot_i8x16_i7x16(y0, w0), i16x8_relaxed_dot_i8x16_i7x16(y1, w1))
}

#[inline(always)]
fn hsum_f32(v: v128) -> f32 {
    // (l0 + l2) + (l1 + l3), the same order for every tile shape.
    let s = f32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    f32x4_extract_lane::<0>(s) + f32x4_extract_lane::<1>(s)
}

/// Lane `r`: the sum of `s[r]`'s four lanes (lanes past `R` zero). A tile's integer block sums
/// reduce to one vector of its rows, so the f32 work per block (convert, scale, add) is done
/// once for up to four rows.
#[inline(always)]
fn row_sums<const R: usize>(s: [v128; R]) -> v128 {
    let g = |i: usize| if i < R { s[i] } else { i32x4_splat(0) };
    let pair = |a: v128, b: v128| i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a, b), i32x4_shuffle::<2, 6, 3, 7>(a, b));
    let (u0, u1) = (pair(g(0), g(1)), pair(g(2), g(3)));
    i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(u0, u1), i32x4_shuffle::<2, 3, 6, 7>(u0, u1))
}

/// f16 magnitudes shifted to an f32's place (`(h & 0x7FFF) << 13` in u32 lanes, below
/// infinity) as f32x4, exactly, with no f32 subnormal operand (on which x86 takes a microcode
/// assist per instruction: the scaling of these bits by 2^112 it replaced made a matrix with
/// subnormal f16 scales, as real Q6_K files' are and Q8_0 blocks of weights below 0.0078,
/// 2-11× slower). `a`, the exponent rebiased in the bits, is the value of a normal f16; `b`,
/// the subnormal's `m·2^-24` as the normal `2^-14·(1 + m/1024)` less `2^-14`. A subnormal's `a`
/// is `2^-15 + m·2^-25` ≥ its `b`; a normal's `b` is `2v - 2^-14` ≥ its `a = v`: the lesser is
/// the value either way (the scalar `f16_bits_to_f32` picks by a branch).
#[inline(always)]
fn f16_magnitudes_to_f32(magnitude: v128) -> v128 {
    const TWO_POW_MINUS_14: i32 = 0x3880_0000;
    let a = i32x4_add(magnitude, i32x4_splat(0x3800_0000));
    let b = f32x4_sub(i32x4_add(magnitude, i32x4_splat(TWO_POW_MINUS_14)), i32x4_splat(TWO_POW_MINUS_14));
    f32x4_pmin(a, b)
}

/// f16 values in the low halves of four u32 lanes as f32x4, exactly (the magnitude's bits
/// scaled by 2^112, infinities and NaNs by their exponent): the KV cache's values. A
/// subnormal f16 among them (|x| below 6.1e-5, rare among activations) takes x86's microcode
/// assist on that multiply, where [`f16_magnitudes_to_f32`] would cost three more instructions
/// for every four values (SmolLM2-135M's decode, whose attention converts 1.7 M values a token
/// at 150 positions, measured 3 % slower with it).
#[inline(always)]
fn f16_lanes_to_f32(h: v128) -> v128 {
    let magnitude = i32x4_shl(v128_and(h, i32x4_splat(0x7FFF)), 13);
    let finite = f32x4_mul(magnitude, f32x4_splat(f32::from_bits(0x7780_0000)));
    let special = i32x4_eq(v128_and(h, i32x4_splat(0x7C00)), i32x4_splat(0x7C00));
    let value = v128_bitselect(v128_or(magnitude, i32x4_splat(0x7F80_0000)), finite, special);
    v128_or(value, i32x4_shl(v128_and(h, i32x4_splat(0x8000)), 16))
}

/// Finite f16 values in the low halves of four u32 lanes as f32x4, exactly
/// ([`f16_magnitudes_to_f32`], the sign moved to bit 31); infinities and NaNs come out finite:
/// the block scales of matrices in the file's order, which a matrix holds as finite values
/// ([`crate::quant::RareCodes::nonfinite_scale`] sends the others to the scalar code). The
/// interleaved order's take one multiply ([`x4_scales`]).
#[inline(always)]
fn finite_f16_lanes_to_f32(h: v128) -> v128 {
    let (magnitude, sign) = f16_lane_parts(h);
    v128_or(f16_magnitudes_to_f32(magnitude), sign)
}

/// The f16s in the low halves of u32 lanes split for a conversion: the magnitude's bits 13
/// above their f16 places (the shift left by 17 drops the sign and whatever lies above bit
/// 15), and the sign at bit 31.
#[inline(always)]
fn f16_lane_parts(h: v128) -> (v128, v128) {
    (u32x4_shr(i32x4_shl(h, 17), 4), v128_and(i32x4_shl(h, 16), i32x4_splat(i32::MIN)))
}

/// The finite f16 at each of `R` addresses, as lanes `0..R` of an f32x4 (the rest zero).
///
/// # Safety
/// Each `p[r]..p[r] + 2` must be readable.
#[inline(always)]
unsafe fn f16_lanes<const R: usize>(p: [*const u8; R]) -> v128 {
    let mut h = i32x4_splat(0);
    // u16 lane 2r is the low half of u32 lane r.
    if R > 0 { h = v128_load16_lane::<0>(h, p[0] as *const u16); }
    if R > 1 { h = v128_load16_lane::<2>(h, p[1] as *const u16); }
    if R > 2 { h = v128_load16_lane::<4>(h, p[2] as *const u16); }
    if R > 3 { h = v128_load16_lane::<6>(h, p[3] as *const u16); }
    finite_f16_lanes_to_f32(h)
}

/// Adds one block of a tile to each token's accumulator (lanes are rows): `acc[t] +
/// convert(row_sums(s[t]) + offset[t]) · (dw · dy[t])`, `dw` the rows' f16 scales at `p`.
///
/// # Safety
/// Each `p[r]..p[r] + 2` must be readable.
#[inline(always)]
unsafe fn add_block<const R: usize, const T: usize>(acc: &mut [v128; T], s: [[v128; R]; T], offset: [i32; T], p: [*const u8; R], dy: [f32; T]) {
    let dw = f16_lanes(p);
    for t in 0..T {
        let sums = f32x4_convert_i32x4(i32x4_add(row_sums(s[t]), i32x4_splat(offset[t])));
        acc[t] = f32x4_add(acc[t], f32x4_mul(sums, f32x4_mul(dw, f32x4_splat(dy[t]))));
    }
}

/// Each token's row accumulators (lanes are rows) as `[row][token]`.
#[inline(always)]
fn rows_of<const R: usize, const T: usize>(acc: [v128; T]) -> [[f32; T]; R] {
    // SAFETY: v128 and [f32; 4] have the same size, every bit pattern valid in both.
    let lanes: [[f32; 4]; T] = acc.map(|a| unsafe { core::mem::transmute::<v128, [f32; 4]>(a) });
    core::array::from_fn(|r| core::array::from_fn(|t| lanes[t][r]))
}

/// Each byte's high nibble (0..=15): a 16-bit shift masked to bytes. wasm's `i8x16.shr_u` has
/// no x86 instruction: V8 lowers it to the same 16-bit shift and a mask it builds anew at every
/// use (a move, a broadcast and an `and`), where `mask` (the splat of 0x0F) stays in a register.
#[inline(always)]
fn high_nibbles(q: v128, mask: v128) -> v128 {
    v128_and(u16x8_shr(q, 4), mask)
}

/// 16 bytes at `p` (any alignment).
///
/// # Safety
/// `p..p + 16` must be readable.
#[inline(always)]
unsafe fn load(p: *const u8) -> v128 {
    v128_load(p as *const v128)
}

/// # Safety
/// `p..p + 2` must be readable.
#[inline(always)]
unsafe fn f16_at_ptr(p: *const u8) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([*p, *p.add(1)]))
}

/// `acc + convert(s) · scale`.
#[inline(always)]
fn scaled_add(acc: v128, s: v128, scale: f32) -> v128 {
    f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(s), f32x4_splat(scale)))
}

/// The per-block bookkeeping every kernel repeats: `ty`'s block sizes and whether `acts` hold
/// what its tile reads for `nb` blocks (checked once per call, so the loops index unchecked).
fn check_acts(ty: GgmlType, acts: &QuantizedActs, values: usize) {
    let nb = values / ty.block_size();
    assert!(acts.q.len() >= values && acts.d.len() >= nb, "{}: activations hold {} values, the rows {values}", ty.name(), acts.q.len());
    let sums = if matches!(ty, GgmlType::Q4K | GgmlType::Q6K) { values / 16 } else { nb };
    assert!(acts.bsums.len() >= sums, "{}: activations lack their block sums", ty.name());
}

/// Block `b` of each token's Q8_0 activations: its two vectors of 16 values, the offset of an
/// integer sum with weights stored as unsigned codes `value + bias` (Σ (c - bias)·y =
/// Σ c·y - bias·Σ y, so the offset is -bias·Σ y), and its scale.
///
/// # Safety
/// Each token's activations hold block `b` (checked by [`check_acts`]).
#[inline(always)]
unsafe fn q8_0_block<const T: usize>(acts: [&QuantizedActs; T], b: usize, bias: i32) -> ([[v128; 2]; T], [i32; T], [f32; T]) {
    let mut y = [[i32x4_splat(0); 2]; T];
    let mut offset = [0i32; T];
    let mut dy = [0f32; T];
    for t in 0..T {
        let q = acts[t].q.as_ptr().add(32 * b) as *const u8;
        y[t] = [load(q), load(q.add(16))];
        offset[t] = -bias * *acts[t].bsums.get_unchecked(b);
        dy[t] = *acts[t].d.get_unchecked(b);
    }
    (y, offset, dy)
}

/// Q4_0 (`d` f16, 16 bytes of nibbles) against Q8_0 activations.
///
/// # Safety
/// Each row pointer must address `nb` whole blocks; `acts` checked by [`check_acts`].
#[inline(always)]
unsafe fn q4_0_tile<const R: usize, const T: usize>(rows: [*const u8; R], acts: [&QuantizedActs; T], nb: usize) -> [[f32; T]; R] {
    let mask = u8x16_splat(0x0F);
    let mut acc = [f32x4_splat(0.0); T];
    for b in 0..nb {
        let (y, offset, dy) = q8_0_block(acts, b, 8);
        let p = rows.map(|p| p.add(18 * b));
        let mut s = [[i32x4_splat(0); R]; T];
        for r in 0..R {
            let qs = load(p[r].add(2));
            let (lo, hi) = (v128_and(qs, mask), high_nibbles(qs, mask));
            for t in 0..T {
                s[t][r] = dot2_u6::<false>(lo, y[t][0], hi, y[t][1]);
            }
        }
        add_block(&mut acc, s, offset, p, dy);
    }
    rows_of(acc)
}

/// A block's running integer sums of four interleaved rows ([`crate::quant::row_order`])
/// against one token, as the kernels of [`x4_tile`] and [`x4_prompt_tile`] add them: Q4_0's
/// and Q5_0's by [`X4Pairs`] everywhere, Q8_0's by [`X4Wide`], all three by [`X4Dots`] where
/// the engine fuses the relaxed dot-add into one instruction ([`fused_dot_add`]). All give the
/// exact sums, so the same bits.
trait X4Acc: Copy {
    fn zero() -> Self;
    /// Adds `Σ w·y` of each row's four bytes of `w0` and of `w1`: lanes `4k..4k + 4` row `k`'s
    /// codes (0..=15, or 0..=31 in at most two calls between [`X4Acc::settle`]s; [`X4Wide`] and
    /// [`X4Dots`] take 0..=255), `y0` and `y1` four activations each, repeated four times.
    fn add2(self, w0: v128, y0: v128, w1: v128, y1: v128) -> Self;
    /// Makes room for two more [`X4Acc::add2`] of five-bit codes (widens 16-bit sums).
    fn settle(self) -> Self;
    /// Lane `k`: row `k`'s sum.
    fn rows(self) -> v128;
}

/// [`X4Acc`] by widening: codes and activations extended to 16 bits and multiplied by
/// `i32x4.dot_i16x8_s` (x86's `pmaddwd`) into i32 lanes (rows 0, 0, 1, 1 and 2, 2, 3, 3), exact
/// for codes up to 255: Q8_0's on engines without the fused dot-add, every type's without
/// relaxed-SIMD ([`X4Pairs`] there).
#[derive(Clone, Copy)]
struct X4Wide([v128; 2]);

impl X4Acc for X4Wide {
    #[inline(always)]
    fn zero() -> X4Wide {
        X4Wide([i32x4_splat(0); 2])
    }

    #[inline(always)]
    fn add2(self, w0: v128, y0: v128, w1: v128, y1: v128) -> X4Wide {
        let widened = |s: [v128; 2], w: v128, y: v128| {
            let y = i16x8_extend_low_i8x16(y);
            [i32x4_add(s[0], i32x4_dot_i16x8(u16x8_extend_low_u8x16(w), y)), i32x4_add(s[1], i32x4_dot_i16x8(u16x8_extend_high_u8x16(w), y))]
        };
        X4Wide(widened(widened(self.0, w0, y0), w1, y1))
    }

    #[inline(always)]
    fn settle(self) -> X4Wide {
        self
    }

    #[inline(always)]
    fn rows(self) -> v128 {
        let [a, b] = self.0;
        i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(a, b), i32x4_shuffle::<1, 3, 5, 7>(a, b))
    }
}

/// [`X4Acc`] of Q4_0's and Q5_0's codes in 16-bit pairs (relaxed-SIMD:
/// `i16x8.relaxed_dot_i8x16_i7x16`, x86's `pmaddubsw`; lanes `2k` and `2k + 1` row `k`'s, eight
/// 4-byte dot products of codes 0..=15 and |y| ≤ 127 stay within ±30480, widened once at the
/// end, four of codes 0..=31 within ±31496, widened by [`X4Acc::settle`] into the second
/// vector). Without relaxed-SIMD, [`X4Wide`].
#[cfg(target_feature = "relaxed-simd")]
#[derive(Clone, Copy)]
struct X4Pairs([v128; 2]);

#[cfg(not(target_feature = "relaxed-simd"))]
type X4Pairs = X4Wide;

#[cfg(target_feature = "relaxed-simd")]
impl X4Acc for X4Pairs {
    #[inline(always)]
    fn zero() -> X4Pairs {
        X4Pairs([i32x4_splat(0); 2])
    }

    #[inline(always)]
    fn add2(self, w0: v128, y0: v128, w1: v128, y1: v128) -> X4Pairs {
        X4Pairs([i16x8_add(self.0[0], pair_sums2_u6(w0, y0, w1, y1)), self.0[1]])
    }

    #[inline(always)]
    fn settle(self) -> X4Pairs {
        X4Pairs([i32x4_splat(0), self.rows()])
    }

    #[inline(always)]
    fn rows(self) -> v128 {
        // The second vector is zero until a settle (a constant the compiler folds away).
        i32x4_add(i32x4_extadd_pairwise_i16x8(self.0[0]), self.0[1])
    }
}

/// [`X4Acc`] by `i32x4.relaxed_dot_i8x16_i7x16_add`: lane `k` row `k`'s sum, no widening, in
/// `CHAINS` accumulators (1 or 2; with 2, `w0`'s and `w1`'s products go to their own, so that
/// two chains of the fused instruction's latency run at once). Exact wherever the engine runs
/// it (each 4-byte sum of codes 0..=15 and |y| ≤ 127 fits in 16 bits even in `pmaddubsw`'s
/// emulation), but one instruction only where the engine has AVX-VNNI (`vpdpbusd`): chosen
/// there ([`fused_dot_add`]). Decode takes 2 chains (its four groups are four chains, too few
/// for the latency), Q4_0's and Q5_0's prompts 1 (their eight accumulators are chains enough,
/// and a second vector each makes 16 accumulators, more than V8's 16 x64 registers hold).
/// Kernel benchmark, Chromium, a Xeon with AVX-VNNI, Qwen2.5-0.5B's layer in ns per weight (and
/// token): decode 0.0358 by [`X4Pairs`], 0.0320 by 2 chains, 0.0369 by 1; prompt 0.0229,
/// 0.0232, 0.0178. Q8_0's prompts take 2 chains (twice the codes per block, none to unpack, so
/// the chains' latency binds): 8 layers, 16 tokens at a time, 0.0235 against 0.0246 by 1
/// (file order 0.0285-0.0295); 120 at a time 0.0193 against 0.0221 (0.0224).
#[cfg(target_feature = "relaxed-simd")]
#[derive(Clone, Copy)]
struct X4Dots<const CHAINS: usize>([v128; 2]);

#[cfg(target_feature = "relaxed-simd")]
impl<const CHAINS: usize> X4Acc for X4Dots<CHAINS> {
    #[inline(always)]
    fn zero() -> Self {
        X4Dots([i32x4_splat(0); 2])
    }

    #[inline(always)]
    fn add2(self, w0: v128, y0: v128, w1: v128, y1: v128) -> Self {
        let dot_add = |w, y, acc| i32x4_relaxed_dot_i8x16_i7x16_add(y, w, acc);
        match CHAINS {
            1 => X4Dots([dot_add(w1, y1, dot_add(w0, y0, self.0[0])), self.0[1]]),
            _ => X4Dots([dot_add(w0, y0, self.0[0]), dot_add(w1, y1, self.0[1])]),
        }
    }

    #[inline(always)]
    fn settle(self) -> Self {
        self
    }

    #[inline(always)]
    fn rows(self) -> v128 {
        match CHAINS {
            1 => self.0[0],
            _ => i32x4_add(self.0[0], self.0[1]),
        }
    }
}

/// Whether the interleaved Q4_0, the Q5_0 and the Q8_0 kernels add their block sums by the fused
/// dot-add ([`X4Dots`], [`dot2_u6`]): 0 not yet probed, 1 no, 2 yes; tests force either
/// ([`force_fused_dot_add`]).
#[cfg(target_feature = "relaxed-simd")]
static FUSED_DOT_ADD: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// Whether this engine runs `i32x4.relaxed_dot_i8x16_i7x16_add` as one fused instruction
/// (x86's AVX-VNNI `vpdpbusd`), told by the one input on which the lowerings differ: 127 ×
/// 255 (an out-of-spec second operand) four times is 129540 unsaturated and unsigned (VNNI),
/// 65534 through `pmaddubsw`'s saturating pairs (x86 without VNNI), -508 signed (Arm's
/// `sdot`; unmeasured there, so it keeps [`X4Pairs`]). Probed once; the relaxed-SIMD
/// instructions give the same result at every call, in every tier of the engine.
#[cfg(target_feature = "relaxed-simd")]
pub fn fused_dot_add() -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    match FUSED_DOT_ADD.load(Relaxed) {
        0 => {
            let (a, b) = core::hint::black_box((i8x16_splat(127), u8x16_splat(0xFF)));
            let fused = i32x4_extract_lane::<0>(i32x4_relaxed_dot_i8x16_i7x16_add(a, b, i32x4_splat(0))) == 4 * 127 * 255;
            FUSED_DOT_ADD.store(1 + fused as u8, Relaxed);
            fused
        }
        v => v == 2,
    }
}

/// Without relaxed-SIMD there is no dot-add to fuse.
#[cfg(not(target_feature = "relaxed-simd"))]
pub fn fused_dot_add() -> bool {
    false
}

/// Makes the interleaved Q4_0, the Q5_0, the K-quant and the Q8_0 kernels add their block sums by the fused dot-add
/// (`Some(true)`), by 16-bit pairs (`Some(false)`) or as the probe chose (`None`): for tests,
/// which check both give the same bits, and the kernel benchmark.
#[cfg(target_feature = "relaxed-simd")]
#[doc(hidden)]
pub fn force_fused_dot_add(fused: Option<bool>) {
    FUSED_DOT_ADD.store(fused.map_or(0, |f| 1 + f as u8), core::sync::atomic::Ordering::Relaxed);
}

/// The weight codes of an interleaved type's blocks in the layout of [`crate::quant::row_order`],
/// as the unsigned codes `value + BIAS` the kernels multiply: Q4_0's nibbles (0..=15) and Q5_0's
/// five bits (0..=31) ([`X4Nibbles`]), Q8_0's bytes with their top bit flipped (0..=255,
/// [`X4Bytes`]). A block gives [`X4_PAIRS`] pairs of vectors, lanes `4k..4k + 4` row `k`'s codes
/// of four values, each pair against the four activations [`X4Type::y_words`] names.
trait X4Type: Copy {
    const TY: GgmlType;
    /// Bytes per block after the group's scales ([`crate::quant::row_order::x4_block_bytes`]).
    const BLOCK: usize;
    /// The codes' offset from the values.
    const BIAS: i32;
    fn new() -> Self;
    /// What the block's pairs share (Q5_0's fifth bits; the others load nothing).
    ///
    /// # Safety
    /// `block..block + Self::BLOCK` must be readable.
    unsafe fn block_bits(self, block: *const u8) -> v128;
    /// Pair `c` (0..[`X4_PAIRS`]) of the block's codes.
    ///
    /// # Safety
    /// `block..block + Self::BLOCK` must be readable.
    unsafe fn codes(self, block: *const u8, bits: v128, c: usize) -> (v128, v128);
    /// The 4-byte words of a block's 32 activations that pair `c`'s vectors multiply.
    fn y_words(c: usize) -> (usize, usize);
    /// Whether the block sums need an [`X4Acc::settle`] after pair `c` (five-bit codes: two
    /// vectors' sums fill the 16-bit pairs).
    fn settles_after(c: usize) -> bool;
}

/// Pairs of code vectors per block of every [`X4Type`].
const X4_PAIRS: usize = 4;

/// Q4_0's (or, `FIFTH`, Q5_0's) codes of an interleaved block: vector `c` of the 64 bytes of
/// nibbles (after Q5_0's 16 of fifth bits) holds row `k`'s values `4c..4c + 4` in its low nibbles
/// and `16 + 4c..16 + 4c + 4` in its high ones.
#[derive(Clone, Copy)]
struct X4Nibbles<const FIFTH: bool> {
    /// The splat of 0x0F and of 0x10, kept in registers.
    nibble: v128,
    fifth: v128,
}

impl<const FIFTH: bool> X4Type for X4Nibbles<FIFTH> {
    const TY: GgmlType = if FIFTH { GgmlType::Q5_0 } else { GgmlType::Q4_0 };
    const BLOCK: usize = if FIFTH { 80 } else { 64 };
    const BIAS: i32 = if FIFTH { 16 } else { 8 };

    #[inline(always)]
    fn new() -> Self {
        X4Nibbles { nibble: u8x16_splat(0x0F), fifth: u8x16_splat(0x10) }
    }

    #[inline(always)]
    unsafe fn block_bits(self, block: *const u8) -> v128 {
        if FIFTH {
            load(block)
        } else {
            self.fifth
        }
    }

    /// Q5_0's fifth bits of vector `c` are bits `c` and `4 + c` of `bits`' bytes: a 16-bit
    /// shift puts them at bit 4 (within their byte for shifts up to 4), and the mask keeps that
    /// bit alone.
    #[inline(always)]
    unsafe fn codes(self, block: *const u8, bits: v128, c: usize) -> (v128, v128) {
        let w = load(block.add(Self::BLOCK - 64 + 16 * c));
        let (lo, hi) = (v128_and(w, self.nibble), high_nibbles(w, self.nibble));
        if !FIFTH {
            return (lo, hi);
        }
        let lo_bits = v128_and(i16x8_shl(bits, 4 - c as u32), self.fifth);
        let hi_bits = v128_and(if c == 0 { bits } else { u16x8_shr(bits, c as u32) }, self.fifth);
        (v128_or(lo, lo_bits), v128_or(hi, hi_bits))
    }

    #[inline(always)]
    fn y_words(c: usize) -> (usize, usize) {
        (c, 4 + c)
    }

    #[inline(always)]
    fn settles_after(c: usize) -> bool {
        FIFTH && c == 1
    }
}

/// Q8_0's codes of an interleaved block: its eight vectors (row `k`'s values `4c..4c + 4` in
/// vector `c`), each byte's top bit flipped (`w + 128`, 0..=255: one `xor` per vector for all
/// the tokens of a tile), which only [`X4Dots`] (the fused dot-add's unsigned operand) and
/// [`X4Wide`] multiply exactly.
#[derive(Clone, Copy)]
struct X4Bytes {
    /// The splat of 0x80, kept in a register.
    top: v128,
}

impl X4Type for X4Bytes {
    const TY: GgmlType = GgmlType::Q8_0;
    const BLOCK: usize = 128;
    const BIAS: i32 = 128;

    #[inline(always)]
    fn new() -> Self {
        // Opaque, so that V8 keeps it in a register (as Q5_0's constants).
        X4Bytes { top: core::hint::black_box(u8x16_splat(0x80)) }
    }

    #[inline(always)]
    unsafe fn block_bits(self, _: *const u8) -> v128 {
        self.top
    }

    #[inline(always)]
    unsafe fn codes(self, block: *const u8, _: v128, c: usize) -> (v128, v128) {
        (v128_xor(load(block.add(32 * c)), self.top), v128_xor(load(block.add(32 * c + 16)), self.top))
    }

    #[inline(always)]
    fn y_words(c: usize) -> (usize, usize) {
        (2 * c, 2 * c + 1)
    }

    #[inline(always)]
    fn settles_after(_: usize) -> bool {
        false
    }
}

/// `G` groups of four interleaved rows of `C`'s type ([`crate::quant::RowOrder::Q4_0x4`],
/// [`crate::quant::RowOrder::Q5_0x4`], [`crate::quant::RowOrder::Q8_0x4`], at `groups`)
/// against one token's Q8_0 activations (decode): lane `k` of `[g]` is row `k` of group `g`.
/// Per block, a 16-byte load holds four bytes of each row, dotted with four activations
/// broadcast, so the rows' sums come out in their lanes with no reduction across lanes; then
/// the f32 steps of [`add_block`], so each result equals the file order's kernel's
/// ([`q4_0_tile`], [`q5_0_tile`], [`q8_0_tile`]) bit for bit. Several groups read as many
/// streams of weights at once, as the file-order kernels' rows do ([`matmul`]). Prompts take
/// [`x4_prompt_tile`].
///
/// # Safety
/// Each group's bytes must be readable (`nb` blocks of four rows); `acts` checked by
/// [`check_acts`].
#[inline(always)]
unsafe fn x4_tile<A: X4Acc, C: X4Type, const G: usize>(groups: [*const u8; G], acts: &QuantizedActs, nb: usize, pow: v128) -> [v128; G] {
    let codes = C::new();
    let mut acc = [f32x4_splat(0.0); G];
    for b in 0..nb {
        let y = acts.q.as_ptr().add(32 * b) as *const u32;
        let blocks = groups.map(|p| p.add(8 * nb + C::BLOCK * b));
        let bits: [v128; G] = blocks.map(|p| codes.block_bits(p));
        let mut s = [A::zero(); G];
        for c in 0..X4_PAIRS {
            let (i0, i1) = C::y_words(c);
            let (y0, y1) = (v128_load32_splat(y.add(i0)), v128_load32_splat(y.add(i1)));
            for g in 0..G {
                let (w0, w1) = codes.codes(blocks[g], bits[g], c);
                s[g] = s[g].add2(w0, y0, w1, y1);
                if C::settles_after(c) {
                    s[g] = s[g].settle();
                }
            }
        }
        let offset = i32x4_splat(-C::BIAS * *acts.bsums.get_unchecked(b));
        // dw·dy as the scales' bits times dy·pow, one multiply a group and block fewer: dy·pow
        // is exact (dy an f16 value, as the activations round their scales: at most 65504·2^112,
        // below f32's largest), so the bits of (bits·pow)·dy.
        let dy_pow = f32x4_mul(f32x4_splat(*acts.d.get_unchecked(b)), pow);
        for g in 0..G {
            acc[g] = x4_add_block(acc[g], s[g], offset, x4_scales(groups[g], b, dy_pow));
        }
    }
    acc
}

/// The four f16 scales of block `b` of the interleaved group at `group` times `factor`, as f32
/// lanes: their bits scaled by `factor`, for the scales themselves `2^(112 - k)` in a matrix
/// whose scales are `2^k` times the file's ([`x4_scale_pow`]), which leaves them normal f16s:
/// one multiply, the scaling of an f32 subnormal taking x86 a microcode assist
/// ([`f16_magnitudes_to_f32`]). Times a token's scale as well, the product dw·dy bit for bit
/// (a power of two times dy is exact).
///
/// # Safety
/// `group + 8·b..group + 8·b + 8` must be readable.
#[inline(always)]
unsafe fn x4_scales(group: *const u8, b: usize, factor: v128) -> v128 {
    let (magnitude, sign) = f16_lane_parts(u32x4_extend_low_u16x8(v128_load64_zero(group.add(8 * b) as *const u64)));
    v128_or(f32x4_mul(magnitude, factor), sign)
}

/// `2^(112 - k)` in four lanes: [`x4_scales`]'s factor for a matrix whose scales were
/// multiplied by `2^k` ([`crate::quant::row_order::x4_normalize_scales`]).
fn x4_scale_pow(scale_shift: u8) -> v128 {
    f32x4_splat(f32::from_bits((127 + 112 - scale_shift as u32) << 23))
}

/// One block of an interleaved group and token added to its accumulator: `acc +
/// convert(rows + offset) · dwdy` (lanes are rows; `offset` the token's, splat; `dwdy` the
/// rows' scales times the token's).
#[inline(always)]
fn x4_add_block(acc: v128, s: impl X4Acc, offset: v128, dwdy: v128) -> v128 {
    let sums = f32x4_convert_i32x4(i32x4_add(s.rows(), offset));
    f32x4_add(acc, f32x4_mul(sums, dwdy))
}

/// A tile's tokens' Q8_0 activations packed block by block for the interleaved prompt tiles
/// ([`x4_prompt_tile`]): per block, the tokens' 32 codes one after another, then each token's
/// offset (`-bias·Σ y`, i32) and scale (f32) already splat to four lanes. One pointer serves
/// the tile's tokens, and the per-block work of each token shrinks to its loads (no scalar
/// loads, multiplies or splats).
struct PromptActsX4(Vec<v128>);

/// v128 values per block of [`PromptActsX4`] for `tokens` tokens: two of codes, an offset and a
/// scale each.
const fn packed_block(tokens: usize) -> usize {
    4 * tokens
}

impl PromptActsX4 {
    fn new() -> PromptActsX4 {
        PromptActsX4(Vec::new())
    }

    /// Packs `nb` blocks of `acts` (checked by [`check_acts`]) for codes of `bias`.
    fn pack(&mut self, acts: &[QuantizedActs], nb: usize, bias: i32) {
        self.0.clear();
        self.0.reserve(packed_block(acts.len()) * nb);
        for b in 0..nb {
            for a in acts {
                // SAFETY: the activations hold block `b` (checked by `check_acts`).
                unsafe {
                    let q = a.q.as_ptr().add(32 * b) as *const u8;
                    self.0.extend([load(q), load(q.add(16))]);
                }
            }
            self.0.extend(acts.iter().map(|a| i32x4_splat(-bias * a.bsums[b])));
            self.0.extend(acts.iter().map(|a| f32x4_splat(a.d[b])));
        }
    }
}

/// `G` interleaved groups against the `T` tokens of `acts` ([`PromptActsX4`], packed for
/// this type's bias): the arithmetic of [`x4_tile`], so the same bits. Per 16 bytes of each
/// group's codes, each token's activations are broadcast once for all `G` groups; each group's
/// codes are unpacked once for all `T` tokens.
///
/// # Safety
/// Each group's bytes must be readable (`nb` blocks of four rows); `acts` holds `nb` blocks of
/// `T` tokens.
#[inline(always)]
unsafe fn x4_prompt_tile<A: X4Acc, C: X4Type, const G: usize, const T: usize>(groups: [*const u8; G], acts: &PromptActsX4, nb: usize, pow: v128) -> [[v128; T]; G] {
    debug_assert!(acts.0.len() >= packed_block(T) * nb);
    let codes = C::new();
    let mut acc = [[f32x4_splat(0.0); T]; G];
    for b in 0..nb {
        let p = acts.0.as_ptr().add(packed_block(T) * b);
        let y = p as *const u8;
        let blocks = groups.map(|p| p.add(8 * nb + C::BLOCK * b));
        let bits: [v128; G] = blocks.map(|p| codes.block_bits(p));
        let mut s = [[A::zero(); T]; G];
        for c in 0..X4_PAIRS {
            let w: [(v128, v128); G] = core::array::from_fn(|g| codes.codes(blocks[g], bits[g], c));
            let (i0, i1) = C::y_words(c);
            for t in 0..T {
                let yt = y.add(32 * t) as *const u32;
                let (y0, y1) = (v128_load32_splat(yt.add(i0)), v128_load32_splat(yt.add(i1)));
                for g in 0..G {
                    s[g][t] = s[g][t].add2(w[g].0, y0, w[g].1, y1);
                    if C::settles_after(c) {
                        s[g][t] = s[g][t].settle();
                    }
                }
            }
        }
        for g in 0..G {
            let dw = x4_scales(groups[g], b, pow);
            for t in 0..T {
                acc[g][t] = x4_add_block(acc[g][t], s[g][t], *p.add(2 * T + t), f32x4_mul(dw, *p.add(3 * T + t)));
            }
        }
    }
    acc
}

/// The bytes of `v` at the indices of `sel` (each below 16): relaxed-SIMD's swizzle, exact for
/// such indices and one `pshufb` on x86, where `i8x16.swizzle` also zeroes the lanes of indices
/// past 15.
#[inline(always)]
fn byte_select(v: v128, sel: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        i8x16_relaxed_swizzle(v, sel)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        i8x16_swizzle(v, sel)
    }
}

/// Q5_0 (`d` f16, 4 bytes of fifth bits, 16 bytes of nibbles) against Q8_0 activations: the
/// fifth bits spread to bytes by a byte shuffle and a bit test, codes 0..31 (the value + 16);
/// the block sums by [`dot2_u6`] (`FUSED` as there).
///
/// # Safety
/// As [`q4_0_tile`].
#[inline(always)]
unsafe fn q5_0_tile<const R: usize, const T: usize, const FUSED: bool>(rows: [*const u8; R], acts: [&QuantizedActs; T], nb: usize) -> [[f32; T]; R] {
    let mask = u8x16_splat(0x0F);
    let fifth = u8x16_splat(0x10);
    // Opaque to the compilers, so that V8 keeps them in registers: as constants it built each
    // again at every use, inside the loop (Chromium, decode 0.14-0.17 → 0.08 ns a weight).
    let (bits, low_bytes, high_bytes) = core::hint::black_box((
        u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128),
        u8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
        u8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
    ));
    let mut acc = [f32x4_splat(0.0); T];
    for b in 0..nb {
        let (y, offset, dy) = q8_0_block(acts, b, 16);
        let p = rows.map(|p| p.add(22 * b));
        let mut s = [[i32x4_splat(0); R]; T];
        for r in 0..R {
            let qh = v128_load32_splat(p[r].add(2) as *const u32);
            // Value j's fifth bit is bit j of qh (j < 16), value j + 16's bit j + 16.
            let spread = |sel: v128| v128_and(i8x16_eq(v128_and(byte_select(qh, sel), bits), bits), fifth);
            let qs = load(p[r].add(6));
            let lo = v128_or(v128_and(qs, mask), spread(low_bytes));
            let hi = v128_or(high_nibbles(qs, mask), spread(high_bytes));
            for t in 0..T {
                s[t][r] = dot2_u6::<FUSED>(lo, y[t][0], hi, y[t][1]);
            }
        }
        add_block(&mut acc, s, offset, p, dy);
    }
    rows_of(acc)
}

/// Q8_0 (`d` f16, 32 signed bytes) against Q8_0 activations.
///
/// # Safety
/// As [`q4_0_tile`].
#[inline(always)]
unsafe fn q8_0_tile<const R: usize, const T: usize>(rows: [*const u8; R], acts: [&QuantizedActs; T], nb: usize) -> [[f32; T]; R] {
    let mut acc = [f32x4_splat(0.0); T];
    for b in 0..nb {
        let (y, _, dy) = q8_0_block(acts, b, 0);
        let p = rows.map(|p| p.add(34 * b));
        let mut s = [[i32x4_splat(0); R]; T];
        for r in 0..R {
            let (w0, w1) = (load(p[r].add(2)), load(p[r].add(18)));
            for t in 0..T {
                s[t][r] = i32x4_add(dot_i8x16(w0, y[t][0]), dot_i8x16(w1, y[t][1]));
            }
        }
        add_block(&mut acc, s, [0; T], p, dy);
    }
    rows_of(acc)
}

/// Q8_0 on relaxed-SIMD: Σ w·y = Σ (w·sign(y))·|y|, with |y| (0..=127, activations are
/// quantized to ±127) as the 7-bit operand and y's sign moved onto the weights — exact unless a
/// weight is -128 where y < 0 (its negation wraps), so matrices holding -128 take
/// [`q8_0_tile`] ([`crate::quant::QMatrix::has_q8_0_min`]).
///
/// # Safety
/// As [`q4_0_tile`]; no weight code of the rows is -128.
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
unsafe fn q8_0_tile_relaxed<const R: usize, const T: usize>(rows: [*const u8; R], acts: [&QuantizedActs; T], nb: usize) -> [[f32; T]; R] {
    let zero = i32x4_splat(0);
    let mut acc = [f32x4_splat(0.0); T];
    for b in 0..nb {
        let (y, _, dy) = q8_0_block(acts, b, 0);
        let magnitude = y.map(|v| v.map(|v| i8x16_abs(v)));
        let negative = y.map(|v| v.map(|v| i8x16_lt(v, zero)));
        let p = rows.map(|p| p.add(34 * b));
        let mut s = [[zero; R]; T];
        for r in 0..R {
            let w = [load(p[r].add(2)), load(p[r].add(18))];
            for t in 0..T {
                // (w ^ m) - m is -w where m is all ones, w where it is zero.
                let signed = |k: usize| i8x16_sub(v128_xor(w[k], negative[t][k]), negative[t][k]);
                let lo = i32x4_relaxed_dot_i8x16_i7x16_add(signed(0), magnitude[t][0], zero);
                s[t][r] = i32x4_relaxed_dot_i8x16_i7x16_add(signed(1), magnitude[t][1], lo);
            }
        }
        add_block(&mut acc, s, [0; T], p, dy);
    }
    rows_of(acc)
}

/// Q8_0 where the engine fuses the relaxed dot-add into AVX-VNNI's `vpdpbusd` ([`fused_dot_add`],
/// whose probe shows its second operand taken unsigned and unsaturated, 0..=255): the weights
/// enter as `w + 128` (a flip of each byte's top bit, once per row and block for all `T`
/// tokens), `Σ (w + 128)·y = Σ w·y + 128·Σ y`, and the offset takes `128·Σ y` back. Exact for
/// every code, -128 included (it enters as 0), so the same bits as [`q8_0_tile`]; two
/// instructions per 32 products and token, where [`q8_0_prompt_tile`] spends seven. The
/// loader interleaves such an engine's Q8_0 matrices ([`X4Bytes`], the same arithmetic without
/// the reduction across lanes): this kernel takes the rows past their last group.
///
/// # Safety
/// As [`q4_0_tile`]; the engine's fused dot-add probed true.
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
unsafe fn q8_0_tile_fused<const R: usize, const T: usize>(rows: [*const u8; R], acts: [&QuantizedActs; T], nb: usize) -> [[f32; T]; R] {
    // Opaque, so that V8 keeps it in a register (as Q5_0's constants).
    let top = core::hint::black_box(u8x16_splat(0x80));
    let zero = i32x4_splat(0);
    let mut acc = [f32x4_splat(0.0); T];
    for b in 0..nb {
        let (y, offset, dy) = q8_0_block(acts, b, 128);
        let p = rows.map(|p| p.add(34 * b));
        let mut s = [[zero; R]; T];
        for r in 0..R {
            let (w0, w1) = (v128_xor(load(p[r].add(2)), top), v128_xor(load(p[r].add(18)), top));
            for t in 0..T {
                s[t][r] = i32x4_relaxed_dot_i8x16_i7x16_add(y[t][1], w1, i32x4_relaxed_dot_i8x16_i7x16_add(y[t][0], w0, zero));
            }
        }
        add_block(&mut acc, s, offset, p, dy);
    }
    rows_of(acc)
}

/// [`PREFILL_TOKENS`] tokens' Q8_0 activations widened to i16 for the Q8_0 prompt tiles
/// ([`q8_0_prompt_tile`]): per block, each token's 32 values as four i16x8. Widened once per
/// quad of tokens rather than once per row, so a product of eight weights and values is one
/// `i32x4.dot_i16x8_s` (x86's `pmaddwd`) and one add, where the 8-bit kernels spend an extend
/// of each operand ([`q8_0_tile`]) or move the signs ([`q8_0_tile_relaxed`]).
struct PromptActsQ8(Vec<v128>);

/// v128 values per block and token of [`PromptActsQ8`].
const Q8_PACKED_TOKEN: usize = 4;

impl PromptActsQ8 {
    fn new() -> PromptActsQ8 {
        PromptActsQ8(Vec::new())
    }

    /// Packs `nb` blocks of `acts` (checked by [`check_acts`]).
    fn pack(&mut self, acts: [&QuantizedActs; PREFILL_TOKENS], nb: usize) {
        self.0.clear();
        self.0.reserve(Q8_PACKED_TOKEN * PREFILL_TOKENS * nb);
        for b in 0..nb {
            for a in acts {
                // SAFETY: the activations hold block `b` (checked by `check_acts`).
                let y = unsafe {
                    let q = a.q.as_ptr().add(32 * b) as *const u8;
                    [load(q), load(q.add(16))]
                };
                self.0.extend(y.into_iter().flat_map(|y| [i16x8_extend_low_i8x16(y), i16x8_extend_high_i8x16(y)]));
            }
        }
    }
}

/// Q8_0 rows (`R`) × the [`PREFILL_TOKENS`] tokens of `acts`, their values widened in
/// `packed` ([`PromptActsQ8`]): each row's block widened once for the four tokens. The same
/// exact integer sums and f32 steps as [`q8_0_tile`], so the same bits; for every weight code,
/// -128 included.
///
/// # Safety
/// As [`q4_0_tile`]; `packed` holds `acts`' `nb` blocks.
#[inline(always)]
unsafe fn q8_0_prompt_tile<const R: usize>(rows: [*const u8; R], acts: [&QuantizedActs; PREFILL_TOKENS], packed: &PromptActsQ8, nb: usize) -> [[f32; PREFILL_TOKENS]; R] {
    const T: usize = PREFILL_TOKENS;
    debug_assert!(packed.0.len() >= Q8_PACKED_TOKEN * T * nb);
    let mut acc = [f32x4_splat(0.0); T];
    for b in 0..nb {
        let y = packed.0.as_ptr().add(Q8_PACKED_TOKEN * T * b);
        let p = rows.map(|p| p.add(34 * b));
        let w: [[v128; 4]; R] = p.map(|p| {
            let (w0, w1) = (load(p.add(2)), load(p.add(18)));
            [i16x8_extend_low_i8x16(w0), i16x8_extend_high_i8x16(w0), i16x8_extend_low_i8x16(w1), i16x8_extend_high_i8x16(w1)]
        });
        let mut s = [[i32x4_splat(0); R]; T];
        for t in 0..T {
            let yt = y.add(Q8_PACKED_TOKEN * t);
            for r in 0..R {
                let lo = i32x4_add(i32x4_dot_i16x8(w[r][0], *yt), i32x4_dot_i16x8(w[r][1], *yt.add(1)));
                let hi = i32x4_add(i32x4_dot_i16x8(w[r][2], *yt.add(2)), i32x4_dot_i16x8(w[r][3], *yt.add(3)));
                s[t][r] = i32x4_add(lo, hi);
            }
        }
        let dy: [f32; T] = core::array::from_fn(|t| *acts[t].d.get_unchecked(b));
        add_block(&mut acc, s, [0; T], p, dy);
    }
    rows_of(acc)
}

/// Block `b`'s Q8_K sums of each 16 values (16 of them, |Σ| ≤ 16·127) as i16 lanes, 0..8 and
/// 8..16: the operands of a `pmaddwd` against 16 sub-block scales or mins.
///
/// # Safety
/// `acts` holds block `b` (checked by [`check_acts`]).
#[inline(always)]
unsafe fn q8_k_bsums16(acts: &QuantizedActs, b: usize) -> [v128; 2] {
    let bs = acts.bsums.as_ptr().add(16 * b) as *const v128;
    [i16x8_narrow_i32x4(v128_load(bs), v128_load(bs.add(1))), i16x8_narrow_i32x4(v128_load(bs.add(2)), v128_load(bs.add(3)))]
}

/// Q4_K's eight 6-bit scales (bytes 0..8) and eight mins (bytes 8..16) from its 12 packed bytes
/// at `p` ([`crate::quant::k4_scales_mins`] in SIMD: two shifts, two shuffles, two masks and an or).
///
/// # Safety
/// `p..p + 16` must be readable.
#[inline(always)]
unsafe fn k4_scales_mins_simd(p: *const u8) -> v128 {
    let q = load(p);
    // Scales 0..4 and mins 0..4: q[j], q[j + 4] (6 bits); scales 4..8: q[j + 4] & 15; mins 4..8:
    // q[j + 4] >> 4 (a 16-bit shift: the bits from the next byte land past the mask).
    let low = i8x16_shuffle::<0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 24, 25, 26, 27>(q, u16x8_shr(q, 4));
    let low = v128_and(low, u8x16(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
    // The two high bits of scales and mins 4..8: (q[j] >> 6) << 4 = (q[j] >> 2) & 0x30.
    let top = v128_and(u16x8_shr(q, 2), u8x16_splat(0x30));
    let high = i8x16_shuffle::<16, 16, 16, 16, 0, 1, 2, 3, 16, 16, 16, 16, 4, 5, 6, 7>(top, u8x16_splat(0));
    v128_or(low, high)
}

/// Q4_K (`d`, `dmin` f16, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles) against Q8_K
/// activations. The mins' offset, `dmin · Σ min·(Σ y of its 32 values)`, is one `pmaddwd` of
/// the mins against the pairs of the activations' 16-value sums.
/// `FUSED` (relaxed-SIMD, where the engine fuses the dot-add, [`fused_dot_add`]): each
/// sub-block's 32 values take two chained `i32x4.relaxed_dot_i8x16_i7x16_add` (sums of eight
/// products, |Σ| ≤ 8·15·128, exact in i16), and a pair of sub-blocks one interleave to i16
/// ([`interleaved_sums`]) and one `pmaddwd` against their two scales: five multiplies per 64
/// values where the 16-bit pairs take six, with the same sums in the same lanes. Taken in
/// decode (one token; a layer of Qwen2.5's shapes in Chromium on the Xeon, 2026-12-07: 0.0455 →
/// 0.0389 ns per weight), not in the prompt tiles ([`matmul`]).
///
/// # Safety
/// As [`q4_0_tile`].
#[inline(always)]
unsafe fn q4_k_tile<const R: usize, const T: usize, const FUSED: bool>(rows: [*const u8; R], acts: [&QuantizedActs; T], nb: usize) -> [[f32; T]; R] {
    // Opaque, so that V8 keeps it in a register (as Q5_0's constants): Chromium, decode 0.073 →
    // 0.057 ns a weight.
    let mask = core::hint::black_box(u8x16_splat(0x0F));
    // Decode (one token) keeps lanes of rows in `acc[0][0]`; the prompt tiles (tokens a
    // multiple of four) lanes of tokens, `acc[r][q]` row `r`'s tokens `4q..4q + 4`.
    const { assert!((T == 1 && R <= 4) || T % 4 == 0) };
    let mut acc = [[f32x4_splat(0.0); T]; R];
    for b in 0..nb {
        let (mut tile_sums, mut tile_mins, mut tile_d, mut tile_dmin) = ([i32x4_splat(0); R], [i32x4_splat(0); R], [0f32; 4], [0f32; 4]);
        let mut dy = [0f32; T];
        // Σ y of each 32 values as i16 lanes (the mins multiply them).
        let mut ysum32 = [i16x8_splat(0); T];
        for t in 0..T {
            dy[t] = *acts[t].d.get_unchecked(b);
            let [lo, hi] = q8_k_bsums16(acts[t], b);
            ysum32[t] = i16x8_narrow_i32x4(i32x4_extadd_pairwise_i16x8(lo), i32x4_extadd_pairwise_i16x8(hi));
        }
        for r in 0..R {
            let p = rows[r].add(144 * b);
            let (d, dmin) = (f16_at_ptr(p), f16_at_ptr(p.add(2)));
            let scales_mins = k4_scales_mins_simd(p.add(4));
            let mins = u16x8_extend_high_u8x16(scales_mins);
            let mut sc = [0u8; 16];
            v128_store(sc.as_mut_ptr() as *mut v128, scales_mins);
            let mut total = [i32x4_splat(0); T];
            // 32 bytes of nibbles per 64 values: low nibbles are sub-block 2c, high ones 2c + 1.
            for c in 0..4 {
                let (q0, q1) = (load(p.add(16 + c * 32)), load(p.add(32 + c * 32)));
                let (l0, l1, h0, h1) = (v128_and(q0, mask), v128_and(q1, mask), high_nibbles(q0, mask), high_nibbles(q1, mask));
                if FUSED && cfg!(target_feature = "relaxed-simd") {
                    #[cfg(target_feature = "relaxed-simd")]
                    {
                        let pair = scale_pair(u16x8_extend_low_u8x16(scales_mins), c);
                        for t in 0..T {
                            let y = acts[t].q.as_ptr().add(QK_K * b + c * 64) as *const u8;
                            let lo = i32x4_relaxed_dot_i8x16_i7x16_add(load(y.add(16)), l1, i32x4_relaxed_dot_i8x16_i7x16_add(load(y), l0, i32x4_splat(0)));
                            let hi = i32x4_relaxed_dot_i8x16_i7x16_add(load(y.add(48)), h1, i32x4_relaxed_dot_i8x16_i7x16_add(load(y.add(32)), h0, i32x4_splat(0)));
                            total[t] = i32x4_add(total[t], i32x4_dot_i16x8(interleaved_sums(lo, hi), pair));
                        }
                    }
                    continue;
                }
                for t in 0..T {
                    let y = acts[t].q.as_ptr().add(QK_K * b + c * 64) as *const u8;
                    let lo = scaled_dot2_u6(l0, load(y), l1, load(y.add(16)), sc[2 * c] as i16);
                    let hi = scaled_dot2_u6(h0, load(y.add(32)), h1, load(y.add(48)), sc[2 * c + 1] as i16);
                    let scaled = i32x4_add(lo, hi);
                    total[t] = i32x4_add(total[t], scaled);
                }
            }
            let mins: [v128; T] = core::array::from_fn(|t| i32x4_dot_i16x8(mins, ysum32[t]));
            if T == 1 {
                // Decode: the rows' sums reduced into one vector below, lane `r` row `r`.
                (tile_sums[r], tile_mins[r], tile_d[r], tile_dmin[r]) = (total[0], mins[0], d, dmin);
                continue;
            }
            // Four tokens' sums of row `r` reduced into one vector, lane `j` token `4q + j`.
            for q in 0..T / 4 {
                let tokens = |s: &[v128; T]| row_sums::<4>(core::array::from_fn(|j| s[4 * q + j]));
                let dyq = v128_load(dy.as_ptr().add(4 * q) as *const v128);
                acc[r][q] = q4_k_add_block(acc[r][q], tokens(&total), tokens(&mins), f32x4_splat(d), f32x4_splat(dmin), dyq);
            }
        }
        if T == 1 {
            let lanes = |v: &[f32; 4]| v128_load(v.as_ptr() as *const v128);
            let (d, dmin) = (lanes(&tile_d), lanes(&tile_dmin));
            acc[0][0] = q4_k_add_block(acc[0][0], row_sums(tile_sums), row_sums(tile_mins), d, dmin, f32x4_splat(dy[0]));
        }
    }
    // SAFETY: v128 and [f32; 4] have the same size, every bit pattern valid in both.
    let lanes = |v: v128| unsafe { core::mem::transmute::<v128, [f32; 4]>(v) };
    core::array::from_fn(|r| core::array::from_fn(|t| if T == 1 { lanes(acc[0][0])[r] } else { lanes(acc[r][t / 4])[t % 4] }))
}

/// A Q4_K super-block's sums added to an accumulator, lane by lane: `acc + convert(sums) ·
/// (d · dy) + convert(mins) · -(dmin · dy)`, `sums` the lanes' `Σ scale · Σ code·y` (exact),
/// `mins` their `Σ min · Σ y`: the same steps for every lane's row and token in every kernel
/// of Q4_K ([`q4_k_tile`]'s lanes of tokens or of rows, [`q4_k_x4_tile`]'s of rows), so the
/// same bits.
#[inline(always)]
fn q4_k_add_block(acc: v128, sums: v128, mins: v128, d: v128, dmin: v128, dy: v128) -> v128 {
    let acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(sums), f32x4_mul(d, dy)));
    f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(mins), f32x4_neg(f32x4_mul(dmin, dy))))
}

/// f16 values in the low halves of four u32 lanes as f32x4, exactly, infinities and NaNs
/// too, with no f32 subnormal operand ([`f16_magnitudes_to_f32`]; a few more instructions
/// than [`f16_lanes_to_f32`]): the interleaved Q4_K's `d` and `dmin`, once a super-block, as
/// exact as the file order's scalar conversion.
#[inline(always)]
fn f16_lanes_exact_to_f32(h: v128) -> v128 {
    let (magnitude, sign) = f16_lane_parts(h);
    let special = i32x4_eq(v128_and(h, i32x4_splat(0x7C00)), i32x4_splat(0x7C00));
    v128_or(v128_bitselect(v128_or(magnitude, i32x4_splat(0x7F80_0000)), f16_magnitudes_to_f32(magnitude), special), sign)
}

/// `G` groups of four interleaved Q4_K rows ([`crate::quant::RowOrder::Q4Kx4`], at `groups`)
/// against `T` tokens' Q8_K activations: lane `k` of `[g][t]` row `k` of group `g`. Each
/// sub-block's 32 codes lie as an interleaved Q4_0 block's ([`X4Nibbles`]), so its four rows'
/// sums come out in their lanes by `A` as Q4_0's do, each then times its row's six-bit scale
/// (an i32 multiply, the scales widened from the layout's bytes) into the super-block's sum;
/// the mins' `Σ min · Σ y` is one `pmaddwd` per pair of sub-blocks, each row's pair of mins in
/// its lane. Then [`q4_k_add_block`], as the file order's kernel ([`q4_k_tile`]): the same
/// bits.
///
/// # Safety
/// Each group's bytes must be readable (`nb` super-blocks of four rows); `acts` checked by
/// [`check_acts`].
#[inline(always)]
unsafe fn q4_k_x4_tile<A: X4Acc, const G: usize, const T: usize>(groups: [*const u8; G], acts: [&QuantizedActs; T], nb: usize) -> [[v128; T]; G] {
    use crate::quant::row_order::Q4_K_X4_BLOCK;
    let codes = X4Nibbles::<false>::new();
    // Opaque, so that V8 keeps them in registers (as Q5_0's constants).
    let (low4, high2) = (core::hint::black_box(u8x16_splat(0x0F)), core::hint::black_box(u8x16_splat(0x30)));
    let mut acc = [[f32x4_splat(0.0); T]; G];
    for b in 0..nb {
        let x = groups.map(|p| p.add(Q4_K_X4_BLOCK * b));
        // The layout's scales of each half (sub-blocks 0..4, 4..8) as bytes: low four bits and
        // two high ones joined.
        let scales: [[v128; 2]; G] = core::array::from_fn(|g| {
            let (lo, high) = (load(x[g].add(16)), load(x[g].add(48)));
            [v128_or(v128_and(lo, low4), v128_and(i16x8_shl(high, 4), high2)), v128_or(high_nibbles(lo, low4), v128_and(i16x8_shl(high, 2), high2))]
        });
        let mut sums = [[i32x4_splat(0); T]; G];
        for s in 0..8 {
            let mut sub = [[A::zero(); T]; G];
            let blocks = x.map(|p| p.add(64 + 64 * s));
            for c in 0..X4_PAIRS {
                let w: [(v128, v128); G] = core::array::from_fn(|g| codes.codes(blocks[g], codes.block_bits(blocks[g]), c));
                let (i0, i1) = X4Nibbles::<false>::y_words(c);
                for t in 0..T {
                    let y = acts[t].q.as_ptr().add(QK_K * b + 32 * s) as *const u32;
                    let (y0, y1) = (v128_load32_splat(y.add(i0)), v128_load32_splat(y.add(i1)));
                    for g in 0..G {
                        sub[g][t] = sub[g][t].add2(w[g].0, y0, w[g].1, y1);
                    }
                }
            }
            for g in 0..G {
                // Sub-block s = 4h + 2p + j: the u16 pairs of pair p of half h, row k's in lane k.
                let half = scales[g][s / 4];
                let pair = if s % 4 < 2 { u16x8_extend_low_u8x16(half) } else { u16x8_extend_high_u8x16(half) };
                let scale = if s % 2 == 0 { v128_and(pair, i32x4_splat(0xFFFF)) } else { u32x4_shr(pair, 16) };
                for t in 0..T {
                    sums[g][t] = i32x4_add(sums[g][t], i32x4_mul(sub[g][t].rows(), scale));
                }
            }
        }
        // Each row's mins of pairs of sub-blocks (2h + p) as u16 pairs in its lane; its d, dmin.
        let mins: [[v128; 4]; G] = core::array::from_fn(|g| {
            let (lo, high) = (load(x[g].add(32)), load(x[g].add(48)));
            let halves = [v128_or(v128_and(lo, low4), v128_and(high, high2)), v128_or(high_nibbles(lo, low4), v128_and(u16x8_shr(high, 2), high2))];
            [u16x8_extend_low_u8x16(halves[0]), u16x8_extend_high_u8x16(halves[0]), u16x8_extend_low_u8x16(halves[1]), u16x8_extend_high_u8x16(halves[1])]
        });
        let dw: [(v128, v128); G] = core::array::from_fn(|g| {
            let h = load(x[g]);
            (f16_lanes_exact_to_f32(u32x4_extend_low_u16x8(h)), f16_lanes_exact_to_f32(u32x4_extend_high_u16x8(h)))
        });
        for t in 0..T {
            // The token's Σ y of each sub-block as i16 lanes; i32 lane q the pair 2q, 2q + 1.
            let [lo, hi] = q8_k_bsums16(acts[t], b);
            let ys = i16x8_narrow_i32x4(i32x4_extadd_pairwise_i16x8(lo), i32x4_extadd_pairwise_i16x8(hi));
            let ypairs = [i32x4_shuffle::<0, 0, 0, 0>(ys, ys), i32x4_shuffle::<1, 1, 1, 1>(ys, ys), i32x4_shuffle::<2, 2, 2, 2>(ys, ys), i32x4_shuffle::<3, 3, 3, 3>(ys, ys)];
            let dy = f32x4_splat(*acts[t].d.get_unchecked(b));
            for g in 0..G {
                let m = (0..4).fold(i32x4_splat(0), |m, q| i32x4_add(m, i32x4_dot_i16x8(mins[g][q], ypairs[q])));
                acc[g][t] = q4_k_add_block(acc[g][t], sums[g][t], m, dw[g].0, dw[g].1, dy);
            }
        }
    }
    acc
}

/// Interleaved Q4_K groups per prompt tile and tokens per tile ([`matmul_q4_k_x4`]). Kernel
/// benchmark, Chromium, the Xeon with AVX-VNNI, 8 layers of Qwen2.5-0.5B, 16 / 64 / 120 tokens
/// at a time, ns per weight and token: 4 × 4 0.0194 / 0.0184 / 0.0182, 2 × 8 0.0196 / 0.0188 /
/// 0.0187, 3 × 4 0.0200 / 0.0194 / 0.0194, 2 × 4 0.0209 / 0.0200 / 0.0202, 3 × 8 0.0215 /
/// 0.0228 / 0.0215 (the file order's 2 × 8: 0.0245 / 0.0236 / 0.0251).
const Q4_K_X4_PROMPT_GROUPS: usize = 4;
const Q4_K_X4_PROMPT_TOKENS: usize = 4;

/// [`matmul_x4`] of Q4_K: the sums of `D` in decode's tiles (one token, [`DECODE_GROUPS`]
/// groups at a time) and `P` in the prompts' ([`Q4_K_X4_PROMPT_GROUPS`] ×
/// [`Q4_K_X4_PROMPT_TOKENS`], blocked for the cache), the tokens left over as decode's.
fn matmul_q4_k_x4<D: X4Acc, P: X4Acc>(w: &[u8], rb: usize, total_rows: usize, acts: &[QuantizedActs], out: &TokenRows, rows: Range<usize>) {
    const PG: usize = Q4_K_X4_PROMPT_GROUPS;
    const PT: usize = Q4_K_X4_PROMPT_TOKENS;
    let ty = GgmlType::Q4K;
    let (groups, grouped) = x4_groups(ty, w, rb, total_rows, &rows);
    let nb = rb / ty.block_bytes();
    acts.iter().for_each(|a| check_acts(ty, a, nb * QK_K));
    // SAFETY (every tile below): its groups lie in `rows`, below `grouped`, within `w` (checked
    // above); the activations are checked and the tokens exist. The stores: this call owns
    // rows `rows` of `out`.
    let group = |g: usize| w[g * GROUP_ROWS * rb..].as_ptr();
    let store = |t: usize, g: usize, v: v128| unsafe { x4_store(out, t, g, v) };
    let full_tokens = if acts.len() > 1 { acts.len() / PT * PT } else { 0 };
    let tile = |_: &(), gs: [usize; PG], t0: usize| unsafe { q4_k_x4_tile::<P, PG, PT>(gs.map(group), core::array::from_fn(|k| &acts[t0 + k]), nb) };
    x4_prompt_tiles(&store, 0..full_tokens, groups.clone(), GROUP_ROWS * rb, 0, || (), &|_, _| {}, tile);
    let tile = |gs: [usize; DECODE_GROUPS], a: &QuantizedActs| unsafe { q4_k_x4_tile::<D, DECODE_GROUPS, 1>(gs.map(group), [a], nb) }.map(|o| o[0]);
    x4_decode_tiles(&store, acts, full_tokens, groups, tile, |g, a| unsafe { q4_k_x4_tile::<D, 1, 1>([group(g)], [a], nb) }[0][0]);
    if rows.end > grouped {
        matmul(ty, false, w, rb, acts, out, grouped.max(rows.start)..rows.end);
    }
}

/// Q6_K (128 bytes of low nibbles, 64 bytes of high 2 bits, 16 signed 8-bit scales, `d` f16)
/// against Q8_K activations. The codes' offset of 32, `32 · Σ scale·(Σ y of its 16 values)`, is
/// two `pmaddwd` of the scales against the activations' 16-value sums.
/// `FUSED` (relaxed-SIMD, where the engine fuses the dot-add, [`fused_dot_add`]): each pair of
/// sub-blocks (32 values, two scales) takes two zero-based `i32x4.relaxed_dot_i8x16_i7x16_add`
/// (sums of four products, |Σ| ≤ 4·63·128, exact in i16), one interleave to i16
/// ([`interleaved_sums`]) and one `pmaddwd` against the pair's scales: three multiplies where
/// the 16-bit pairs take four (a `pmaddubsw` and a `pmaddwd` per sub-block), with the same
/// sums in the same lanes. Taken in decode (as Q4_K's: 0.0641 → 0.0578 ns per weight), not in
/// the prompt tiles.
///
/// # Safety
/// As [`q4_0_tile`].
#[inline(always)]
unsafe fn q6_k_tile<const R: usize, const T: usize, const FUSED: bool>(rows: [*const u8; R], acts: [&QuantizedActs; T], nb: usize) -> [[f32; T]; R] {
    let (mask4, mask_high) = (core::hint::black_box(u8x16_splat(0x0F)), core::hint::black_box(u8x16_splat(0x30)));
    let mut acc = [[f32x4_splat(0.0); T]; R];
    for b in 0..nb {
        let bsums: [[v128; 2]; T] = core::array::from_fn(|t| q8_k_bsums16(acts[t], b));
        for r in 0..R {
            let p = rows[r].add(210 * b);
            let scale = |sub: usize| (*p.add(192 + sub) as i8) as i32;
            let scales = load(p.add(192));
            let (scales_lo, scales_hi) = (i16x8_extend_low_i8x16(scales), i16x8_extend_high_i8x16(scales));
            let mut total = [i32x4_splat(0); T];
            // Two halves of 128 values; in each, 16 lanes `l` (from `lc`) give values l, l+32,
            // l+64, l+96, as unsigned codes 0..63 (the value + 32).
            let codes = |n: usize, lc: usize| {
                let ql0 = load(p.add(n * 64 + lc));
                let ql1 = load(p.add(n * 64 + 32 + lc));
                let qh = load(p.add(128 + n * 32 + lc));
                // Bits 2k, 2k + 1 of each high byte moved to bits 4, 5 by 16-bit shifts (the mask
                // drops what crosses a byte).
                [
                    v128_or(v128_and(ql0, mask4), v128_and(u16x8_shl(qh, 4), mask_high)),
                    v128_or(v128_and(ql1, mask4), v128_and(u16x8_shl(qh, 2), mask_high)),
                    v128_or(high_nibbles(ql0, mask4), v128_and(qh, mask_high)),
                    v128_or(high_nibbles(ql1, mask4), v128_and(u16x8_shr(qh, 2), mask_high)),
                ]
            };
            for n in 0..2 {
                if FUSED && cfg!(target_feature = "relaxed-simd") {
                    #[cfg(target_feature = "relaxed-simd")]
                    {
                        // Sub-blocks 8n + 2k (lanes 0..16) and 8n + 2k + 1 (lanes 16..32).
                        let (first, second) = (codes(n, 0), codes(n, 16));
                        let half = if n == 0 { scales_lo } else { scales_hi };
                        for k in 0..4 {
                            let pair = scale_pair(half, k);
                            for t in 0..T {
                                let y = acts[t].q.as_ptr().add(QK_K * b + n * 128 + k * 32) as *const u8;
                                let s0 = i32x4_relaxed_dot_i8x16_i7x16_add(load(y), first[k], i32x4_splat(0));
                                let s1 = i32x4_relaxed_dot_i8x16_i7x16_add(load(y.add(16)), second[k], i32x4_splat(0));
                                total[t] = i32x4_add(total[t], i32x4_dot_i16x8(interleaved_sums(s0, s1), pair));
                            }
                        }
                    }
                    continue;
                }
                for lc in [0, 16] {
                    for (k, c) in codes(n, lc).into_iter().enumerate() {
                        let at = n * 128 + k * 32 + lc;
                        let sc = scale(at / 16) as i16;
                        for t in 0..T {
                            let y = acts[t].q.as_ptr().add(QK_K * b + at) as *const u8;
                            total[t] = i32x4_add(total[t], scaled_dot_u6(c, load(y), sc));
                        }
                    }
                }
            }
            let d = f16_at_ptr(p.add(208));
            for t in 0..T {
                // Σ scale·(code - 32)·y = Σ scale·code·y - 32·Σ scale·(Σ y of its 16 values).
                let offset = i32x4_add(i32x4_dot_i16x8(scales_lo, bsums[t][0]), i32x4_dot_i16x8(scales_hi, bsums[t][1]));
                let s = i32x4_sub(total[t], i32x4_shl(offset, 5));
                acc[r][t] = scaled_add(acc[r][t], s, d * *acts[t].d.get_unchecked(b));
            }
        }
    }
    acc.map(|row| row.map(hsum_f32))
}

/// The i16 scales of sub-blocks `2k` and `2k + 1` of `half` (eight i16 lanes), alternating: the
/// operand of a `pmaddwd` against [`interleaved_sums`] of the two sub-blocks.
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
fn scale_pair(half: v128, k: usize) -> v128 {
    match k {
        0 => i16x8_shuffle::<0, 1, 0, 1, 0, 1, 0, 1>(half, half),
        1 => i16x8_shuffle::<2, 3, 2, 3, 2, 3, 2, 3>(half, half),
        2 => i16x8_shuffle::<4, 5, 4, 5, 4, 5, 4, 5>(half, half),
        _ => i16x8_shuffle::<6, 7, 6, 7, 6, 7, 6, 7>(half, half),
    }
}

/// Two sub-blocks' i32 sums `a`, `b` (each within i16) as i16 lanes `a0, b0, a1, b1, ...`: the
/// low halves of `a` and of `b` shifted up, blended in place (a shift and a blend of i16 lanes,
/// x86's `pblendw` where V8 matches the shuffle; not checked in its code). A `pmaddwd`
/// against [`scale_pair`] then gives lane `i` `sa·a_i + sb·b_i`, the lanes of the 16-bit pairs'
/// kernel, so that both round the same sums (bit-equal results).
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
fn interleaved_sums(a: v128, b: v128) -> v128 {
    i16x8_shuffle::<0, 9, 2, 11, 4, 13, 6, 15>(a, i32x4_shl(b, 16))
}

/// One tile kernel of each shape this module runs; `$q8_0_min`: the rows may hold Q8_0's -128;
/// `$fused`: Q5_0's block sums ([`dot2_u6`]) and the K-quants' sub-block pairs by the fused
/// dot-add.
macro_rules! tile {
    // The types of the prompt tiles of four or eight tokens (Q8_0 has its own,
    // [`q8_0_prompt_tile`]; the K-quants add by the 16-bit pairs there, [`matmul`]).
    (not Q8_0: $ty:expr, $fused:expr, $rows:expr, $acts:expr, $nb:expr, $r:tt, $t:tt) => {
        match $ty {
            GgmlType::Q4_0 => q4_0_tile::<$r, $t>($rows, $acts, $nb),
            GgmlType::Q5_0 if $fused => q5_0_tile::<$r, $t, true>($rows, $acts, $nb),
            GgmlType::Q5_0 => q5_0_tile::<$r, $t, false>($rows, $acts, $nb),
            GgmlType::Q4K => q4_k_tile::<$r, $t, false>($rows, $acts, $nb),
            GgmlType::Q6K => q6_k_tile::<$r, $t, false>($rows, $acts, $nb),
            _ => unreachable!(),
        }
    };
    ($ty:expr, $q8_0_min:expr, $fused:expr, $rows:expr, $acts:expr, $nb:expr, $r:tt, $t:tt) => {
        match $ty {
            GgmlType::Q4_0 => q4_0_tile::<$r, $t>($rows, $acts, $nb),
            #[cfg(target_feature = "relaxed-simd")]
            GgmlType::Q8_0 if $fused => q8_0_tile_fused::<$r, $t>($rows, $acts, $nb),
            #[cfg(target_feature = "relaxed-simd")]
            GgmlType::Q8_0 if !$q8_0_min => q8_0_tile_relaxed::<$r, $t>($rows, $acts, $nb),
            GgmlType::Q8_0 => q8_0_tile::<$r, $t>($rows, $acts, $nb),
            GgmlType::Q5_0 if $fused => q5_0_tile::<$r, $t, true>($rows, $acts, $nb),
            GgmlType::Q5_0 => q5_0_tile::<$r, $t, false>($rows, $acts, $nb),
            GgmlType::Q4K if $fused => q4_k_tile::<$r, $t, true>($rows, $acts, $nb),
            GgmlType::Q4K => q4_k_tile::<$r, $t, false>($rows, $acts, $nb),
            GgmlType::Q6K if $fused => q6_k_tile::<$r, $t, true>($rows, $acts, $nb),
            GgmlType::Q6K => q6_k_tile::<$r, $t, false>($rows, $acts, $nb),
            _ => unreachable!(),
        }
    };
}

/// Whether this module has kernels for `ty`.
pub fn handles(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4K | GgmlType::Q6K)
}

/// `row · acts` for one row of `ty` (one of [`handles`]'s types). Q8_0 takes the widening
/// kernel: its integer sums are the relaxed kernel's, so the results are the same bits.
pub fn dot(ty: GgmlType, row: &[u8], acts: &QuantizedActs) -> f32 {
    let values = row.len() / ty.block_bytes() * ty.block_size();
    assert_eq!(row.len(), ty.row_bytes(values), "{}: a row of whole blocks", ty.name());
    check_acts(ty, acts, values);
    let nb = values / ty.block_size();
    // SAFETY: the row holds `nb` blocks and the activations `nb` blocks (checked above).
    unsafe { tile!(ty, true, false, [row.as_ptr()], [acts], nb, 1, 1)[0][0] }
}

/// Rows `rows` of `w` (`rb` bytes each) times every token of `acts`, into `out`; `q8_0_min`: the
/// rows may hold Q8_0's code -128 (they then take the widening Q8_0 kernel). One token
/// (decode): tiles of [`DECODE_ROWS`] (Q8_0 too, since the rows' streams are contiguous: 2-row
/// tiles measured 19 % slower in Chromium, the same in Node). Several: tiles of
/// [`PREFILL_ROWS`] × [`PREFILL_TOKENS`] (Q8_0: [`Q8_0_PROMPT_ROWS`] × [`PREFILL_TOKENS`] on
/// activations widened to i16, [`q8_0_prompt_tile`]; Q5_0 and the K-quants:
/// [`WIDE_PROMPT_ROWS`] × [`WIDE_PROMPT_TOKENS`], then a tile of four), the tokens left over as
/// single-token passes.
#[cfg_attr(not(target_feature = "relaxed-simd"), allow(unused_variables))] // only the relaxed Q8_0 kernel reads `q8_0_min`
pub fn matmul(ty: GgmlType, q8_0_min: bool, w: &[u8], rb: usize, acts: &[QuantizedActs], out: &TokenRows, rows: Range<usize>) {
    assert!(rows.end * rb <= w.len(), "{}: rows {rows:?} of a matrix of {} bytes", ty.name(), w.len());
    let nb = rb / ty.block_bytes();
    acts.iter().for_each(|a| check_acts(ty, a, nb * ty.block_size()));
    let row = |r: usize| w[r * rb..].as_ptr();
    let full_tokens = if acts.len() > 1 { acts.len() / PREFILL_TOKENS * PREFILL_TOKENS } else { 0 };
    let fused = matches!(ty, GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4K | GgmlType::Q6K) && fused_dot_add();
    // SAFETY (every tile below): its rows lie in `rows`, within `w` (checked above), each of
    // `nb` blocks; its tokens exist; activations checked; Q8_0's `packed` holds their blocks.
    // Q5_0 and the K-quants run their tiles of 8 tokens first and the rest (a quad or none) as
    // the others do.
    let wide = if matches!(ty, GgmlType::Q5_0 | GgmlType::Q4K | GgmlType::Q6K) { full_tokens / WIDE_PROMPT_TOKENS * WIDE_PROMPT_TOKENS } else { 0 };
    if ty == GgmlType::Q8_0 && fused {
        #[cfg(target_feature = "relaxed-simd")]
        {
            let tile = |_: &(), r, a| unsafe { q8_0_tile_fused::<Q8_0_FUSED_PROMPT_ROWS, PREFILL_TOKENS>(r, a, nb) };
            let tile1 = |_: &(), r, a| unsafe { q8_0_tile_fused::<1, PREFILL_TOKENS>(r, a, nb) };
            prompt_tiles(w, rb, acts, out, rows.clone(), 0..full_tokens, 0, || (), |_, _| {}, tile, tile1);
        }
    } else if ty == GgmlType::Q8_0 {
        let widen = |p: &mut PromptActsQ8, a| p.pack(a, nb);
        let tile = |p: &PromptActsQ8, r, a| unsafe { q8_0_prompt_tile::<Q8_0_PROMPT_ROWS>(r, a, p, nb) };
        let tile1 = |p: &PromptActsQ8, r, a| unsafe { q8_0_prompt_tile::<1>(r, a, p, nb) };
        prompt_tiles(w, rb, acts, out, rows.clone(), 0..full_tokens, 16 * Q8_PACKED_TOKEN * PREFILL_TOKENS * nb, PromptActsQ8::new, widen, tile, tile1);
    } else {
        // The K-quants' prompt tiles add by the 16-bit pairs: their fused form measured no faster
        // in 2 × 8 or 3 × 4 tiles (a layer of Qwen2.5's shapes on the Xeon: Q4_K 0.0238 against
        // 0.0259 ns per weight and token, Q6_K 0.0325 against 0.0397), where decode's one token
        // gains by it (`tile!`'s prompt arm).
        let tile = |_: &(), r, a| unsafe { tile!(not Q8_0: ty, fused, r, a, nb, WIDE_PROMPT_ROWS, WIDE_PROMPT_TOKENS) };
        let tile1 = |_: &(), r, a| unsafe { tile!(not Q8_0: ty, fused, r, a, nb, 1, WIDE_PROMPT_TOKENS) };
        prompt_tiles(w, rb, acts, out, rows.clone(), 0..wide, 0, || (), |_, _| {}, tile, tile1);
        let tile = |_: &(), r, a| unsafe { tile!(not Q8_0: ty, fused, r, a, nb, PREFILL_ROWS, PREFILL_TOKENS) };
        let tile1 = |_: &(), r, a| unsafe { tile!(not Q8_0: ty, fused, r, a, nb, 1, PREFILL_TOKENS) };
        prompt_tiles(w, rb, acts, out, rows.clone(), wide..full_tokens, 0, || (), |_, _| {}, tile, tile1);
    }
    for (t, a) in acts.iter().enumerate().skip(full_tokens) {
        let (firsts, stride, rest) = streams(rows.clone(), DECODE_ROWS);
        for r in firsts {
            let p: [*const u8; DECODE_ROWS] = core::array::from_fn(|i| row(r + i * stride));
            let o = unsafe { tile!(ty, q8_0_min, fused, p, [a], nb, DECODE_ROWS, 1) };
            o.iter().enumerate().for_each(|(i, o)| unsafe { out.set(t, r + i * stride, o[0]) });
        }
        for r in rest {
            unsafe { out.set(t, r, tile!(ty, q8_0_min, fused, [row(r)], [a], nb, 1, 1)[0][0]) };
        }
    }
}

/// A tile of `tile` rows reads `tile` streams of weights. Its rows are `stride` apart, so that
/// each stream runs through a contiguous run of `rows` tile after tile: adjacent rows (a short
/// row each, 612 bytes for SmolLM2's Q8_0) started `tile - 1` fresh streams per tile, whose first
/// lines the hardware prefetcher never had time to fetch (a perf profile of Chromium put half of
/// the mat-vec's Q8_0 decode samples on those loads). Returns the tiles' first rows, the stride
/// and the rows left over.
fn streams(rows: Range<usize>, tile: usize) -> (Range<usize>, usize, Range<usize>) {
    let stride = rows.len() / tile;
    (rows.start..rows.start + stride, stride, rows.start + stride * tile..rows.end)
}

/// The prompt tile of Q5_0 (the rows past a matrix's last interleaved group) and of the
/// K-quants: [`WIDE_PROMPT_ROWS`] × [`WIDE_PROMPT_TOKENS`] (Q5_0's fifth bits cost a dozen
/// instructions per row and block, Q6_K's two high bits 16 per 64 values, spread over more
/// tokens). Kernel benchmark (Qwen2.5's shapes, 120 tokens, Chromium), ns per weight and token:
/// Q5_0 (2026-12-04) 3 × 4 0.079, 2 × 4 0.067, 4 × 4 0.069, 1 × 8 0.094, 3 × 8 0.066, 2 × 8
/// 0.062-0.065; the Xeon, 2026-12-07, a layer: Q6_K 3 × 4 0.0389 → 2 × 8 0.0325, Q4_K 0.0248 →
/// 0.0238.
const WIDE_PROMPT_ROWS: usize = 2;
const WIDE_PROMPT_TOKENS: usize = 8;

/// Weight bytes per chunk of a prompt mat-mul's rows ([`cache_blocked`]): with a batch of
/// tiles ([`TILE_BATCH_BYTES`]), well inside a core's L2 (2 MB on the Xeon measured). Package
/// A/B, Chromium, that Xeon, 2 threads, 16 tokens a pass: Qwen2.5-0.5B Q8_0 prefill 134 → 147
/// tok/s; the kernel benchmark (one thread, 8 layers, 16 tokens at a time) 64 KB, 256 KB and
/// 1 MB chunks within noise of each other and of none.
const WEIGHT_CHUNK_BYTES: usize = 256 << 10;
/// Bytes of prepared token tiles per batch of [`cache_blocked`] (all of a 64-token pass for
/// Qwen2.5's 896 columns, 13 tiles of its 4864).
const TILE_BATCH_BYTES: usize = 512 << 10;

/// A prompt mat-mul blocked for the core's cache: the `units` (rows or interleaved groups,
/// `unit_bytes` of weights each) in chunks of about [`WEIGHT_CHUNK_BYTES`] (a multiple of
/// `align` units), each chunk run by `run(state, tile, chunk)` against every one of a batch of
/// token tiles before the next, so that its weights come from memory once per batch rather
/// than once per tile. The `tiles` token tiles are prepared by `prepare(state, tile)` (`state`
/// from `new`, `tile_bytes` each once prepared), a batch of about [`TILE_BATCH_BYTES`] at a
/// time.
#[allow(clippy::too_many_arguments)]
fn cache_blocked<S>(units: Range<usize>, unit_bytes: usize, align: usize, tiles: usize, tile_bytes: usize, new: fn() -> S, prepare: &dyn Fn(&mut S, usize), run: &dyn Fn(&S, usize, Range<usize>)) {
    let chunk = (WEIGHT_CHUNK_BYTES / unit_bytes.max(1)).max(align) / align * align;
    let batch = (TILE_BATCH_BYTES / tile_bytes.max(1)).clamp(1, tiles.max(1));
    let mut states: Vec<S> = Vec::new();
    for b0 in (0..tiles).step_by(batch) {
        let batch = b0..(b0 + batch).min(tiles);
        states.truncate(batch.len());
        states.extend((states.len()..batch.len()).map(|_| new()));
        states.iter_mut().zip(batch.clone()).for_each(|(s, t)| prepare(s, t));
        for c0 in units.clone().step_by(chunk) {
            let c = c0..(c0 + chunk).min(units.end);
            states.iter().zip(batch.clone()).for_each(|(s, t)| run(s, t, c.clone()));
        }
    }
}

/// Tokens `tokens` (a multiple of `T`) × rows `rows` of [`matmul`] by prompt tiles of `R` rows
/// × `T` tokens, blocked for the cache ([`cache_blocked`]), the rows of each chunk a stride
/// apart ([`streams`]): `prepare` readies each `T` tokens in a state from `new` (`tile_bytes`
/// of it; Q8_0 widens them there), `tile` computes `R` rows of them and `tile1` one row (the
/// rows left over).
#[allow(clippy::too_many_arguments)]
fn prompt_tiles<'a, const R: usize, const T: usize, S>(
    w: &[u8],
    rb: usize,
    acts: &'a [QuantizedActs],
    out: &TokenRows,
    rows: Range<usize>,
    tokens: Range<usize>,
    tile_bytes: usize,
    new: fn() -> S,
    prepare: impl Fn(&mut S, [&'a QuantizedActs; T]),
    tile: impl Fn(&S, [*const u8; R], [&'a QuantizedActs; T]) -> [[f32; T]; R],
    tile1: impl Fn(&S, [*const u8; 1], [&'a QuantizedActs; T]) -> [[f32; T]; 1],
) {
    debug_assert!(tokens.len() % T == 0);
    let row = |r: usize| w[r * rb..].as_ptr();
    let quad = |i: usize| -> [&'a QuantizedActs; T] { core::array::from_fn(|k| &acts[tokens.start + i * T + k]) };
    let run = |state: &S, i: usize, chunk: Range<usize>| {
        let (t0, a) = (tokens.start + i * T, quad(i));
        let (firsts, stride, rest) = streams(chunk, R);
        // SAFETY (the stores): `matmul`'s caller gives it rows `rows` of `out`; the tokens exist.
        for r0 in firsts {
            let o = tile(state, core::array::from_fn(|i| row(r0 + i * stride)), a);
            for (i, ot) in o.iter().enumerate() {
                ot.iter().enumerate().for_each(|(t, &v)| unsafe { out.set(t0 + t, r0 + i * stride, v) });
            }
        }
        for r in rest {
            tile1(state, [row(r)], a)[0].iter().enumerate().for_each(|(t, &v)| unsafe { out.set(t0 + t, r, v) });
        }
    };
    cache_blocked(rows, rb, R, tokens.len() / T, tile_bytes, new, &|s, i| prepare(s, quad(i)), &run);
}

/// Q8_0 rows per prompt tile ([`q8_0_prompt_tile`], × [`PREFILL_TOKENS`] tokens). Kernel
/// benchmark (Qwen2.5-0.5B's shapes, 120 tokens), ns per weight and token: Chromium
/// (relaxed-SIMD) 1 row 0.073, 2 0.050, 3 0.045, 4 0.042, against 0.060 for the 8-bit
/// relaxed tiles of 3 × 4; Node (simd128) 4 rows 0.058-0.064 against 0.105-0.109.
const Q8_0_PROMPT_ROWS: usize = 4;
/// Q8_0 rows per prompt tile of [`q8_0_tile_fused`] (× [`PREFILL_TOKENS`] tokens). Kernel
/// benchmark, Chromium, the Xeon with AVX-VNNI, Qwen2.5-0.5B's layer: 3 rows 0.030 ns per weight
/// and token, 4 rows 0.025, against 0.042 for [`q8_0_prompt_tile`].
#[cfg(target_feature = "relaxed-simd")]
const Q8_0_FUSED_PROMPT_ROWS: usize = 4;

/// Groups of four interleaved rows read at once in decode, each its own stream of weights: a
/// mat-vec that streams its weights from memory is bound by how many streams run at once, not
/// by its instructions. Node (simd128), a 64 MB Q4_0 matrix: 1 group 0.22 ns per weight, 2
/// 0.17, 4 0.085, 8 0.08-0.09 (the file order's 4-row tiles 0.082); a 1536 × 576 one in cache:
/// 1 group 0.060, 4 0.065-0.080 (file order 0.075-0.085).
pub const DECODE_GROUPS: usize = 4;
/// Interleaved groups per prompt tile (× [`PREFILL_TOKENS`] tokens): Q4_0's by the fused dot-add
/// ([`Q4_0_FUSED_PROMPT_GROUPS`]) aside. Kernel benchmark, Chromium, the Xeon with AVX-VNNI, 8
/// layers of Qwen2.5-0.5B, 16 tokens at a time, ns per weight and token, 2 groups → 3: Q8_0
/// 0.0235 → 0.0275 (its two chains per group and token spill), Q5_0 no better (0.0271).
pub const PROMPT_GROUPS: usize = 2;
/// Groups per prompt tile of the interleaved Q4_0 by the fused dot-add (one chain per group and
/// token, nothing to unpack but the nibbles): the same benchmark, 2 groups 0.0230, 3 0.0184.
#[cfg(target_feature = "relaxed-simd")]
const Q4_0_FUSED_PROMPT_GROUPS: usize = 3;
/// The interleaved Q5_0's prompt tiles by the fused dot-add: groups × tokens (then a quad of
/// [`PROMPT_GROUPS`] groups for the tokens left over), its fifth bits' unpacking (nine
/// instructions per pair of vectors, Q4_0's three) spread over eight tokens. Kernel benchmark,
/// Chromium, the Xeon with AVX-VNNI, 8 layers of Qwen2.5-0.5B, 64 tokens at a time, ns per
/// weight and token: 2 × 4 0.0276 (0.0306 in a slower state of the VM), 3 × 8 0.0218-0.0232,
/// 2 × 8 0.0229, 4 × 8 0.0246, 3 × 6 0.0243, 2 × 6 0.0251, 2 × 12 0.0263, 1 × 8 0.0446. Q4_0's
/// 3 × 8 measured 0.034 against its 3 × 4's 0.021 there.
#[cfg(target_feature = "relaxed-simd")]
const Q5_0_X4_PROMPT_GROUPS: usize = 3;
#[cfg(target_feature = "relaxed-simd")]
const Q5_0_X4_PROMPT_TOKENS: usize = 8;

/// Rows `rows` of a Q4_0, Q5_0 or Q8_0 matrix (`ty`) of `total_rows` rows (`rb` bytes each) in
/// its interleaved order ([`crate::quant::RowOrder::interleaved`]) times every token of `acts`,
/// into `out`: by [`x4_prompt_tile`], [`PROMPT_GROUPS`] groups (or [`Q4_0_FUSED_PROMPT_GROUPS`]) × [`PREFILL_TOKENS`] tokens at
/// a time (Q5_0 by the fused dot-add first [`Q5_0_X4_PROMPT_GROUPS`] × [`Q5_0_X4_PROMPT_TOKENS`]), and the tokens left over by [`x4_tile`], [`DECODE_GROUPS`] groups at a time; the
/// rows past the last whole group, which lie in the file's order, by [`matmul`] (`q8_0_min`:
/// they may hold Q8_0's -128). `rows` starts on a group and ends on one or at the last row.
/// The blocks' integer sums by [`X4Dots`] where the engine fuses its dot-add, else
/// [`X4Pairs`] (Q8_0: [`X4Wide`]). `scale_shift`: the matrix's scales are `2^scale_shift` times
/// the file's ([`crate::quant::row_order::x4_normalize_scales`]).
#[allow(clippy::too_many_arguments)]
pub fn matmul_x4(ty: GgmlType, q8_0_min: bool, scale_shift: u8, w: &[u8], rb: usize, total_rows: usize, acts: &[QuantizedActs], out: &TokenRows, rows: Range<usize>) {
    macro_rules! by {
        ($d:ty, $p:ty, $c:ty) => {
            by!($d, $p, $c, PROMPT_GROUPS, PREFILL_TOKENS)
        };
        ($d:ty, $p:ty, $c:ty, $g:expr) => {
            by!($d, $p, $c, $g, PREFILL_TOKENS, $g)
        };
        ($d:ty, $p:ty, $c:ty, $g:expr, $t:expr) => {
            by!($d, $p, $c, $g, $t, PROMPT_GROUPS)
        };
        ($d:ty, $p:ty, $c:ty, $g:expr, $t:expr, $g4:expr) => {
            matmul_x4_by::<$d, $p, $c, $g, $t, $g4>(q8_0_min, x4_scale_pow(scale_shift), w, rb, total_rows, acts, out, rows)
        };
    }
    match (ty, fused_dot_add()) {
        #[cfg(target_feature = "relaxed-simd")]
        (GgmlType::Q4K, true) => matmul_q4_k_x4::<X4Dots<2>, X4Dots<1>>(w, rb, total_rows, acts, out, rows),
        (GgmlType::Q4K, _) => matmul_q4_k_x4::<X4Pairs, X4Pairs>(w, rb, total_rows, acts, out, rows),
        #[cfg(target_feature = "relaxed-simd")]
        (GgmlType::Q4_0, true) => by!(X4Dots<2>, X4Dots<1>, X4Nibbles<false>, Q4_0_FUSED_PROMPT_GROUPS),
        #[cfg(target_feature = "relaxed-simd")]
        (GgmlType::Q5_0, true) => by!(X4Dots<2>, X4Dots<1>, X4Nibbles<true>, Q5_0_X4_PROMPT_GROUPS, Q5_0_X4_PROMPT_TOKENS),
        #[cfg(target_feature = "relaxed-simd")]
        (GgmlType::Q8_0, true) => by!(X4Dots<2>, X4Dots<2>, X4Bytes),
        (GgmlType::Q4_0, _) => by!(X4Pairs, X4Pairs, X4Nibbles<false>),
        (GgmlType::Q5_0, _) => by!(X4Pairs, X4Pairs, X4Nibbles<true>),
        (GgmlType::Q8_0, _) => by!(X4Wide, X4Wide, X4Bytes),
        _ => panic!("{} has no interleaved kernel", ty.name()),
    }
}

/// [`matmul_x4`] of `C`'s type with the block sums of `D` in decode's tiles and `P` in the
/// prompts', whose tiles take `PG` groups × `PT` tokens, and the quad of tokens left over where
/// `PT` is more `PG4` groups.
#[allow(clippy::too_many_arguments)]
fn matmul_x4_by<D: X4Acc, P: X4Acc, C: X4Type, const PG: usize, const PT: usize, const PG4: usize>(q8_0_min: bool, pow: v128, w: &[u8], rb: usize, total_rows: usize, acts: &[QuantizedActs], out: &TokenRows, rows: Range<usize>) {
    let ty = C::TY;
    let (groups, grouped) = x4_groups(ty, w, rb, total_rows, &rows);
    let nb = rb / ty.block_bytes();
    acts.iter().for_each(|a| check_acts(ty, a, nb * 32));
    // SAFETY (every tile below): its groups lie in `rows`, below `grouped`, within `w` (checked
    // above); the activations are checked and the tokens exist. The stores: this call owns
    // rows `rows` of `out`.
    let group = |g: usize| w[g * GROUP_ROWS * rb..].as_ptr();
    let store = |t: usize, g: usize, v: v128| unsafe { x4_store(out, t, g, v) };
    let full_tokens = if acts.len() > 1 { acts.len() / PREFILL_TOKENS * PREFILL_TOKENS } else { 0 };
    // The prompt tiles: of `PT` tokens, then (where `PT` is more) a quad of the rest, each tile's
    // tokens packed for it ([`PromptActsX4`]).
    let wide = full_tokens / PT * PT;
    let unit_bytes = GROUP_ROWS * rb;
    let pack = |tokens: usize| move |p: &mut PromptActsX4, t0: usize| p.pack(&acts[t0..t0 + tokens], nb, C::BIAS);
    let tile = |p: &PromptActsX4, gs: [usize; PG], _| unsafe { x4_prompt_tile::<P, C, PG, PT>(gs.map(group), p, nb, pow) };
    x4_prompt_tiles(&store, 0..wide, groups.clone(), unit_bytes, 16 * packed_block(PT) * nb, PromptActsX4::new, &pack(PT), tile);
    let tile = |p: &PromptActsX4, gs: [usize; PG4], _| unsafe { x4_prompt_tile::<P, C, PG4, PREFILL_TOKENS>(gs.map(group), p, nb, pow) };
    x4_prompt_tiles(&store, wide..full_tokens, groups.clone(), unit_bytes, 16 * packed_block(PREFILL_TOKENS) * nb, PromptActsX4::new, &pack(PREFILL_TOKENS), tile);
    let tile = |gs: [usize; DECODE_GROUPS], a: &QuantizedActs| unsafe { x4_tile::<D, C, DECODE_GROUPS>(gs.map(group), a, nb, pow) };
    x4_decode_tiles(&store, acts, full_tokens, groups, tile, |g, a| unsafe { x4_tile::<D, C, 1>([group(g)], a, nb, pow) }[0]);
    if rows.end > grouped {
        matmul(ty, q8_0_min, w, rb, acts, out, grouped.max(rows.start)..rows.end);
    }
}

/// Tokens `tokens` (a multiple of `T`) × the interleaved groups `groups` (`unit_bytes` each)
/// by tiles of `G` groups × `T` tokens, each result stored by `store(token, group, rows)`:
/// blocked for the cache ([`cache_blocked`]), in each chunk `G` groups at a time, a stride
/// apart. `prepare(state, t0)` readies the tokens from `t0` in a state from `new` (`tile_bytes`
/// of it: [`PromptActsX4`]'s packing), `tile(state, groups, t0)` computes a tile.
#[allow(clippy::too_many_arguments)]
fn x4_prompt_tiles<S, const G: usize, const T: usize>(
    store: &impl Fn(usize, usize, v128),
    tokens: Range<usize>,
    groups: Range<usize>,
    unit_bytes: usize,
    tile_bytes: usize,
    new: fn() -> S,
    prepare: &dyn Fn(&mut S, usize),
    tile: impl Fn(&S, [usize; G], usize) -> [[v128; T]; G],
) {
    let run = |state: &S, i: usize, chunk: Range<usize>| {
        let t0 = tokens.start + i * T;
        let stride = chunk.len() / G;
        for g in chunk.start..chunk.start + stride {
            let gs: [usize; G] = core::array::from_fn(|i| g + i * stride);
            gs.iter().zip(tile(state, gs, t0)).for_each(|(&g, o)| o.iter().enumerate().for_each(|(t, &v)| store(t0 + t, g, v)));
        }
        // The groups left over in one more tile, its last group repeated where they are fewer
        // than `G` (a one-group tile of eight tokens ran at half the speed of a three-group one).
        let rest = chunk.start + stride * G..chunk.end;
        if !rest.is_empty() {
            let gs: [usize; G] = core::array::from_fn(|i| (rest.start + i).min(rest.end - 1));
            rest.zip(tile(state, gs, t0)).for_each(|(g, o)| o.iter().enumerate().for_each(|(t, &v)| store(t0 + t, g, v)));
        }
    };
    cache_blocked(groups, unit_bytes, G, tokens.len() / T, tile_bytes, new, &|s, i| prepare(s, tokens.start + i * T), &run);
}

/// Decode's tiles of an interleaved mat-mul: each token of `acts` from `first_token` against
/// the groups `groups`, [`DECODE_GROUPS`] at a time a stride apart (as [`matmul`]'s rows, so
/// that each stream runs on) by `tile`, the groups left over one at a time by `tile1`, stored
/// by `store(token, group, rows)`.
fn x4_decode_tiles(
    store: &impl Fn(usize, usize, v128),
    acts: &[QuantizedActs],
    first_token: usize,
    groups: Range<usize>,
    tile: impl Fn([usize; DECODE_GROUPS], &QuantizedActs) -> [v128; DECODE_GROUPS],
    tile1: impl Fn(usize, &QuantizedActs) -> v128,
) {
    let stride = groups.len() / DECODE_GROUPS;
    for (t, a) in acts.iter().enumerate().skip(first_token) {
        for g in groups.start..groups.start + stride {
            let gs: [usize; DECODE_GROUPS] = core::array::from_fn(|i| g + i * stride);
            gs.iter().zip(tile(gs, a)).for_each(|(&g, o)| store(t, g, o));
        }
        for g in groups.start + stride * DECODE_GROUPS..groups.end {
            store(t, g, tile1(g, a));
        }
    }
}

/// The whole interleaved groups of rows `rows` of a `ty` matrix of `total_rows` rows (`rb` bytes
/// each, `w`), checked to start on a group and end on one or at the last row, and the first row
/// past the last group.
fn x4_groups(ty: GgmlType, w: &[u8], rb: usize, total_rows: usize, rows: &Range<usize>) -> (Range<usize>, usize) {
    let grouped = total_rows / GROUP_ROWS * GROUP_ROWS;
    assert!(w.len() == total_rows * rb && rows.end <= total_rows, "{}: rows {rows:?} of a matrix of {total_rows} rows, {} bytes", ty.name(), w.len());
    assert!(rows.start % GROUP_ROWS == 0 && (rows.end % GROUP_ROWS == 0 || rows.end == total_rows), "{}: rows {rows:?} split an interleaved group", ty.name());
    (rows.start / GROUP_ROWS..rows.end.min(grouped).max(rows.start) / GROUP_ROWS, grouped)
}

/// Stores group `g`'s four rows' values (`v`, lane `k` row `k`) of token `t` into `out`.
///
/// # Safety
/// No other thread writes these rows of `out` (the caller owns them).
unsafe fn x4_store(out: &TokenRows, t: usize, g: usize, v: v128) {
    // v128 and [f32; 4] have the same size.
    out.rows_mut(t, g * GROUP_ROWS..(g + 1) * GROUP_ROWS).copy_from_slice(&core::mem::transmute::<v128, [f32; 4]>(v))
}

/// Eight f16 values (16 bytes at `p`) as two f32x4, exactly ([`f16_lanes_to_f32`]).
///
/// # Safety
/// `p..p + 16` must be readable.
#[inline(always)]
unsafe fn load_f16x8(p: *const f16) -> (v128, v128) {
    let h = load(p as *const u8);
    (f16_lanes_to_f32(u32x4_extend_low_u16x8(h)), f16_lanes_to_f32(u32x4_extend_high_u16x8(h)))
}

/// The first `src.len() / 8 · 8` values of `src` as f32 into `dst` (as long), exactly; returns
/// how many it did.
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) -> usize {
    assert!(dst.len() >= src.len());
    let n = src.len() / 8 * 8;
    for i in (0..n).step_by(8) {
        // SAFETY: i + 8 <= n, within both.
        unsafe {
            let (a, b) = load_f16x8(src.as_ptr().add(i));
            let o = dst.as_mut_ptr().add(i) as *mut v128;
            v128_store(o, a);
            v128_store(o.add(1), b);
        }
    }
    n
}

/// `Σ a[i]·b[i]` (`a.len()` a multiple of 8, `b` at least as long): per 8 values the two
/// lanes' products added, then to four accumulators summed at the end.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert!(a.len() % 8 == 0 && b.len() >= a.len());
    let mut acc = f32x4_splat(0.0);
    for i in (0..a.len()).step_by(8) {
        // SAFETY: i + 8 <= len of both (checked above).
        unsafe {
            let (a, b) = (a.as_ptr().add(i) as *const v128, b.as_ptr().add(i) as *const v128);
            acc = f32x4_add(acc, f32x4_add(f32x4_mul(v128_load(a), v128_load(b)), f32x4_mul(v128_load(a.add(1)), v128_load(b.add(1)))));
        }
    }
    hsum_f32(acc)
}

/// `out[d] = Σ_i w[i] · rows[i·out.len() + d]` (`rows` at least `w.len()` rows of `out.len()`
/// values), over the first `out.len() / 4 · 4` values of `out`; returns how many it did. Each
/// value is summed in row order from zero, as the scalar `out[d] += w[i] · rows[i][d]` row after
/// row: the same bits. Up to 32 values of `out` stay in registers across all the rows.
pub fn weighted_rows_sum(w: &[f32], rows: &[f32], out: &mut [f32]) -> usize {
    let width = out.len();
    assert!(rows.len() >= w.len() * width);
    /// Values `d..d + 4·B` of `out`.
    #[inline(always)]
    fn columns<const B: usize>(w: &[f32], rows: &[f32], width: usize, out: &mut [f32], d: usize) {
        let mut acc = [f32x4_splat(0.0); B];
        for (i, &wi) in w.iter().enumerate() {
            let wi = f32x4_splat(wi);
            // SAFETY: d + 4·B <= width, row i < w.len(): within `rows` (checked by the caller).
            let p = unsafe { rows.as_ptr().add(i * width + d) };
            for (b, a) in acc.iter_mut().enumerate() {
                *a = f32x4_add(*a, f32x4_mul(wi, unsafe { v128_load(p.add(4 * b) as *const v128) }));
            }
        }
        for (b, a) in acc.iter().enumerate() {
            // SAFETY: d + 4·B <= out.len().
            unsafe { v128_store(out.as_mut_ptr().add(d + 4 * b) as *mut v128, *a) };
        }
    }
    let mut d = 0;
    while d + 32 <= width {
        columns::<8>(w, rows, width, out, d);
        d += 32;
    }
    while d + 4 <= width {
        columns::<1>(w, rows, width, out, d);
        d += 4;
    }
    d
}

/// `x` rounded to the nearest f16 (ties to even) and back to f32, lane-wise: the bits of `half`'s
/// `f16::from_f32(x).to_f32()` for every x but NaN's payloads. Normal f16 magnitudes (from
/// 2^-14) round at mantissa bit 13, 65520 and above to +∞; subnormal ones to a multiple of 2^-24
/// by adding 0.5 (whose ulp that is) and taking it away.
#[inline(always)]
fn round_f16_lanes(x: v128) -> v128 {
    let sign = v128_and(x, i32x4_splat(i32::MIN));
    let abs = v128_andnot(x, sign);
    let normal = v128_and(i32x4_add(abs, i32x4_add(i32x4_splat(0xFFF), v128_and(u32x4_shr(abs, 13), i32x4_splat(1)))), i32x4_splat(!0x1FFF));
    let normal = v128_bitselect(i32x4_splat(0x7F80_0000), normal, i32x4_ge(normal, i32x4_splat(0x4780_0000)));
    let subnormal = f32x4_sub(f32x4_add(abs, f32x4_splat(0.5)), f32x4_splat(0.5));
    let magnitude = v128_bitselect(subnormal, normal, i32x4_lt(abs, i32x4_splat(0x3880_0000)));
    // Infinities and NaNs as they are.
    let magnitude = v128_bitselect(abs, magnitude, i32x4_ge(abs, i32x4_splat(0x7F80_0000)));
    v128_or(magnitude, sign)
}

/// `x` as f16 bits in the low halves of u32 lanes: the bits of `half`'s `f16::from_f32` for every
/// x, NaNs included (quiet, the mantissa's top bits kept). The magnitude rounded by
/// [`round_f16_lanes`], then its exponent rebiased (normal f16s) or counted in units of 2^-24
/// (subnormal ones).
#[inline(always)]
fn f16_bits_lanes(x: v128) -> v128 {
    let abs_x = v128_and(x, i32x4_splat(0x7FFF_FFFF));
    let rounded = v128_and(round_f16_lanes(x), i32x4_splat(0x7FFF_FFFF));
    let normal = i32x4_sub(u32x4_shr(rounded, 13), i32x4_splat(112 << 10));
    let subnormal = i32x4_trunc_sat_f32x4(f32x4_mul(rounded, f32x4_splat(16_777_216.0)));
    let finite = v128_bitselect(subnormal, normal, i32x4_lt(rounded, i32x4_splat(0x3880_0000)));
    // Infinities (given or rounded to) and NaNs.
    let nan_bits = v128_and(i32x4_gt(abs_x, i32x4_splat(0x7F80_0000)), v128_or(i32x4_splat(0x200), u32x4_shr(v128_and(x, i32x4_splat(0x7F_FFFF)), 13)));
    let special = v128_or(i32x4_splat(0x7C00), nan_bits);
    let bits = v128_bitselect(special, finite, i32x4_ge(rounded, i32x4_splat(0x7F80_0000)));
    v128_or(bits, u32x4_shr(v128_and(x, i32x4_splat(i32::MIN)), 16))
}

/// The first `src.len() / 8 · 8` values of `src` as f16 into `dst` (as long), the bits of
/// `half`'s conversion ([`f16_bits_lanes`]); returns how many it did.
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) -> usize {
    assert!(dst.len() >= src.len());
    let n = src.len() / 8 * 8;
    for i in (0..n).step_by(8) {
        // SAFETY: i + 8 <= n, within both.
        unsafe {
            let p = src.as_ptr().add(i) as *const v128;
            let (a, b) = (f16_bits_lanes(v128_load(p)), f16_bits_lanes(v128_load(p.add(1))));
            v128_store(dst.as_mut_ptr().add(i) as *mut v128, u16x8_narrow_i32x4(a, b));
        }
    }
    n
}

/// The first `x.len() / 4 · 4` values of `x` rounded to f16 precision in place
/// ([`round_f16_lanes`]); returns how many it did.
pub fn round_to_f16(x: &mut [f32]) -> usize {
    let n = x.len() / 4 * 4;
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= len.
        unsafe {
            let p = x.as_mut_ptr().add(i) as *mut v128;
            v128_store(p, round_f16_lanes(v128_load(p)));
        }
    }
    n
}

/// `e^x` lane-wise, within 2 ulp of the exact value for x in -87..=88; above 88 +∞ (e^x
/// overflows f32 from 88.72), below -87 e^-87 (≈ 1.6e-38, the least normal's order), NaN
/// kept. Cody-Waite reduction `x = n·ln 2 + r`, |r| ≤ ln 2 / 2, Cephes' degree-6 polynomial
/// for e^r, and 2^n built in the exponent bits.
#[inline(always)]
fn exp_f32x4(x: v128) -> v128 {
    let (overflow, nan) = (f32x4_gt(x, f32x4_splat(88.0)), f32x4_ne(x, x));
    let x0 = x;
    // (With relaxed-SIMD, LLVM may lower pmin/pmax to the relaxed ones, whose NaN lanes are
    // the engine's choice: NaN lanes are put back at the end.)
    let x = f32x4_pmin(f32x4_pmax(x, f32x4_splat(-87.0)), f32x4_splat(88.0));
    let n = f32x4_nearest(f32x4_mul(x, f32x4_splat(core::f32::consts::LOG2_E)));
    let r = f32x4_sub(f32x4_sub(x, f32x4_mul(n, f32x4_splat(0.693_359_4))), f32x4_mul(n, f32x4_splat(-2.121_944_4e-4)));
    let mut p = f32x4_splat(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = f32x4_add(f32x4_mul(p, r), f32x4_splat(c));
    }
    let e = f32x4_add(f32x4_add(f32x4_mul(p, f32x4_mul(r, r)), r), f32x4_splat(1.0));
    // n in -126..=127: 2^n is a normal f32 whose exponent field is n + 127.
    let pow2 = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
    v128_bitselect(x0, v128_bitselect(f32x4_splat(f32::INFINITY), f32x4_mul(e, pow2), overflow), nan)
}

/// `gate = silu(gate) · up` (`x / (1 + e^-x)`, as the scalar `silu_mul`, with [`exp_f32x4`])
/// over the first `gate.len() / 4 · 4` values; returns how many it did.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) -> usize {
    let n = gate.len().min(up.len()) / 4 * 4;
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n, within both slices.
        unsafe {
            let g = gate.as_mut_ptr().add(i) as *mut v128;
            let x = v128_load(g);
            let e = exp_f32x4(f32x4_neg(x));
            v128_store(g, f32x4_mul(f32x4_div(x, f32x4_add(f32x4_splat(1.0), e)), v128_load(up.as_ptr().add(i) as *const v128)));
        }
    }
    n
}

/// Softmax in place (lane-wise maximum and [`exp_f32x4`], four partial sums): as the scalar
/// `softmax` but for the order of the sum and the exponential's last bit.
pub fn softmax(x: &mut [f32]) {
    let n = x.len() / 4 * 4;
    // A NaN score makes every result NaN, as in the scalar code (its sum is NaN), whatever the
    // maximum makes of it.
    let mut m = f32x4_splat(f32::NEG_INFINITY);
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= len.
        m = f32x4_pmax(m, unsafe { v128_load(x.as_ptr().add(i) as *const v128) });
    }
    let lanes: [f32; 4] = unsafe { core::mem::transmute::<v128, [f32; 4]>(m) };
    let max = lanes.iter().chain(&x[n..]).fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let (mut sum, max4) = (f32x4_splat(0.0), f32x4_splat(max));
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= len.
        unsafe {
            let p = x.as_mut_ptr().add(i) as *mut v128;
            let e = exp_f32x4(f32x4_sub(v128_load(p), max4));
            v128_store(p, e);
            sum = f32x4_add(sum, e);
        }
    }
    let mut total = hsum_f32(sum);
    for v in &mut x[n..] {
        *v = (*v - max).exp();
        total += *v;
    }
    let inv = 1.0 / total;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// One block of 32 activations as Q8_0, the bits of the scalar [`crate::quant::q8_0_block`]
/// (the same maximum, scale and ties-to-even rounding, lane-wise), and the codes' sum.
pub fn q8_0_acts_block(x: &[f32; 32]) -> (f32, [i8; 32], i32) {
    // SAFETY (the loads): 8 × 4 values of a 32-value array.
    let v: [v128; 8] = core::array::from_fn(|i| unsafe { v128_load(x.as_ptr().add(4 * i) as *const v128) });
    // NaN lanes as zero, so the maximum skips them as `f32::max` does (whichever NaN rule the
    // engine's max has: LLVM may lower pmax to the relaxed one).
    let amax4 = v.iter().fold(f32x4_splat(0.0), |a, &v| f32x4_pmax(a, v128_and(f32x4_abs(v), f32x4_eq(v, v))));
    let lanes: [f32; 4] = unsafe { core::mem::transmute::<v128, [f32; 4]>(amax4) };
    let amax = lanes.iter().fold(0.0f32, |a, &b| a.max(b));
    let d = amax / 127.0;
    let id = f32x4_splat(if amax != 0.0 { 127.0 / amax } else { 0.0 });
    let q = |v: v128| i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(v, id)));
    let h: [v128; 4] = core::array::from_fn(|i| i16x8_narrow_i32x4(q(v[2 * i]), q(v[2 * i + 1])));
    let b = [i8x16_narrow_i16x8(h[0], h[1]), i8x16_narrow_i16x8(h[2], h[3])];
    let sums = i32x4_add(i32x4_extadd_pairwise_i16x8(i16x8_extadd_pairwise_i8x16(b[0])), i32x4_extadd_pairwise_i16x8(i16x8_extadd_pairwise_i8x16(b[1])));
    let s: [i32; 4] = unsafe { core::mem::transmute::<v128, [i32; 4]>(sums) };
    (d, unsafe { core::mem::transmute::<[v128; 2], [i8; 32]>(b) }, s.iter().sum())
}
