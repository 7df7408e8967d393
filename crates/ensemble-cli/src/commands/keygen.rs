//! `ensemble keygen`: a new cluster key (32 random bytes from the operating system, in hex).

use anyhow::Result;
use rand::RngCore;

/// Prints a new key on standard output.
pub fn run() -> Result<()> {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    println!("{}", hex::encode(raw));
    Ok(())
}
