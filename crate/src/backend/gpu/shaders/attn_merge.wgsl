// Split-KV attention, pass 3 of 3: per query head, the sum of the splits' weighted values.
// dims.a = (n_heads, head_dim, max_splits, -).
@group(0) @binding(2) var<storage, read> PART: array<f32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let hd = dims.a.y;
    let ms = dims.a.z;
    let h = wid.x;
    let n = (step.pos + 1u + WG - 1u) / WG;
    for (var d = lid; d < hd; d += WG) {
        var o = 0.0;
        for (var s = 0u; s < n; s++) {
            o += PART[(h * ms + s) * hd + d];
        }
        OUT[h * hd + d] = o;
    }
}
