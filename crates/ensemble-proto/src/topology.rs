//! Topologies: which members connect to which.
//!
//! - **Full mesh** (the default): every node connects to every other while the cluster is
//!   small, and keeps a logarithmic partial view beyond `full_mesh_limit` (see the overlay).
//! - **Client-server**: each node is a `server` or a `client`. Servers connect to every server;
//!   a client connects only to the `servers_per_client` servers nearest it on the ring (so
//!   clients spread evenly over servers, and every node computes any client's servers from its
//!   own view). A client refuses connections from clients with a referral naming servers, and
//!   messages between clients are relayed by servers.
//!
//! A node's role travels in the handshake ([`crate::wire::PeerInfo`]) and, for the members it
//! never meets, in its [`ROLE_TAG`] tag. A member without the tag (a full-mesh node) counts as
//! a server.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::member::Member;
use crate::view::{position, View};

/// The tag that carries a member's role in a client-server cluster.
pub const ROLE_TAG: &str = "ensemble.role";

/// The tag that carries the tags a member reserved a connection slot for (comma-separated).
pub const RESERVE_TAG: &str = "ensemble.reserve";

/// The most slots one member reserves.
pub const MAX_RESERVATIONS: usize = 8;

/// A node's role in a client-server topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Connects to every server, serves clients, relays between clients.
    Server,
    /// Connects only to a few servers.
    Client,
}

impl Role {
    /// The lowercase name used in tags, the CLI and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "server" => Ok(Role::Server),
            "client" => Ok(Role::Client),
            other => Err(format!("unknown role {other:?}: use server or client")),
        }
    }
}

/// How a node connects to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// Everyone to everyone (a partial view beyond `full_mesh_limit`).
    #[default]
    FullMesh,
    /// Servers in a full mesh, clients attached to a few servers.
    ClientServer(Role),
}

impl Topology {
    /// This node's role, in a client-server topology.
    pub fn role(self) -> Option<Role> {
        match self {
            Topology::FullMesh => None,
            Topology::ClientServer(r) => Some(r),
        }
    }
}

/// A member's role from its tag (None: not in a client-server topology).
pub fn role_of(m: &Member) -> Option<Role> {
    m.tags.get(ROLE_TAG).and_then(|r| r.parse().ok())
}

/// True unless the member is a client: full-mesh nodes count as servers.
pub fn serves(m: &Member) -> bool {
    role_of(m) != Some(Role::Client)
}

/// The live servers nearest `name` on the ring, clockwise from its position, at most `k`.
pub fn nearest_servers<'a>(view: &'a View, name: &str, k: usize) -> Vec<&'a Arc<Member>> {
    view.walk(position(name).wrapping_add(1), true)
        .filter(|m| m.status.is_up() && m.name != name && serves(m))
        .take(k)
        .collect()
}

/// The members `member` keeps connections to in a client-server topology: every live server
/// for a server, its nearest `servers_per_client` servers for a client.
pub fn client_server_targets(
    view: &View,
    member: &Member,
    servers_per_client: usize,
) -> BTreeSet<String> {
    match role_of(member) {
        Some(Role::Client) => nearest_servers(view, &member.name, servers_per_client)
            .into_iter()
            .map(|m| m.name.clone())
            .collect(),
        _ => view
            .members()
            .filter(|m| m.status.is_up() && m.name != member.name && serves(m))
            .map(|m| m.name.clone())
            .collect(),
    }
}

/// The tags `m` reserved a slot for, from its [`RESERVE_TAG`] (at most
/// [`MAX_RESERVATIONS`] are honoured).
pub fn reservations(m: &Member) -> impl Iterator<Item = &str> {
    (m.tags.get(RESERVE_TAG).unwrap_or_default().split(','))
        .filter(|t| !t.is_empty())
        .take(MAX_RESERVATIONS)
}

/// The members `member` keeps a connection to for its reservations (Partisan's `reserve`):
/// for each tag it reserved, the live member carrying that tag nearest it on the ring,
/// clockwise (a server in a client-server topology, since only servers are dialled). Every
/// node computes the same from its view, so neither side prunes that connection.
pub fn reserved_targets(view: &View, member: &Member) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if !member.tags.as_map().contains_key(RESERVE_TAG) {
        return out;
    }
    let dialable = |m: &Member| role_of(member).is_none() || serves(m);
    for tag in reservations(member) {
        let found = view
            .walk(position(&member.name).wrapping_add(1), true)
            .find(|m| {
                m.status.is_up()
                    && m.name != member.name
                    && m.tags.get(tag).is_some()
                    && dialable(m)
            });
        if let Some(m) = found {
            out.insert(m.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{Status, Tags};
    use std::time::Instant;

    fn member(name: &str, role: Role) -> Member {
        let tags = [(ROLE_TAG.to_string(), role.as_str().to_string())].into();
        Member {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            incarnation: 1,
            status: Status::Alive,
            tags: Tags::new(tags).unwrap(),
        }
    }

    #[test]
    fn servers_mesh_and_clients_attach_to_few_servers_evenly() {
        let now = Instant::now();
        let mut view = View::new();
        for i in 0..10 {
            view.merge(now, member(&format!("s{i}"), Role::Server));
        }
        for i in 0..1000 {
            view.merge(now, member(&format!("c{i}"), Role::Client));
        }
        let s0 = view.get("s0").unwrap().clone();
        let t = client_server_targets(&view, &s0, 2);
        assert_eq!(t.len(), 9);
        assert!(t.iter().all(|n| n.starts_with('s')));
        let mut load = std::collections::BTreeMap::<String, usize>::new();
        for i in 0..1000 {
            let c = view.get(&format!("c{i}")).unwrap().clone();
            let t = client_server_targets(&view, &c, 2);
            assert_eq!(t.len(), 2, "{t:?}");
            assert!(
                t.iter().all(|n| n.starts_with('s')),
                "a client targets only servers"
            );
            for s in t {
                *load.entry(s).or_default() += 1;
            }
        }
        // 2,000 attachments over 10 servers: ring positions are hashes, so no server is idle
        // and none takes more than a few times its share.
        assert_eq!(load.len(), 10);
        assert!(load.values().all(|&l| l < 800), "{load:?}");
    }

    #[test]
    fn roles_parse_and_untagged_members_serve() {
        assert_eq!("client".parse::<Role>(), Ok(Role::Client));
        assert!("peer"
            .parse::<Role>()
            .unwrap_err()
            .contains("server or client"));
        let mut m = member("a", Role::Client);
        assert!(!serves(&m));
        m.tags = Tags::default();
        assert!(serves(&m));
        assert_eq!(role_of(&m), None);
    }
}
