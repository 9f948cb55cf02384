// Element-wise ops that fusion does not absorb. A (read_write), B and C (read) by entry point:
// act_mul: A = act(A) * B, dims.a = (n, 0 SiLU | 1 GELU); norm_add: A += RMSNorm(B) * C over
// dims.a.x values, dims.f.x = eps (one workgroup); soft_cap: A = cap * tanh(A / cap), dims.f.x = cap.
@group(0) @binding(2) var<storage, read_write> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read> C: array<f32>;

@compute @workgroup_size(64)
fn act_mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dims.a.x {
        A[i] = select(silu(A[i]), gelu_tanh(A[i]), dims.a.y == 1u) * B[i];
    }
}

@compute @workgroup_size(64)
fn norm_add(@builtin(local_invocation_index) lid: u32) {
    let n = dims.a.x;
    var ss = 0.0;
    for (var i = lid; i < n; i += WG) {
        ss += B[i] * B[i];
    }
    let scale = inverseSqrt(lanes_sum(ss, lid, WG) / f32(n) + dims.f.x);
    for (var i = lid; i < n; i += WG) {
        A[i] += B[i] * scale * C[i];
    }
}

@compute @workgroup_size(64)
fn soft_cap(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dims.a.x {
        let t = clamp(A[i] / dims.f.x, -15.0, 15.0);
        let e = exp(2.0 * t);
        A[i] = dims.f.x * (e - 1.0) / (e + 1.0);
    }
}
