// Decode mat-vec: OUT = W · X for one part of a matrix, dequantizing inside the kernel. TPR
// invocations share a row; a workgroup of 64 computes 64 / TPR rows.
// dims.a = (rows of the part, cols, scales word offset, first output index)
// dims.b = (bias index of the part's first row, -, -, -), dims.f.x = RMSNorm epsilon.
@group(0) @binding(3) var<storage, read> X: array<vec4<f32>>;
// RMSNorm weight, applied to X before the product when NORM.
@group(0) @binding(4) var<storage, read> NW: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> BIAS: array<f32>;
@group(0) @binding(6) var<storage, read_write> OUT: array<f32>;

override NORM: bool = false;
override HAS_BIAS: bool = false;
// 0: OUT = W·X; 1: OUT += W·X; 2: gated SiLU, 3: gated GELU: the part holds `rows` gate rows
// then `rows` up rows, and OUT = act(gate·X) * (up·X).
override MODE: u32 = 0u;
override TPR: u32 = 16u;

var<private> x_scale: f32 = 1.0;

fn xv(i: u32) -> vec4<f32> {
    if NORM {
        return X[i] * NW[i] * x_scale;
    }
    return X[i];
}

fn chunk_dot(row: u32, c: u32) -> f32 {
    var acc = 0.0;
    for (var k = 0u; k < 8u; k++) {
        acc += dot(chunk4(row, c, k), xv(c * 8u + k));
    }
    return acc;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let rows = dims.a.x;
    let cols = dims.a.y;
    if NORM {
        var ss = 0.0;
        for (var i = lid; i < cols / 4u; i += WG) {
            let v = X[i];
            ss += dot(v, v);
        }
        x_scale = inverseSqrt(lanes_sum(ss, lid, WG) / f32(cols) + dims.f.x);
    }
    let lane = lid % TPR;
    let row = (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR;
    var acc = 0.0;
    var acc_up = 0.0;
    if row < rows {
        for (var c = lane; c < cols / 32u; c += TPR) {
            acc += chunk_dot(row, c);
            if MODE >= 2u {
                acc_up += chunk_dot(row + rows, c);
            }
        }
    }
    acc = lanes_sum(acc, lid, TPR);
    if MODE >= 2u {
        acc_up = lanes_sum(acc_up, lid, TPR);
    }
    if lane == 0u && row < rows {
        var v = acc;
        if HAS_BIAS {
            v += BIAS[dims.b.x + row];
        }
        let o = dims.a.w + row;
        switch MODE {
            case 0u: { OUT[o] = v; }
            case 1u: { OUT[o] += v; }
            case 2u: { OUT[o] = silu(v) * acc_up; }
            default: { OUT[o] = gelu_tanh(v) * acc_up; }
        }
    }
}
