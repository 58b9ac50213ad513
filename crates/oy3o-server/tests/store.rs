//! The server's conversation store over real sockets and real databases: a chat resumed after a
//! restart (SQLite) with its earlier turns sent upstream and shown as `history` events, owner
//! scoping between two tokens, the database stopped mid-test (answers still stream; the turn is
//! written once it is back), and a store that cannot be opened (the server serves anyway).

mod common;

use std::sync::Arc;

use common::{Client, Running, config_for, echo, settings, start, text_of};
use oy3o_server::{Settings, Token};
use oy3o_store::{Store, StoreSetting, TurnState};
use oy3o_testkit::FakeServer;
use oy3o_testkit::postgres::{Postgres, TempDir};
use serde_json::{Value, json};

fn with_store(setting: StoreSetting) -> Settings {
    Settings {
        store: Some(setting),
        ..settings()
    }
}

/// The store behind the server's back, to check what it wrote.
async fn open(setting: &StoreSetting) -> Arc<dyn Store> {
    oy3o_store::open(setting)
        .await
        .expect("open the store")
        .expect("a store, not none")
}

/// Waits (bounded) until chat `name` of `owner` has `n` final turns; returns its turns.
async fn final_turns(
    store: &Arc<dyn Store>,
    owner: &str,
    name: &str,
    n: usize,
) -> Vec<oy3o_store::TurnRecord> {
    for _ in 0..600 {
        if let Ok(Some(chat)) = store.find_chat(owner, name).await
            && let Ok(turns) = store.turns(owner, &chat.id).await
            && turns.len() == n
            && turns.iter().all(|t| t.state.is_final())
        {
            return turns;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("chat {name} never had {n} finished turns in the store");
}

/// The `content` of every message the upstream received in request `i`.
fn sent_messages(fake: &FakeServer, i: usize) -> Vec<String> {
    let requests = fake.requests();
    requests[i].json()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn ask(client: &mut Client, frame: Value) -> Vec<Value> {
    client.send(frame).await;
    client.until_signals(1).await
}

/// Reads frames until the `store` event whose status is `status` (bounded by the client's
/// patience); returns it.
async fn until_store_event(client: &mut Client, status: &str) -> Value {
    loop {
        let frame = client.frame().await;
        if frame["type"] == "event"
            && frame["event"] == "store"
            && frame["message"]["status"] == status
        {
            return frame;
        }
    }
}

fn history(frames: &[Value]) -> Vec<&Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "event" && f["event"] == "history")
        .map(|f| &f["message"])
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_resumes_after_a_restart_with_its_history() {
    let fake = echo().await;
    let dir = TempDir::new("server-store");
    let setting = StoreSetting::Sqlite(dir.0.join("oy3o.db"));
    let store = open(&setting).await;
    {
        let server = start(config_for(&fake), with_store(setting.clone())).await;
        let mut client = server.client().await;
        let frames = ask(
            &mut client,
            json!({"id": "c1", "model": "", "prompt": "one"}),
        )
        .await;
        assert_eq!(text_of(&frames, "c1"), "ANSWER(one)", "{frames:?}");
        let turns = final_turns(&store, "", "c1", 1).await;
        assert_eq!(turns[0].answer, "ANSWER(one)");
        assert_eq!(turns[0].state, TurnState::Done);
    }
    let server: Running = start(config_for(&fake), with_store(setting.clone())).await;
    let mut client = server.client().await;
    // Not open on this connection and no model: resumed from the store.
    let frames = ask(&mut client, json!({"id": "c1", "prompt": "two"})).await;
    assert!(
        frames.iter().all(|f| f["type"] != "error"),
        "resumed without error: {frames:?}"
    );
    assert_eq!(text_of(&frames, "c1"), "ANSWER(two)");
    assert_eq!(sent_messages(&fake, 1), ["one", "ANSWER(one)", "two"]);
    final_turns(&store, "", "c1", 2).await;
    let frames = ask(&mut client, json!({"id": "c1", "history": true})).await;
    let turns = history(&frames);
    assert_eq!(turns.len(), 2, "{frames:?}");
    assert_eq!(turns[0]["prompt"], "one");
    assert_eq!(turns[0]["answer"], "ANSWER(one)");
    assert_eq!(turns[1]["prompt"], "two");
    assert_eq!(turns[1]["state"], "done");
    assert_eq!(frames.last().unwrap()["type"], "signal");
    let health: Value = reqwest::get(server.http("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["store"]["status"], "ok");
    assert_eq!(health["store"]["backend"], "sqlite");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_the_database_refuses_is_a_store_event_for_clients_and_the_next_answers_go_on() {
    let fake = echo().await;
    let dir = TempDir::new("server-store-refused");
    let file = dir.0.join("oy3o.db");
    let setting = StoreSetting::Sqlite(file.clone());
    let store = open(&setting).await;
    // Behind the server's back: the database takes the prompt "refused" once only.
    let raw = sqlx::SqlitePool::connect(&format!("sqlite:{}", file.display()))
        .await
        .expect("connect");
    sqlx::query("CREATE UNIQUE INDEX refuse_repeats ON turns (prompt) WHERE prompt = 'refused'")
        .execute(&raw)
        .await
        .expect("index");
    raw.close().await;
    let server = start(config_for(&fake), with_store(setting)).await;
    let mut client = server.client().await;
    ask(
        &mut client,
        json!({"id": "a", "model": "", "prompt": "refused"}),
    )
    .await;
    final_turns(&store, "", "a", 1).await;
    let frames = ask(
        &mut client,
        json!({"id": "b", "model": "", "prompt": "refused"}),
    )
    .await;
    assert_eq!(
        text_of(&frames, "b"),
        "ANSWER(refused)",
        "the answer is not held back"
    );
    // A named chat's reply ends once its turn is written (or refused), so the `dropped` event
    // may come before the reply's signal.
    let told = frames
        .iter()
        .find(|f| f["event"] == "store" && f["message"]["status"] == "dropped")
        .cloned();
    let event = match told {
        Some(event) => event,
        None => until_store_event(&mut client, "dropped").await,
    };
    assert_eq!(
        event["message"],
        json!({"status": "dropped", "turns": 1, "reason": "refused"})
    );
    let frames = ask(
        &mut client,
        json!({"id": "c", "model": "", "prompt": "fine"}),
    )
    .await;
    assert_eq!(text_of(&frames, "c"), "ANSWER(fine)");
    final_turns(&store, "", "c", 1).await;
    assert!(store.find_chat("", "b").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_opened_on_two_connections_at_once_keeps_both_turns() {
    let fake = echo().await;
    let dir = TempDir::new("server-store-twice");
    let setting = StoreSetting::Sqlite(dir.0.join("oy3o.db"));
    let store = open(&setting).await;
    let server = start(config_for(&fake), with_store(setting)).await;
    let mut first = server.client().await;
    let mut second = server.client().await;
    // Both open chat "shared" before either has a row in the store.
    first.send(json!({"id": "shared", "model": ""})).await;
    second.send(json!({"id": "shared", "model": ""})).await;
    ask(
        &mut first,
        json!({"id": "shared", "prompt": "from the first"}),
    )
    .await;
    ask(
        &mut second,
        json!({"id": "shared", "prompt": "from the second"}),
    )
    .await;
    let turns = final_turns(&store, "", "shared", 2).await;
    let mut prompts: Vec<&str> = turns.iter().map(|t| t.prompt.as_str()).collect();
    prompts.sort_unstable();
    assert_eq!(prompts, ["from the first", "from the second"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_created_again_on_its_connection_keeps_its_stored_context_and_history() {
    let fake = echo().await;
    let dir = TempDir::new("server-store-recreate");
    let setting = StoreSetting::Sqlite(dir.0.join("oy3o.db"));
    let server = start(config_for(&fake), with_store(setting.clone())).await;
    let mut client = server.client().await;
    let first = json!({"id": "c", "model": "", "context": "be brief", "prompt": "one"});
    ask(&mut client, first).await;
    // Created again (as a client does to change the model): still the same stored chat.
    let frames = ask(
        &mut client,
        json!({"id": "c", "model": "", "prompt": "two"}),
    )
    .await;
    assert_eq!(text_of(&frames, "c"), "ANSWER(two)");
    assert_eq!(
        sent_messages(&fake, 1),
        ["be brief", "one", "ANSWER(one)", "two"]
    );
    let store = open(&setting).await;
    let turns = final_turns(&store, "", "c", 2).await;
    assert_eq!((turns[0].seq, turns[1].seq), (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn another_token_cannot_see_continue_or_read_a_chat() {
    let fake = echo().await;
    let dir = TempDir::new("server-owner");
    let setting = StoreSetting::Sqlite(dir.0.join("oy3o.db"));
    let server = start(
        config_for(&fake),
        Settings {
            tokens: vec![Token::new("t-alice").unwrap(), Token::new("t-bob").unwrap()],
            ..with_store(setting.clone())
        },
    )
    .await;
    let url = server.ws_url("/");
    let alice = [("authorization", "Bearer t-alice")];
    let bob = [("authorization", "Bearer t-bob")];
    let mut a = Client::connect(&url, &alice).await.unwrap();
    let frames = ask(
        &mut a,
        json!({"id": "secret", "model": "", "prompt": "pin 1234"}),
    )
    .await;
    assert_eq!(text_of(&frames, "secret"), "ANSWER(pin 1234)");
    let store = open(&setting).await;
    let chats: Vec<_> = store.chats("").await.unwrap();
    assert!(chats.is_empty(), "no chat of the tokenless owner");

    let mut b = Client::connect(&url, &bob).await.unwrap();
    let unknown = ask(&mut b, json!({"id": "nothing", "prompt": "x"})).await;
    let theirs = ask(&mut b, json!({"id": "secret", "prompt": "x"})).await;
    assert_eq!(theirs[0]["code"], "not_found", "{theirs:?}");
    let strip = |f: &Value| f["message"].as_str().unwrap().replace("nothing", "secret");
    assert_eq!(strip(&unknown[0]), theirs[0]["message"].as_str().unwrap());
    let read = ask(&mut b, json!({"id": "secret", "history": true})).await;
    assert_eq!(read[0]["code"], "not_found", "{read:?}");
    assert!(history(&read).is_empty());
    // Bob's own chat of the same name is a different chat: Alice's turns never reach it.
    let own = ask(
        &mut b,
        json!({"id": "secret", "model": "", "prompt": "mine"}),
    )
    .await;
    assert_eq!(text_of(&own, "secret"), "ANSWER(mine)");
    let last = fake.requests().len() - 1;
    assert_eq!(sent_messages(&fake, last), ["mine"]);

    // Alice, on a new connection, still sees only her own turn.
    let mut a = Client::connect(&url, &alice).await.unwrap();
    let frames = ask(&mut a, json!({"id": "secret", "history": true})).await;
    let turns = history(&frames);
    assert_eq!(turns.len(), 1, "{frames:?}");
    assert_eq!(turns[0]["prompt"], "pin 1234");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_run_that_ends_while_postgres_is_down_is_stored_when_it_returns() {
    let pg = Postgres::start();
    let setting = StoreSetting::Postgres(pg.url());
    let fake = echo().await;
    let server = start(config_for(&fake), with_store(setting.clone())).await;
    let mut client = server.client().await;
    let store = open(&setting).await;
    pg.stop();
    client
        .send(json!({"id": "ch", "chain": [[{"name": "a", "prompt": "one"}], [{"prompt": "{{a}}!"}]]}))
        .await;
    let frames = client.until_signals(1).await;
    assert!(frames.iter().all(|f| f["type"] != "error"), "{frames:?}");
    assert_eq!(
        frames.iter().filter(|f| f["event"] == "stage_done").count(),
        2,
        "the chain ran whole while the database was down"
    );
    pg.run();
    let mut runs = Vec::new();
    for _ in 0..600 {
        if let Ok(found) = store.chain_runs("", 10).await
            && !found.is_empty()
        {
            runs = found;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(runs.len(), 1, "written once the database came back");
    assert_eq!(runs[0].name, "ch");
    assert_eq!(runs[0].state, TurnState::Done);
    let stages = runs[0].result["stages"].to_string();
    assert!(stages.contains("ANSWER(ANSWER(one)!)"), "{stages}");
    // The one schema every face stores a run in (`StageResult::to_json`): 0-based indexes.
    let stage = &runs[0].result["stages"][1];
    assert_eq!(stage["index"], 1, "{stage}");
    let task = &stage["results"][0];
    assert_eq!(task["index"], 0, "{task}");
    for key in [
        "name",
        "model",
        "prompt",
        "response",
        "error",
        "usage",
        "elapsed_ms",
    ] {
        assert!(task.get(key).is_some(), "{key} in {task}");
    }
    assert_eq!(task["prompt"], "{{a}}!");
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_stream_while_postgres_is_down_and_the_turn_is_written_when_it_returns() {
    let pg = Postgres::start();
    let setting = StoreSetting::Postgres(pg.url());
    let fake = FakeServer::start().await;
    fake.push(oy3o_testkit::openai::answer(&["first"]).build());
    let pieces: Vec<String> = (0..8).map(|i| format!("p{i} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    fake.push(
        oy3o_testkit::openai::answer(&refs)
            .delay(std::time::Duration::from_millis(50))
            .build(),
    );
    let server = start(config_for(&fake), with_store(setting.clone())).await;
    let mut client = server.client().await;
    ask(&mut client, json!({"id": "c", "model": "", "prompt": "a"})).await;
    let store = open(&setting).await;
    final_turns(&store, "", "c", 1).await;

    pg.stop();
    let frames = ask(&mut client, json!({"id": "c", "prompt": "b"})).await;
    assert_eq!(
        text_of(&frames, "c"),
        pieces.concat(),
        "the whole answer streamed"
    );
    assert!(frames.iter().all(|f| f["type"] != "error"), "{frames:?}");
    let health_url = server.http("/health");
    let mut failing = false;
    for _ in 0..600 {
        let health: Value = reqwest::get(&health_url)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["store"]["status"] == "failing" {
            failing = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(failing, "/health reports the failing store");
    // The clients hear of it too: this one, and one that connects during the outage.
    let told = until_store_event(&mut client, "failing").await;
    assert!(told.get("id").is_none(), "not tied to a chat: {told}");
    assert!(
        told["message"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "says why: {told}"
    );
    let mut late = server.client().await;
    until_store_event(&mut late, "failing").await;

    pg.run();
    until_store_event(&mut client, "ok").await;
    until_store_event(&mut late, "ok").await;
    let turns = final_turns(&store, "", "c", 2).await;
    assert_eq!(turns[1].prompt, "b");
    assert_eq!(turns[1].answer, pieces.concat());
    assert_eq!(turns[1].state, TurnState::Done);
    assert_eq!(turns[0].answer, "first");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_cannot_be_opened_leaves_the_server_serving() {
    let fake = echo().await;
    // A closed loopback port: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let setting = StoreSetting::Postgres(format!("postgres://u:hunter2@127.0.0.1:{port}/x"));
    let server = start(config_for(&fake), with_store(setting)).await;
    let health: Value = reqwest::get(server.http("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"]["status"], "unavailable");
    assert!(!health.to_string().contains("hunter2"), "{health}");
    let mut client = server.client().await;
    let frames = ask(&mut client, json!({"id": "c", "model": "", "prompt": "hi"})).await;
    assert_eq!(text_of(&frames, "c"), "ANSWER(hi)");
    let frames = ask(&mut client, json!({"id": "c", "history": true})).await;
    assert_eq!(frames[0]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_answers_are_recorded_for_the_token_that_asked() {
    use sha2::Digest as _;
    let fake = FakeServer::start().await;
    fake.respond(|r| {
        let prompt = oy3o_testkit::openai::prompt_of(r);
        if prompt == "boom" {
            return oy3o_testkit::openai::server_error();
        }
        let answer = format!("ANSWER({prompt})");
        oy3o_testkit::openai::reply_to(r, &[answer.as_str()])
    });
    let dir = TempDir::new("server-store-http");
    let setting = StoreSetting::Sqlite(dir.0.join("oy3o.db"));
    let server = start(
        config_for(&fake),
        Settings {
            tokens: vec![Token::new("t-alice").unwrap()],
            ..with_store(setting.clone())
        },
    )
    .await;
    let client = reqwest::Client::new();
    for (prompt, stream) in [("whole", false), ("streamed", true), ("boom", false)] {
        let body = json!({"model": "", "stream": stream, "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": prompt},
        ]});
        let response = client
            .post(server.http("/v1/chat/completions"))
            .bearer_auth("t-alice")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().is_success(), prompt != "boom", "{prompt}");
        response.text().await.unwrap();
    }
    let store = open(&setting).await;
    let alice: String = sha2::Sha256::digest(b"t-alice")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut logged = Vec::new();
    for _ in 0..600 {
        logged = store.recent_turns(&alice, 10, None).await.unwrap();
        if logged.len() == 3 && logged.iter().all(|t| t.turn.state.is_final()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut turns: Vec<(String, String, TurnState)> = logged
        .iter()
        .map(|t| (t.turn.prompt.clone(), t.turn.answer.clone(), t.turn.state))
        .collect();
    turns.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        turns,
        [
            ("boom".to_owned(), String::new(), TurnState::Error),
            (
                "streamed".into(),
                "ANSWER(streamed)".into(),
                TurnState::Done
            ),
            ("whole".into(), "ANSWER(whole)".into(), TurnState::Done),
        ]
    );
    let failed = logged.iter().find(|t| t.turn.prompt == "boom").unwrap();
    assert!(failed.turn.error.as_deref().is_some_and(|e| !e.is_empty()));
    let chat = store
        .chat_by_id(&alice, &logged[0].turn.chat_id)
        .await
        .unwrap()
        .expect("the turn's chat is alice's");
    assert_eq!(chat.context.as_deref(), Some("be brief"));
    assert!(
        store.recent_turns("", 10, None).await.unwrap().is_empty(),
        "nobody else's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_stream_its_client_leaves_is_recorded_cancelled() {
    let fake = FakeServer::start().await;
    let pieces: Vec<String> = (0..40).map(|i| format!("p{i} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    fake.push(
        oy3o_testkit::openai::answer(&refs)
            .delay(std::time::Duration::from_millis(50))
            .build(),
    );
    let dir = TempDir::new("server-store-http-cancel");
    let setting = StoreSetting::Sqlite(dir.0.join("oy3o.db"));
    let server = start(config_for(&fake), with_store(setting.clone())).await;
    let body =
        json!({"model": "", "stream": true, "messages": [{"role": "user", "content": "long"}]});
    let mut response = reqwest::Client::new()
        .post(server.http("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let first = response.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());
    drop(response);
    let store = open(&setting).await;
    let mut state = None;
    for _ in 0..600 {
        let logged = store.recent_turns("", 10, None).await.unwrap();
        if let Some(t) = logged.first().filter(|t| t.turn.state.is_final()) {
            state = Some((t.turn.state, t.turn.prompt.clone(), t.turn.answer.clone()));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (state, prompt, answer) = state.expect("the turn ended in the store");
    assert_eq!(state, TurnState::Cancelled);
    assert_eq!(prompt, "long");
    assert!(
        answer.len() < pieces.concat().len(),
        "only part of the answer came before the client left: {answer:?}"
    );
}

/// `GET /chats` with a bearer token: that token's chats, the last used first.
async fn listed_chats(server: &Running, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(server.http("/chats"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /chats");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn get_chats_lists_the_owners_named_chats_last_used_first_titled_by_their_first_prompt() {
    let fake = echo().await;
    let dir = TempDir::new("server-chat-list");
    let setting = StoreSetting::Sqlite(dir.0.join("oy3o.db"));
    let store = open(&setting).await;
    let server = start(
        config_for(&fake),
        Settings {
            tokens: vec![Token::new("t-alice").unwrap(), Token::new("t-bob").unwrap()],
            ..with_store(setting)
        },
    )
    .await;
    let url = server.ws_url("/");
    let mut a = Client::connect(&url, &[("authorization", "Bearer t-alice")])
        .await
        .unwrap();
    let long = "a long first prompt ".repeat(40);
    ask(&mut a, json!({"id": "older", "model": "", "prompt": long})).await;
    ask(
        &mut a,
        json!({"id": "newer", "model": "", "prompt": "first"}),
    )
    .await;
    ask(&mut a, json!({"id": "newer", "prompt": "second"})).await;
    // A one-shot prompt is stored without a name: it cannot be continued, so it is not listed.
    ask(&mut a, json!({"model": "", "prompt": "one-shot"})).await;
    let alice = oy3o_server_owner("t-alice");
    final_turns(&store, &alice, "older", 1).await;
    final_turns(&store, &alice, "newer", 2).await;

    let (status, body) = listed_chats(&server, "t-alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store"], "ok");
    let chats = body["chats"].as_array().expect("a list");
    let ids: Vec<&str> = chats.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["newer", "older"], "{body}");
    assert_eq!(chats[0]["title"], "first", "titled by the first prompt");
    assert_eq!(chats[0]["turns"], 2);
    let title = chats[1]["title"].as_str().unwrap();
    assert_eq!(title.chars().count(), oy3o_store::TITLE_CHARS);
    assert!(long.starts_with(title));

    // Bob sees none of them, and cannot open one by its listed id.
    let (status, body) = listed_chats(&server, "t-bob").await;
    assert_eq!((status, body["chats"].clone()), (200, json!([])), "{body}");
    let mut b = Client::connect(&url, &[("authorization", "Bearer t-bob")])
        .await
        .unwrap();
    let read = ask(&mut b, json!({"id": "newer", "history": true})).await;
    assert_eq!(read[0]["code"], "not_found", "{read:?}");
    assert!(history(&read).is_empty());
    // No token, or a wrong one: no list at all.
    let (status, _) = listed_chats(&server, "t-mallory").await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_chats_without_a_store_is_an_empty_list_that_says_so() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let body: Value = reqwest::get(server.http("/chats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"store": "off", "chats": []}));
}

/// The owner a token stands for on the server: the SHA-256 (hex) of the token.
fn oy3o_server_owner(token: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
