use bytes::BytesMut;
use tokio::time::Duration;

use super::*;

fn id(s: &str) -> NodeId {
    NodeId::try_new(s).unwrap()
}

fn known(claimed: &str) -> Option<NodeId> {
    ["n1", "n2"].contains(&claimed).then(|| id(claimed))
}

async fn run(
    dial_cookie: &str,
    accept_cookie: &str,
    dial_as: &str,
    expect: &str,
) -> (
    Result<Keys, HandshakeError>,
    Result<(NodeId, Keys), HandshakeError>,
) {
    let (mut a, mut b) = tokio::io::duplex(4096);
    let (me_d, exp) = (id(dial_as), id(expect));
    let (psk_d, psk_a) = (Psk::for_test(dial_cookie), Psk::for_test(accept_cookie));
    // Each side drops its end when done, as a real connection would be closed.
    tokio::join!(
        async {
            let r = dial(&mut a, &me_d, &exp, &psk_d).await;
            drop(a);
            r
        },
        async {
            let r = accept(&mut b, &id("n2"), &psk_a, known).await;
            drop(b);
            r
        }
    )
}

#[tokio::test]
async fn the_same_cookie_authenticates_both_ways_and_the_keys_match() {
    let (d, a) = run("cookie-cookie-cookie", "cookie-cookie-cookie", "n1", "n2").await;
    let mut d = d.unwrap();
    let (peer, mut a) = a.unwrap();
    assert_eq!(peer, id("n1"));
    for (from, to) in [
        (&mut d.sealer, &mut a.opener),
        (&mut a.sealer, &mut d.opener),
    ] {
        let sealed = from.seal(b"ping").unwrap().to_vec();
        to.sealed_buf().extend_from_slice(&sealed);
        let mut plain = BytesMut::new();
        to.open_into(&mut plain).unwrap();
        assert_eq!(&plain[..], b"ping");
    }
}

#[tokio::test]
async fn a_different_cookie_fails_on_both_sides() {
    let (d, a) = run("cookie-cookie-cookie", "another-cookie-here", "n1", "n2").await;
    assert!(d.is_err());
    assert!(matches!(a, Err(HandshakeError::BadKey)), "{a:?}");
}

#[tokio::test]
async fn unknown_or_unexpected_peers_are_refused() {
    let (_, a) = run("cookie-cookie-cookie", "cookie-cookie-cookie", "n9", "n2").await;
    assert!(matches!(a, Err(HandshakeError::UnknownPeer(p)) if p == "n9"));
    let (d, a) = run("cookie-cookie-cookie", "cookie-cookie-cookie", "n1", "n3").await;
    assert!(d.is_err());
    assert!(matches!(a, Err(HandshakeError::WrongPeer { .. })), "{a:?}");
}

#[tokio::test]
async fn garbage_is_refused() {
    let (mut a, mut b) = tokio::io::duplex(4096);
    a.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let r = accept(&mut b, &id("n2"), &Psk::for_test("cookie"), |_| None).await;
    assert!(matches!(r, Err(HandshakeError::BadMagic)));
}

/// The hello a dialer sends, with its first Noise message made with `cookie`.
fn hello(cookie: &str) -> Vec<u8> {
    let psk = Psk::for_test(cookie);
    let prologue = prologue("n1", "n2");
    let mut noise = builder(&psk, &prologue).unwrap().build_initiator().unwrap();
    let mut msg = [0u8; 256];
    let n = noise.write_message(&[], &mut msg).unwrap();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    push_id(&mut out, "n1");
    push_id(&mut out, "n2");
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&msg[..n]);
    out
}

/// Runs an acceptor against `sent` (then silence, for at most 300 ms): what the acceptor
/// answered and how it ended.
async fn acceptor_answer(sent: &[u8]) -> (Vec<u8>, Option<Result<NodeId, HandshakeError>>) {
    let (mut a, mut b) = tokio::io::duplex(64 * 1024);
    a.write_all(sent).await.unwrap();
    let psk = Psk::for_test("the-real-cookie");
    let outcome = tokio::time::timeout(
        Duration::from_millis(300),
        accept(&mut b, &id("n2"), &psk, known),
    )
    .await
    .ok()
    .map(|r| r.map(|(peer, _)| peer));
    drop(b);
    let mut answer = Vec::new();
    a.read_to_end(&mut answer).await.unwrap();
    (answer, outcome)
}

#[tokio::test]
async fn the_acceptor_sends_nothing_to_a_dialer_that_has_not_proved_the_key() {
    // Ids right, key wrong: refused, and not one byte comes back (the old handshake answered
    // with its MAC of the cookie here, an offline guessing oracle).
    let (answer, outcome) = acceptor_answer(&hello("a-guessed-cookie")).await;
    assert!(
        answer.is_empty(),
        "the acceptor sent {} bytes",
        answer.len()
    );
    assert!(
        matches!(outcome, Some(Err(HandshakeError::BadKey))),
        "{outcome:?}"
    );

    // Only the clear part of the hello, then silence: nothing comes back either.
    let full = hello("a-guessed-cookie");
    let (answer, outcome) = acceptor_answer(&full[..4 + 2 + 3 + 3]).await;
    assert!(
        answer.is_empty(),
        "the acceptor sent {} bytes",
        answer.len()
    );
    assert!(outcome.is_none(), "{outcome:?}");
}

#[tokio::test]
async fn a_replayed_hello_gets_no_link() {
    // A dialer's hello made with the real key, replayed by someone who lacks its ephemeral
    // secret: the acceptor answers (with a message the replayer cannot use) but installs no link.
    let (answer, outcome) = acceptor_answer(&hello("the-real-cookie")).await;
    assert!(!answer.is_empty());
    assert!(!matches!(outcome, Some(Ok(_))), "{outcome:?}");
}

/// Properties over arbitrary bytes from a stranger, at every step of the handshake.
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// What a stranger sends: bytes at random, or a valid start (the magic and version, the ids,
    /// or a whole hello made with the right cookie) followed by bytes at random; and whether
    /// it starts with that hello.
    fn sent() -> impl Strategy<Value = (Vec<u8>, bool)> {
        let tail = prop::collection::vec(any::<u8>(), 0..300);
        let mut ids = MAGIC.to_vec();
        ids.extend_from_slice(&VERSION.to_le_bytes());
        push_id(&mut ids, "n1");
        push_id(&mut ids, "n2");
        let starts = vec![
            (Vec::new(), false),
            (MAGIC.to_vec(), false),
            (ids[..6].to_vec(), false),
            (ids, false),
            (hello("the-real-cookie"), true),
        ];
        (prop::sample::select(starts), tail).prop_map(|((mut start, with_key), tail)| {
            start.extend_from_slice(&tail);
            (start, with_key)
        })
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The acceptor refuses (never authenticates, never panics) and, since the bytes end,
        /// ends; it answers only a first Noise message made with the key.
        #[test]
        fn an_acceptor_refuses_whatever_a_stranger_sends((sent, with_key) in sent()) {
            let (answer, outcome) = block_on(async {
                let (mut a, mut b) = tokio::io::duplex(64 * 1024);
                a.write_all(&sent).await.unwrap();
                a.shutdown().await.unwrap();
                let psk = Psk::for_test("the-real-cookie");
                let outcome = tokio::time::timeout(
                    Duration::from_secs(10),
                    accept(&mut b, &id("n2"), &psk, known),
                )
                .await;
                drop(b);
                let mut answer = Vec::new();
                a.read_to_end(&mut answer).await.unwrap();
                (answer, outcome)
            });
            let outcome = outcome.map_err(|_| TestCaseError::fail("the acceptor did not end at the end of the bytes"))?;
            prop_assert!(outcome.is_err(), "a stranger authenticated as {:?}", outcome.map(|(p, _)| p));
            if !with_key {
                prop_assert!(answer.is_empty(), "answered {} bytes to a stranger", answer.len());
            }
        }

        /// A dialer refuses whatever answer comes back, and ends when the bytes end.
        #[test]
        fn a_dialer_refuses_any_answer_but_the_acceptors(answer in prop::collection::vec(any::<u8>(), 0..300)) {
            let outcome = block_on(async {
                let (mut a, mut b) = tokio::io::duplex(64 * 1024);
                a.write_all(&answer).await.unwrap();
                a.shutdown().await.unwrap();
                let psk = Psk::for_test("the-real-cookie");
                tokio::time::timeout(Duration::from_secs(10), dial(&mut b, &id("n1"), &id("n2"), &psk))
                    .await
                    .map(|r| r.map(|_| ()))
            });
            let outcome = outcome.map_err(|_| TestCaseError::fail("the dialer did not end at the end of the bytes"))?;
            prop_assert!(outcome.is_err(), "authenticated by {} random bytes", answer.len());
        }
    }
}
