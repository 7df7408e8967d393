//! The driver's side of membership: joins (a dial the caller waits for), tags, leaving,
//! removing another member and stopping into the core; member events out to
//! [`crate::Node::events`] subscribers, and the member list published after every batch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use ensemble_proto::membership;
use ensemble_proto::stack::Input;
use ensemble_proto::wire::PeerInfo;
use ensemble_proto::{EventKind, Member, MemberEvent};
use tracing::info;

use super::{Driver, Stop};
use crate::command::{ConnectionEvent, MembershipCommand};
use crate::error::Error;
use crate::transport::conn;

impl Driver {
    /// Returns Some when the node must stop (graceful or not).
    pub(super) fn on_membership_command(
        &mut self,
        now: Instant,
        c: MembershipCommand,
    ) -> Option<Stop> {
        match c {
            MembershipCommand::Join { addr, reply } => {
                if self.own_addrs.contains(&addr) {
                    let reason = "that is this node's own address".to_string();
                    let _ = reply.send(Err(Error::Join { addr, reason }));
                    return None;
                }
                // Dial directly, whatever the core's dial schedule: the caller waits for this
                // result. The core counts it as its dial to the address (no second one).
                let waiters = self.join_waiters.entry(addr).or_default();
                waiters.retain(|w| !w.is_closed());
                waiters.push(reply);
                self.tasks.spawn(conn::dial(self.shared.clone(), addr));
                self.core
                    .handle(now, Input::Membership(membership::Input::Join { addr }));
            }
            MembershipCommand::SetTags { tags, reply } => {
                self.core
                    .handle(now, Input::Membership(membership::Input::SetTags(tags)));
                let _ = reply.send(());
            }
            MembershipCommand::Leave { reply } => {
                self.stop_singletons(now);
                self.core
                    .handle(now, Input::Membership(membership::Input::Leave));
                return Some(Stop {
                    graceful: true,
                    reply,
                });
            }
            MembershipCommand::Remove { name, reply }
                if name == self.core.membership().local().name =>
            {
                let msg = "remove() names this node itself; call leave() instead";
                let _ = reply.send(Err(Error::Config(msg.into())));
            }
            MembershipCommand::Remove { name, reply } => {
                let known = self
                    .core
                    .membership()
                    .member(&name)
                    .is_some_and(|m| m.status != ensemble_proto::Status::Left);
                if known {
                    info!("removing {name} from the cluster");
                    self.core
                        .handle(now, Input::Membership(membership::Input::Remove(name)));
                    let _ = reply.send(Ok(()));
                } else {
                    let _ = reply.send(Err(Error::UnknownNode(name)));
                }
            }
            MembershipCommand::Shutdown { reply } => {
                self.stop_singletons(now);
                return Some(Stop {
                    graceful: false,
                    reply,
                });
            }
        }
        None
    }

    pub(super) fn on_member_event(&mut self, mut e: MemberEvent) {
        crate::metrics::member_event(e.kind);
        if e.kind == EventKind::Down {
            // The metrics have not looked at the view since the change yet: they still hold
            // when the failure was first seen (what `ensemble_detection_seconds` records).
            let since = self.membership_metrics.failing_since(&e.member.name);
            e.detection = since.map(|s| Instant::now().saturating_duration_since(s));
        }
        let m = &e.member;
        info!(
            node = %m.name,
            event = ?e.kind,
            status = %m.status,
            incarnation = m.incarnation,
            addr = %m.addr,
            "member {} is {:?} ({}, incarnation {})",
            m.name,
            e.kind,
            m.status,
            m.incarnation
        );
        let _ = self.published.events.send(e);
    }

    pub(super) fn publish(&mut self) {
        self.publish_connections();
        let membership = self.core.membership();
        if membership.view_version() == self.published_version {
            return;
        }
        self.published_version = membership.view_version();
        let (now, refutations) = (Instant::now(), membership.refutations());
        (self.membership_metrics).observe(now, membership.versions().map(|m| &**m), refutations);
        let accusations = (membership.accusations())
            .map(|(n, a)| (n.to_owned(), a.clone()))
            .collect();
        self.published
            .accusations
            .send_replace(Arc::new(accusations));
        let members: Vec<Arc<Member>> = membership.versions().cloned().collect();
        self.published.members.send_replace(Arc::new(members));
        let me = PeerInfo::of(membership.local(), self.instance);
        self.published.me.send_if_modified(|old| {
            let changed = *old != me;
            *old = me;
            changed
        });
    }

    /// Connection events: what opened and closed since the last call (a connection replaced
    /// by one to a restarted process under the same name closes, then opens).
    fn publish_connections(&mut self) {
        let membership = self.core.membership();
        let version = membership.connections_version();
        if self.published_conns.0 == Some(version) {
            return;
        }
        let now: BTreeMap<String, u64> = (membership.connected_incarnations())
            .map(|(n, i)| (n.to_owned(), i))
            .collect();
        let old = std::mem::replace(&mut self.published_conns, (Some(version), now));
        let now = &self.published_conns.1;
        let tx = &self.published.connections;
        for (peer, inc) in &old.1 {
            if now.get(peer) != Some(inc) {
                let _ = tx.send(ConnectionEvent {
                    peer: peer.clone(),
                    up: false,
                });
            }
        }
        for (peer, inc) in now {
            if old.1.get(peer) != Some(inc) {
                let _ = tx.send(ConnectionEvent {
                    peer: peer.clone(),
                    up: true,
                });
            }
        }
    }
}
