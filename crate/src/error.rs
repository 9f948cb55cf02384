//! The one error type of the crate. Every failure a caller can cause (a bad file, a bad
//! argument, a full context) is a variant with a message that names the file and the problem;
//! nothing in the crate panics on untrusted input.

use std::fmt;

/// Everything that can go wrong in pocketlm, with a stable machine-readable [`Error::code`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file is malformed: truncated, wrong magic, absurd counts or offsets.
    #[error("{file}: {msg}")]
    Format { file: String, msg: String },
    /// The file is well formed but describes an architecture pocketlm does not run.
    #[error("{file}: unsupported architecture '{arch}'")]
    UnknownArchitecture { file: String, arch: String },
    /// A tensor is stored in a type pocketlm cannot read.
    #[error("{file}: tensor '{tensor}' has unsupported type {ty}")]
    UnsupportedTensorType { file: String, tensor: String, ty: String },
    /// The tokenizer (tokenizer.json or a GGUF vocabulary) could not be built.
    #[error("{file}: tokenizer: {msg}")]
    Tokenizer { file: String, msg: String },
    /// The chat template failed to parse or to render.
    #[error("chat template: {0}")]
    Template(String),
    /// The prompt plus the requested tokens do not fit in the context.
    #[error("context full: {needed} tokens needed, the context holds {capacity}")]
    ContextFull { needed: usize, capacity: usize },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A caller passed an invalid option.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Memory for a model or a buffer could not be allocated (wasm's 4 GiB, the tab's budget).
    #[error("out of memory: {what}{}", if *.bytes > 0 { format!(" needs {} bytes", .bytes) } else { String::new() })]
    OutOfMemory { what: String, bytes: u64 },
    /// Generation was aborted by the caller.
    #[error("aborted")]
    Aborted,
    /// The GPU backend cannot run (or go on): see [`GpuFailure`]. The runtime can move to the CPU.
    #[error("GPU: {msg}")]
    Gpu { failure: GpuFailure, msg: String },
}

/// Why the GPU backend failed, each a code a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuFailure {
    /// No WebGPU / Vulkan adapter, or the device could not be created.
    NoAdapter,
    /// The adapter's limits are too small for the model (a buffer, a binding, a shape).
    Limit,
    /// The device was lost (driver reset, tab in the background too long, GPU process crash).
    DeviceLost,
    /// A GPU error the backend did not expect (a validation or internal error).
    Internal,
}

impl Error {
    /// A stable code for programs (and, later, for JS `Error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Format { .. } | Error::UnknownArchitecture { .. } | Error::UnsupportedTensorType { .. } => "MODEL_FORMAT",
            Error::Tokenizer { .. } => "TOKENIZER",
            Error::Template(_) => "CHAT_TEMPLATE",
            Error::ContextFull { .. } => "CONTEXT_FULL",
            Error::Io { .. } => "IO",
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::OutOfMemory { .. } => "OUT_OF_MEMORY",
            Error::Aborted => "ABORTED",
            Error::Gpu { failure, .. } => match failure {
                GpuFailure::NoAdapter => "NO_WEBGPU",
                GpuFailure::Limit => "GPU_LIMIT",
                GpuFailure::DeviceLost => "DEVICE_LOST",
                GpuFailure::Internal => "GPU_ERROR",
            },
        }
    }

    pub(crate) fn gpu(failure: GpuFailure, msg: impl fmt::Display) -> Error {
        Error::Gpu { failure, msg: msg.to_string() }
    }

    pub(crate) fn format(file: &str, msg: impl fmt::Display) -> Error {
        Error::Format { file: file.to_string(), msg: msg.to_string() }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
