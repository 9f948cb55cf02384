//! Prints the token ids (and pieces) of a text: `cargo run --example tokenize -- MODEL TEXT`.
fn main() -> pocketlm::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let m = pocketlm::Model::open(std::path::Path::new(&a[0]), &Default::default())?;
    let ids = m.tokenizer.encode(&a[1], true)?;
    let pieces: Vec<String> = ids.iter().map(|&i| m.tokenizer.id_to_token(i).unwrap_or_default()).collect();
    println!("{ids:?}\n{pieces:?}");
    Ok(())
}
