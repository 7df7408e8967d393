//! The member filters of `GET /v1/members` (`ensemble members --status --name --tag`), as
//! Serf's: each a regular expression that must match the whole value (anchored), a member
//! matching every filter given; a member without a filtered tag does not match. Bounded:
//! patterns of at most 256 bytes, at most 16 tag filters, compiled programs of at most 1 MiB.

use axum::http::StatusCode;
use ensemble::Member;
use regex::{Regex, RegexBuilder};

use super::error::{ApiError, Code};

/// Longest pattern, in bytes.
pub const MAX_PATTERN: usize = 256;
/// Most `tag` filters in one request.
pub const MAX_TAG_FILTERS: usize = 16;
/// Largest compiled pattern, in bytes.
const MAX_COMPILED: usize = 1 << 20;

/// Which members a request asks for.
#[derive(Debug, Default)]
pub struct MemberFilter {
    status: Option<Regex>,
    name: Option<Regex>,
    tags: Vec<(String, Regex)>,
}

impl MemberFilter {
    /// The filter of a query's parameters: `status`, `name` (once each) and `tag=KEY=REGEX`
    /// (repeatable). 400 `invalid_filter` for anything else or a bad pattern.
    pub fn parse(params: Vec<(String, String)>) -> Result<MemberFilter, ApiError> {
        let mut f = MemberFilter::default();
        for (key, value) in params {
            match key.as_str() {
                "status" | "name" => {
                    let slot = if key == "status" {
                        &mut f.status
                    } else {
                        &mut f.name
                    };
                    if slot.is_some() {
                        return Err(invalid(format!("{key} given twice: give one pattern")));
                    }
                    *slot = Some(compile(&key, &value)?);
                }
                "tag" => {
                    if f.tags.len() == MAX_TAG_FILTERS {
                        return Err(invalid(format!("more than {MAX_TAG_FILTERS} tag filters")));
                    }
                    let Some((k, pattern)) = value.split_once('=').filter(|(k, _)| !k.is_empty())
                    else {
                        return Err(invalid(format!(
                            "tag filter {:?}: expected KEY=REGEX",
                            shown(&value)
                        )));
                    };
                    f.tags.push((k.to_owned(), compile("tag", pattern)?));
                }
                other => {
                    return Err(invalid(format!(
                        "unknown query parameter {:?}: use status, name or tag",
                        shown(other)
                    )))
                }
            }
        }
        Ok(f)
    }

    /// True if `m` passes every filter.
    pub fn matches(&self, m: &Member) -> bool {
        self.status
            .as_ref()
            .is_none_or(|r| r.is_match(m.status.as_str()))
            && self.name.as_ref().is_none_or(|r| r.is_match(&m.name))
            && self
                .tags
                .iter()
                .all(|(k, r)| m.tags.get(k).is_some_and(|v| r.is_match(v)))
    }
}

fn compile(what: &str, pattern: &str) -> Result<Regex, ApiError> {
    if pattern.len() > MAX_PATTERN {
        return Err(invalid(format!(
            "{what} filter: patterns are at most {MAX_PATTERN} bytes, not {}",
            pattern.len()
        )));
    }
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(MAX_COMPILED)
        .dfa_size_limit(MAX_COMPILED)
        .build()
        .map_err(|e| {
            invalid(format!(
                "{what} filter {pattern:?} is not a valid regular expression: {e}"
            ))
        })
}

/// At most 64 characters of what a client sent, for messages.
fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

fn invalid(msg: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidFilter, msg)
}
