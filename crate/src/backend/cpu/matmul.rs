//! Quantized mat-vec and mat-mat: the SIMD tiles where the build has them, the scalar dot
//! products elsewhere, rows split across threads (`threads`).

use std::marker::PhantomData;
use std::ops::Range;

use super::acts::{ActKind, QuantizedActs};
use super::dot::vec_dot;
use super::threads;
use crate::quant::row_order::GROUP_ROWS;
use crate::quant::{QMatrix, RareCodes};
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use crate::quant::RowOrder;

/// A token-major output (`tokens × rows` f32 values) that threads fill in disjoint row ranges.
pub struct TokenRows<'a> {
    ptr: *mut f32,
    rows: usize,
    tokens: usize,
    _out: PhantomData<&'a mut [f32]>,
}

// SAFETY: writers own disjoint row ranges ([`threads::for_row_ranges`]), so no value is
// written twice or read while written.
unsafe impl Send for TokenRows<'_> {}
unsafe impl Sync for TokenRows<'_> {}

impl<'a> TokenRows<'a> {
    pub fn new(out: &'a mut [f32], rows: usize) -> TokenRows<'a> {
        assert!(rows > 0 && out.len() % rows == 0, "output of {} values for rows of {rows}", out.len());
        TokenRows { ptr: out.as_mut_ptr(), rows, tokens: out.len() / rows, _out: PhantomData }
    }

    /// Sets token `t`'s value of row `r`.
    ///
    /// # Safety
    /// No other thread writes row `r` at the same time (each writer owns its rows).
    #[inline(always)]
    pub unsafe fn set(&self, t: usize, r: usize, v: f32) {
        assert!(t < self.tokens && r < self.rows);
        *self.ptr.add(t * self.rows + r) = v;
    }

    /// The values of tokens `ts`, to write in place.
    ///
    /// # Safety
    /// No other thread reads or writes these tokens' values while the slice lives (the writer
    /// owns these tokens whole).
    #[allow(clippy::mut_from_ref)] // disjoint writers, as `set`
    pub unsafe fn tokens_mut(&self, ts: Range<usize>) -> &mut [f32] {
        assert!(ts.start <= ts.end && ts.end <= self.tokens);
        std::slice::from_raw_parts_mut(self.ptr.add(ts.start * self.rows), ts.len() * self.rows)
    }

    /// Token `t`'s values of rows `rows`, to write in place.
    ///
    /// # Safety
    /// No other thread reads or writes these values while the slice lives (each writer owns its
    /// rows).
    #[allow(clippy::mut_from_ref)] // disjoint writers, as `set`
    pub unsafe fn rows_mut(&self, t: usize, rows: Range<usize>) -> &mut [f32] {
        assert!(t < self.tokens && rows.start <= rows.end && rows.end <= self.rows);
        std::slice::from_raw_parts_mut(self.ptr.add(t * self.rows + rows.start), rows.len())
    }
}

/// `out = W · x` for `W` of `out.len()` rows. `scratch` keeps the quantized activations.
pub fn matvec(w: &QMatrix, x: &[f32], out: &mut [f32], scratch: &mut QuantizedActs) {
    debug_assert_eq!(x.len(), w.cols);
    scratch.quantize(ActKind::for_weights(w.ty), x);
    matvec_prequantized(w, scratch, out);
}

/// `out = W · x` with `x` already quantized for `W`'s type (so several matrices reading the same
/// input quantize it once).
pub fn matvec_prequantized(w: &QMatrix, a: &QuantizedActs, out: &mut [f32]) {
    matmul_prequantized(w, std::slice::from_ref(a), out);
}

/// `out[t] = W · x[t]` for each token `t` of `acts` (each quantized for `W`), `out` token-major
/// (`acts.len() × W.rows`). Several tokens share each weight row read (the SIMD kernels' tiles),
/// and the rows are split across the threads in use; each result equals the lone dot product
/// of its row and token, bit for bit, whatever the tile or thread.
pub fn matmul_prequantized(w: &QMatrix, acts: &[QuantizedActs], out: &mut [f32]) {
    assert_eq!(out.len(), acts.len() * w.rows, "mat-mat output size");
    let out = TokenRows::new(out, w.rows);
    // The SIMD kernels leave the rare codes to exact ones; asked here, on the calling thread,
    // so the one-time scan is not raced for by the threads' first rows.
    let rare = if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) { w.rare_codes() } else { RareCodes::default() };
    // Ranges of whole interleaved groups (`GROUP_ROWS`, also the decode tile).
    threads::for_row_ranges(w.rows, w.rows * w.cols * acts.len(), GROUP_ROWS, |rows| rows_of(w, rare, acts, &out, rows));
}

/// Rows `rows` of `W · x[t]` for every token. A matrix with a non-finite scale takes
/// [`vec_dot`] row by row (which takes the scalar code for the rows that hold one); with
/// `rare.q8_0_min`, the Q8_0 kernels that accept -128.
#[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(unused_variables))] // only the SIMD kernels read `rare`
fn rows_of(w: &QMatrix, rare: RareCodes, acts: &[QuantizedActs], out: &TokenRows, rows: Range<usize>) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if super::simd128::handles(w.ty) && !rare.nonfinite_scale {
        return match w.order() {
            RowOrder::Plain => super::simd128::matmul(w.ty, rare.q8_0_min, w.bytes(), w.row_bytes(), acts, out, rows),
            RowOrder::Q4_0x4 | RowOrder::Q5_0x4 | RowOrder::Q8_0x4 | RowOrder::Q4Kx4 => super::simd128::matmul_x4(w.ty, rare.q8_0_min, w.scale_shift(), w.bytes(), w.row_bytes(), w.rows, acts, out, rows),
        };
    }
    for r in rows {
        let row = w.row(r);
        for (t, a) in acts.iter().enumerate() {
            // SAFETY: this call owns rows `rows`.
            unsafe { out.set(t, r, vec_dot(w.ty, &row, a)) };
        }
    }
}
