// Embedding lookup: row t of X = row TOKENS[t] of the embedding matrix (dequantized) times
// dims.f.x, for the step's tokens (workgroup y = t). One dispatch per part of the matrix; a part
// holds rows dims.b.x .. dims.b.x + dims.a.x.
@group(0) @binding(3) var<storage, read_write> OUT: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> TOKENS: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let t = wid.y;
    if t >= step.n_tokens {
        return;
    }
    let token = TOKENS[t];
    let first = dims.b.x;
    if token < first || token >= first + dims.a.x {
        return;
    }
    let i = gid.x;
    let n4 = dims.a.y / 4u;
    if i < n4 {
        OUT[t * n4 + i] = chunk4(token - first, i / 8u, i % 8u) * dims.f.x;
    }
}
