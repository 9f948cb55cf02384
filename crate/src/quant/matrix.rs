//! A matrix of quantized rows as it lies in memory: the file's blocks, untouched.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use super::GgmlType;

/// What a matrix holds that the format allows and llama.cpp's quantizers never write, and that
/// the fastest SIMD kernels leave to exact ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RareCodes {
    /// A Q8_0 weight code of -128: the relaxed-SIMD Q8_0 kernel negates weights, which -128
    /// does not survive.
    pub q8_0_min: bool,
    /// A block scale that is infinite or NaN (Q4_0, Q5_0, Q8_0): the SIMD kernels convert
    /// only finite f16 scales.
    pub nonfinite_scale: bool,
}

/// `rows × cols` values of type `ty`, row-major, each row `ty.row_bytes(cols)` bytes. The bytes
/// are a range of a shared buffer (a file read once) or a buffer of their own.
#[derive(Clone)]
pub struct QMatrix {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    buf: Arc<Vec<u8>>,
    range: Range<usize>,
    /// [`QMatrix::rare_codes`], scanned when first asked.
    rare: OnceLock<RareCodes>,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatrix({} {}x{})", self.ty.name(), self.rows, self.cols)
    }
}

impl QMatrix {
    /// `range` must hold exactly `rows * ty.row_bytes(cols)` bytes of `buf` (callers check it).
    pub fn new(ty: GgmlType, rows: usize, cols: usize, buf: Arc<Vec<u8>>, range: Range<usize>) -> QMatrix {
        debug_assert_eq!(range.len(), rows * ty.row_bytes(cols));
        QMatrix { ty, rows, cols, buf, range, rare: OnceLock::new() }
    }

    pub fn owned(ty: GgmlType, rows: usize, cols: usize, bytes: Vec<u8>) -> QMatrix {
        let n = bytes.len();
        QMatrix::new(ty, rows, cols, Arc::new(bytes), 0..n)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }

    pub fn row_bytes(&self) -> usize {
        self.ty.row_bytes(self.cols)
    }

    pub fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.bytes()[r * rb..(r + 1) * rb]
    }

    /// The matrix's [`RareCodes`], its bytes scanned once, when first asked.
    pub fn rare_codes(&self) -> RareCodes {
        *self.rare.get_or_init(|| RareCodes {
            q8_0_min: self.ty == GgmlType::Q8_0 && super::q8_0_has_min_code(self.bytes()),
            nonfinite_scale: super::has_nonfinite_block_scale(self.ty, self.bytes()),
        })
    }

    /// Whether this is a Q8_0 matrix with a weight code of -128 ([`RareCodes::q8_0_min`]).
    pub fn has_q8_0_min(&self) -> bool {
        self.rare_codes().q8_0_min
    }

    /// Row `r` as f32 values (used for embedding lookups).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        super::dequantize(self.ty, self.row(r), out);
    }

    /// A contiguous block of rows as its own matrix (for fused tensors such as Phi-3's QKV).
    pub fn rows_range(&self, start: usize, n: usize) -> QMatrix {
        let rb = self.row_bytes();
        let s = self.range.start + start * rb;
        QMatrix::new(self.ty, n, self.cols, self.buf.clone(), s..s + n * rb)
    }
}
