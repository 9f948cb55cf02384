// Embedding lookup: X = row `step.token` of the embedding matrix (dequantized) * dims.f.x.
// One dispatch per part of the matrix; a part holds rows dims.b.x .. dims.b.x + dims.a.x.
@group(0) @binding(3) var<storage, read_write> OUT: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = step.token;
    let first = dims.b.x;
    if t < first || t >= first + dims.a.x {
        return;
    }
    let i = gid.x;
    if i < dims.a.y / 4u {
        OUT[i] = chunk4(t - first, i / 8u, i % 8u) * dims.f.x;
    }
}
