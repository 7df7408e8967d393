//! The HTTP API's bearer token, and where the agent and the client commands find it: the
//! same places in the same order, so that local use needs no configuration.
//!
//! The agent takes `--http-token-file`, else `ENSEMBLE_HTTP_TOKEN`, else the config key
//! `http_token_file`, else the per-user file [`default_path`] (created on first use, see
//! `agent/token.rs`). The client commands take `--http-token-file`, else
//! `ENSEMBLE_HTTP_TOKEN`, else that per-user file if it exists.
//!
//! Imports nothing of the agent's server or of the client: both sides use it.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The environment variable holding the token (the agent removes it from its environment
/// once read, so that no command it runs sees it).
pub const TOKEN_ENV: &str = "ENSEMBLE_HTTP_TOKEN";

/// The environment variable naming a CA certificate file (PEM) the client trusts for
/// `https://` agents.
pub const CA_ENV: &str = "ENSEMBLE_HTTP_CA";

/// Shortest token accepted, in characters.
pub const MIN_TOKEN_LEN: usize = 16;

/// Longest token accepted, in characters.
pub const MAX_TOKEN_LEN: usize = 512;

/// A bearer token: 16 to 512 visible ASCII characters. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from text (surrounding whitespace ignored).
    pub fn new(text: &str) -> Result<Token> {
        let t = text.trim();
        if t.len() < MIN_TOKEN_LEN || t.len() > MAX_TOKEN_LEN {
            bail!(
                "the HTTP token is {} characters long; use {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} \
                 (for example 32 random bytes, hex-encoded)",
                t.len()
            );
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the HTTP token must be visible ASCII characters only (no spaces)");
        }
        Ok(Token(t.to_owned()))
    }

    /// A fresh random token: 32 random bytes as 64 hex characters.
    pub fn generate() -> Token {
        use rand::RngCore;
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        Token(hex::encode(raw))
    }

    /// Reads a token from a file.
    pub fn from_file(path: &Path) -> Result<Token> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the HTTP token file {}", path.display()))?;
        Token::new(&text).with_context(|| format!("HTTP token file {}", path.display()))
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The per-user token file, beside the cluster secret's default file:
/// `$ENSEMBLE_HOME/http-token`, else `~/.ensemble/http-token`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("ENSEMBLE_HOME") {
        return Some(PathBuf::from(home).join("http-token"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ensemble").join("http-token"))
}

/// The token a client sends: `flag` (`--http-token-file`), else `ENSEMBLE_HTTP_TOKEN`, else
/// the per-user file if it exists; None if none of them gives one (the agent then answers
/// 401, which the client explains).
pub fn for_client(flag: Option<&Path>) -> Result<Option<Token>> {
    if let Some(p) = flag {
        return Token::from_file(p).map(Some).context("--http-token-file");
    }
    if let Ok(t) = std::env::var(TOKEN_ENV) {
        return Token::new(&t).map(Some).context(TOKEN_ENV);
    }
    match default_path() {
        Some(p) if p.exists() => Token::from_file(&p).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_never_printed() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("has a space in it, long enough").is_err());
        assert!(Token::new(&"x".repeat(MAX_TOKEN_LEN + 1)).is_err());
        let t = Token::new("  0123456789abcdef-secret\n").unwrap();
        assert_eq!(t.as_str(), "0123456789abcdef-secret");
        assert!(!format!("{t:?}").contains("secret"));
        let g = Token::generate();
        assert_eq!(g.as_str().len(), 64);
        assert_ne!(g, Token::generate());
    }
}
