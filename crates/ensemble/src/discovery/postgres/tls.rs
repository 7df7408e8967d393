//! TLS of the `postgres` backend: the `sslmode` and `sslrootcert` parameters of the connection
//! string (libpq's names) and the rustls client configuration they ask for.
//!
//! tokio-postgres itself knows `sslmode=disable|prefer|require` and no `sslrootcert`, so both
//! parameters are taken out of the string here and carried out by the rustls configuration:
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | if the server accepts it, else plain TCP | not checked; chain checked if `sslrootcert` is given |
//! | `require` | always (refused: the connection fails) | not checked; chain checked if `sslrootcert` is given |
//! | `verify-ca` | always | chain to a trusted root |
//! | `verify-full` | always | chain to a trusted root, and the URL's host in the certificate |
//!
//! Trusted roots: the PEM file `sslrootcert=FILE`, else (or with `sslrootcert=system`) the
//! system's store. `sslrootcert=system` makes `verify-full` the default and refuses weaker modes.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// libpq's `sslmode`, as this backend carries it out (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server accepts it.
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS with the certificate chain checked.
    VerifyCa,
    /// TLS with the certificate chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => return Err("sslmode=allow is not supported: use prefer (or disable)".into()),
            other => {
                return Err(format!(
                    "sslmode={other:?} is not one of disable, prefer, require, verify-ca, \
                     verify-full"
                ))
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether it asks for TLS, and whether a refusal ends the
    /// connection. The certificate checks are rustls's.
    pub(super) fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// Where the trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Roots {
    /// None: the certificate is not checked.
    None,
    /// A PEM file (`sslrootcert=FILE`).
    File(PathBuf),
    /// The system's store (`sslrootcert=system`, or `verify-*` without `sslrootcert`).
    System,
}

/// The TLS settings of one connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsSettings {
    /// The `sslmode`.
    pub mode: SslMode,
    /// The roots the server's certificate chain is checked against.
    pub roots: Roots,
}

impl TlsSettings {
    fn resolve(mode: Option<&str>, root_cert: Option<&str>) -> Result<TlsSettings, String> {
        let roots = match root_cert {
            None | Some("") => Roots::None,
            Some("system") => Roots::System,
            Some(path) => Roots::File(path.into()),
        };
        let mode = match mode {
            Some(m) => SslMode::parse(m)?,
            None if roots == Roots::System => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if roots == Roots::System && mode != SslMode::VerifyFull {
            return Err(format!(
                "sslmode={} may not be used with sslrootcert=system: use sslmode=verify-full",
                mode.as_str()
            ));
        }
        let roots = match (mode, roots) {
            (SslMode::VerifyCa | SslMode::VerifyFull, Roots::None) => Roots::System,
            (_, roots) => roots,
        };
        Ok(TlsSettings { mode, roots })
    }

    /// The rustls configuration for these settings; `None` for `sslmode=disable`. Reads the
    /// root certificates (a file, or the system's store).
    pub(super) fn client_config(&self) -> Result<Option<ClientConfig>, String> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        // One provider named here, not rustls's process-wide default: no panic if the
        // embedding service links another one. ring, as the transport: rustls deprecates
        // its ring provider for lacking post-quantum key exchange (X25519MLKEM768), which
        // aws-lc-rs has, at the cost of a C build; PostgreSQL offers it only when built
        // with OpenSSL 3.5 or later.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &self.roots {
            Roots::None => Arc::new(AnyCertificate(provider.signature_verification_algorithms)),
            roots => {
                let store = load_roots(roots)?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                        .build()
                        .map_err(|e| format!("root certificates: {e}"))?;
                if self.mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // What libpq 17 sends; PostgreSQL 17 checks it, older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Some(config))
    }
}

impl fmt::Display for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sslmode={}", self.mode.as_str())?;
        match (&self.roots, self.mode) {
            (_, SslMode::Disable) | (Roots::None, _) => Ok(()),
            (Roots::File(path), _) => write!(f, ", sslrootcert={}", path.display()),
            (Roots::System, _) => write!(f, ", system root certificates"),
        }
    }
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::None => {}
        Roots::File(path) => {
            let name = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read sslrootcert={name}: {e}"))?;
            if certs.is_empty() {
                return Err(format!(
                    "sslrootcert={name} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                ));
            }
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert={name}: {e}"))?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(format!(
                    "no system root certificates found ({}): install the ca-certificates \
                     package, set SSL_CERT_FILE, or name the CA with sslrootcert=FILE",
                    why.join("; ")
                ));
            }
        }
    }
    Ok(store)
}

/// `prefer` and `require` without `sslrootcert`: any certificate, as libpq. The handshake's
/// signatures are still checked, so the session is encrypted with the holder of that key
/// (which may be anyone in the path).
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca` (and `prefer`/`require` with `sslrootcert`): webpki's checks but the name.
/// webpki checks the chain (issuer, validity dates, key usage) before the name, so a name
/// error means everything else passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Parameters no TLS setting here carries out: refused by name rather than ignored.
const UNSUPPORTED: [&str; 5] = ["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"];

/// Splits a connection string (URL or `key=value` form) into what tokio-postgres parses and
/// the TLS settings: `sslmode` and `sslrootcert` are taken out. A string that does not parse
/// here is returned whole, for tokio-postgres to say why.
pub(super) fn split(conn: &str) -> Result<(String, TlsSettings), String> {
    let Some(parsed) = Parsed::of(conn) else {
        return Ok((conn.to_owned(), TlsSettings::resolve(None, None)?));
    };
    let mut mode = None;
    let mut root_cert = None;
    let mut taken = Vec::new();
    for p in &parsed.params {
        match p.key.as_str() {
            "sslmode" => mode = Some(p.value.as_str()),
            "sslrootcert" => root_cert = Some(p.value.as_str()),
            key if UNSUPPORTED.contains(&key) => {
                return Err(format!(
                    "{key} is not supported: client certificates and CRLs are not \
                     implemented (supported TLS parameters: sslmode, sslrootcert)"
                ))
            }
            _ => continue,
        }
        taken.push(p.whole.clone());
    }
    let settings = TlsSettings::resolve(mode, root_cert)?;
    let rest = match parsed.query_at {
        // The URL up to `?`, then the parameters left.
        Some(q) => {
            let left: Vec<&str> = parsed
                .params
                .iter()
                .filter(|p| !taken.contains(&p.whole))
                .map(|p| &conn[p.whole.clone()])
                .collect();
            let mut rest = conn[..q].to_owned();
            if !left.is_empty() {
                rest.push('?');
                rest.push_str(&left.join("&"));
            }
            rest
        }
        None => splice(conn, taken.into_iter().map(|r| (r, ""))),
    };
    Ok((rest, settings))
}

/// The connection string with its passwords (the URL's `user:password@` and any `password`
/// parameter) replaced by `***`; a string that does not parse is not shown at all.
pub(super) fn redact(conn: &str) -> String {
    let Some(parsed) = Parsed::of(conn) else {
        return "(a connection string that does not parse)".into();
    };
    let mut hidden: Vec<Range<usize>> = parsed.password_at.into_iter().collect();
    hidden.extend(
        parsed
            .params
            .iter()
            .filter(|p| p.key == "password")
            .map(|p| p.value_at.clone()),
    );
    splice(conn, hidden.into_iter().map(|r| (r, "***")))
}

/// `s` with each range replaced by its text (ranges do not overlap).
fn splice<'a>(s: &str, edits: impl Iterator<Item = (Range<usize>, &'a str)>) -> String {
    let mut edits: Vec<_> = edits.collect();
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for (range, text) in edits {
        out.push_str(&s[at..range.start]);
        out.push_str(text);
        at = range.end;
    }
    out.push_str(&s[at..]);
    out
}

/// One `key=value` parameter: its decoded key and value, and where it is in the string.
#[derive(Debug)]
struct Param {
    key: String,
    value: String,
    /// The whole parameter, `key=value`.
    whole: Range<usize>,
    /// The value as written (quotes or percent-escapes included).
    value_at: Range<usize>,
}

/// A connection string cut the way tokio-postgres's parser cuts it.
#[derive(Debug)]
struct Parsed {
    params: Vec<Param>,
    /// Where a URL's `?` is.
    query_at: Option<usize>,
    /// The password of a URL's `user:password@`.
    password_at: Option<Range<usize>>,
}

impl Parsed {
    fn of(s: &str) -> Option<Parsed> {
        let url = ["postgres://", "postgresql://"]
            .iter()
            .find(|p| s.starts_with(*p));
        match url {
            Some(prefix) => Some(Parsed::url(s, prefix.len())),
            None => Parsed::key_value(s),
        }
    }

    /// `postgres://[user[:password]@][hosts][/db][?k=v&...]`: as tokio-postgres, the
    /// credentials end at the first `@`, and the parameters start at the next `?`.
    fn url(s: &str, body: usize) -> Parsed {
        let mut password_at = None;
        let mut rest = body;
        if let Some(at) = s[body..].find('@') {
            let creds = body..body + at;
            if let Some(colon) = s[creds.clone()].find(':') {
                password_at = Some(creds.start + colon + 1..creds.end);
            }
            rest = creds.end + 1;
        }
        let query_at = s[rest..].find('?').map(|q| rest + q);
        let mut params = Vec::new();
        if let Some(q) = query_at {
            let mut start = q + 1;
            for piece in s[q + 1..].split('&') {
                let end = start + piece.len();
                let (key, value, value_at) = match piece.find('=') {
                    Some(eq) => (&piece[..eq], &piece[eq + 1..], start + eq + 1..end),
                    None => (piece, "", end..end),
                };
                params.push(Param {
                    key: decode(key),
                    value: decode(value),
                    whole: start..end,
                    value_at,
                });
                start = end + 1;
            }
        }
        Parsed {
            params,
            query_at,
            password_at,
        }
    }

    /// `key=value key='quoted \' value' ...`, backslash escapes, blanks around `=`.
    fn key_value(s: &str) -> Option<Parsed> {
        let mut params = Vec::new();
        let mut it = s.char_indices().peekable();
        let skip_blanks = |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
            while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        };
        loop {
            skip_blanks(&mut it);
            let Some(&(start, _)) = it.peek() else { break };
            let mut key_end = start;
            while let Some((i, c)) = it.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
                key_end = i + c.len_utf8();
            }
            if key_end == start {
                return None;
            }
            skip_blanks(&mut it);
            it.next_if(|(_, c)| *c == '=')?;
            skip_blanks(&mut it);
            let value_start = it.peek().map_or(s.len(), |&(i, _)| i);
            let quoted = it.next_if(|(_, c)| *c == '\'').is_some();
            let mut value = String::new();
            let mut end = None;
            while let Some((i, c)) = it.next() {
                if quoted && c == '\'' {
                    end = Some(i + 1);
                    break;
                }
                if !quoted && c.is_whitespace() {
                    end = Some(i);
                    break;
                }
                if c == '\\' {
                    if let Some((_, escaped)) = it.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
            let end = match end {
                Some(end) => end,
                None if !quoted => s.len(),
                None => return None,
            };
            params.push(Param {
                key: s[start..key_end].to_owned(),
                value,
                whole: start..end,
                value_at: value_start..end,
            });
        }
        Some(Parsed {
            params,
            query_at: None,
            password_at: None,
        })
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests;
