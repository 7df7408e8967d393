//! The agent's HTTP token: from `--http-token-file`, else `ENSEMBLE_HTTP_TOKEN`, else the
//! config key `http_token_file`, else the per-user file (`crate::token::default_path`),
//! created on first use (mode 0600, 32 random bytes in hex) so that the client commands of
//! the same user find it.

use std::path::Path;

use anyhow::{Context, Result};
use tracing::info;

use crate::token::{default_path, Token, TOKEN_ENV};

/// The token the agent requires; `env` is what `ENSEMBLE_HTTP_TOKEN` held at start.
pub fn load(flag: Option<&Path>, env: Option<String>, file: Option<&Path>) -> Result<Token> {
    if let Some(p) = flag {
        return Token::from_file(p).context("--http-token-file");
    }
    if let Some(t) = env {
        return Token::new(&t).context(TOKEN_ENV);
    }
    if let Some(p) = file {
        return Token::from_file(p).context("http_token_file in the config file");
    }
    let path = default_path().context(
        "no HTTP token given and no home directory: set ENSEMBLE_HTTP_TOKEN, \
         --http-token-file or ENSEMBLE_HOME",
    )?;
    let (token, created) = load_or_create(&path)?;
    if created {
        info!(
            "created a new HTTP API token in {}; the client commands of this user find it there",
            path.display()
        );
    } else {
        info!("using the HTTP API token in {}", path.display());
    }
    Ok(token)
}

/// Reads the token at `path`, creating it with a random token if missing. Several agents
/// starting at once agree on one: the file appears whole (written aside, then linked into
/// place), and a process that loses the race reads the winner's.
pub fn load_or_create(path: &Path) -> Result<(Token, bool)> {
    if path.exists() {
        return Token::from_file(path).map(|t| (t, false));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let token = Token::generate();
    let aside = dir.join(format!(
        ".http-token.{}.{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    write_private(&aside, token.as_str())
        .with_context(|| format!("cannot write {}", aside.display()))?;
    let linked = std::fs::hard_link(&aside, path);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok((token, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Token::from_file(path).map(|t| (t, false))
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_made_once_private_and_shared_by_racing_agents() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home").join("http-token");
        let made: Vec<(Token, bool)> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(&path).unwrap()))
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(made.iter().filter(|(_, created)| *created).count(), 1);
        assert!(made.iter().all(|(t, _)| *t == made[0].0));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), (made[0].0.clone(), false));
        // Nothing left beside it.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
