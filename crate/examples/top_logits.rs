//! Prints the top-5 next-token logits after each token of a sequence (teacher forcing), for
//! comparing pocketlm with a reference engine by hand.
//!
//!     cargo run --release --example top_logits -- MODEL ID [ID ...]

fn main() -> pocketlm::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: top_logits MODEL ID [ID ...]");
        std::process::exit(2);
    }
    let model = pocketlm::Model::open(std::path::Path::new(&args[0]), &Default::default())?;
    let mut session = pocketlm::Session::new(&model, args.len())?;
    for a in &args[1..] {
        let id: u32 = a.parse().map_err(|_| pocketlm::Error::InvalidArgument(format!("not a token id: {a}")))?;
        let logits = session.step(id, true)?.unwrap();
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        idx.sort_by(|&x, &y| logits[y].total_cmp(&logits[x]));
        let top: Vec<String> = idx[..5].iter().map(|&i| format!("{i}:{:.4}", logits[i])).collect();
        println!("{id} -> {}", top.join(" "));
    }
    Ok(())
}
