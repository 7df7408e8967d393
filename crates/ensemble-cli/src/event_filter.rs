//! Which events a follower (`GET /v1/events?types=`, `ensemble events --types`) or an event
//! handler (`--event-handler 'user:deploy=CMD'`) wants, written as Serf writes them: a
//! comma-separated list of `member-join`, `member-leave`, `member-failed`, `member-update`,
//! `member-reap`, `user` and `user:NAME`, and also `member` (every membership event), `*`
//! (everything), and Ensemble's own names, as in `ENSEMBLE_EVENT`: `member-up`, `member-down`,
//! `member-left`, `member-updated`.
//!
//! Serf's member events map to Ensemble's: join = up, leave = left, failed = down,
//! update = updated. Ensemble has no reap event (a member gone for `tombstone_ttl_s` is
//! forgotten without one): `member-reap` is accepted and matches nothing.

use std::collections::BTreeSet;

use crate::views::EventView;

/// Longest list, in bytes.
pub const MAX_LIST: usize = 1024;
/// Most types in one list.
pub const MAX_TYPES: usize = 32;
/// Longest user event name in a `user:NAME` type, in bytes.
pub const MAX_NAME: usize = 128;

/// Ensemble's member event kinds, as `EventView::Member` names them.
const KINDS: [&str; 4] = ["up", "down", "left", "updated"];

/// The events wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// Per member event kind (in the order of `KINDS`).
    member: [bool; 4],
    all_user: bool,
    user: BTreeSet<String>,
}

impl Default for EventFilter {
    /// Every event.
    fn default() -> Self {
        EventFilter {
            member: [true; 4],
            all_user: true,
            user: BTreeSet::new(),
        }
    }
}

impl EventFilter {
    /// Parses a comma-separated list of types; the error names the type refused.
    pub fn parse(list: &str) -> Result<EventFilter, String> {
        if list.len() > MAX_LIST {
            return Err(format!("event types: at most {MAX_LIST} bytes"));
        }
        let mut f = EventFilter {
            member: [false; 4],
            all_user: false,
            user: BTreeSet::new(),
        };
        let types: Vec<&str> = list.split(',').map(str::trim).collect();
        if types.len() > MAX_TYPES {
            return Err(format!("event types: at most {MAX_TYPES}"));
        }
        for t in types {
            let kind = |k: &str| KINDS.iter().position(|c| *c == k);
            match t {
                "*" => f = EventFilter::default(),
                "member" => f.member = [true; 4],
                "user" => f.all_user = true,
                "member-join" => f.member[0] = true,
                "member-failed" => f.member[1] = true,
                "member-leave" => f.member[2] = true,
                "member-update" => f.member[3] = true,
                "member-reap" => {}
                _ => {
                    if let Some(i) = t.strip_prefix("member-").and_then(kind) {
                        f.member[i] = true;
                    } else if let Some(name) = t.strip_prefix("user:") {
                        if name.is_empty() || name.len() > MAX_NAME {
                            return Err(format!(
                                "event type {:?}: a user event name of 1 to {MAX_NAME} bytes",
                                cut(t)
                            ));
                        }
                        f.user.insert(name.to_owned());
                    } else {
                        return Err(format!(
                            "unknown event type {:?}: use member-join, member-leave, \
                             member-failed, member-update, member-reap, member, user, \
                             user:NAME or *",
                            cut(t)
                        ));
                    }
                }
            }
        }
        Ok(f)
    }

    /// Whether `e` is wanted.
    pub fn matches(&self, e: &EventView) -> bool {
        match e {
            EventView::User { name, .. } => self.all_user || self.user.contains(name),
            EventView::Member { kind, .. } => KINDS
                .iter()
                .position(|k| k == kind)
                .is_some_and(|i| self.member[i]),
        }
    }
}

/// A type quoted in an error, cut to 64 characters.
fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

/// `[FILTER=]CMD`, as Serf's `-event-handler`: the filter and the command. The part before the
/// first `=` is a filter when it has no space and starts with `member`, `user` or `*`
/// (then it must parse); otherwise the whole text is the command, run for every event.
pub fn parse_handler(spec: &str) -> Result<(EventFilter, String), String> {
    if let Some((prefix, cmd)) = spec.split_once('=') {
        let looks_like_filter = !prefix.contains(char::is_whitespace)
            && ["member", "user", "*"]
                .iter()
                .any(|p| prefix.starts_with(p));
        if looks_like_filter {
            if cmd.trim().is_empty() {
                return Err(format!("{:?}: no command after the filter", cut(spec)));
            }
            return Ok((EventFilter::parse(prefix)?, cmd.to_owned()));
        }
    }
    if spec.trim().is_empty() {
        return Err("an empty command".into());
    }
    Ok((EventFilter::default(), spec.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::MemberView;

    fn user(name: &str) -> EventView {
        EventView::User {
            name: name.into(),
            payload: String::new(),
            payload_hex: None,
            origin: "a".into(),
            seq: 1,
            ltime: 1,
        }
    }

    fn member(kind: &str) -> EventView {
        EventView::Member {
            kind: kind.into(),
            member: MemberView {
                name: "m".into(),
                addr: "127.0.0.1:1".into(),
                status: "alive".into(),
                incarnation: 0,
                tags: Default::default(),
                ring_position: "0".into(),
            },
            detection_ms: None,
        }
    }

    #[test]
    fn serf_types_map_to_ensemble_events() {
        let f = EventFilter::parse("member-failed,member-join,user:deploy").unwrap();
        assert!(f.matches(&member("down")) && f.matches(&member("up")));
        assert!(!f.matches(&member("left")) && !f.matches(&member("updated")));
        assert!(f.matches(&user("deploy")) && !f.matches(&user("other")));
        let f = EventFilter::parse("member,user").unwrap();
        assert!(KINDS.iter().all(|k| f.matches(&member(k))) && f.matches(&user("x")));
        let f = EventFilter::parse("member-leave,member-update,member-reap").unwrap();
        assert!(f.matches(&member("left")) && f.matches(&member("updated")));
        assert!(!f.matches(&member("up")) && !f.matches(&user("x")));
        assert!(EventFilter::parse("member-up")
            .unwrap()
            .matches(&member("up")));
        assert_eq!(EventFilter::parse("*").unwrap(), EventFilter::default());
        for bad in ["member-jion", "", "user:", "users", "query:x"] {
            assert!(EventFilter::parse(bad).is_err(), "{bad}");
        }
        assert!(EventFilter::parse(&"user,".repeat(40)).is_err());
    }

    #[test]
    fn handlers_are_filtered_as_serfs() {
        let (f, cmd) = parse_handler("user:deploy=./deploy.sh --now").unwrap();
        assert_eq!(cmd, "./deploy.sh --now");
        assert!(f.matches(&user("deploy")) && !f.matches(&member("up")));
        let (f, cmd) = parse_handler("FOO=bar ./run.sh").unwrap();
        assert_eq!(
            (f, cmd.as_str()),
            (EventFilter::default(), "FOO=bar ./run.sh")
        );
        let (f, _) = parse_handler("cat >> /tmp/x").unwrap();
        assert_eq!(f, EventFilter::default());
        assert!(parse_handler("member-jion=./x")
            .unwrap_err()
            .contains("member-jion"));
        assert!(parse_handler("user:deploy=").is_err());
    }
}
