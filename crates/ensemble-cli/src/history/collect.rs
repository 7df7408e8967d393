//! The tasks that fill the agent's [`History`]: each follows one of the node's streams and
//! records what changed. They end when the node stops.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ensemble::{
    Accuser, EventKind, Member, MemberEvent, Node, PartitionRef, Status, TableJoinEvent,
};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::History;
use crate::views::{HistoryEntry, HistoryKind, SuspectedBy};

/// Starts the collectors of `history` over `node`; `pokes` is the receiver [`History::new`]
/// gave.
pub fn spawn(node: &Node, history: &History, pokes: mpsc::Receiver<()>) {
    tokio::spawn(members(node.clone(), history.clone()));
    tokio::spawn(suspicions(node.clone(), history.clone()));
    tokio::spawn(tables(node.clone(), history.clone()));
    tokio::spawn(partitions(node.clone(), history.clone()));
    tokio::spawn(singletons(node.clone(), history.clone(), pokes));
}

fn millis(d: std::time::Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// The membership events (up, down with its detection latency, left, updated).
async fn members(node: Node, history: History) {
    let mut events = node.events();
    drop(node);
    while let Some(e) = events.next().await {
        history.record(member_entry(&e));
    }
}

fn member_entry(e: &MemberEvent) -> HistoryEntry {
    let kind = match e.kind {
        EventKind::Up => HistoryKind::Up,
        EventKind::Down => HistoryKind::Down,
        EventKind::Left => HistoryKind::Left,
        EventKind::Updated => HistoryKind::Updated,
    };
    HistoryEntry {
        member: Some(e.member.name.clone()),
        incarnation: Some(e.member.incarnation),
        detection_ms: e.detection.map(millis),
        ..HistoryEntry::new(kind)
    }
}

/// Suspicions, which make no event: a member that turns suspect in the published list, and
/// one that is alive again after it. A suspicion the list never showed (the member went down
/// or was refuted between two looks at it: a list is the latest, not every change) is found in
/// the node's accusations, which keep the last one of each member.
async fn suspicions(node: Node, history: History) {
    let mut lists = node.member_lists();
    let accusations = node.accusations();
    drop(node);
    let mut suspects: BTreeSet<String> = BTreeSet::new();
    // The incarnation of the last suspicion recorded, by member.
    let mut recorded: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(list) = lists.next().await {
        let mut entries = suspicion_changes(&mut suspects, &list);
        entries.extend(missed_suspicions(&recorded, &entries, &accusations.all()));
        for mut e in entries {
            if let (HistoryKind::Suspect, Some(m), Some(i)) = (e.kind, &e.member, e.incarnation) {
                recorded.insert(m.clone(), i);
                let accuser = accusations.of(m, i);
                accused_by(&mut e, accuser);
            }
            history.record(e);
        }
    }
}

/// The suspicions in `accused` (member, incarnation, accuser) that neither `recorded` nor
/// `entries` hold.
fn missed_suspicions(
    recorded: &BTreeMap<String, u64>,
    entries: &[HistoryEntry],
    accused: &[(String, u64, Accuser)],
) -> Vec<HistoryEntry> {
    accused
        .iter()
        .filter(|(m, i, _)| recorded.get(m) != Some(i))
        .filter(|(m, i, _)| {
            !entries.iter().any(|e| {
                e.kind == HistoryKind::Suspect
                    && e.member.as_ref() == Some(m)
                    && e.incarnation == Some(*i)
            })
        })
        .map(|(m, i, _)| HistoryEntry {
            member: Some(m.clone()),
            incarnation: Some(*i),
            ..HistoryEntry::new(HistoryKind::Suspect)
        })
        .collect()
}

/// Sets who suspected the member of a `suspect` entry: this agent, or the peer that told it.
fn accused_by(e: &mut HistoryEntry, accuser: Option<Accuser>) {
    match accuser {
        Some(Accuser::Local) => e.by = Some(SuspectedBy::ThisAgent),
        Some(Accuser::Peer(from)) => e.heard_from = Some(from),
        None => {}
    }
}

/// The entries of a new member list: a member suspect in `list` and not in `suspects`, or
/// alive in `list` and suspect in `suspects`; `suspects` becomes the suspect members of
/// `list`.
fn suspicion_changes(suspects: &mut BTreeSet<String>, list: &[Arc<Member>]) -> Vec<HistoryEntry> {
    let mut out = Vec::new();
    let mut now = BTreeSet::new();
    for m in list {
        let kind = match m.status {
            Status::Suspect => {
                now.insert(m.name.clone());
                (!suspects.contains(&m.name)).then_some(HistoryKind::Suspect)
            }
            Status::Alive => suspects.contains(&m.name).then_some(HistoryKind::Refuted),
            _ => None,
        };
        if let Some(kind) = kind {
            out.push(HistoryEntry {
                member: Some(m.name.clone()),
                incarnation: Some(m.incarnation),
                ..HistoryEntry::new(kind)
            });
        }
    }
    *suspects = now;
    out
}

/// Table joins this agent coordinated, and re-merges.
async fn tables(node: Node, history: History) {
    let mut joins = node.table_joins();
    drop(node);
    while let Some(j) = joins.next().await {
        let entry = match j {
            TableJoinEvent::Joined {
                table,
                node,
                took,
                conflicts,
            } => HistoryEntry {
                table: Some(table),
                member: Some(node),
                took_ms: Some(millis(took)),
                conflicts: Some(conflicts),
                ..HistoryEntry::new(HistoryKind::TableJoined)
            },
            TableJoinEvent::Remerged {
                table,
                node,
                result,
            } => HistoryEntry {
                table: Some(table),
                member: Some(node),
                error: result.err().map(|e| e.to_string()),
                ..HistoryEntry::new(HistoryKind::TableRemerged)
            },
        };
        history.record(entry);
    }
}

/// Partitions injected at this agent and resolved (by hand or by their time to live).
async fn partitions(node: Node, history: History) {
    let mut changes = node.partition_changes();
    drop(node);
    let mut before: BTreeMap<PartitionRef, BTreeSet<String>> = match changes.next().await {
        Some(p) => p,
        None => return,
    };
    while let Some(now) = changes.next().await {
        for (r, nodes) in &now {
            if !before.contains_key(r) {
                history.record(partition_entry(HistoryKind::PartitionInjected, *r, nodes));
            }
        }
        for (r, nodes) in &before {
            if !now.contains_key(r) {
                history.record(partition_entry(HistoryKind::PartitionResolved, *r, nodes));
            }
        }
        before = now;
    }
}

fn partition_entry(kind: HistoryKind, r: PartitionRef, nodes: &BTreeSet<String>) -> HistoryEntry {
    HistoryEntry {
        partition: Some(r.0),
        nodes: nodes.iter().cloned().collect(),
        ..HistoryEntry::new(kind)
    }
}

/// Singleton takeovers and candidates: at each poke (this agent's activator heard of a new
/// leader) and each change of the member list (at most 4 times a second), the singletons'
/// leaders, epochs and candidates, and an entry for each that changed.
async fn singletons(node: Node, history: History, mut pokes: mpsc::Receiver<()>) {
    let mut lists = node.member_lists();
    let mut seen: HashMap<String, (String, u64)> = HashMap::new();
    let mut candidates: HashMap<String, Vec<String>> = HashMap::new();
    loop {
        tokio::select! {
            poke = pokes.recv() => if poke.is_none() { return },
            list = lists.next() => if list.is_none() { return },
        }
        let Ok(list) = node.singletons().await else {
            return;
        };
        for s in list {
            let mut now: Vec<String> = s.candidates.clone();
            now.sort();
            if candidates.get(&s.name) != Some(&now) {
                history.record(HistoryEntry {
                    singleton: Some(s.name.clone()),
                    nodes: now.clone(),
                    ..HistoryEntry::new(HistoryKind::Candidates)
                });
                candidates.insert(s.name.clone(), now);
            }
            let Some(leader) = s.leader else { continue };
            let now = (leader.clone(), s.epoch);
            if seen.get(&s.name) != Some(&now) {
                history.record(HistoryEntry {
                    member: Some(leader),
                    singleton: Some(s.name.clone()),
                    epoch: Some(s.epoch),
                    ..HistoryEntry::new(HistoryKind::Takeover)
                });
                seen.insert(s.name, now);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, incarnation: u64, status: Status) -> Arc<Member> {
        Arc::new(Member {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            incarnation,
            status,
            tags: Default::default(),
        })
    }

    fn kinds(e: &[HistoryEntry]) -> Vec<(HistoryKind, &str, u64)> {
        e.iter()
            .map(|e| (e.kind, e.member.as_deref().unwrap(), e.incarnation.unwrap()))
            .collect()
    }

    #[test]
    fn a_suspicion_and_its_refutation_are_entries_once_each() {
        let mut suspects = BTreeSet::new();
        let alive = [member("a", 1, Status::Alive), member("b", 1, Status::Alive)];
        assert!(suspicion_changes(&mut suspects, &alive).is_empty());
        let suspect = [
            member("a", 1, Status::Alive),
            member("b", 1, Status::Suspect),
        ];
        let e = suspicion_changes(&mut suspects, &suspect);
        assert_eq!(kinds(&e), [(HistoryKind::Suspect, "b", 1)]);
        // Still suspect: nothing new.
        assert!(suspicion_changes(&mut suspects, &suspect).is_empty());
        let refuted = [member("a", 1, Status::Alive), member("b", 2, Status::Alive)];
        let e = suspicion_changes(&mut suspects, &refuted);
        assert_eq!(kinds(&e), [(HistoryKind::Refuted, "b", 2)]);
        assert!(suspicion_changes(&mut suspects, &refuted).is_empty());
        // Suspect, then down: the down is the membership event's, not a refutation.
        suspicion_changes(&mut suspects, &suspect);
        let down = [member("a", 1, Status::Alive), member("b", 1, Status::Down)];
        assert!(suspicion_changes(&mut suspects, &down).is_empty());
    }

    #[test]
    fn a_suspicion_no_list_showed_is_found_in_the_accusations_once() {
        // `b` went suspect and down between two lists: only the accusations know.
        let accused = [("b".to_string(), 1, Accuser::Local)];
        let mut recorded = BTreeMap::new();
        let e = missed_suspicions(&recorded, &[], &accused);
        assert_eq!(kinds(&e), [(HistoryKind::Suspect, "b", 1)]);
        recorded.insert("b".to_string(), 1);
        assert!(missed_suspicions(&recorded, &[], &accused).is_empty());
        // Nor twice when the list showed it too.
        assert!(missed_suspicions(&BTreeMap::new(), &e, &accused).is_empty());
        // A later suspicion of `b` is new.
        let again = [("b".to_string(), 2, Accuser::Peer("a".into()))];
        assert_eq!(missed_suspicions(&recorded, &[], &again).len(), 1);
    }
}
