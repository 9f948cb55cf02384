//! `pocketlm`: generate text from a GGUF file or a Hugging Face directory, for people and scripts.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pocketlm::chat::Message;
use pocketlm::backend::gpu::context::block_on;
use pocketlm::backend::gpu::GpuOptions;
use pocketlm::{BackendChoice, GenerateOptions, LoadOptions, Model, SamplingParams, Session};

#[derive(Parser)]
#[command(name = "pocketlm", version, about = "Run 4-bit small language models from GGUF or safetensors")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    Cpu,
    Gpu,
    Auto,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a continuation of a prompt (or a chat reply with --chat).
    Generate {
        /// A .gguf file or a directory with config.json, tokenizer.json and model.safetensors.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        /// Tokens to generate at most.
        #[arg(short = 'n', long, default_value_t = 128)]
        max_tokens: usize,
        /// 0 is greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        #[arg(long, default_value_t = 0.0)]
        min_p: f32,
        #[arg(long, default_value_t = 1.0)]
        repetition_penalty: f32,
        #[arg(long, default_value_t = 0.0)]
        frequency_penalty: f32,
        #[arg(long, default_value_t = 0.0)]
        presence_penalty: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop before this string (repeatable).
        #[arg(long)]
        stop: Vec<String>,
        /// Treat the prompt as a user message and apply the model's chat template.
        #[arg(long)]
        chat: bool,
        /// A system message for --chat.
        #[arg(long)]
        system: Option<String>,
        /// Context size in tokens (capped at the model's).
        #[arg(long, default_value_t = 2048)]
        ctx: usize,
        #[arg(long, value_enum, default_value_t = Backend::Auto)]
        backend: Backend,
        /// CPU threads (each mat-vec's rows split across them).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Keep safetensors weights in f32 instead of quantizing them to 4 bits.
        #[arg(long)]
        no_quantize: bool,
        /// Keep generating past end-of-sequence tokens (benchmarks on random-weight models).
        #[arg(long)]
        ignore_eos: bool,
        /// Print one JSON object instead of streaming text.
        #[arg(long)]
        json: bool,
    },
    /// Measure the GPU backend: a 4096×4096 Q4_0 decode mat-vec (GB/s of weight reads) and,
    /// with --model, a model's decode tokens/s and GPU time per op.
    BenchGpu {
        /// A model (e.g. the Qwen2.5-0.5B-shaped file of tests/synthetic/).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Tokens to decode for the tokens/s figure.
        #[arg(long, default_value_t = 64)]
        tokens: usize,
        /// Repetitions per timed op.
        #[arg(long, default_value_t = 20)]
        reps: u32,
        /// f32 activations with RMSNorm folded into the mat-vec, instead of the CPU's rounding.
        #[arg(long)]
        f32_activations: bool,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pocketlm: error [{}]: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> pocketlm::Result<()> {
    let (model, prompt, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, frequency_penalty, presence_penalty, seed, stop, chat, system, ctx, backend, threads, no_quantize, ignore_eos, json) = match cli.command {
        Command::BenchGpu { model, tokens, reps, f32_activations, json } => return bench_gpu(model, tokens, reps, f32_activations, json),
        Command::Generate { model, prompt, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, frequency_penalty, presence_penalty, seed, stop, chat, system, ctx, backend, threads, no_quantize, ignore_eos, json } => {
            (model, prompt, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, frequency_penalty, presence_penalty, seed, stop, chat, system, ctx, backend, threads, no_quantize, ignore_eos, json)
        }
    };
    let threads = pocketlm::backend::cpu::threads::set_threads(threads);
    let t_load = std::time::Instant::now();
    let opts = LoadOptions { quantize: if no_quantize { None } else { LoadOptions::default().quantize } };
    let model = Model::open(&model, &opts)?;
    let text = if chat {
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(Message::new("system", &s));
        }
        messages.push(Message::new("user", &prompt));
        model.apply_chat_template(&messages, true)?
    } else {
        prompt
    };
    // A chat template writes BOS itself when the model wants one.
    let prompt_ids = model.tokenizer.encode(&text, !chat)?;
    let sampling = SamplingParams { temperature, top_k, top_p, min_p, repetition_penalty, frequency_penalty, presence_penalty, seed, ..Default::default() };
    let gen_opts = GenerateOptions { max_tokens, sampling, stop, ignore_eos };
    let choice = match backend {
        Backend::Cpu => BackendChoice::Cpu,
        Backend::Gpu => BackendChoice::Gpu,
        Backend::Auto => BackendChoice::Auto,
    };
    let (mut session, adapter) = block_on(Session::open(&model, ctx, choice, &GpuOptions::default()))?;
    if let Some(reason) = session.fallback_reason() {
        eprintln!("pocketlm: running on the CPU: {reason}");
    }
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;
    let mut out = std::io::stdout();
    let g = session.generate(&prompt_ids, &gen_opts, |piece| {
        if !json {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        }
        true
    })?;
    if json {
        let obj = serde_json::json!({
            "prompt_ids": g.prompt_ids,
            "ids": g.ids,
            "text": g.text,
            "finish_reason": g.finish_reason.as_str(),
            "backend": session.backend(),
            "threads": threads,
            "adapter": adapter.as_ref().map(|a| &a.name),
            "gpu_stats": session.gpu_stats(),
            "prefill_tok_s": g.prefill_tok_s(),
            "decode_tok_s": g.decode_tok_s(),
            // The first token comes out of prefill (its logits are the prompt's last).
            "ttft_ms": g.prefill_ms,
            "load_ms": load_ms,
        });
        println!("{obj}");
    } else {
        println!();
        let on = adapter.map_or("cpu".to_string(), |a| format!("gpu: {}", a.name));
        eprintln!("[{} prompt tokens, {} generated, prefill {:.1} tok/s, decode {:.1} tok/s, {}, {on}]", g.prompt_ids.len(), g.ids.len(), g.prefill_tok_s(), g.decode_tok_s(), g.finish_reason.as_str());
    }
    Ok(())
}

fn bench_gpu(model: Option<PathBuf>, tokens: usize, reps: u32, f32_activations: bool, json: bool) -> pocketlm::Result<()> {
    use pocketlm::backend::gpu::ops::OpRunner;
    use pocketlm::backend::gpu::{GpuContext, GpuModel};
    use pocketlm::quant::{quantize, GgmlType, QMatrix};
    let opts = GpuOptions { quantized_activations: !f32_activations, ..Default::default() };
    let ctx = block_on(GpuContext::new(&opts))?;
    let (n, m) = (4096, 4096);
    let mut rng_state = 1u32;
    let values: Vec<f32> = (0..n * m)
        .map(|_| {
            rng_state = rng_state.wrapping_mul(1664525).wrapping_add(1013904223);
            (rng_state >> 8) as f32 / (1 << 24) as f32 - 0.5
        })
        .collect();
    let w = QMatrix::owned(GgmlType::Q4_0, n, m, quantize(GgmlType::Q4_0, &values));
    let ops = OpRunner::new(ctx.clone())?;
    ops.time_matvec(&w, 2)?;
    let (secs, bytes) = ops.time_matvec(&w, reps)?;
    let gbs = bytes as f64 / secs / 1e9;
    let mut report = serde_json::json!({
        "adapter": ctx.summary,
        "matvec_q4_0_4096x4096": { "ms": secs * 1e3, "weight_bytes": bytes, "gb_per_s": gbs },
    });
    if !json {
        println!("adapter: {} ({}, subgroups {}, f16 {})", ctx.summary.name, ctx.summary.backend, ctx.summary.subgroup_size, ctx.summary.shader_f16);
        println!("Q4_0 4096x4096 decode mat-vec: {:.3} ms, {:.2} GB/s of weight reads ({} bytes)", secs * 1e3, gbs, bytes);
    }
    if let Some(path) = model {
        let model = Model::open(&path, &LoadOptions::default())?;
        let t0 = std::time::Instant::now();
        let weights = block_on(GpuModel::load(ctx.clone(), &model))?;
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;
        let weight_bytes = weights.weight_bytes;
        let mut session = Session::new_gpu(&model, weights, tokens + 16)?;
        let prompt = model.tokenizer.encode("Once upon a time", true)?;
        let g = session.generate(&prompt, &GenerateOptions { max_tokens: tokens, ignore_eos: true, ..Default::default() }, |_| true)?;
        let profile = session.gpu().expect("a GPU session").profile(prompt.len() + tokens - 1, reps)?;
        let token_ms = profile.last().map_or(0.0, |p| p.2);
        report["model"] = serde_json::json!({
            "file": path.display().to_string(),
            "weight_bytes": weight_bytes,
            "load_ms": load_ms,
            "decode_tok_s": g.decode_tok_s(),
            "gpu_ms_per_token": token_ms,
            "weight_gb_per_s": weight_bytes as f64 / (token_ms / 1e3) / 1e9,
            "ops": profile.iter().map(|(name, count, ms)| serde_json::json!({"op": name, "dispatches": count, "ms": ms})).collect::<Vec<_>>(),
        });
        if !json {
            println!("{}: {:.1} MB of weights on the GPU, loaded in {:.0} ms", path.display(), weight_bytes as f64 / 1e6, load_ms);
            println!("decode: {:.2} tok/s over {} tokens (GPU time per token {:.2} ms: {:.2} GB/s of weights)", g.decode_tok_s(), g.ids.len(), token_ms, weight_bytes as f64 / (token_ms / 1e3) / 1e9);
            println!("{:<22} {:>10} {:>12} {:>7}", "op", "dispatches", "ms/token", "share");
            for (name, count, ms) in &profile[..profile.len() - 1] {
                println!("{:<22} {:>10} {:>12.3} {:>6.1}%", name, count, ms, 100.0 * ms / token_ms);
            }
        }
    }
    if json {
        println!("{report}");
    }
    Ok(())
}
