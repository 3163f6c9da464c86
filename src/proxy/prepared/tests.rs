//! Unit tests of the session hooks: what is remembered, which batches are
//! kept, which replies are held back (the integration tests run the same
//! against Postgres).

use super::*;
use crate::wire::messages::{ProxyError, SYNC};

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    messages::parse_typed(name.as_bytes(), sql, &[0, 0])
}

fn bind(statement: &str) -> Vec<u8> {
    frame(b'B', format!("\0{statement}\0\0\0\0\0\0\0").as_bytes())
}

fn row_description() -> Vec<u8> {
    frame(
        b'T',
        &messages::row_description_body(&[("id", 16384, 1, 23), ("v", 16384, 2, 25)]),
    )
}

fn cached_plan_error() -> Vec<u8> {
    ProxyError::error("0A000", "cached plan must not change result type").to_frame()
}

fn session() -> (Prepared, Arc<Registry>) {
    let registry = Arc::new(Registry::default());
    (Prepared::new(1, registry.clone()), registry)
}

/// The server's answer to one message, through the hooks as the relay
/// calls them; true when held back.
fn server(p: &mut Prepared, f: &[u8]) -> bool {
    match p.server_interest(f[0]) {
        Interest::None => false,
        Interest::Tag => p.on_server(f[0], &f[..5]),
        Interest::Frame => p.on_server(f[0], f),
    }
}

/// `quiet`: nothing owed, status `I` (a transaction block is not quiet).
fn client(p: &mut Prepared, f: &[u8], quiet: bool) {
    let seen = if p.wants_client_body(f[0]) {
        f.len()
    } else {
        5
    };
    p.on_client(f[0], &f[..seen], quiet, b'I');
}

/// Parse + Sync of `sql` as `name`, answered; the proxy's own Describe
/// goes right behind the Parse and its answers are taken out.
fn prepare(p: &mut Prepared, name: &str, sql: &str) {
    client(p, &parse(name, sql), true);
    let own = p
        .take_describe()
        .expect("the proxy describes the statement");
    assert_eq!(own, messages::target_message(b'D', b'S', name.as_bytes()));
    client(p, &SYNC, false);
    assert!(!server(p, &frame(b'1', b"")));
    assert!(server(p, &frame(b't', &[0, 0])));
    assert!(server(p, &row_description()));
    assert!(!server(p, &frame(b'Z', b"I")));
}

fn prepared_star(p: &mut Prepared) {
    prepare(p, "s1", "SELECT * FROM t WHERE id = $1");
}

#[test]
fn nothing_is_read_while_no_named_statement_is_in_play() {
    let (mut p, _) = session();
    assert!(!p.wants_client_body(b'D'));
    assert!(!p.wants_client_body(b'Q'));
    client(&mut p, &parse("", "SELECT * FROM t"), true);
    client(&mut p, &parse("named", "SELECT 1"), true);
    assert_eq!(p.take_describe(), None);
    // DDL is left alone: the gate may answer its batch itself.
    client(
        &mut p,
        &parse("ddl", "CREATE VIEW v AS SELECT * FROM t"),
        true,
    );
    assert_eq!(p.take_describe(), None);
    assert!(p.store.is_empty());
    client(&mut p, &bind(""), false);
    client(&mut p, &SYNC, false);
    for tag in [b'1', b'2', b'T', b'D', b'C', b'Z', b'E'] {
        assert_eq!(p.server_interest(tag), Interest::None);
    }
}

#[test]
fn the_described_shape_is_remembered_and_freed_on_close_and_discard() {
    let (mut p, _) = session();
    prepared_star(&mut p);
    let s = p.store.get(b"s1").expect("remembered");
    assert_eq!(s.shape.as_deref(), Some(&row_description()[5..]));
    assert_eq!(s.params.as_deref(), Some(&[0u8, 0][..]));
    client(&mut p, &messages::target_message(b'C', b'S', b"s1"), true);
    assert!(p.store.is_empty());
    prepared_star(&mut p);
    client(&mut p, &messages::query("discard all"), true);
    assert!(p.store.is_empty());
    assert!(!server(&mut p, &frame(b'Z', b"I")));
    prepared_star(&mut p);
    client(&mut p, &messages::query("DEALLOCATE s1"), true);
    assert!(p.store.is_empty());
    assert!(!server(&mut p, &frame(b'Z', b"I")));
    assert!(p.expects.is_empty());
}

#[test]
fn the_cached_plan_error_of_a_quiet_batch_is_held_back_to_its_ready() {
    let (mut p, registry) = session();
    prepared_star(&mut p);
    let batch = [
        bind("s1"),
        messages::target_message(b'D', b'P', b""),
        frame(b'E', b"\0\0\0\0\0"),
        SYNC.to_vec(),
    ];
    for (i, f) in batch.iter().enumerate() {
        client(&mut p, f, i == 0);
    }
    assert!(server(&mut p, &cached_plan_error()));
    assert!(p.holds_client());
    assert!(!p.recovery_due());
    assert!(server(&mut p, &frame(b'Z', b"I")));
    assert!(p.recovery_due());
    let r = p.take_recovery().expect("a recovery");
    assert_eq!(r.batch, batch.concat());
    assert_eq!(r.sql, r#"SELECT t."id", t."v" FROM t WHERE id = $1"#);
    assert!(!p.holds_client());
    p.recovered(r, 10);
    assert!(p.store.get(b"s1").is_some_and(|s| s.old));
    assert_eq!(registry.old_shapes().len(), 1);
    client(&mut p, &messages::target_message(b'C', b'S', b"s1"), true);
    assert!(registry.old_shapes().is_empty());
}

#[test]
fn other_batches_and_replies_pass_untouched() {
    let (mut p, registry) = session();
    prepared_star(&mut p);
    // Not quiet (a transaction block, or replies still owed).
    client(&mut p, &bind("s1"), false);
    client(&mut p, &SYNC, false);
    assert!(!server(&mut p, &cached_plan_error()));
    assert!(!server(&mut p, &frame(b'Z', b"E")));
    // The batch succeeded: its first reply was BindComplete.
    client(&mut p, &bind("s1"), true);
    client(&mut p, &SYNC, false);
    assert!(!server(&mut p, &frame(b'2', b"")));
    assert!(!server(&mut p, &cached_plan_error()));
    assert!(!server(&mut p, &frame(b'Z', b"I")));
    // Another error.
    client(&mut p, &bind("s1"), true);
    client(&mut p, &SYNC, false);
    let other = ProxyError::error("0A000", "something else").to_frame();
    assert!(!server(&mut p, &other));
    assert!(!server(&mut p, &frame(b'Z', b"I")));
    // A later batch forwarded behind it before the error came.
    client(&mut p, &bind("s1"), true);
    client(&mut p, &SYNC, false);
    client(&mut p, &messages::query("SELECT 1"), false);
    assert!(!server(&mut p, &cached_plan_error()));
    assert!(!server(&mut p, &frame(b'Z', b"I")));
    assert!(!server(&mut p, &frame(b'Z', b"I")));
    // The error came before the Sync, and the client flushed instead: the
    // held error goes back, in place.
    client(&mut p, &bind("s1"), true);
    client(&mut p, &frame(b'E', b"\0\0\0\0\0"), false);
    assert!(server(&mut p, &cached_plan_error()));
    assert!(!p.holds_client());
    client(&mut p, &frame(b'H', b""), false);
    assert_eq!(p.take_returned(), Some(cached_plan_error()));
    assert!(!p.recovery_due());
    assert_eq!(registry.passed_through.load(Ordering::Relaxed), 1);
    assert_eq!(registry.recovered.load(Ordering::Relaxed), 0);
}

#[test]
fn a_statement_whose_stars_cannot_be_pinned_gets_the_error() {
    let (mut p, registry) = session();
    prepare(&mut p, "s2", "SELECT * FROM t JOIN u USING (id)");
    client(&mut p, &bind("s2"), true);
    client(&mut p, &SYNC, false);
    assert!(server(&mut p, &cached_plan_error()));
    assert!(server(&mut p, &frame(b'Z', b"I")));
    let replies = p.take_recovery().err().expect("refused");
    assert_eq!(replies, [cached_plan_error(), frame(b'Z', b"I")].concat());
    assert_eq!(registry.passed_through.load(Ordering::Relaxed), 1);
}

#[test]
fn the_client_s_own_describes_keep_their_answers() {
    let (mut p, _) = session();
    prepared_star(&mut p);
    // Once the proxy's Describe is answered, executions cost no tracking.
    assert!(!p.wants_client_body(b'D'));
    assert_eq!(p.server_interest(b'T'), Interest::None);
    // A Parse pipelined behind unanswered messages is not described (the
    // proxy would not know which answer is its own).
    client(&mut p, &parse("late", "SELECT * FROM t"), false);
    assert_eq!(p.take_describe(), None);
    assert!(p.store.get(b"late").is_none());
    // libpq's PQsendQueryPrepared: Bind, Describe portal, Execute, Sync;
    // then a Describe of the statement.
    client(&mut p, &bind("s1"), true);
    client(&mut p, &messages::target_message(b'D', b'P', b""), false);
    client(&mut p, &frame(b'E', b"\0\0\0\0\0"), false);
    client(&mut p, &SYNC, false);
    client(&mut p, &messages::target_message(b'D', b'S', b"s1"), true);
    client(&mut p, &SYNC, false);
    for f in [
        frame(b'2', b""),
        row_description(),
        frame(b'C', b"SELECT 0\0"),
        frame(b'Z', b"I"),
        frame(b't', &[0, 0]),
        row_description(),
        frame(b'Z', b"I"),
    ] {
        assert!(!server(&mut p, &f));
    }
    // A failed Parse: the proxy's Describe is skipped with it.
    client(&mut p, &parse("s4", "SELECT * FROM nowhere"), true);
    assert!(p.take_describe().is_some());
    client(&mut p, &SYNC, false);
    assert!(!server(
        &mut p,
        &ProxyError::error("42P01", "no").to_frame()
    ));
    assert!(!server(&mut p, &frame(b'Z', b"I")));
    assert!(p.expects.is_empty());
}
