//! The handshake over real TCP on 127.0.0.1: keys and clusters that match or not, every field
//! bound to the keys, forward secrecy, and the offline attacks the old handshake allowed.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::keyring::{Keyring, KeyringCell};
use crate::transport::framed;

#[derive(Debug)]
struct Nobody;
impl CutOff for Nobody {
    fn is_cut_off(&self, _: &str) -> bool {
        false
    }
}

/// A key as `ensemble keygen` would print it, from a number.
fn key(n: u8) -> Secret {
    Secret::new(hex::encode(Sha256::digest([n]))).unwrap()
}

fn peer(name: &str, port: u16) -> PeerInfo {
    PeerInfo {
        name: name.into(),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        incarnation: 1_700_000_000_000,
        instance: 42,
        role: None,
    }
}

fn params(name: &str, cluster: &str, keys: &[Secret]) -> Params {
    let ring = Keyring::with(keys[0].clone(), keys[1..].iter().cloned()).unwrap();
    Params {
        cluster: cluster.into(),
        keyring: KeyringCell::new(ring),
        me: peer(name, 20001),
        cut_off: Arc::new(Nobody),
    }
}

/// A listener on a free port of 127.0.0.1 between 20000 and 32000.
async fn listener() -> TcpListener {
    loop {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
            return l;
        }
    }
}

/// Two ends of one TCP connection, framed for the handshake: (dialer's, acceptor's).
async fn pair() -> (FramedStream, FramedStream) {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let (d, a) = tokio::join!(TcpStream::connect(addr), l.accept());
    (framed(d.unwrap()), framed(a.unwrap().0))
}

const T: Duration = Duration::from_secs(5);

async fn handshake(
    d: &Params,
    a: &Params,
) -> (
    Result<Established, HandshakeError>,
    Result<Established, HandshakeError>,
) {
    let (mut ds, mut as_) = pair().await;
    tokio::join!(dial(&mut ds, d, T), accept(&mut as_, a, (T, T)))
}

#[tokio::test]
async fn a_dialer_holding_any_key_of_the_acceptors_keyring_gets_in_with_one_session() {
    let d = params("d", "c", &[key(2)]);
    let a = params("a", "c", &[key(1), key(2), key(3)]);
    let (dr, ar) = handshake(&d, &a).await;
    let (peer_a, version, mut ds) = dr.unwrap();
    let (peer_d, _, mut as_) = ar.unwrap();
    assert_eq!((peer_a.name.as_str(), peer_d.name.as_str()), ("a", "d"));
    assert_eq!(version, PROTOCOL_VERSION);
    // The two directions' keys agree end to end.
    assert_eq!(as_.open(&ds.seal(b"to a")).unwrap(), b"to a");
    assert_eq!(ds.open(&as_.seal(b"to d")).unwrap(), b"to d");
}

#[tokio::test]
async fn another_key_or_another_cluster_fails_with_the_cause_in_the_acceptors_log_only() {
    let a = params("a", "c", &[key(1), key(3)]);
    let (dr, ar) = handshake(&params("d", "c", &[key(2)]), &a).await;
    let (de, ae) = (dr.err().unwrap(), ar.err().unwrap());
    assert!(matches!(de, HandshakeError::KeyExchange { .. }), "{de}");
    assert!(ae.to_string().contains("none of the 2 keys"), "{ae}");
    assert!(de.is_refusal() && ae.is_refusal());
    assert_eq!(
        (de.refusal(), ae.refusal()),
        (Some(Refusal::Key), Some(Refusal::Key))
    );
    let (dr, ar) = handshake(&params("d", "other", &[key(1)]), &a).await;
    let ae = ar.err().unwrap().to_string();
    assert!(dr.is_err());
    assert!(ae.contains("\"other\"") && ae.contains("\"c\""), "{ae}");
}

/// What someone who dials with a guessed key receives, as raw frames, and what it can do
/// with them offline.
struct Attempt {
    welcome: Welcome,
    hello: Vec<u8>,
    seed: [u8; 32],
    dh: Option<[u8; KEY_LEN]>,
    /// What the acceptor answered to a made-up confirmation.
    refusal: Vec<u8>,
}

async fn attempt(acceptor: &Params, guess: &Secret, cluster: &str) -> Attempt {
    let (mut ds, mut as_) = pair().await;
    let acceptor = acceptor.clone();
    let task = tokio::spawn(async move { accept(&mut as_, &acceptor, (T, T)).await });
    let mut seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut seed);
    let (_, pake) = dialer_pake(guess, cluster, seed);
    let (private, public) = ephemeral();
    let hello = wire::encode(&Frame::Hello(Hello {
        magic: MAGIC,
        min_version: MIN_PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        cluster: cluster.into(),
        peer: peer("mallory", 20002),
        pake,
        ephemeral: public,
    }));
    send_bytes(&mut ds, hello.clone()).await.unwrap();
    let Frame::Welcome(welcome) = recv(&mut ds).await.unwrap() else {
        panic!("no welcome");
    };
    let dh = agree(private, &welcome.core.ephemeral);
    let auth = Auth {
        confirm: [9; KEY_LEN],
    };
    send(&mut ds, Frame::Auth(auth)).await.unwrap();
    let refusal = recv_bytes(&mut ds).await.unwrap().to_vec();
    assert!(task.await.unwrap().is_err());
    Attempt {
        welcome,
        hello,
        seed,
        dh,
        refusal,
    }
}

/// The attack that recovered a 16-character secret from one `Welcome` of the old handshake (an
/// HMAC of known inputs under the secret) in milliseconds: try every word of a dictionary
/// against what one handshake gave. Against this handshake, a dialer commits to one guess
/// before it sees anything, and nothing it receives tests any other.
#[tokio::test]
async fn a_dictionary_tried_offline_against_one_welcome_finds_nothing() {
    let real = Secret::new("correct-Horse-battery-9").unwrap();
    let mut words: Vec<Secret> = (0..40)
        .map(|i| Secret::new(format!("correct-Horse-battery-{i}0")).unwrap())
        .collect();
    words.push(real.clone());
    let a = params("a", "payments-prod", std::slice::from_ref(&real));
    let seen = attempt(&a, &words[0], "payments-prod").await;
    let th = transcript(&seen.hello, &seen.welcome.core);
    let dh = seen.dh.expect("a valid ephemeral key");
    let theirs = &seen.welcome.core.pakes[0];
    let found: Vec<&Secret> = words
        .iter()
        .filter(|w| {
            // The best an attacker can do with a word: finish its own exchange as if it had
            // used that word, and check the acceptor's confirmation.
            let (state, _) = dialer_pake(w, "payments-prod", seen.seed);
            let Ok(k) = state.finish(theirs) else {
                return false;
            };
            same(
                &derive(&k, &dh, &th).confirm_acceptor,
                &seen.welcome.confirms[0],
            )
        })
        .collect();
    assert!(found.is_empty(), "the dictionary found a key");
    // The same wrong guesses, as dialer, all get the same refusal, which names nothing.
    let again = attempt(&a, &words[1], "payments-prod").await;
    assert_eq!(seen.refusal, again.refusal);
    assert_eq!(
        wire::decode(&seen.refusal).unwrap(),
        Frame::Reject(Reject::Auth)
    );
    let other = attempt(&a, &words[2], "another-cluster").await;
    assert_eq!(
        other.refusal, seen.refusal,
        "another cluster is refused the same way"
    );
    let welcome = postcard::to_stdvec(&other.welcome).unwrap();
    for sent in [&other.refusal[..], &welcome] {
        assert!(
            !contains(sent, b"payments-prod"),
            "the acceptor named its cluster"
        );
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// An acceptor that guesses keys learns nothing offline either: the dialer answers a wrong
/// guess with the same refusal, and sends its own confirmation only to a right one.
#[tokio::test]
async fn an_acceptor_guessing_keys_gets_the_same_refusal_for_every_wrong_guess() {
    let d = params("d", "c", &[key(1)]);
    let mut refusals = Vec::new();
    for guess in [key(7), key(8), key(9)] {
        let (mut ds, mut as_) = pair().await;
        let dialer = d.clone();
        let task = tokio::spawn(async move { dial(&mut ds, &dialer, T).await });
        let hello = recv_bytes(&mut as_).await.unwrap();
        let Frame::Hello(h) = wire::decode(&hello).unwrap() else {
            panic!("no hello");
        };
        let (state, msg) = acceptor_pake(&guess, "c");
        let (private, public) = ephemeral();
        let core = WelcomeCore {
            version: PROTOCOL_VERSION,
            peer: peer("mallory", 20003),
            pakes: vec![msg],
            ephemeral: public,
        };
        let th = transcript(&hello, &core);
        let k = state.finish(&h.pake).unwrap();
        let dh = agree(private, &h.ephemeral).unwrap();
        let confirms = vec![derive(&k, &dh, &th).confirm_acceptor];
        send(&mut as_, Frame::Welcome(Welcome { core, confirms }))
            .await
            .unwrap();
        refusals.push(recv_bytes(&mut as_).await.unwrap().to_vec());
        assert!(task.await.unwrap().is_err());
    }
    assert!(refusals.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        wire::decode(&refusals[0]).unwrap(),
        Frame::Reject(Reject::Auth)
    );
}

/// A relay between the two that can rewrite the first frame each way, and records what
/// passes.
async fn relayed(
    d: &Params,
    a: &Params,
    rewrite_hello: impl Fn(&mut Hello) + Send + 'static,
    rewrite_welcome: impl Fn(&mut Welcome) + Send + 'static,
) -> (bool, bool) {
    let (mut ds, mut to_d) = pair().await;
    let (mut to_a, mut as_) = pair().await;
    let relay = tokio::spawn(async move {
        let Ok(Frame::Hello(mut h)) = recv(&mut to_d).await else {
            return;
        };
        rewrite_hello(&mut h);
        send(&mut to_a, Frame::Hello(h)).await.unwrap();
        let Ok(Frame::Welcome(mut w)) = recv(&mut to_a).await else {
            return;
        };
        rewrite_welcome(&mut w);
        send(&mut to_d, Frame::Welcome(w)).await.unwrap();
        // The rest passes as it is.
        loop {
            tokio::select! {
                f = to_d.next() => match f { Some(Ok(b)) => { let _ = to_a.send(b.freeze()).await; } _ => return },
                f = to_a.next() => match f { Some(Ok(b)) => { let _ = to_d.send(b.freeze()).await; } _ => return },
            }
        }
    });
    let (dr, ar) = tokio::join!(dial(&mut ds, d, T), accept(&mut as_, a, (T, T)));
    relay.abort();
    (dr.is_ok(), ar.is_ok())
}

#[tokio::test]
async fn a_rewrite_of_any_field_of_either_side_fails_the_handshake() {
    let d = params("d", "c", &[key(1)]);
    let a = params("a", "c", &[key(1), key(2)]);
    // Untouched, it works through the relay.
    assert_eq!(relayed(&d, &a, |_| {}, |_| {}).await, (true, true));
    type H = Box<dyn Fn(&mut Hello) + Send>;
    let hellos: Vec<(&str, H)> = vec![
        ("min_version", Box::new(|h| h.min_version = 1)),
        ("max_version", Box::new(|h| h.max_version = 9)),
        ("cluster", Box::new(|h| h.cluster.push('x'))),
        ("name", Box::new(|h| h.peer.name = "e".into())),
        ("addr", Box::new(|h| h.peer.addr.set_port(20999))),
        ("incarnation", Box::new(|h| h.peer.incarnation += 1)),
        ("instance", Box::new(|h| h.peer.instance += 1)),
        (
            "role",
            Box::new(|h| h.peer.role = Some(ensemble_proto::topology::Role::Server)),
        ),
        ("ephemeral", Box::new(|h| h.ephemeral = ephemeral().1)),
        (
            "pake",
            Box::new(|h| h.pake = dialer_pake(&key(1), "c", [1; 32]).1),
        ),
    ];
    for (field, f) in hellos {
        let got = relayed(&d, &a, f, |_| {}).await;
        assert_eq!(got, (false, false), "Hello.{field} rewritten, yet {got:?}");
    }
    type W = Box<dyn Fn(&mut Welcome) + Send>;
    let welcomes: Vec<(&str, W)> = vec![
        ("name", Box::new(|w| w.core.peer.name = "e".into())),
        ("addr", Box::new(|w| w.core.peer.addr.set_port(20998))),
        ("incarnation", Box::new(|w| w.core.peer.incarnation += 1)),
        ("instance", Box::new(|w| w.core.peer.instance += 1)),
        (
            "role",
            Box::new(|w| w.core.peer.role = Some(ensemble_proto::topology::Role::Client)),
        ),
        ("ephemeral", Box::new(|w| w.core.ephemeral = ephemeral().1)),
        ("pakes order", Box::new(|w| w.core.pakes.reverse())),
        (
            "a pake",
            Box::new(|w| w.core.pakes[0] = acceptor_pake(&key(1), "c").1),
        ),
        ("confirms", Box::new(|w| w.confirms.reverse())),
        (
            "a key dropped",
            Box::new(|w| {
                w.core.pakes.truncate(1);
                w.confirms.truncate(1);
            }),
        ),
    ];
    for (field, f) in welcomes {
        let got = relayed(&d, &a, |_| {}, f).await;
        assert_eq!(
            got,
            (false, false),
            "Welcome.{field} rewritten, yet {got:?}"
        );
    }
}

/// Whoever recorded a connection and later learns the cluster key still cannot read it: the
/// session keys also come from ephemeral secrets that were never sent.
#[tokio::test]
async fn a_recorded_session_cannot_be_decrypted_with_the_key_afterwards() {
    let secret = key(1);
    let d = params("d", "c", std::slice::from_ref(&secret));
    let a = params("a", "c", std::slice::from_ref(&secret));
    let (mut ds, mut to_d) = pair().await;
    let (mut to_a, mut as_) = pair().await;
    let recorder = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                f = to_d.next() => match f { Some(Ok(b)) => { seen.push(b.to_vec()); let _ = to_a.send(b.freeze()).await; } _ => return seen },
                f = to_a.next() => match f { Some(Ok(b)) => { seen.push(b.to_vec()); let _ = to_d.send(b.freeze()).await; } _ => return seen },
            }
        }
    });
    let (dr, ar) = tokio::join!(dial(&mut ds, &d, T), accept(&mut as_, &a, (T, T)));
    let ((_, _, mut dsess), (_, _, mut asess)) = (dr.unwrap(), ar.unwrap());
    let sealed = dsess.seal(b"the payroll");
    ds.send(Bytes::from(sealed)).await.unwrap();
    let got = as_.next().await.unwrap().unwrap();
    assert_eq!(asess.open(&got).unwrap(), b"the payroll");
    drop((ds, as_));
    let seen = recorder.await.unwrap();
    let (hello, welcome) = (&seen[0], &seen[1]);
    let Frame::Welcome(w) = wire::decode(welcome).unwrap() else {
        panic!("the second frame is the welcome");
    };
    let th = transcript(hello, &w.core);
    let recorded = seen.last().unwrap();
    // With the key, the best one can do is a fresh exchange of its own against the recorded
    // messages; without the ephemeral secrets, neither it nor the public keys open the frame.
    let (state, _) = dialer_pake(&secret, "c", [3; 32]);
    let k = state.finish(&w.core.pakes[0]).unwrap();
    for dh in [[0u8; KEY_LEN], w.core.ephemeral, ephemeral().1] {
        let guess = derive(&k, &dh, &th);
        let mut s = Session::new(&guess.to_dialer, &guess.to_acceptor);
        assert!(s.open(recorded).is_err(), "a recorded frame opened");
    }
}
