//! Paths and fixtures shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root (the workspace).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `../shared/models` beside the repository.
pub fn shared_models() -> PathBuf {
    root().join("../shared/models")
}

pub fn fixture(name: &str) -> serde_json::Value {
    let p = root().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e} (regenerate with tests/fixtures/make_fixtures.py)", p.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// One GPU device for a whole test binary (Mesa's lavapipe on machines without a GPU).
pub fn gpu() -> std::sync::Arc<pocketlm::backend::gpu::GpuContext> {
    static CTX: std::sync::OnceLock<std::sync::Arc<pocketlm::backend::gpu::GpuContext>> = std::sync::OnceLock::new();
    CTX.get_or_init(|| {
        pocketlm::backend::gpu::context::block_on(pocketlm::backend::gpu::GpuContext::new(&Default::default()))
            .expect("a GPU adapter (Mesa's lavapipe is installed by scripts/setup.sh)")
    })
    .clone()
}

/// A session on `backend` ("cpu" or "gpu").
pub fn session<'a>(model: &'a pocketlm::Model, backend: &str, context: usize) -> pocketlm::Session<&'a pocketlm::Model> {
    match backend {
        "cpu" => pocketlm::Session::new(model, context).unwrap(),
        "gpu" => {
            let weights = pocketlm::backend::gpu::context::block_on(pocketlm::backend::gpu::GpuModel::load(gpu(), model)).unwrap();
            pocketlm::Session::new_gpu(model, weights, context).unwrap()
        }
        _ => panic!("backend {backend}"),
    }
}
