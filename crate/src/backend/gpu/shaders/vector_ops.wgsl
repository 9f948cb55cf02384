// Element-wise ops that fusion does not absorb. A (read_write), B and C (read) by entry point:
// act_mul: A = act(A) * B over the step's token rows of dims.a.x values each, dims.a.y = 0 SiLU
// | 1 GELU; norm_add: A += RMSNorm(B) * C, rows of dims.a.x values (workgroup (0, t): token t),
// dims.f.x = eps; soft_cap: A = cap * tanh(A / cap) over dims.a.x values, dims.f.x = cap.
@group(0) @binding(2) var<storage, read_write> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read> C: array<f32>;

@compute @workgroup_size(64)
fn act_mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dims.a.x * step.n_tokens {
        A[i] = select(silu(A[i]), gelu_tanh(A[i]), dims.a.y == 1u) * B[i];
    }
}

@compute @workgroup_size(64)
fn norm_add(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    if wid.y >= step.n_tokens {
        return;
    }
    let n = dims.a.x;
    let r = wid.y * n;
    var ss = 0.0;
    for (var i = lid; i < n; i += WG) {
        ss += B[r + i] * B[r + i];
    }
    let scale = inverseSqrt(lanes_sum(ss, lid, WG) / f32(n) + dims.f.x);
    for (var i = lid; i < n; i += WG) {
        A[r + i] += B[r + i] * scale * C[i];
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
