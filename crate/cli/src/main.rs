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
        /// Keep safetensors weights in f32 instead of quantizing them to 4 bits.
        #[arg(long)]
        no_quantize: bool,
        /// Print one JSON object instead of streaming text.
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
    let Command::Generate { model, prompt, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, frequency_penalty, presence_penalty, seed, stop, chat, system, ctx, backend, no_quantize, json } = cli.command;
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
    let gen_opts = GenerateOptions { max_tokens, sampling, stop, ignore_eos: false };
    let choice = match backend {
        Backend::Cpu => BackendChoice::Cpu,
        Backend::Gpu => BackendChoice::Gpu,
        Backend::Auto => BackendChoice::Auto,
    };
    let (mut session, adapter) = block_on(Session::open(&model, ctx, choice, &GpuOptions::default()))?;
    if let Some(reason) = session.fallback_reason() {
        eprintln!("pocketlm: running on the CPU: {reason}");
    }
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
            "adapter": adapter.as_ref().map(|a| &a.name),
            "gpu_stats": session.gpu_stats(),
            "prefill_tok_s": g.prefill_tok_s(),
            "decode_tok_s": g.decode_tok_s(),
        });
        println!("{obj}");
    } else {
        println!();
        let on = adapter.map_or("cpu".to_string(), |a| format!("gpu: {}", a.name));
        eprintln!("[{} prompt tokens, {} generated, prefill {:.1} tok/s, decode {:.1} tok/s, {}, {on}]", g.prompt_ids.len(), g.ids.len(), g.prefill_tok_s(), g.decode_tok_s(), g.finish_reason.as_str());
    }
    Ok(())
}
