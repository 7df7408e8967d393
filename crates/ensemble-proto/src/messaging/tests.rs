use super::*;

fn outputs(m: &mut Messaging) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn msg_to(outs: &[Output], to: &str) -> Vec<DirectMsg> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { to: t, msg } if t == to => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

/// Hands what `a` sends to `b` to `b`, then what `b` answers to `a` to `a`.
fn round_trip(a: &mut Messaging, b: &mut Messaging, now: Instant) {
    deliver(a, "a", b, "b", now);
    deliver(b, "b", a, "a", now);
}

/// Hands what `sender` (named `from`) sends to `to` to `receiver`.
fn deliver(sender: &mut Messaging, from: &str, receiver: &mut Messaging, to: &str, now: Instant) {
    for msg in msg_to(&outputs(sender), to) {
        let from = from.into();
        receiver.handle(now, Input::Message { from, msg });
    }
}

#[test]
fn an_acknowledged_message_is_retransmitted_until_acked_and_delivered_once() {
    let now = Instant::now();
    let mut a = Messaging::new(MessagingConfig {
        retry: Duration::from_millis(100),
    });
    let mut b = Messaging::new(MessagingConfig {
        retry: Duration::from_millis(100),
    });
    b.handle(now, Input::Register("jobs".into()));
    let deadline = now + Duration::from_secs(5);
    a.handle(
        now,
        Input::Send {
            to: "b".into(),
            name: "jobs".into(),
            payload: Bytes::from_static(b"run"),
            ack: Some((7, deadline)),
            channel: None,
        },
    );
    let first = msg_to(&outputs(&mut a), "b");
    assert_eq!(first.len(), 1);
    // Lost. The retry goes out after 100 ms.
    a.handle(now + Duration::from_millis(50), Input::Tick);
    assert!(outputs(&mut a).is_empty());
    a.handle(now + Duration::from_millis(100), Input::Tick);
    let again = msg_to(&outputs(&mut a), "b");
    assert_eq!(again, first, "same id");
    // Both copies arrive: delivered once, acked twice.
    for m in first.into_iter().chain(again) {
        b.handle(
            now,
            Input::Message {
                from: "a".into(),
                msg: m,
            },
        );
    }
    let outs = outputs(&mut b);
    let delivered = outs
        .iter()
        .filter(|o| matches!(o, Output::Deliver { .. }))
        .count();
    assert_eq!(delivered, 1);
    for m in msg_to(&outs, "a") {
        a.handle(
            now,
            Input::Message {
                from: "b".into(),
                msg: m,
            },
        );
    }
    assert_eq!(outputs(&mut a), vec![Output::Acked(7)]);
    assert_eq!(a.pending(), 0);
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn unknown_names_and_deadlines_fail_clearly() {
    let now = Instant::now();
    let mut a = Messaging::new(MessagingConfig {
        retry: Duration::from_millis(100),
    });
    let mut b = Messaging::new(MessagingConfig {
        retry: Duration::from_millis(100),
    });
    let send = |a: &mut Messaging, token, deadline| {
        a.handle(
            now,
            Input::Send {
                to: "b".into(),
                name: "nobody".into(),
                payload: Bytes::new(),
                ack: Some((token, deadline)),
                channel: None,
            },
        )
    };
    send(&mut a, 1, now + Duration::from_secs(1));
    round_trip(&mut a, &mut b, now);
    assert_eq!(
        outputs(&mut a),
        vec![Output::Failed(1, Failure::UnknownName("nobody".into()))]
    );
    // A cast to an unknown name comes back as a rejection the sender can report.
    a.handle(
        now,
        Input::Send {
            to: "b".into(),
            name: "nobody".into(),
            payload: Bytes::new(),
            ack: None,
            channel: None,
        },
    );
    round_trip(&mut a, &mut b, now);
    assert_eq!(
        outputs(&mut a),
        vec![Output::CastRejected {
            node: "b".into(),
            name: "nobody".into()
        }]
    );
    send(&mut a, 2, now + Duration::from_millis(250));
    outputs(&mut a);
    a.handle(now + Duration::from_millis(300), Input::Tick);
    assert_eq!(outputs(&mut a), vec![Output::Failed(2, Failure::Timeout)]);
}

#[test]
fn a_reconnect_resends_at_once_and_acks_from_others_are_ignored() {
    let now = Instant::now();
    let mut a = Messaging::new(MessagingConfig {
        retry: Duration::from_secs(10),
    });
    a.handle(
        now,
        Input::Send {
            to: "b".into(),
            name: "jobs".into(),
            payload: Bytes::new(),
            ack: Some((3, now + Duration::from_secs(30))),
            channel: None,
        },
    );
    outputs(&mut a);
    a.handle(now, Input::PeerUp("b".into()));
    let resent = msg_to(&outputs(&mut a), "b");
    assert_eq!(resent.len(), 1);
    let DirectMsg::Forward { id, .. } = resent[0] else {
        panic!("{resent:?}")
    };
    a.handle(
        now,
        Input::Message {
            from: "c".into(),
            msg: DirectMsg::Ack { id },
        },
    );
    assert!(outputs(&mut a).is_empty(), "an ack from another member");
    assert_eq!(a.pending(), 1);
}
