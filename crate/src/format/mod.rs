//! Model file formats: GGUF, and the Hugging Face layout (safetensors + config.json).
//! Parsers never trust a size or an offset: every read is bounds-checked and every count is
//! checked against the bytes that remain before anything is allocated from it.

pub mod gguf;
pub mod hf;
pub mod safetensors;

use crate::quant::GgmlType;

/// Where one tensor's bytes lie in its file, in the file's own type.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions innermost first (GGUF order): `dims[0]` is the row length.
    pub dims: Vec<usize>,
    pub ty: GgmlType,
    /// Absolute byte offset of the tensor data in the file.
    pub offset: usize,
    pub size: usize,
}

impl TensorInfo {
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }
}
