//! Members of a cluster: name, address, incarnation, status and metadata tags.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Longest accepted member name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Most tags a member may carry.
pub const MAX_TAGS: usize = 32;
/// Longest tag key, in bytes.
pub const MAX_TAG_KEY_LEN: usize = 64;
/// Longest tag value, in bytes.
pub const MAX_TAG_VALUE_LEN: usize = 256;
/// Largest total size of all tag keys and values, in bytes.
pub const MAX_TAGS_BYTES: usize = 2048;
/// Largest incarnation accepted from the network. Incarnations start at the clock in
/// milliseconds (about 2^41 today), so this leaves room for 2^61 refutations while a rumour of
/// `u64::MAX` can never make a refutation overflow.
pub const MAX_INCARNATION: u64 = 1 << 62;

/// The status of a member, in precedence order: for one incarnation, a later status wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Reachable and answering heartbeats.
    Alive,
    /// Missed heartbeats or its connection failed; other members are being asked to confirm.
    Suspect,
    /// Declared failed by the failure detector.
    Down,
    /// Left the cluster on purpose (graceful leave).
    Left,
}

impl Status {
    /// True for `alive` and `suspect`: the member is still part of the live cluster.
    pub fn is_up(self) -> bool {
        matches!(self, Status::Alive | Status::Suspect)
    }

    /// The lowercase name used in the CLI, the HTTP API and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Alive => "alive",
            Status::Suspect => "suspect",
            Status::Down => "down",
            Status::Left => "left",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a name or a tag set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// The member name is empty.
    #[error("member name is empty")]
    EmptyName,
    /// The member name is longer than [`MAX_NAME_LEN`].
    #[error("member name is {0} bytes long; the limit is {MAX_NAME_LEN}")]
    NameTooLong(usize),
    /// The member name holds whitespace or control characters.
    #[error("member name {0:?} holds whitespace or control characters")]
    BadNameChar(String),
    /// Too many tags.
    #[error("{0} tags given; the limit is {MAX_TAGS}")]
    TooManyTags(usize),
    /// A tag key is empty or too long.
    #[error("tag key {0:?} must be 1 to {MAX_TAG_KEY_LEN} bytes long")]
    BadTagKey(String),
    /// A tag value is too long.
    #[error("tag {0:?} has a value longer than {MAX_TAG_VALUE_LEN} bytes")]
    TagValueTooLong(String),
    /// All tags together are too large.
    #[error("tags take {0} bytes; the limit is {MAX_TAGS_BYTES}")]
    TagsTooLarge(usize),
    /// An incarnation beyond [`MAX_INCARNATION`].
    #[error("incarnation {0} is beyond the limit {MAX_INCARNATION}")]
    IncarnationTooLarge(u64),
}

/// A member's name, unique in its cluster (see [`validate_name`]). Names travel as plain
/// strings on the wire and through every API; the alias says which strings are node names
/// (as opposed to table, singleton or handler names) in the protocols' inputs and outputs.
pub type NodeName = String;

/// Checks that `name` can name a member: 1 to [`MAX_NAME_LEN`] bytes, no whitespace or controls.
pub fn validate_name(name: &str) -> Result<(), MemberError> {
    if name.is_empty() {
        return Err(MemberError::EmptyName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(MemberError::NameTooLong(name.len()));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(MemberError::BadNameChar(name.to_owned()));
    }
    Ok(())
}

/// Metadata of a member: a small, size-limited map of string keys to string values.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tags(BTreeMap<String, String>);

impl Tags {
    /// Builds a tag set, refusing one over the size limits.
    pub fn new(map: BTreeMap<String, String>) -> Result<Self, MemberError> {
        let tags = Tags(map);
        tags.check()?;
        Ok(tags)
    }

    /// Checks the size limits (tags decoded from the network bypass [`Tags::new`]).
    pub fn check(&self) -> Result<(), MemberError> {
        let map = &self.0;
        if map.len() > MAX_TAGS {
            return Err(MemberError::TooManyTags(map.len()));
        }
        let mut total = 0;
        for (k, v) in map {
            if k.is_empty() || k.len() > MAX_TAG_KEY_LEN {
                return Err(MemberError::BadTagKey(k.clone()));
            }
            if v.len() > MAX_TAG_VALUE_LEN {
                return Err(MemberError::TagValueTooLong(k.clone()));
            }
            total += k.len() + v.len();
        }
        if total > MAX_TAGS_BYTES {
            return Err(MemberError::TagsTooLarge(total));
        }
        Ok(())
    }

    /// The tags as a map.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The value of one tag.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The same tags with `key` set to `value` (the size limits are checked by the caller).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// One member as every node sees it: the unit of the membership CRDT.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Unique name of the node in its cluster.
    pub name: String,
    /// Address other members dial.
    pub addr: SocketAddr,
    /// Grows with every restart (set from the start time) and every refutation or update.
    pub incarnation: u64,
    /// Current status.
    pub status: Status,
    /// Metadata.
    pub tags: Tags,
}

impl Member {
    /// The key that orders two versions of one member: the larger one wins a merge.
    ///
    /// Incarnation first, then status precedence; address and tags only break ties between
    /// malformed duplicates, so that merge stays a total order.
    fn precedence(&self) -> (u64, Status, &SocketAddr, &Tags) {
        (self.incarnation, self.status, &self.addr, &self.tags)
    }

    /// Checks a member received from the network: its name, tags and incarnation.
    pub fn check(&self) -> Result<(), MemberError> {
        validate_name(&self.name)?;
        self.tags.check()?;
        if self.incarnation > MAX_INCARNATION {
            return Err(MemberError::IncarnationTooLarge(self.incarnation));
        }
        Ok(())
    }

    /// True if this version of the member wins over `other` (which must have the same name).
    pub fn supersedes(&self, other: &Member) -> bool {
        self.precedence() > other.precedence()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("app1").is_ok());
        assert_eq!(validate_name(""), Err(MemberError::EmptyName));
        assert!(matches!(
            validate_name("a b"),
            Err(MemberError::BadNameChar(_))
        ));
        assert!(matches!(
            validate_name(&"x".repeat(MAX_NAME_LEN + 1)),
            Err(MemberError::NameTooLong(_))
        ));
    }

    #[test]
    fn tags_are_size_limited() {
        let ok: BTreeMap<_, _> = [("role".to_string(), "web".to_string())].into();
        assert_eq!(Tags::new(ok).unwrap().get("role"), Some("web"));
        let many: BTreeMap<_, _> = (0..=MAX_TAGS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert!(matches!(Tags::new(many), Err(MemberError::TooManyTags(_))));
        let long: BTreeMap<_, _> = [("k".to_string(), "v".repeat(MAX_TAG_VALUE_LEN + 1))].into();
        assert!(matches!(
            Tags::new(long),
            Err(MemberError::TagValueTooLong(_))
        ));
        let big: BTreeMap<_, _> = (0..20)
            .map(|i| (format!("k{i}"), "v".repeat(200)))
            .collect();
        assert!(matches!(Tags::new(big), Err(MemberError::TagsTooLarge(_))));
        let empty_key: BTreeMap<_, _> = [(String::new(), "v".to_string())].into();
        assert!(matches!(
            Tags::new(empty_key),
            Err(MemberError::BadTagKey(_))
        ));
    }

    #[test]
    fn precedence_is_incarnation_then_status() {
        let m = |inc, status| Member {
            name: "a".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            incarnation: inc,
            status,
            tags: Tags::default(),
        };
        assert!(m(1, Status::Suspect).supersedes(&m(1, Status::Alive)));
        assert!(m(1, Status::Left).supersedes(&m(1, Status::Down)));
        assert!(m(2, Status::Alive).supersedes(&m(1, Status::Down)));
        assert!(!m(1, Status::Alive).supersedes(&m(1, Status::Left)));
        assert!(!m(1, Status::Alive).supersedes(&m(1, Status::Alive)));
    }
}
