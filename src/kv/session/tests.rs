use super::*;

const A: SessionId = [1; 16];
const B: SessionId = [2; 16];

fn seq(seq: u64, acked_below: u64) -> Sequenced {
    Sequenced { seq, acked_below }
}

fn table(window: u32, max_sessions: usize) -> Sessions {
    Sessions::new(SessionConfig {
        window,
        max_sessions,
        lifetime: Duration::from_secs(3600),
    })
}

/// Applies `seq` (it must be new) with answer `status`.
fn apply(sessions: &Sessions, session: SessionId, sequenced: Sequenced, status: Status) {
    match sessions.begin(session, sequenced) {
        Begin::Apply(ticket) => ticket.finish(status),
        other => panic!("{sequenced:?} of {session:?} was not applied: {other:?}"),
    }
}

fn refused(begin: Begin) -> Status {
    match begin {
        Begin::Refused(response) => response.status,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_resend_is_answered_with_the_first_answer_and_not_applied_again() {
    let sessions = table(8, 10);
    apply(&sessions, A, seq(1, 1), Status::Ok);
    apply(&sessions, A, seq(2, 1), Status::NotFound);
    for _ in 0..3 {
        assert!(matches!(
            sessions.begin(A, seq(1, 1)),
            Begin::Answered(Status::Ok)
        ));
        assert!(matches!(
            sessions.begin(A, seq(2, 1)),
            Begin::Answered(Status::NotFound)
        ));
    }
    // Another session's seq 1 is its own.
    apply(&sessions, B, seq(1, 1), Status::Ok);
}

#[test]
fn answers_below_acked_below_are_forgotten_and_their_resends_refused() {
    let sessions = table(8, 10);
    for n in 1..=5 {
        apply(&sessions, A, seq(n, 1), Status::Ok);
    }
    assert_eq!(sessions.answers_of(&A), 5);
    apply(&sessions, A, seq(6, 4), Status::Ok);
    assert_eq!(sessions.answers_of(&A), 3, "4, 5 and 6 are left");
    assert_eq!(refused(sessions.begin(A, seq(3, 3))), Status::BadRequest);
    assert!(matches!(
        sessions.begin(A, seq(4, 4)),
        Begin::Answered(Status::Ok)
    ));
}

#[test]
fn a_seq_at_or_over_acked_below_plus_the_window_is_a_bad_request_without_effect() {
    let sessions = table(4, 10);
    apply(&sessions, A, seq(1, 1), Status::Ok);
    assert_eq!(refused(sessions.begin(A, seq(5, 1))), Status::BadRequest);
    apply(&sessions, A, seq(4, 1), Status::Ok);
    apply(&sessions, A, seq(5, 2), Status::Ok);
    // So a session never holds more than `window` answers.
    assert!(sessions.answers_of(&A) <= 4);
    assert_eq!(refused(sessions.begin(A, seq(0, 0))), Status::BadRequest);
    assert_eq!(
        refused(sessions.begin(A, seq(6, 7))),
        Status::BadRequest,
        "acked_below over seq"
    );
    assert_eq!(
        refused(table(0, 10).begin(A, seq(1, 1))),
        Status::BadRequest,
        "window 0: no sessions"
    );
}

#[test]
fn an_unknown_session_starts_at_seq_1_and_is_expired_past_it() {
    let sessions = table(8, 10);
    assert_eq!(refused(sessions.begin(A, seq(2, 1))), Status::SessionExpired);
    assert!(sessions.is_empty(), "refused without a trace");
    apply(&sessions, A, seq(1, 1), Status::Ok);
    apply(&sessions, A, seq(2, 1), Status::Ok);
}

#[test]
fn over_max_sessions_the_least_recently_used_is_evicted() {
    let sessions = table(8, 2);
    apply(&sessions, A, seq(1, 1), Status::Ok);
    apply(&sessions, B, seq(1, 1), Status::Ok);
    // A is used again: B is now the least recently used.
    apply(&sessions, A, seq(2, 1), Status::Ok);
    apply(&sessions, [3; 16], seq(1, 1), Status::Ok);
    assert_eq!(sessions.len(), 2);
    assert_eq!(refused(sessions.begin(B, seq(2, 1))), Status::SessionExpired);
    assert!(matches!(
        sessions.begin(A, seq(2, 1)),
        Begin::Answered(Status::Ok)
    ));
}

#[test]
fn a_forgotten_sessions_resent_seq_1_is_expired_not_applied_again() {
    // The simulator's seed 9000127: seq 1 applied, its answer lost, the
    // session forgotten, seq 1 resent. Opening the session anew would
    // apply it twice.
    let sessions = table(8, 1);
    apply(&sessions, A, seq(1, 1), Status::Ok);
    apply(&sessions, B, seq(1, 1), Status::Ok); // evicts A
    assert_eq!(refused(sessions.begin(A, seq(1, 1))), Status::SessionExpired);
    // A new session's seq 1 is still applied.
    apply(&sessions, [3; 16], seq(1, 1), Status::Ok);
    // The table remembers the last max_sessions (1) forgotten ids: B is
    // the one remembered now, and A has dropped out.
    assert_eq!(refused(sessions.begin(B, seq(1, 1))), Status::SessionExpired);
    assert!(matches!(sessions.begin(A, seq(1, 1)), Begin::Apply(_)));
}

#[tokio::test(start_paused = true)]
async fn a_session_idle_past_its_lifetime_is_forgotten() {
    let sessions = Sessions::new(SessionConfig {
        lifetime: Duration::from_secs(3600),
        ..SessionConfig::default()
    });
    apply(&sessions, A, seq(1, 1), Status::Ok);
    apply(&sessions, B, seq(1, 1), Status::Ok);
    tokio::time::advance(Duration::from_secs(1800)).await;
    apply(&sessions, B, seq(2, 1), Status::Ok);
    tokio::time::advance(Duration::from_secs(1800)).await;
    // A has been idle an hour, B half an hour.
    assert_eq!(refused(sessions.begin(A, seq(2, 1))), Status::SessionExpired);
    assert_eq!(refused(sessions.begin(A, seq(1, 1))), Status::SessionExpired);
    assert!(matches!(
        sessions.begin(B, seq(2, 1)),
        Begin::Answered(Status::Ok)
    ));
    assert_eq!(sessions.len(), 1);
}

#[tokio::test]
async fn a_resend_racing_the_first_send_waits_for_its_answer() {
    let sessions = table(8, 10);
    let Begin::Apply(ticket) = sessions.begin(A, seq(1, 1)) else {
        panic!("first send")
    };
    let Begin::Wait(mut waiting) = sessions.begin(A, seq(1, 1)) else {
        panic!("the resend must not apply while the first is pending")
    };
    ticket.finish(Status::Ok);
    let answer = std::future::poll_fn(|cx| waiting.poll_answer(cx)).await;
    assert_eq!(answer.status, Status::Ok);
}

#[tokio::test]
async fn a_send_that_was_not_applied_frees_its_seq() {
    let sessions = table(8, 10);
    let Begin::Apply(ticket) = sessions.begin(A, seq(1, 1)) else {
        panic!("first send")
    };
    let Begin::Wait(mut waiting) = sessions.begin(A, seq(1, 1)) else {
        panic!("resend")
    };
    drop(ticket); // failed to log, cancelled, ...
    let answer = std::future::poll_fn(|cx| waiting.poll_answer(cx)).await;
    assert_eq!(answer.status, Status::Busy, "not applied: send it again");
    apply(&sessions, A, seq(1, 1), Status::Ok);
}

#[test]
fn many_threads_sending_the_same_seqs_apply_each_once() {
    let sessions = table(1024, 10);
    let applied = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for n in 1..=500 {
                    // Every thread sends every seq; whoever applies counts.
                    match sessions.begin(A, seq(n, 1)) {
                        Begin::Apply(ticket) => {
                            applied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            ticket.finish(Status::Ok);
                        }
                        Begin::Answered(Status::Ok) | Begin::Wait(_) => {}
                        other => panic!("{other:?}"),
                    }
                }
            });
        }
    });
    assert_eq!(applied.into_inner(), 500);
}

#[test]
fn a_snapshot_of_the_table_restores_it() {
    let sessions = table(8, 10);
    apply(&sessions, A, seq(1, 1), Status::Ok);
    apply(&sessions, A, seq(2, 2), Status::NotFound);
    apply(&sessions, B, seq(1, 1), Status::Ok);
    let restored = table(8, 10);
    sessions.for_each(|id, floor, answers| restored.restore(*id, floor, answers.collect::<Vec<_>>()));
    assert!(matches!(
        restored.begin(A, seq(2, 2)),
        Begin::Answered(Status::NotFound)
    ));
    assert_eq!(
        refused(restored.begin(A, seq(1, 1))),
        Status::BadRequest,
        "forgotten stays forgotten"
    );
    assert!(matches!(
        restored.begin(B, seq(1, 1)),
        Begin::Answered(Status::Ok)
    ));
}

#[test]
fn a_hundred_thousand_full_sessions_stay_within_the_window_bound() {
    let window = 16;
    let sessions = table(window, 100_000);
    for n in 0..100_000u32 {
        let mut id = [0; 16];
        id[..4].copy_from_slice(&n.to_le_bytes());
        for s in 1..=u64::from(window) {
            apply(&sessions, id, seq(s, 1), Status::Ok);
        }
        assert_eq!(
            refused(sessions.begin(id, seq(u64::from(window) + 1, 1))),
            Status::BadRequest
        );
    }
    assert_eq!(sessions.len(), 100_000);
    let mut answers = 0;
    sessions.for_each(|_, _, each| answers += each.count());
    assert_eq!(answers, 100_000 * window as usize);
}
