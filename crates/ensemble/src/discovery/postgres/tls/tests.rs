use super::*;

fn settings(conn: &str) -> Result<(String, SslMode, Roots), String> {
    split(conn).map(|(rest, s)| (rest, s.mode, s.roots))
}

#[test]
fn urls_lose_their_tls_parameters_and_keep_the_others() {
    let (rest, mode, roots) = settings(
        "postgres://u:p%40ss@db:5432/x?sslmode=verify-full&application_name=a\
         &sslrootcert=%2Fetc%2Fca.pem",
    )
    .unwrap();
    assert_eq!(rest, "postgres://u:p%40ss@db:5432/x?application_name=a");
    assert_eq!(mode, SslMode::VerifyFull);
    assert_eq!(roots, Roots::File("/etc/ca.pem".into()));
    let (rest, mode, roots) = settings("postgresql://db/x?sslmode=require").unwrap();
    assert_eq!(rest, "postgresql://db/x");
    assert_eq!((mode, roots), (SslMode::Require, Roots::None));
    // The credentials end at the first `@`: a `?` in the password is not the query.
    let (rest, mode, _) = settings("postgres://u:a?b@db/x").unwrap();
    assert_eq!(
        (rest.as_str(), mode),
        ("postgres://u:a?b@db/x", SslMode::Prefer)
    );
}

#[test]
fn key_value_strings_lose_their_tls_parameters() {
    let (rest, mode, roots) = settings(
        "host=db sslmode = verify-ca password='a b\\'c' sslrootcert='/my certs/ca.pem' \
         user=u",
    )
    .unwrap();
    assert_eq!(mode, SslMode::VerifyCa);
    assert_eq!(roots, Roots::File("/my certs/ca.pem".into()));
    let config: tokio_postgres::Config = rest.parse().unwrap();
    assert_eq!(config.get_password(), Some(&b"a b'c"[..]));
    assert_eq!(config.get_user(), Some("u"));
    assert_eq!(config.get_hosts().len(), 1);
}

#[test]
fn modes_and_roots_follow_libpq() {
    let resolve = |m, r| TlsSettings::resolve(m, r).map(|s| (s.mode, s.roots));
    assert_eq!(resolve(None, None), Ok((SslMode::Prefer, Roots::None)));
    assert_eq!(
        resolve(Some("verify-ca"), None),
        Ok((SslMode::VerifyCa, Roots::System))
    );
    assert_eq!(
        resolve(None, Some("system")),
        Ok((SslMode::VerifyFull, Roots::System))
    );
    assert!(resolve(Some("require"), Some("system"))
        .unwrap_err()
        .contains("verify-full"));
    assert!(resolve(Some("allow"), None).unwrap_err().contains("prefer"));
    assert!(resolve(Some("verify_full"), None)
        .unwrap_err()
        .contains("verify-full"));
    assert!(split("postgres://db/x?sslcert=/c.pem")
        .unwrap_err()
        .contains("sslcert is not supported"));
}

#[test]
fn passwords_are_redacted() {
    assert_eq!(
        redact("postgres://u:s3cret@db/x?password=s3cret&sslmode=require"),
        "postgres://u:***@db/x?password=***&sslmode=require"
    );
    assert_eq!(redact("postgres://u@db/x"), "postgres://u@db/x");
    assert_eq!(
        redact("host=db password='s3 cret' user=u"),
        "host=db password=*** user=u"
    );
    assert!(!redact("host=db password='s3cret").contains("s3cret"));
}

#[test]
fn a_missing_or_empty_root_file_is_a_clear_error() {
    let missing = TlsSettings::resolve(Some("verify-full"), Some("/nonexistent/ca.pem"))
        .unwrap()
        .client_config()
        .unwrap_err();
    assert!(
        missing.contains("cannot read sslrootcert=/nonexistent/ca.pem"),
        "{missing}"
    );
    let dir = std::env::temp_dir().join(format!("ensemble-empty-ca-{}", std::process::id()));
    std::fs::write(&dir, "not a certificate\n").unwrap();
    let empty = TlsSettings::resolve(Some("verify-full"), dir.to_str())
        .unwrap()
        .client_config()
        .unwrap_err();
    std::fs::remove_file(&dir).unwrap();
    assert!(empty.contains("no PEM certificate"), "{empty}");
    assert!(TlsSettings::resolve(Some("disable"), None)
        .unwrap()
        .client_config()
        .unwrap()
        .is_none());
}
