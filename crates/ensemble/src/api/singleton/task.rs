//! The task that runs a singleton's handler: the activator's events in order, cluster changes
//! while leading, the timer (on the leader or on every node), the restart after a lost name
//! conflict, and what the handler exposes of its state.

use ensemble_proto::singleton as core;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};

use super::{ShutdownReason, Singleton, SingletonEvent, SingletonOptions, TimerScope};
use crate::{EventKind, MemberEvent};

/// What the task reads and writes besides the handler.
pub(super) struct Channels<M> {
    /// The activator's events, from the driver; closed when the activator stops.
    pub events: mpsc::UnboundedReceiver<core::SingletonEvent>,
    /// Membership events (cluster changes while leading).
    pub members: M,
    /// Where [`Singleton::mod_state`] goes after `init` and every event.
    pub mod_state: watch::Sender<Option<serde_json::Value>>,
}

/// Runs the handler until the activator stops.
pub(super) async fn run<S, M>(
    mut handler: S,
    options: SingletonOptions,
    ch: Channels<M>,
    me: String,
) where
    S: Singleton,
    M: Stream<Item = MemberEvent> + Unpin,
{
    let Channels {
        mut events,
        mut members,
        mod_state,
    } = ch;
    let every = options.timers == TimerScope::EveryNode;
    let ask = |handler: &S, state: &S::State| {
        handler
            .next_timer_in(state)
            .map(crate::time::tokio_deadline)
    };
    let mut state = handler.init();
    mod_state.send_replace(handler.mod_state(&state));
    let mut leading = false;
    let mut timer = if every { ask(&handler, &state) } else { None };
    loop {
        let sleep = async {
            match timer {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        // Biased: the activator's events first, so a Shutdown already queued is seen before a
        // timer or a cluster change that would have the handler act as leader.
        let event = tokio::select! {
            biased;
            e = events.recv() => match e {
                Some(e) => e.into(),
                // The activator stopped (a leader heard so already, and returned), or the
                // node stopped without a word: the last event, whatever the role.
                None => SingletonEvent::Shutdown { reason: ShutdownReason::Stopped },
            },
            m = members.next() => match m {
                Some(m) if leading && m.member.name != me => match m.kind {
                    EventKind::Up => SingletonEvent::ClusterChange { node: m.member.name.clone(), up: true },
                    EventKind::Down | EventKind::Left => {
                        SingletonEvent::ClusterChange { node: m.member.name.clone(), up: false }
                    }
                    EventKind::Updated => continue,
                },
                _ => continue,
            },
            () = sleep => SingletonEvent::Timer,
        };
        let stopped = event
            == SingletonEvent::Shutdown {
                reason: ShutdownReason::Stopped,
            };
        let restart = options.restart_on_name_conflict
            && event
                == SingletonEvent::Shutdown {
                    reason: ShutdownReason::NameConflict,
                };
        let rearm = restart
            || matches!(
                event,
                SingletonEvent::Timer | SingletonEvent::NowLeader { .. }
            );
        match &event {
            SingletonEvent::NowLeader { .. } => leading = true,
            SingletonEvent::Shutdown { .. } | SingletonEvent::NowFollower { .. } => leading = false,
            _ => {}
        }
        state = handler.event(state, event);
        if stopped {
            return;
        }
        if restart {
            // As a restarted activator: the old state goes before `init` runs again.
            state = {
                drop(state);
                handler.init()
            };
        }
        // The timer keeps its deadline across other events (a flapping member must not
        // starve it); it is asked for again after it fired or leadership began.
        if !leading && !every {
            timer = None;
        } else if rearm || timer.is_none() {
            timer = ask(&handler, &state);
        }
        mod_state.send_replace(handler.mod_state(&state));
    }
}

impl From<core::SingletonEvent> for SingletonEvent {
    fn from(e: core::SingletonEvent) -> Self {
        match e {
            core::SingletonEvent::NowLeader { epoch } => SingletonEvent::NowLeader { epoch },
            core::SingletonEvent::NowFollower { leader } => SingletonEvent::NowFollower { leader },
            core::SingletonEvent::Shutdown { reason } => SingletonEvent::Shutdown { reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Counts its `init`s; its state counts the events since the last one.
    #[derive(Clone, Default)]
    struct Counter {
        inits: Arc<Mutex<u32>>,
        seen: Arc<Mutex<Vec<(u32, SingletonEvent)>>>,
    }

    impl Singleton for Counter {
        type State = u32;

        fn init(&mut self) -> u32 {
            *self.inits.lock().unwrap() += 1;
            0
        }

        fn event(&mut self, n: u32, event: SingletonEvent) -> u32 {
            self.seen.lock().unwrap().push((n, event));
            n + 1
        }

        fn mod_state(&self, n: &u32) -> Option<serde_json::Value> {
            Some(serde_json::json!({ "events": n }))
        }
    }

    /// Runs a handler over these activator events, then the activator stops.
    async fn feed(options: SingletonOptions, events: Vec<core::SingletonEvent>) -> Counter {
        let handler = Counter::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let (state_tx, mut state_rx) = watch::channel(None);
        for e in events {
            tx.send(e).unwrap();
        }
        let ch = Channels {
            events: rx,
            members: futures::stream::pending::<MemberEvent>(),
            mod_state: state_tx,
        };
        let task = tokio::spawn(run(handler.clone(), options, ch, "me".into()));
        // The state after init is published before any event.
        state_rx.changed().await.unwrap();
        drop(tx);
        task.await.unwrap();
        handler
    }

    fn conflict() -> Vec<core::SingletonEvent> {
        vec![
            core::SingletonEvent::NowFollower { leader: None },
            core::SingletonEvent::NowLeader { epoch: 7 },
            core::SingletonEvent::Shutdown {
                reason: ShutdownReason::NameConflict,
            },
            core::SingletonEvent::NowFollower {
                leader: Some("other".into()),
            },
        ]
    }

    #[tokio::test]
    async fn a_lost_name_conflict_restarts_the_handler_when_asked() {
        let h = feed(
            SingletonOptions::new().restart_on_name_conflict(),
            conflict(),
        )
        .await;
        assert_eq!(*h.inits.lock().unwrap(), 2, "init runs again");
        let seen = h.seen.lock().unwrap().clone();
        // The event after the conflict meets a fresh state.
        assert_eq!(
            seen[3],
            (
                0,
                SingletonEvent::NowFollower {
                    leader: Some("other".into())
                }
            )
        );
    }

    #[tokio::test]
    async fn by_default_a_lost_name_conflict_keeps_the_state() {
        let h = feed(SingletonOptions::new(), conflict()).await;
        assert_eq!(*h.inits.lock().unwrap(), 1);
        let seen = h.seen.lock().unwrap().clone();
        assert_eq!(seen[3].0, 3, "the state went on");
    }

    #[tokio::test]
    async fn a_follower_hears_stopped_as_its_last_event() {
        let follow = vec![core::SingletonEvent::NowFollower {
            leader: Some("other".into()),
        }];
        let h = feed(SingletonOptions::new(), follow).await;
        let seen = h.seen.lock().unwrap().clone();
        let stopped = SingletonEvent::Shutdown {
            reason: ShutdownReason::Stopped,
        };
        assert_eq!(seen.last().map(|s| &s.1), Some(&stopped));
        assert_eq!(seen.len(), 2);
        // A leader hears it once: from the activator, not again when the channel closes.
        let lead = vec![
            core::SingletonEvent::NowLeader { epoch: 1 },
            core::SingletonEvent::Shutdown {
                reason: ShutdownReason::Stopped,
            },
        ];
        let h = feed(SingletonOptions::new(), lead).await;
        let seen = h.seen.lock().unwrap().clone();
        assert_eq!(seen.iter().filter(|s| s.1 == stopped).count(), 1);
    }
}
