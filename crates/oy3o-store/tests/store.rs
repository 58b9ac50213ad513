//! The store on both backends, through its public API: migrations, resume, owner scoping,
//! search and prune, recovery of dead instances, and a database that goes away mid-answer.

mod common;
mod gated;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Db;
use gated::Gated;
use oy3o::{Citation, Event, Usage};
use oy3o_store::{
    ChainRunRecord, ChatRecord, Health, OpenOptions, Recorder, RecorderOptions, Store, TurnRecord,
    TurnState, history, now_ms, open, open_with,
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
    assert_eq!(messages[3].text(), "4");
    let listed = store.chats("").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].turns, 3);
    assert_eq!(
        listed[0].first_prompt.as_deref(),
        Some("What is 1+1?"),
        "a listed chat is titled by its first prompt"
    );
    assert_eq!(store.chat_by_id("", &chat.id).await.unwrap(), Some(found));
    store.close().await;
}
on_both!(a_chat_and_its_turns_come_back_in_order_after_reopening);

/// Through the engine's conversation path: a chat's provider handle and a prompt's non-text
/// parts come back as they went in, `last_seq` counts the turns, a finished turn's `durable`
/// resolves once it is committed, and only turns answered completely are history.
async fn conversations_keep_handles_parts_and_turn_numbers(db: Db) {
    use oy3o::conversation::{ConversationRecord, ConversationStore, TurnEnd};
    use oy3o::{Message, Part, Role, Source};
    let store = open_store(&db).await;
    let conversations = oy3o_store::RecordedConversations::new(Recorder::new(store.clone()));
    let record = ConversationRecord {
        id: conversations.new_id(),
        owner: "ada".into(),
        name: Some("handled".into()),
        model: Some("bing:chat".into()),
        context: Some("ctx".into()),
        handle: None,
    };
    let prompt = Message {
        role: Role::User,
        parts: vec![
            Part::text("look"),
            Part::Image {
                mime: "image/png".into(),
                source: Source::Base64("iVBORw0KGgo=".into()),
            },
        ],
    };
    let first = conversations.begin_turn(&record, 0, &prompt);
    first.chunk("a picture");
    let handle = serde_json::json!({"conversation": "c-1", "cookies": [["anon", "x"]]});
    first.handle(Some(&handle));
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        first.finish(TurnEnd::Done { usage: None }),
    )
    .await
    .expect("durable in time")
    .expect("durable");
    let second = conversations.begin_turn(&record, 1, &Message::user("again"));
    second.chunk("cut");
    drop(second);
    let recorder = conversations.recorder().clone();
    flushed(&recorder).await;

    assert_eq!(
        conversations.last_seq("ada", &record.id).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        conversations.last_seq("eve", &record.id).await.unwrap(),
        None
    );
    let loaded = conversations
        .load("ada", "handled")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(loaded.record.handle.as_ref(), Some(&handle));
    assert_eq!(loaded.record.context.as_deref(), Some("ctx"));
    assert_eq!(loaded.turns.len(), 2);
    assert_eq!(loaded.turns[0].prompt, prompt);
    assert_eq!(loaded.next_seq(), 2);
    let history = loaded.history();
    assert_eq!(
        history.len(),
        2,
        "the cancelled turn is not history: {history:?}"
    );
    assert_eq!(history[1].text(), "a picture");
    // The text stays searchable and readable by older readers.
    let turns = store.turns("ada", &record.id).await.unwrap();
    assert_eq!(turns[0].prompt, "look");
    assert!(turns[1].parts.is_none());
    store.close().await;
}
on_both!(conversations_keep_handles_parts_and_turn_numbers);

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
        cost_usd: None,
        parts: None,
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
    // A chain run that ends during the outage waits with the turns.
    recorder.save_chain_run(ChainRunRecord {
        id: oy3o_store::new_id(),
        owner: String::new(),
        name: "during the outage".into(),
        result: serde_json::json!({"stages": [["an answer"]]}),
        state: TurnState::Done,
        created_at: now_ms(),
    });
    let failed = tokio::time::timeout(Duration::from_secs(30), recorder.flush())
        .await
        .expect("flush returns while the database is down");
    assert!(failed.is_err(), "a flush during the outage reports it");
    assert!(
        recorder.pending() >= 3,
        "the turns and the run wait in memory"
    );

    pg.run();
    flushed(&recorder).await;
    let runs = store.chain_runs("", 10).await.unwrap();
    assert_eq!(
        runs.len(),
        1,
        "the run was written once the database came back"
    );
    assert_eq!(runs[0].name, "during the outage");
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

/// Makes the database refuse every turn whose prompt is `refused` but the first: a unique
/// index on it (a constraint the recorder cannot mend, on both backends).
async fn refuse_repeated_refused_prompts(db: &Db) {
    let sql = "CREATE UNIQUE INDEX refuse_repeats ON turns (prompt) WHERE prompt = 'refused'";
    match db {
        Db::Sqlite(_) => {
            let pool = sqlx::SqlitePool::connect(&db.url()).await.expect("connect");
            sqlx::query(sql).execute(&pool).await.expect("index");
            pool.close().await;
        }
        Db::Postgres(_) => {
            let pool = sqlx::PgPool::connect(&db.url()).await.expect("connect");
            sqlx::query(sql).execute(&pool).await.expect("index");
            pool.close().await;
        }
    }
}

/// Every health report of `recorder`, as they come.
fn health_log(recorder: &Recorder) -> Arc<std::sync::Mutex<Vec<Health>>> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    recorder.on_health(move |h| log.lock().unwrap().push(h.clone()));
    seen
}

async fn a_turn_the_database_refuses_is_dropped_reported_and_never_blocks_the_others(db: Db) {
    let store = open_store(&db).await;
    refuse_repeated_refused_prompts(&db).await;
    let recorder = Recorder::new(store.clone());
    let health = health_log(&recorder);
    let first = ChatRecord::new("", None, None, None);
    record(&recorder, &first, 0, "refused", &["the first is kept"]).await;
    flushed(&recorder).await;
    let clash = ChatRecord::new("", None, None, None);
    let good = ChatRecord::new("", None, None, None);
    let refused = recorder.begin_turn(&clash, 0, "refused");
    refused.chunk("never stored");
    refused.finish(TurnState::Done, None, None);
    record(&recorder, &good, 0, "fine", &["stored"]).await;
    flushed(&recorder).await;
    assert_eq!(recorder.pending(), 0);
    let logged = store.recent_turns("", 10, None).await.unwrap();
    let answers: Vec<&str> = logged.iter().map(|l| l.turn.answer.as_str()).collect();
    assert_eq!(answers, ["stored", "the first is kept"]);
    let health = health.lock().unwrap().clone();
    assert_eq!(health.len(), 1, "{health:?}");
    match &health[0] {
        Health::Refused { id, error } => {
            assert_eq!(id, refused.id());
            assert!(!error.is_empty());
        }
        other => panic!("not a refusal: {other:?}"),
    }
    store.close().await;
}
on_both!(a_turn_the_database_refuses_is_dropped_reported_and_never_blocks_the_others);

async fn a_turn_with_nul_characters_is_written_and_holds_nothing_back(db: Db) {
    let store = open_store(&db).await;
    let recorder = Recorder::new(store.clone());
    let health = health_log(&recorder);
    let back = |s: &str| s.replace('\u{fffd}', "\0");
    let chat = ChatRecord::new("", Some("nul\0name"), None, Some("context\0"));
    let turn = recorder.begin_turn(&chat, 0, "prompt\0with a nul");
    turn.chunk("answer\0");
    turn.event(&Event::Other {
        name: "tool".into(),
        message: serde_json::json!({"out": "a\0b", "k\0": ["\0"]}),
    });
    turn.finish(TurnState::Done, None, None);
    let after = ChatRecord::new("", None, None, None);
    record(&recorder, &after, 0, "next", &["fine"]).await;
    // PostgreSQL cannot hold U+0000: before, this write failed and was retried forever.
    recorder.flush().await.expect("written");
    assert!(
        health.lock().unwrap().is_empty(),
        "{:?}",
        health.lock().unwrap()
    );
    // Found by the name it was asked under (PostgreSQL keeps U+FFFD in the NUL's place).
    let stored = store
        .find_chat("", "nul\0name")
        .await
        .unwrap()
        .expect("chat");
    assert_eq!(back(stored.name.as_deref().unwrap()), "nul\0name");
    let turns = store.turns("", &stored.id).await.unwrap();
    assert_eq!(back(&turns[0].prompt), "prompt\0with a nul");
    assert_eq!(back(&turns[0].answer), "answer\0");
    let out = turns[0].events[0]["message"]["out"]
        .as_str()
        .expect("event text");
    assert_eq!(back(out), "a\0b");
    assert_eq!(store.recent_turns("", 10, None).await.unwrap().len(), 2);
    store.close().await;
}
on_both!(a_turn_with_nul_characters_is_written_and_holds_nothing_back);

async fn a_named_chat_opened_twice_before_either_was_written_keeps_every_turn_in_one_chat(db: Db) {
    let store = open_store(&db).await;
    // Two connections or instances open chat "shared" at once: each makes its own record.
    let here = ChatRecord::new("owner", Some("shared"), None, None);
    let there = ChatRecord::new("owner", Some("shared"), None, None);
    assert_ne!(here.id, there.id);
    let recorder = Recorder::new(store.clone());
    let health = health_log(&recorder);
    record(&recorder, &here, 0, "asked here", &["answered here"]).await;
    flushed(&recorder).await;
    record(&recorder, &there, 0, "asked there", &["answered there"]).await;
    // A later turn of the second record goes the same way (remembered, not refused again).
    record(&recorder, &there, 1, "asked there again", &["again"]).await;
    flushed(&recorder).await;
    let stored = store
        .find_chat("owner", "shared")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.id, here.id);
    let prompts: Vec<String> = store
        .turns("owner", &stored.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.prompt)
        .collect();
    assert_eq!(prompts.len(), 3, "{prompts:?}");
    for p in ["asked here", "asked there", "asked there again"] {
        assert!(
            prompts.iter().any(|q| q == p),
            "{p} missing from {prompts:?}"
        );
    }
    assert!(health.lock().unwrap().is_empty(), "nothing refused");
    assert_eq!(store.chats("owner").await.unwrap().len(), 1);
    store.close().await;
}
on_both!(a_named_chat_opened_twice_before_either_was_written_keeps_every_turn_in_one_chat);

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
    refuse_repeated_refused_prompts(&db).await;
    let first = ChatRecord::new("", None, None, None);
    let mut kept = batch_turn(&first, 0, "kept");
    kept.prompt = "refused".into();
    store.save_turns(&[(first.clone(), kept)]).await.unwrap();
    let good = ChatRecord::new("", Some("good"), None, None);
    // 3 refused rows (a prompt the database takes once) among 1,200.
    let rows: Vec<(ChatRecord, TurnRecord)> = (0..1_200)
        .map(|i| {
            let mut turn = batch_turn(&good, i, &format!("answer {i}"));
            if [7, 600, 1_199].contains(&i) {
                turn.prompt = "refused".into();
            }
            (good.clone(), turn)
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
    assert_eq!(runs, vec![second, first.clone()]);
    assert!(store.chain_runs("bob", 10).await.unwrap().is_empty());
    let bobs = oy3o_store::ChainRunRecord {
        id: oy3o_store::new_id(),
        owner: "bob".into(),
        ..first.clone()
    };
    store.save_chain_run(&bobs).await.unwrap();
    let pruned = store.prune(Some("alice"), now_ms() + 1).await.unwrap();
    assert_eq!(pruned.chain_runs, 2, "alice's only");
    // No owner prunes everyone's.
    let pruned = store.prune(None, now_ms() + 1).await.unwrap();
    assert_eq!(pruned.chain_runs, 1);
    assert!(store.chain_runs("bob", 10).await.unwrap().is_empty());
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

async fn thirty_thousand_turns_finished_while_writes_stall_are_all_written_when_they_resume(
    db: Db,
) {
    let store = open_store(&db).await;
    let gated = Gated::new(store.clone(), false);
    let recorder = Recorder::new(gated.clone());
    let health = Arc::new(Mutex::new(Vec::new()));
    let seen = health.clone();
    recorder.on_health(move |h| seen.lock().unwrap().push(h.clone()));
    let chat = ChatRecord::new("", Some("burst"), None, None);
    // Three times the 10,000 turns the queue used to hold, finished while the database stalls.
    const TURNS: i64 = 30_000;
    for i in 0..TURNS {
        let turn = recorder.begin_turn(&chat, i, &format!("prompt {i}"));
        turn.chunk(&format!("answer {i}"));
        turn.finish(TurnState::Done, None, None);
    }
    // Every turn waits. One may count twice: taken by the stalled writer between its chunk and
    // its end, it is queued again with its final state (CI saw 30,001 once under load).
    let pending = recorder.pending();
    assert!(
        (TURNS as usize..=TURNS as usize + 1).contains(&pending),
        "every turn waits: {pending}"
    );
    assert!(recorder.pending_bytes() > 0);
    gated.set_open(true);
    flushed(&recorder).await;
    assert_eq!(recorder.pending(), 0);
    assert_eq!(recorder.pending_bytes(), 0);
    let stored = store.turns("", &chat.id).await.unwrap();
    assert_eq!(stored.len(), TURNS as usize, "no turn lost");
    for (i, turn) in stored.iter().enumerate() {
        assert_eq!(turn.answer, format!("answer {i}"));
        assert_eq!(turn.state, TurnState::Done);
    }
    assert!(
        health.lock().unwrap().is_empty(),
        "nothing to report: {:?}",
        health.lock().unwrap()
    );
    store.close().await;
}
on_both!(thirty_thousand_turns_finished_while_writes_stall_are_all_written_when_they_resume);

#[tokio::test(flavor = "multi_thread")]
async fn beyond_the_byte_budget_the_oldest_finished_turns_are_dropped_and_reported() {
    let db = Db::sqlite();
    let store = open_store(&db).await;
    let gated = Gated::new(store.clone(), false);
    let budget = 64 << 10;
    let recorder = Recorder::with_options(
        gated.clone(),
        RecorderOptions {
            max_pending_bytes: budget,
            ..RecorderOptions::default()
        },
    );
    let health = Arc::new(Mutex::new(Vec::new()));
    let seen = health.clone();
    recorder.on_health(move |h| seen.lock().unwrap().push(h.clone()));
    let chat = ChatRecord::new("", Some("small budget"), None, None);
    // A streaming turn is never dropped, however old.
    let streaming = recorder.begin_turn(&chat, 0, "still going");
    streaming.chunk("part");
    const TURNS: i64 = 1_000;
    for i in 1..=TURNS {
        let turn = recorder.begin_turn(&chat, i, &format!("prompt {i}"));
        turn.chunk(&format!("answer {i}"));
        turn.finish(TurnState::Done, None, None);
        assert!(recorder.pending_bytes() <= budget, "over the budget");
    }
    gated.set_open(true);
    flushed(&recorder).await;
    let stored = store.turns("", &chat.id).await.unwrap();
    assert_eq!(stored[0].prompt, "still going");
    assert_eq!(stored[0].state, TurnState::Streaming);
    let kept = stored.len() as u64 - 1;
    let dropped = TURNS as u64 - kept;
    assert!(dropped > 0 && kept > 0, "kept {kept}");
    // The newest were kept (the writer had taken the first finished one before the stall).
    assert!(
        stored[stored.len() - 1].seq == TURNS,
        "the newest turn is kept: {:?}",
        stored.last()
    );
    // Drops are reported at once, then summed at most every 10 s, and the rest when the
    // recorder closes: close it and wait (bounded) for the last report.
    drop(recorder);
    let reported = || -> u64 {
        health
            .lock()
            .unwrap()
            .iter()
            .map(|h| match h {
                Health::Dropped { turns } => *turns,
                other => panic!("only drops to report: {other:?}"),
            })
            .sum()
    };
    for _ in 0..200 {
        if reported() >= dropped {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = health.lock().unwrap().clone();
    assert_eq!(
        reported(),
        dropped,
        "every dropped turn reported: {health:?}"
    );
    drop(streaming);
    store.close().await;
}

/// Waits until `gated` has written `n` turn rows.
async fn rows_reach(gated: &Gated, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while gated.rows_written() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} rows written",
            gated.rows_written()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A gated SQLite recorder whose streaming turns never tick, with the group-commit gap `gap`.
async fn tickless_recorder(gap: Duration) -> (Db, Arc<dyn Store>, Arc<Gated>, Recorder) {
    let db = Db::sqlite();
    let store = open_store(&db).await;
    let gated = Gated::new(store.clone(), true);
    let recorder = Recorder::with_options(
        gated.clone(),
        RecorderOptions {
            flush_every: Duration::from_secs(3600),
            min_round_gap: gap,
            ..RecorderOptions::default()
        },
    );
    (db, store, gated, recorder)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_that_ends_before_a_tick_is_written_once_and_streaming_ones_wait_for_the_tick() {
    // A tick that never comes in this test: only finished turns and flushes write.
    let (_db, store, gated, recorder) =
        tickless_recorder(RecorderOptions::default().min_round_gap).await;
    let chat = ChatRecord::new("", Some("short"), None, None);
    let long = recorder.begin_turn(&chat, 0, "long");
    long.chunk("still going");
    let short = recorder.begin_turn(&chat, 1, "short");
    short.chunk("done at once");
    short.finish(TurnState::Done, None, None);
    // After `finish` the turn is final: later text changes nothing.
    short.chunk(" and a late piece");
    // The finished turn wakes the writer; wait for its write.
    rows_reach(&gated, 1).await;
    assert_eq!(
        gated.writes(),
        vec![(short.id().to_owned(), TurnState::Done)],
        "one write of the short turn, finished; the streaming one waits for the tick"
    );
    flushed(&recorder).await;
    assert_eq!(
        gated.writes()[1..],
        [(long.id().to_owned(), TurnState::Streaming)],
        "a flush writes streaming turns too"
    );
    let stored = store.turns("", &chat.id).await.unwrap();
    assert_eq!(stored[1].answer, "done at once");
    store.close().await;
}

/// Finishes a first turn of `chat` and waits for its row: the writer was idle, so it is
/// written at once, whatever the gap.
async fn first_turn_written(recorder: &Recorder, gated: &Gated, chat: &ChatRecord) {
    recorder
        .begin_turn(chat, 0, "first")
        .finish(TurnState::Done, None, None);
    rows_reach(gated, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn turns_finishing_right_after_a_write_share_the_next_round_and_a_flush_cuts_the_gap_short() {
    // An hour-long gap: only an idle writer or a flush writes in this test.
    let (_db, store, gated, recorder) = tickless_recorder(Duration::from_secs(3600)).await;
    let chat = ChatRecord::new("", Some("gap"), None, None);
    first_turn_written(&recorder, &gated, &chat).await;
    let later: Vec<_> = (1..4)
        .map(|seq| {
            let turn = recorder.begin_turn(&chat, seq, "later");
            turn.chunk("answer");
            turn.finish(TurnState::Done, None, None);
            turn
        })
        .collect();
    // Right after a round, the next waits out the gap, gathering the turns that finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gated.rows_written(), 1, "held for the gap");
    flushed(&recorder).await;
    assert_eq!(gated.batches(), vec![1, 3], "the three share one round");
    let stored = store.turns("", &chat.id).await.unwrap();
    assert_eq!(stored.len(), 4);
    assert!(stored[1..].iter().all(|t| t.answer == "answer"));
    drop(later);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn turns_held_by_the_gap_are_written_when_it_ends_without_a_flush() {
    let (_db, store, gated, recorder) = tickless_recorder(Duration::from_millis(500)).await;
    let chat = ChatRecord::new("", Some("gap ends"), None, None);
    first_turn_written(&recorder, &gated, &chat).await;
    for seq in 1..3 {
        recorder
            .begin_turn(&chat, seq, "later")
            .finish(TurnState::Done, None, None);
    }
    rows_reach(&gated, 3).await;
    assert_eq!(gated.batches(), vec![1, 2]);
    drop(recorder);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_turn_lands_within_a_tick_without_a_flush() {
    let db = Db::sqlite();
    let store = open_store(&db).await;
    let recorder = Recorder::with_options(
        store.clone(),
        RecorderOptions {
            flush_every: Duration::from_millis(50),
            ..RecorderOptions::default()
        },
    );
    let chat = ChatRecord::new("", Some("tick"), None, None);
    let turn = recorder.begin_turn(&chat, 0, "long answer");
    turn.chunk("the beginning");
    // What a `kill -9` relies on: the row is there, streaming, with no flush and no finish.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let turns = store.turns("", &chat.id).await.unwrap();
        if let Some(t) = turns.first() {
            assert_eq!(t.state, TurnState::Streaming);
            if t.answer == "the beginning" {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "never written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(turn);
    flushed(&recorder).await;
    store.close().await;
}

/// A database as migration 0001 left it, with a finished and a streaming turn of a process that
/// is gone.
async fn database_of_migration_0001(db: &Db) {
    let dir = oy3o_testkit::postgres::TempDir::new("migrations-0001");
    let (source, sql) = match db {
        Db::Sqlite(_) => ("sqlite", include_str!("../migrations/sqlite/0001_init.sql")),
        Db::Postgres(_) => (
            "postgres",
            include_str!("../migrations/postgres/0001_init.sql"),
        ),
    };
    std::fs::write(dir.0.join("0001_init.sql"), sql).unwrap();
    let migrator = sqlx::migrate::Migrator::new(dir.0.as_path())
        .await
        .expect("migration 0001");
    assert_eq!(migrator.iter().count(), 1, "{source}: 0001 alone");
    let rows = "INSERT INTO chats (id, owner, name, model, context, created_at, updated_at)
            VALUES ('c1', '', 'old', NULL, NULL, 1, 1);
        INSERT INTO turns (id, chat_id, seq, owner, prompt, answer, state, instance, created_at, updated_at)
            VALUES ('t1', 'c1', 0, '', 'penguins', 'they swim', 'done', 'gone', 1, 1),
                   ('t2', 'c1', 1, '', 'walruses', 'alpha beginning', 'streaming', 'gone', 2, 2);";
    match db {
        Db::Sqlite(_) => {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url())
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            migrator.run(&pool).await.expect("0001 applies");
            sqlx::raw_sql(rows).execute(&pool).await.expect("rows");
            pool.close().await;
        }
        Db::Postgres(_) => {
            let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
            migrator.run(&pool).await.expect("0001 applies");
            sqlx::raw_sql(rows).execute(&pool).await.expect("rows");
            pool.close().await;
        }
    }
}

async fn a_database_of_migration_0001_migrates_and_searches_old_and_new_turns(db: Db) {
    database_of_migration_0001(&db).await;
    assert_eq!(migrations_applied(&db).await, 1);
    let store = open_store(&db).await;
    assert!(migrations_applied(&db).await >= 2, "0002 applied");
    let words = |w: &'static str| {
        let store = store.clone();
        async move {
            let found = store.recent_turns("", 10, Some(w)).await.unwrap();
            found.into_iter().map(|t| t.turn.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(words("penguins").await, ["t1"], "an old final turn");
    // The streaming turn's process is gone: opening marked it interrupted, which is final and
    // so indexed now.
    assert_eq!(words("alpha").await, ["t2"], "an old interrupted turn");
    let chat = store.find_chat("", "old").await.unwrap().expect("the chat");
    let mut turns = store.turns("", &chat.id).await.unwrap();
    assert_eq!(turns[1].state, TurnState::Interrupted);
    // Rewritten with other words: the old ones are gone from the index (0001 had indexed the
    // streaming text too; 0002 took it out, else a stale entry would still match).
    turns[1].answer = "omega ending".into();
    turns[1].state = TurnState::Done;
    store
        .save_turns(&[(chat.clone(), turns[1].clone())])
        .await
        .unwrap();
    assert!(words("alpha").await.is_empty(), "stale words found");
    assert_eq!(words("omega").await, ["t2"]);

    // New turns: a streaming one is not found, a finished one is.
    let recorder = Recorder::new(store.clone());
    let streaming = recorder.begin_turn(&chat, 2, "narwhals");
    streaming.chunk("gamma so far");
    record(&recorder, &chat, 3, "owls", &["hunt at night"]).await;
    flushed(&recorder).await;
    assert!(words("gamma").await.is_empty(), "a streaming turn found");
    assert_eq!(words("hunt").await.len(), 1);
    streaming.chunk(" and more");
    streaming.finish(TurnState::Done, None, None);
    flushed(&recorder).await;
    assert_eq!(words("gamma").await, [streaming.id()]);
    // Deleting final rows takes them out of the index too.
    store.prune(Some(""), now_ms() + 1).await.unwrap();
    assert!(words("gamma").await.is_empty());
    assert!(words("penguins").await.is_empty());
    store.close().await;
}
on_both!(a_database_of_migration_0001_migrates_and_searches_old_and_new_turns);

/// A turn in which the engine ran a tool is stored with its steps: a conversation reopened by
/// another process (a fresh registry over the same store) sends the model the prompt, the call,
/// the result and the answer before the next prompt, exactly as the live chat did; the log
/// keeps each call and result with its time.
async fn tool_steps_are_stored_and_a_resumed_conversation_sends_them(db: Db) {
    use oy3o::tool_loop::{FnTool, Tool, Toolbox};
    use oy3o::{Config, Conversations, Credential, Opening, Options, ProviderSettings, ToolSpec};
    use oy3o_testkit::{FakeServer, openai};

    let server = FakeServer::start().await;
    server.push(openai::tool_calls(&[("call_a", "get_weather", r#"{"city": "Oslo"}"#)]).build());
    server.push(openai::answer(&["It is 4 degrees in Oslo."]).build());
    server.push(openai::answer(&["Yes."]).build());
    let mut config = Config::default();
    config.providers.insert(
        "openai".into(),
        ProviderSettings {
            base_url: Some(server.base_url()),
            api_key: Some(Credential::parse("sk-test")),
            ..ProviderSettings::default()
        },
    );
    let spec = ToolSpec {
        name: "get_weather".into(),
        description: None,
        parameters: Some(serde_json::json!({"type": "object", "required": ["city"]})),
        strict: None,
    };
    let tool: Arc<dyn Tool> = Arc::new(FnTool::new(spec, |args: serde_json::Value| async move {
        Ok(format!("{} 4C", args["city"].as_str().unwrap_or_default()))
    }));
    let options = Options {
        toolbox: Some(Arc::new(Toolbox::new(vec![tool]).unwrap())),
        ..Options::default()
    };

    let store = open_store(&db).await;
    let open = |store: Arc<dyn Store>| {
        let recorded = oy3o_store::RecordedConversations::new(Recorder::new(store));
        Conversations::new(Some(Arc::new(recorded)))
    };
    let first = open(store.clone());
    let chat = first
        .open(
            Opening::named("", "weather").model(Some("openai:gpt-4o-mini")),
            &config,
        )
        .await
        .unwrap();
    let answer = chat
        .send(oy3o::Message::user("Weather in Oslo?"), &options)
        .text()
        .await
        .unwrap();
    assert_eq!(answer, "It is 4 degrees in Oslo.");
    let live = chat.history();
    assert_eq!(live.len(), 4, "{live:?}");

    // Another process: a registry of its own over the same store.
    let second = open(store.clone());
    let resumed = second
        .open(
            Opening::named("", "weather").model(Some("openai:gpt-4o-mini")),
            &config,
        )
        .await
        .unwrap();
    assert_eq!(resumed.history(), live);
    resumed
        .send(oy3o::Message::user("Cold?"), &Options::default())
        .text()
        .await
        .unwrap();
    let sent = server.requests()[2].json();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5, "{messages:#?}");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_a");
    assert_eq!(messages[2]["role"], "tool");
    assert_eq!(messages[2]["tool_call_id"], "call_a");
    assert_eq!(messages[2]["content"], "Oslo 4C");
    assert_eq!(messages[3]["content"], "It is 4 degrees in Oslo.");
    assert_eq!(messages[4]["content"], "Cold?");

    let turns = store.turns("", &resumed.record().id).await.unwrap();
    let names: Vec<&str> = turns[0]
        .events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(
        names,
        ["tool_call", "tool_result"],
        "no call fragments kept"
    );
    assert!(turns[0].events[1]["message"]["elapsed_ms"].is_u64());
    store.close().await;
}
on_both!(tool_steps_are_stored_and_a_resumed_conversation_sends_them);

async fn keys_are_kept_hashed_listed_revoked_and_spend_adds_up(db: Db) {
    let store = open_store(&db).await;
    let mut key = oy3o_store::KeyRecord::new("alice", &"ab".repeat(32));
    key.models = vec!["openai:*".into()];
    key.rpm = Some(60);
    key.budget = Some(oy3o_store::Budget::parse("2/day").unwrap());
    store.add_key(&key).await.unwrap();
    let again = store.add_key(&key).await.unwrap_err();
    assert!(
        matches!(again, oy3o_store::StoreError::KeyExists(_)),
        "{again}"
    );
    assert_eq!(store.keys().await.unwrap(), vec![key.clone()]);
    assert_eq!(
        store.key_by_hash(&key.hash).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.key_by_hash("nope").await.unwrap(), None);
    assert!(store.revoke_key("alice").await.unwrap());
    assert!(!store.revoke_key("alice").await.unwrap(), "already revoked");
    assert!(
        store
            .key_by_hash(&key.hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(store.spend("alice", 1000).await.unwrap(), 0.0);
    assert_eq!(store.add_spend("alice", 1000, 0.25).await.unwrap(), 0.25);
    assert_eq!(store.add_spend("alice", 1000, 0.5).await.unwrap(), 0.75);
    assert_eq!(store.add_spend("alice", 2000, 0.1).await.unwrap(), 0.1);
    assert_eq!(store.spend("alice", 1000).await.unwrap(), 0.75);
    store.close().await;
}
on_both!(keys_are_kept_hashed_listed_revoked_and_spend_adds_up);

async fn a_finished_turn_is_costed_at_the_recorders_prices_and_stored_with_it(db: Db) {
    let store = open_store(&db).await;
    let mut mine = std::collections::BTreeMap::new();
    mine.insert(
        "openai:gpt-x".to_owned(),
        oy3o::price::Price {
            input: 2.0,
            cached_input: Some(0.5),
            output: 8.0,
            reasoning: Some(12.0),
        },
    );
    let recorder = Recorder::with_options(
        store.clone(),
        oy3o_store::RecorderOptions {
            prices: oy3o::price::Prices::with_overrides(&mine),
            ..Default::default()
        },
    );
    let chat = ChatRecord::new("o", Some("costed"), Some("openai:gpt-x"), None);
    let turn = recorder.begin_turn(&chat, 0, "hi");
    turn.chunk("hello");
    let usage = oy3o::Usage {
        input_tokens: 10_000,
        output_tokens: 3_000,
        cached_tokens: Some(4_000),
        reasoning_tokens: Some(1_000),
    };
    turn.finish(TurnState::Done, Some(&usage), None);
    flushed(&recorder).await;
    let stored = store.find_chat("o", "costed").await.unwrap().unwrap();
    let turns = store.turns("o", &stored.id).await.unwrap();
    let cost = turns[0].cost_usd.expect("costed");
    // 6,000 x $2 + 4,000 x $0.5 + 2,000 x $8 + 1,000 x $12, per million.
    assert!((cost - 0.042).abs() < 1e-9, "{cost}");
    let rows = store.usage_since(0).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].usage.as_ref(), Some(&usage));
    assert_eq!(rows[0].model.as_deref(), Some("openai:gpt-x"));
    store.close().await;
}
on_both!(a_finished_turn_is_costed_at_the_recorders_prices_and_stored_with_it);
/// A number read behind the store's back.
async fn raw_count(db: &Db, sql: &'static str) -> i64 {
    match db {
        Db::Sqlite(_) => {
            let pool = sqlx::SqlitePool::connect(&db.url()).await.expect("connect");
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.expect("count");
            pool.close().await;
            n
        }
        Db::Postgres(_) => {
            let pool = sqlx::PgPool::connect(&db.url()).await.expect("connect");
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.expect("count");
            pool.close().await;
            n
        }
    }
}

/// An image sent in two chats (twice in one prompt, and again in a later turn) is stored once,
/// under its SHA-256; the turns refer to it, come back with the bytes when the chats are
/// resumed, and pruning the turns drops it.
async fn attachments_are_stored_once_by_digest_and_come_back_on_resume(db: Db) {
    use oy3o::conversation::{ConversationRecord, ConversationStore, TurnEnd};
    use oy3o::{Message, Part, Role, Source};
    let store = open_store(&db).await;
    let conversations = oy3o_store::RecordedConversations::new(Recorder::new(store.clone()));
    // 6 KiB of a PNG's signature and zeros: big enough to see in the column if it were copied.
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(6 * 1024, 7);
    let data = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    };
    let image = Part::Image {
        mime: "image/png".into(),
        source: Source::Base64(data.clone()),
    };
    let prompt = Message {
        role: Role::User,
        parts: vec![Part::text("two of them"), image.clone(), image.clone()],
    };
    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let record = ConversationRecord {
            id: conversations.new_id(),
            owner: "ada".into(),
            name: Some(name.into()),
            model: Some("openai:gpt-4o".into()),
            context: None,
            handle: None,
        };
        for seq in 0..2 {
            let turn = conversations.begin_turn(&record, seq, &prompt);
            turn.chunk("a dot");
            tokio::time::timeout(
                Duration::from_secs(10),
                turn.finish(TurnEnd::Done { usage: None }),
            )
            .await
            .expect("durable in time")
            .expect("durable");
        }
        ids.push(record.id);
    }
    flushed(conversations.recorder()).await;
    assert_eq!(raw_count(&db, "SELECT COUNT(*) FROM attachments").await, 1);
    assert_eq!(
        raw_count(&db, "SELECT CAST(MAX(size) AS BIGINT) FROM attachments").await,
        6 * 1024
    );
    let digest = oy3o::attachment::digest(&bytes);
    let turns = store.turns("ada", &ids[0]).await.unwrap();
    assert_eq!(turns.len(), 2);
    // What the column holds: references, not bytes.
    assert_eq!(
        raw_count(
            &db,
            "SELECT COUNT(*) FROM turns WHERE parts LIKE '%BwcHBwcH%'"
        )
        .await,
        0,
        "the bytes are not copied into the turns"
    );
    assert_eq!(
        raw_count(&db, "SELECT COUNT(*) FROM turns WHERE parts IS NOT NULL").await,
        4
    );
    for id in &ids {
        let loaded = conversations
            .load("ada", if id == &ids[0] { "one" } else { "two" })
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(loaded.turns.len(), 2);
        assert!(loaded.turns.iter().all(|t| t.prompt == prompt));
        assert_eq!(
            loaded.history()[0].parts[1].digest().as_deref(),
            Some(digest.as_str())
        );
    }
    // The log names it.
    let logged = store.recent_turns("ada", 1, None).await.unwrap();
    let line = oy3o_store::attachment_line(&logged[0].turn.parts.as_ref().unwrap()["prompt"][1]);
    assert_eq!(
        line.unwrap(),
        format!("image, image/png, 6.0 KiB, sha256:{}", &digest[..12])
    );
    store.prune(Some("ada"), now_ms() + 1).await.unwrap();
    assert_eq!(raw_count(&db, "SELECT COUNT(*) FROM attachments").await, 0);
    store.close().await;
}
on_both!(attachments_are_stored_once_by_digest_and_come_back_on_resume);

/// A short-lived store (the CLI's) is dropped without closing its connection, so no checkpoint
/// runs on the process's way out (it cost fsyncs on every CLI exit): the WAL keeps its frames
/// for the next process. A store that is not short-lived checkpoints when dropped (its WAL is
/// emptied), which is what makes the first check mean something.
#[tokio::test(flavor = "multi_thread")]
async fn a_short_lived_store_is_dropped_without_a_checkpoint() {
    let mut wal_after_drop = Vec::new();
    for short_lived in [true, false] {
        let db = Db::sqlite();
        let options = OpenOptions {
            short_lived,
            ..OpenOptions::default()
        };
        let store = open_with(&db.setting(), &options)
            .await
            .unwrap()
            .expect("not `none`");
        store
            .open_chat("", "work", Some("openai:x"), None)
            .await
            .unwrap();
        drop(store);
        let Db::Sqlite(dir) = &db else { unreachable!() };
        let wal = dir.0.join("oy3o.db-wal");
        let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
        // A close happens on the connection's own thread: give it time to.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !short_lived && size() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if short_lived {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        wal_after_drop.push(size());
        // What was written is there for the next process either way.
        let again = open_store(&db).await;
        assert!(again.find_chat("", "work").await.unwrap().is_some());
    }
    assert!(wal_after_drop[0] > 0, "short-lived: {wal_after_drop:?}");
    assert_eq!(wal_after_drop[1], 0, "not short-lived: {wal_after_drop:?}");
}
