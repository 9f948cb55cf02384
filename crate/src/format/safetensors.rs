//! Safetensors files, read through the `safetensors` crate, with errors that name the file.

use std::sync::Arc;

use crate::error::{Error, Result};
use safetensors::{Dtype, SafeTensors};

/// One tensor of a safetensors file: its type, shape (outermost first, as PyTorch) and bytes.
#[derive(Debug, Clone)]
pub struct StTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub start: usize,
    pub end: usize,
}

/// The tensors of one safetensors file, with their bytes kept in one shared buffer.
pub struct SafetensorsFile {
    pub file: String,
    pub buf: Arc<Vec<u8>>,
    pub tensors: std::collections::BTreeMap<String, StTensor>,
}

impl SafetensorsFile {
    pub fn parse(file: &str, buf: Vec<u8>) -> Result<SafetensorsFile> {
        let mut tensors = std::collections::BTreeMap::new();
        {
            let st = SafeTensors::deserialize(&buf).map_err(|e| Error::format(file, format!("not a valid safetensors file: {e}")))?;
            let base = buf.as_ptr() as usize;
            for (name, view) in st.tensors() {
                let data = view.data();
                let start = data.as_ptr() as usize - base;
                tensors.insert(name, StTensor { dtype: view.dtype(), shape: view.shape().to_vec(), start, end: start + data.len() });
            }
        }
        Ok(SafetensorsFile { file: file.to_string(), buf: Arc::new(buf), tensors })
    }

    /// The tensor's values as f32 (from F32, F16 or BF16).
    pub fn to_f32(&self, name: &str, t: &StTensor) -> Result<Vec<f32>> {
        let b = &self.buf[t.start..t.end];
        Ok(match t.dtype {
            Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => return Err(Error::UnsupportedTensorType { file: self.file.clone(), tensor: name.to_string(), ty: format!("{other:?}") }),
        })
    }
}
