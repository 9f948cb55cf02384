//! The Hugging Face layout: tensor names mapped onto GGUF's, so one loader reads both.

/// GGUF's name for a Hugging Face tensor name, or `None` for a tensor pocketlm does not use.
/// `gemma_norms`: Gemma 2/3 name their four per-layer norms differently from Llama.
pub fn gguf_name(hf: &str, gemma_norms: bool) -> Option<String> {
    let hf = hf.strip_prefix("model.language_model.").map(|s| format!("model.{s}")).unwrap_or_else(|| hf.to_string());
    let simple = match hf.as_str() {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(s) = simple {
        return Some(s.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, name) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let mapped = match name {
        "input_layernorm.weight" => "attn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.q_proj.bias" => "attn_q.bias",
        "self_attn.k_proj.bias" => "attn_k.bias",
        "self_attn.v_proj.bias" => "attn_v.bias",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.qkv_proj.weight" => "attn_qkv.weight",
        "self_attn.q_norm.weight" => "attn_q_norm.weight",
        "self_attn.k_norm.weight" => "attn_k_norm.weight",
        "post_attention_layernorm.weight" if gemma_norms => "post_attention_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "pre_feedforward_layernorm.weight" => "ffn_norm.weight",
        "post_feedforward_layernorm.weight" => "post_ffw_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        "mlp.gate_up_proj.weight" => "ffn_up.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{mapped}"))
}
