//! pocketlm: 4-bit quantized small language models on the CPU (scalar, wasm SIMD) and WebGPU,
//! loaded straight from GGUF or Hugging Face safetensors.
//!
//! The flow runs one way: [`format`] parses files into a [`model::ModelSpec`] and tensors,
//! [`quant`] knows the block formats, [`model`] holds the weights and the forward pass,
//! [`backend`] computes, [`tokenizer`] and [`chat`] turn text into ids, [`sampling`] picks
//! tokens and [`runtime`] runs sessions.

pub mod backend;
pub mod chat;
pub(crate) mod clock;
pub mod error;
pub mod format;
pub mod model;
pub mod quant;
pub mod runtime;
pub mod sampling;
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
pub use model::{LoadOptions, Model};
pub use runtime::{BackendChoice, FinishReason, GenerateOptions, Generation, Session};
pub use sampling::SamplingParams;
