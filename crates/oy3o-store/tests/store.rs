//! The store on both backends, through its public API: migrations, resume, owner scoping,
//! search and prune, recovery of dead instances, and a database that goes away mid-answer.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Db;
use oy3o::{Citation, Event, Usage};
use oy3o_store::{
    ChatRecord, Health, OpenOptions, Recorder, RecorderOptions, Store, TurnRecord, TurnState,
    history, now_ms, open, open_with,
};

/// Runs a test body on SQLite and on PostgreSQL.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn on_sqlite() {
                super::$name(super::Db::sqlite()).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn on_postgres() {
                super::$name(super::Db::postgres()).await
            }
        }
    };
}

async fn open_store(db: &Db) -> Arc<dyn Store> {
    open(&db.setting())
        .await
        .expect("the store opens")
        .expect("not `none`")
}

/// Runs raw SQL behind the store's back (to check tables or age a heartbeat).
async fn raw_execute(db: &Db, sql: &'static str, bind: &str) -> u64 {
    match db {
        Db::Sqlite(_) => {
            let pool = sqlx::SqlitePool::connect(&db.url()).await.expect("connect");
            let n = sqlx::query(sql)
                .bind(bind)
                .execute(&pool)
                .await
                .expect("sql");
            pool.close().await;
            n.rows_affected()
        }
        Db::Postgres(_) => {
            let pool = sqlx::PgPool::connect(&db.url()).await.expect("connect");
            let n = sqlx::query(sql)
                .bind(bind)
                .execute(&pool)
                .await
                .expect("sql");
            pool.close().await;
            n.rows_affected()
        }
    }
}

async fn migrations_applied(db: &Db) -> i64 {
    match db {
        Db::Sqlite(_) => {
            let pool = sqlx::SqlitePool::connect(&db.url()).await.expect("connect");
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(&pool)
                .await
                .expect("count");
            pool.close().await;
            n
        }
        Db::Postgres(_) => {
            let pool = sqlx::PgPool::connect(&db.url()).await.expect("connect");
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(&pool)
                .await
                .expect("count");
            pool.close().await;
            n
        }
    }
}

async fn record(recorder: &Recorder, chat: &ChatRecord, seq: i64, prompt: &str, chunks: &[&str]) {
    let turn = recorder.begin_turn(chat, seq, prompt);
    for c in chunks {
        turn.chunk(c);
    }
    turn.finish(TurnState::Done, None, None);
}

async fn flushed(recorder: &Recorder) {
    tokio::time::timeout(Duration::from_secs(30), recorder.flush())
        .await
        .expect("flush finishes")
        .expect("flush writes");
}

async fn migrations_run_from_empty_and_reopening_changes_nothing(db: Db) {
    let store = open_store(&db).await;
    let chat = store
        .open_chat("", "work", Some("openai:x"), None)
        .await
        .unwrap();
    store.close().await;
    let applied = migrations_applied(&db).await;
    assert!(applied >= 1, "no migration recorded");
    let again = open_store(&db).await;
    assert_eq!(migrations_applied(&db).await, applied);
    assert_eq!(again.find_chat("", "work").await.unwrap(), Some(chat));
    again.close().await;
}
on_both!(migrations_run_from_empty_and_reopening_changes_nothing);

async fn a_chat_and_its_turns_come_back_in_order_after_reopening(db: Db) {
    let store = open_store(&db).await;
    let chat = store
        .open_chat("", "work", Some("openai:gpt-4o-mini"), Some("Be brief."))
        .await
        .unwrap();
    let recorder = Recorder::new(store.clone());
    let first = recorder.begin_turn(&chat, 0, "What is 1+1?");
    first.event(&Event::Reasoning("adding".into()));
    first.chunk("1 + 1");
    first.chunk(" = 2");
    first.event(&Event::Citation(Citation {
        url: "https://example.org/math".into(),
        ..Citation::default()
    }));
    let usage = Usage {
        input_tokens: 9,
        output_tokens: 4,
        ..Usage::default()
    };
    first.finish(TurnState::Done, Some(&usage), None);
    record(&recorder, &chat, 1, "And 2+2?", &["4"]).await;
    let third = recorder.begin_turn(&chat, 2, "Explain");
    third.finish(TurnState::Error, None, Some("rate limited"));
    flushed(&recorder).await;
    drop(recorder);
    store.close().await;

    let store = open_store(&db).await;
    let found = store
        .find_chat("", "work")
        .await
        .unwrap()
        .expect("the chat");
    assert_eq!(found.id, chat.id);
    assert_eq!(found.context.as_deref(), Some("Be brief."));
    let turns = store.turns("", &chat.id).await.unwrap();
    let prompts: Vec<&str> = turns.iter().map(|t| t.prompt.as_str()).collect();
    assert_eq!(prompts, ["What is 1+1?", "And 2+2?", "Explain"]);
    assert_eq!(turns[0].answer, "1 + 1 = 2");
    assert_eq!(turns[0].reasoning, "adding");
    assert_eq!(turns[0].usage.as_ref(), Some(&usage));
    assert_eq!(turns[0].events.len(), 1, "{:?}", turns[0].events);
    assert_eq!(turns[0].events[0]["event"], "citation");
    assert!(turns[0].first_token_ms.is_some() && turns[0].elapsed_ms.is_some());
    assert_eq!(turns[2].state, TurnState::Error);
    assert_eq!(turns[2].error.as_deref(), Some("rate limited"));
    let messages = history(&turns);
    assert_eq!(
        messages.len(),
        4,
        "the failed turn adds nothing: {messages:?}"
    );
    assert_eq!(messages[3].content, "4");
    let listed = store.chats("").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].turns, 3);
    assert_eq!(store.chat_by_id("", &chat.id).await.unwrap(), Some(found));
    store.close().await;
}
on_both!(a_chat_and_its_turns_come_back_in_order_after_reopening);

async fn another_owner_can_neither_find_nor_list_nor_load_a_chat(db: Db) {
    let store = open_store(&db).await;
    let chat = store
        .open_chat("alice", "secret", None, None)
        .await
        .unwrap();
    let recorder = Recorder::new(store.clone());
    record(&recorder, &chat, 0, "my plans", &["are private"]).await;
    flushed(&recorder).await;
    assert!(store.find_chat("bob", "secret").await.unwrap().is_none());
    assert!(store.chat_by_id("bob", &chat.id).await.unwrap().is_none());
    assert!(store.chats("bob").await.unwrap().is_empty());
    assert!(store.turns("bob", &chat.id).await.unwrap().is_empty());
    assert!(
        store
            .recent_turns("bob", 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .recent_turns("bob", 10, Some("private"))
            .await
            .unwrap()
            .is_empty()
    );
    // Bob's chat of the same name is his own.
    let bobs = store.open_chat("bob", "secret", None, None).await.unwrap();
    assert_ne!(bobs.id, chat.id);
    assert_eq!(store.turns("alice", &chat.id).await.unwrap().len(), 1);
    store.close().await;
}
on_both!(another_owner_can_neither_find_nor_list_nor_load_a_chat);

fn old_turn(chat: &ChatRecord, seq: i64, prompt: &str, answer: &str, at: i64) -> TurnRecord {
    TurnRecord {
        id: oy3o_store::new_id(),
        chat_id: chat.id.clone(),
        seq,
        owner: chat.owner.clone(),
        prompt: prompt.into(),
        answer: answer.into(),
        reasoning: String::new(),
        events: Vec::new(),
        usage: None,
        model: None,
        first_token_ms: Some(5),
        elapsed_ms: Some(9),
        state: TurnState::Done,
        error: None,
        instance: "test".into(),
        created_at: at,
        updated_at: at,
    }
}

async fn search_finds_turns_by_their_words_and_prune_removes_old_turns_and_empty_chats(db: Db) {
    let store = open_store(&db).await;
    let day = 24 * 3600 * 1000;
    let long_ago = now_ms() - 40 * day;
    let mut old_chat = ChatRecord::new("", Some("old"), None, None);
    old_chat.created_at = long_ago;
    old_chat.updated_at = long_ago;
    let new_chat = ChatRecord::new("", Some("new"), None, None);
    store
        .save_turns(&[
            (
                old_chat.clone(),
                old_turn(&old_chat, 0, "penguins of the south", "they swim", long_ago),
            ),
            (
                new_chat.clone(),
                old_turn(
                    &new_chat,
                    0,
                    "tell me about owls",
                    "owls hunt at night",
                    now_ms(),
                ),
            ),
        ])
        .await
        .unwrap();
    let found = store.recent_turns("", 10, Some("penguins")).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].chat_name.as_deref(), Some("old"));
    let found = store
        .recent_turns("", 10, Some("hunt night"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].turn.answer, "owls hunt at night");
    assert!(
        store
            .recent_turns("", 10, Some("walrus"))
            .await
            .unwrap()
            .is_empty()
    );
    // Punctuation and FTS operators in the text are searched for, not interpreted.
    assert!(
        store
            .recent_turns("", 10, Some("owls\" OR ("))
            .await
            .is_ok()
    );
    let all = store.recent_turns("", 10, None).await.unwrap();
    assert_eq!(all[0].turn.prompt, "tell me about owls", "newest first");

    let pruned = store.prune(Some(""), now_ms() - 30 * day).await.unwrap();
    assert_eq!((pruned.turns, pruned.chats), (1, 1));
    assert!(store.find_chat("", "old").await.unwrap().is_none());
    assert!(store.find_chat("", "new").await.unwrap().is_some());
    assert!(
        store
            .recent_turns("", 10, Some("penguins"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.recent_turns("", 10, None).await.unwrap().len(), 1);
    store.close().await;
}
on_both!(search_finds_turns_by_their_words_and_prune_removes_old_turns_and_empty_chats);

async fn a_dead_instances_streaming_turn_becomes_interrupted_and_a_live_ones_is_untouched(db: Db) {
    let dead = open_store(&db).await;
    let live = open_store(&db).await;
    let chat = dead.open_chat("", "c", None, None).await.unwrap();
    let dead_recorder = Recorder::new(dead.clone());
    let live_recorder = Recorder::new(live.clone());
    let dying = dead_recorder.begin_turn(&chat, 0, "long answer please");
    dying.chunk("the beginning of it");
    let running = live_recorder.begin_turn(&chat, 1, "another");
    running.chunk("still going");
    flushed(&dead_recorder).await;
    flushed(&live_recorder).await;
    // The dead instance stops its heartbeat: as if killed, its last one long ago.
    std::mem::forget(dying);
    let aged = match db {
        Db::Sqlite(_) => {
            raw_execute(
                &db,
                "UPDATE instances SET seen_at = 0 WHERE id = ?",
                dead.instance(),
            )
            .await
        }
        Db::Postgres(_) => {
            raw_execute(
                &db,
                "UPDATE instances SET seen_at = 0 WHERE id = $1",
                dead.instance(),
            )
            .await
        }
    };
    assert_eq!(aged, 1);
    // An instance gone quiet with nothing streaming (a CLI run that exited) is forgotten too.
    let idle = open_store(&db).await;
    let sql = match db {
        Db::Sqlite(_) => "UPDATE instances SET seen_at = 0 WHERE id = ?",
        Db::Postgres(_) => "UPDATE instances SET seen_at = 0 WHERE id = $1",
    };
    assert_eq!(raw_execute(&db, sql, idle.instance()).await, 1);

    let next = open_with(&db.setting(), &OpenOptions::default())
        .await
        .unwrap()
        .unwrap();
    let turns = next.turns("", &chat.id).await.unwrap();
    assert_eq!(turns[0].state, TurnState::Interrupted);
    assert_eq!(
        turns[0].answer, "the beginning of it",
        "the flushed text stays"
    );
    assert_eq!(
        turns[1].state,
        TurnState::Streaming,
        "a live instance's turn is untouched"
    );
    let sql = match db {
        Db::Sqlite(_) => "DELETE FROM instances WHERE id = ?",
        Db::Postgres(_) => "DELETE FROM instances WHERE id = $1",
    };
    assert_eq!(
        raw_execute(&db, sql, idle.instance()).await,
        0,
        "the idle instance is forgotten"
    );
    assert_eq!(
        raw_execute(&db, sql, dead.instance()).await,
        0,
        "the dead instance is forgotten"
    );
    running.chunk(", and done");
    running.finish(TurnState::Done, None, None);
    flushed(&live_recorder).await;
    let turns = next.turns("", &chat.id).await.unwrap();
    assert_eq!(turns[1].answer, "still going, and done");
    assert_eq!(turns[1].state, TurnState::Done);
    next.close().await;
}
on_both!(a_dead_instances_streaming_turn_becomes_interrupted_and_a_live_ones_is_untouched);

#[tokio::test(flavor = "multi_thread")]
async fn answers_keep_recording_while_postgres_is_down_and_the_writes_catch_up() {
    let db = Db::postgres();
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    let store = open_store(&db).await;
    let recorder = Recorder::with_options(
        store.clone(),
        RecorderOptions {
            max_backoff: Duration::from_millis(300),
            ..RecorderOptions::default()
        },
    );
    let health = Arc::new(Mutex::new(Vec::new()));
    let seen = health.clone();
    recorder.on_health(move |h| seen.lock().unwrap().push(h.clone()));
    let chat = store.open_chat("", "outage", None, None).await.unwrap();
    let before = recorder.begin_turn(&chat, 0, "before");
    before.chunk("written");
    flushed(&recorder).await;

    pg.stop();
    let during = recorder.begin_turn(&chat, 1, "during");
    let mut expected = String::new();
    for i in 0..200 {
        let piece = format!("chunk {i}; ");
        during.chunk(&piece);
        expected.push_str(&piece);
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    before.chunk(" and more");
    before.finish(TurnState::Done, None, None);
    during.finish(TurnState::Done, None, None);
    let failed = tokio::time::timeout(Duration::from_secs(30), recorder.flush())
        .await
        .expect("flush returns while the database is down");
    assert!(failed.is_err(), "a flush during the outage reports it");
    assert!(recorder.pending() >= 2, "the turns wait in memory");

    pg.run();
    flushed(&recorder).await;
    let turns = store.turns("", &chat.id).await.unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0].answer, "written and more");
    assert_eq!(turns[1].answer, expected);
    assert!(turns.iter().all(|t| t.state == TurnState::Done));
    let health = health.lock().unwrap().clone();
    assert_eq!(health.len(), 2, "one report per outage: {health:?}");
    assert!(matches!(health[0], Health::Failing(_)));
    assert_eq!(health[1], Health::Recovered);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_cannot_open_is_reported_and_turns_still_accept_text() {
    let recorder = Recorder::opening(
        async {
            open(&oy3o_store::StoreSetting::Postgres(
                "postgres://nobody:pw@127.0.0.1:1/none".into(),
            ))
            .await
            .and_then(|s| s.ok_or(oy3o_store::StoreError::Disabled))
        },
        RecorderOptions::default(),
    );
    let chat = ChatRecord::new("", None, None, None);
    let turn = recorder.begin_turn(&chat, 0, "hi");
    turn.chunk("the answer goes on");
    turn.finish(TurnState::Done, None, None);
    let err = tokio::time::timeout(Duration::from_secs(30), recorder.flush())
        .await
        .expect("flush returns")
        .expect_err("the store never opened");
    let message = err.to_string();
    assert!(message.contains("cannot open the store"), "{message}");
    assert!(
        !message.contains(":pw@"),
        "no password in errors: {message}"
    );
}

async fn a_turn_the_database_refuses_is_dropped_and_never_blocks_the_others(db: Db) {
    let store = open_store(&db).await;
    let existing = store.open_chat("", "taken", None, None).await.unwrap();
    let recorder = Recorder::new(store.clone());
    // A second chat record with the same (owner, name): the database refuses it.
    let clash = ChatRecord::new("", Some("taken"), None, None);
    let good = ChatRecord::new("", None, None, None);
    record(&recorder, &clash, 0, "refused", &["never stored"]).await;
    record(&recorder, &good, 0, "fine", &["stored"]).await;
    flushed(&recorder).await;
    assert_eq!(recorder.pending(), 0);
    let logged = store.recent_turns("", 10, None).await.unwrap();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].turn.answer, "stored");
    assert!(store.turns("", &existing.id).await.unwrap().is_empty());
    store.close().await;
}
on_both!(a_turn_the_database_refuses_is_dropped_and_never_blocks_the_others);

/// A turn of `chat` with an answer of its own, as a face would have written it.
fn batch_turn(chat: &ChatRecord, seq: i64, answer: &str) -> TurnRecord {
    let mut turn = old_turn(chat, seq, &format!("prompt {seq}"), answer, now_ms());
    turn.id = format!("{}-{seq:05}", chat.id);
    turn
}

async fn a_batch_larger_than_one_statement_is_written_and_updated_whole(db: Db) {
    let store = open_store(&db).await;
    // More rows than one SQLite statement takes (1,000), over several chats.
    let chats: Vec<ChatRecord> = (0..7)
        .map(|i| ChatRecord::new("", Some(&format!("batch {i}")), None, None))
        .collect();
    let mut rows: Vec<(ChatRecord, TurnRecord)> = (0..2_500)
        .map(|i| {
            let chat = &chats[i % chats.len()];
            (
                chat.clone(),
                batch_turn(chat, i as i64, &format!("first{i}")),
            )
        })
        .collect();
    store.save_turns(&rows).await.expect("first write");
    // The same rows again, longer: every one is updated, and search sees the new words.
    for (_, turn) in &mut rows {
        turn.answer = format!("{} then second{}", turn.answer, turn.seq);
        turn.state = TurnState::Done;
    }
    store.save_turns(&rows).await.expect("second write");
    let mut stored = 0;
    for chat in &chats {
        for turn in store.turns("", &chat.id).await.unwrap() {
            assert_eq!(
                turn.answer,
                format!("first{0} then second{0}", turn.seq),
                "{turn:?}"
            );
            assert_eq!(turn.state, TurnState::Done);
            stored += 1;
        }
    }
    assert_eq!(stored, 2_500);
    let found = store
        .recent_turns("", 10, Some("second2345"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].turn.seq, 2345);
    assert!(
        store
            .recent_turns("", 10, Some("first2345"))
            .await
            .unwrap()
            .len()
            == 1
    );
    assert_eq!(store.chats("").await.unwrap().len(), chats.len());
    store.close().await;
}
on_both!(a_batch_larger_than_one_statement_is_written_and_updated_whole);

async fn five_thousand_turns_through_the_recorder_are_all_written_with_their_whole_answers(db: Db) {
    let store = open_store(&db).await;
    let recorder = Recorder::new(store.clone());
    let chat = ChatRecord::new("", Some("many"), None, None);
    // All open at once, so the writer sees thousands of dirty turns per round.
    let turns: Vec<_> = (0..5_000)
        .map(|i| recorder.begin_turn(&chat, i, &format!("prompt {i}")))
        .collect();
    for piece in 0..3 {
        for (i, turn) in turns.iter().enumerate() {
            turn.chunk(&format!("{i}.{piece} "));
        }
    }
    for turn in &turns {
        turn.finish(TurnState::Done, None, None);
    }
    drop(turns);
    flushed(&recorder).await;
    assert_eq!(recorder.pending(), 0);
    let stored = store.turns("", &chat.id).await.unwrap();
    assert_eq!(stored.len(), 5_000, "no turn lost");
    for (i, turn) in stored.iter().enumerate() {
        assert_eq!(turn.seq, i as i64);
        assert_eq!(turn.answer, format!("{i}.0 {i}.1 {i}.2 "));
        assert_eq!(turn.state, TurnState::Done);
    }
    store.close().await;
}
on_both!(five_thousand_turns_through_the_recorder_are_all_written_with_their_whole_answers);

async fn refused_turns_in_a_large_batch_are_dropped_alone(db: Db) {
    let store = open_store(&db).await;
    store.open_chat("", "taken", None, None).await.unwrap();
    let good = ChatRecord::new("", Some("good"), None, None);
    let clash = ChatRecord::new("", Some("taken"), None, None);
    // 3 refused rows (their chat clashes with an existing name) among 1,200.
    let rows: Vec<(ChatRecord, TurnRecord)> = (0..1_200)
        .map(|i| {
            let chat = if [7, 600, 1_199].contains(&i) {
                &clash
            } else {
                &good
            };
            (chat.clone(), batch_turn(chat, i, &format!("answer {i}")))
        })
        .collect();
    let error = store
        .save_turns(&rows)
        .await
        .expect_err("refused as a batch");
    assert!(error.is_constraint(), "{error}");
    // Through the recorder, the batch is split until the refused rows stand alone.
    let recorder = Recorder::new(store.clone());
    let turns: Vec<_> = rows
        .iter()
        .map(|(chat, turn)| {
            let t = recorder.begin_turn(chat, turn.seq, &turn.prompt);
            t.chunk(&turn.answer);
            t.finish(TurnState::Done, None, None);
            t
        })
        .collect();
    drop(turns);
    flushed(&recorder).await;
    assert_eq!(recorder.pending(), 0);
    let stored = store.turns("", &good.id).await.unwrap();
    assert_eq!(stored.len(), 1_197, "only the refused rows are missing");
    assert!(
        stored
            .iter()
            .all(|t| t.answer == format!("answer {}", t.seq))
    );
    store.close().await;
}
on_both!(refused_turns_in_a_large_batch_are_dropped_alone);

async fn chain_runs_come_back_newest_first_for_their_owner_only(db: Db) {
    let store = open_store(&db).await;
    let mut first = oy3o_store::ChainRunRecord {
        id: oy3o_store::new_id(),
        owner: "alice".into(),
        name: "moa.toml".into(),
        result: serde_json::json!({"stages": [{"results": [{"name": "a", "response": "x"}]}]}),
        state: TurnState::Done,
        created_at: now_ms() - 1000,
    };
    store.save_chain_run(&first).await.unwrap();
    let second = oy3o_store::ChainRunRecord {
        id: oy3o_store::new_id(),
        state: TurnState::Error,
        created_at: now_ms(),
        ..first.clone()
    };
    store.save_chain_run(&second).await.unwrap();
    // Saving again updates the run.
    first.result["stages"][0]["results"][0]["response"] = "y".into();
    store.save_chain_run(&first).await.unwrap();
    let runs = store.chain_runs("alice", 10).await.unwrap();
    assert_eq!(runs, vec![second, first]);
    assert!(store.chain_runs("bob", 10).await.unwrap().is_empty());
    let pruned = store.prune(Some("alice"), now_ms() + 1).await.unwrap();
    assert_eq!(pruned.chain_runs, 2);
    store.close().await;
}
on_both!(chain_runs_come_back_newest_first_for_their_owner_only);

async fn a_running_recorder_finds_instances_that_died_after_it_started(db: Db) {
    let dead = open_store(&db).await;
    let chat = dead.open_chat("", "c", None, None).await.unwrap();
    let dead_recorder = Recorder::new(dead.clone());
    let dying = dead_recorder.begin_turn(&chat, 0, "long answer please");
    dying.chunk("cut short");
    flushed(&dead_recorder).await;
    std::mem::forget(dying);
    // The survivor was open before the other died; its writer looks again every 50 ms.
    let survivor = open_store(&db).await;
    let recorder = Recorder::with_options(
        survivor.clone(),
        RecorderOptions {
            recover_every: Duration::from_millis(50),
            ..RecorderOptions::default()
        },
    );
    let sql = match db {
        Db::Sqlite(_) => "UPDATE instances SET seen_at = 0 WHERE id = ?",
        Db::Postgres(_) => "UPDATE instances SET seen_at = 0 WHERE id = $1",
    };
    assert_eq!(raw_execute(&db, sql, dead.instance()).await, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let turns = survivor.turns("", &chat.id).await.unwrap();
        if turns[0].state == TurnState::Interrupted {
            assert_eq!(turns[0].answer, "cut short");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered: {turns:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(recorder);
    survivor.close().await;
}
on_both!(a_running_recorder_finds_instances_that_died_after_it_started);
