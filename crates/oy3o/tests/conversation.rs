//! Conversations (the path every face takes) against a fake OpenAI server on a real socket and
//! an in-memory store: turns run in send order, resume from the store, catch up with turns
//! another instance added, and are numbered once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use oy3o::conversation::{
    ConversationRecord, ConversationStore, StoredConversation, StoredTurn, TurnEnd, TurnLog,
    TurnOutcome,
};
use oy3o::{Config, Conversations, Credential, Event, Message, Opening, Options, ProviderSettings};
use oy3o_testkit::{FakeServer, openai};

fn config_for(server: &FakeServer) -> Config {
    let mut config = Config {
        model: Some("openai:gpt-4o-mini".into()),
        ..Config::default()
    };
    config.providers.insert(
        "openai".into(),
        ProviderSettings {
            base_url: Some(server.base_url()),
            api_key: Some(Credential::parse("sk-test-0123456789")),
            ..ProviderSettings::default()
        },
    );
    config
}

/// Answers every request with `n:<number of user messages it carried>` after a short delay,
/// so a test can read from an answer how much history its request had.
fn count_users(server: &FakeServer, delay: Duration) {
    server.respond(move |request| {
        let body = request.json();
        let users = body["messages"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["role"] == "user").count());
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        openai::answer(&[&format!("{last}:{users}")])
            .delay(delay)
            .build()
    });
}

#[derive(Default)]
struct Memory {
    chats: HashMap<(String, String), StoredConversation>,
    written: Vec<(String, i64)>,
}

/// A store in memory, shared by the `Conversations` of several simulated instances.
#[derive(Clone, Default)]
struct MemoryStore {
    memory: Arc<Mutex<Memory>>,
    shared: bool,
    ids: Arc<Mutex<u64>>,
}

impl ConversationStore for MemoryStore {
    fn new_id(&self) -> String {
        let mut n = self.ids.lock().unwrap();
        *n += 1;
        format!("chat-{n}")
    }

    fn load<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, oy3o::Result<Option<StoredConversation>>> {
        let found = self
            .memory
            .lock()
            .unwrap()
            .chats
            .get(&(owner.to_owned(), name.to_owned()))
            .cloned();
        async move { Ok(found) }.boxed()
    }

    fn shared(&self) -> bool {
        self.shared
    }

    fn last_seq<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, oy3o::Result<Option<i64>>> {
        let last = self
            .memory
            .lock()
            .unwrap()
            .chats
            .values()
            .find(|c| c.record.id == id && c.record.owner == owner)
            .and_then(|c| c.turns.last().map(|t| t.seq));
        async move { Ok(last) }.boxed()
    }

    fn begin_turn(
        &self,
        conversation: &ConversationRecord,
        seq: i64,
        prompt: &Message,
    ) -> Box<dyn TurnLog> {
        Box::new(MemoryTurn {
            memory: self.memory.clone(),
            record: Mutex::new(conversation.clone()),
            seq,
            prompt: prompt.clone(),
            answer: Mutex::new(String::new()),
            ended: Mutex::new(false),
        })
    }
}

struct MemoryTurn {
    memory: Arc<Mutex<Memory>>,
    record: Mutex<ConversationRecord>,
    seq: i64,
    prompt: Message,
    answer: Mutex<String>,
    ended: Mutex<bool>,
}

impl MemoryTurn {
    fn write(&self, outcome: TurnOutcome) {
        let mut ended = self.ended.lock().unwrap();
        if *ended {
            return;
        }
        *ended = true;
        let record = self.record.lock().unwrap().clone();
        let mut memory = self.memory.lock().unwrap();
        memory.written.push((record.id.clone(), self.seq));
        let key = (
            record.owner.clone(),
            record.name.clone().unwrap_or_default(),
        );
        let chat = memory
            .chats
            .entry(key)
            .or_insert_with(|| StoredConversation {
                record: record.clone(),
                turns: Vec::new(),
            });
        chat.record.handle = record.handle.clone();
        chat.turns.push(StoredTurn {
            seq: self.seq,
            prompt: self.prompt.clone(),
            steps: Vec::new(),
            answer: Message::assistant(self.answer.lock().unwrap().clone()),
            outcome,
        });
    }
}

impl TurnLog for MemoryTurn {
    fn chunk(&self, text: &str) {
        self.answer.lock().unwrap().push_str(text);
    }
    fn event(&self, _event: &Event) {}
    fn handle(&self, handle: Option<&serde_json::Value>) {
        self.record.lock().unwrap().handle = handle.cloned();
    }
    fn finish(&self, end: TurnEnd) -> BoxFuture<'static, oy3o::Result<()>> {
        self.write(match end {
            TurnEnd::Done { .. } => TurnOutcome::Done,
            TurnEnd::Error { .. } => TurnOutcome::Error,
            TurnEnd::Cancelled => TurnOutcome::Cancelled,
        });
        async { Ok(()) }.boxed()
    }
}

impl Drop for MemoryTurn {
    fn drop(&mut self) {
        self.write(TurnOutcome::Cancelled);
    }
}

#[tokio::test]
async fn turns_sent_at_once_run_in_send_order_each_seeing_the_ones_before() {
    let server = FakeServer::start().await;
    count_users(&server, Duration::from_millis(5));
    let conversations = Conversations::new(None);
    let chat = conversations
        .open(Opening::named("", "pipelined"), &config_for(&server))
        .await
        .unwrap();
    let replies: Vec<_> = (0..20)
        .map(|k| chat.send(Message::user(format!("p{k}")), &Options::default()))
        .collect();
    // Polled last first: the order must still be the order of sending.
    let mut tasks = Vec::new();
    for reply in replies.into_iter().rev() {
        tasks.push(tokio::spawn(reply.text()));
    }
    let mut answers: Vec<String> = Vec::new();
    for task in tasks.into_iter().rev() {
        answers.push(task.await.unwrap().unwrap());
    }
    let expected: Vec<String> = (0..20).map(|k| format!("p{k}:{}", k + 1)).collect();
    assert_eq!(answers, expected);
    assert_eq!(chat.history().len(), 40);
}

#[tokio::test]
async fn a_turn_dropped_while_queued_lets_the_next_one_run_after_the_running_one() {
    let server = FakeServer::start().await;
    count_users(&server, Duration::from_millis(30));
    let conversations = Conversations::new(None);
    let chat = conversations
        .open(Opening::named("", "drop"), &config_for(&server))
        .await
        .unwrap();
    let first = chat.send(Message::user("a"), &Options::default());
    let second = chat.send(Message::user("b"), &Options::default());
    let third = chat.send(Message::user("c"), &Options::default());
    drop(second);
    let (a, c) = tokio::join!(first.text(), third.text());
    assert_eq!(a.unwrap(), "a:1");
    assert_eq!(c.unwrap(), "c:2", "the third saw the first turn only");
}

#[tokio::test]
async fn two_opens_of_one_name_share_one_conversation_and_one_order() {
    let server = FakeServer::start().await;
    count_users(&server, Duration::from_millis(5));
    let store = MemoryStore::default();
    let conversations = Conversations::new(Some(Arc::new(store.clone())));
    let config = config_for(&server);
    let a = conversations
        .open(Opening::named("", "shared"), &config)
        .await
        .unwrap();
    let b = conversations
        .open(Opening::named("", "shared"), &config)
        .await
        .unwrap();
    assert!(a.same_as(&b));
    let one = a.send(Message::user("x"), &Options::default());
    let two = b.send(Message::user("y"), &Options::default());
    assert_eq!(one.text().await.unwrap(), "x:1");
    assert_eq!(two.text().await.unwrap(), "y:2");
    let seqs: Vec<i64> = store
        .memory
        .lock()
        .unwrap()
        .written
        .iter()
        .map(|w| w.1)
        .collect();
    assert_eq!(seqs, [0, 1]);
}

#[tokio::test]
async fn a_stored_conversation_resumes_with_its_history_context_and_next_number() {
    let server = FakeServer::start().await;
    count_users(&server, Duration::ZERO);
    let store = MemoryStore::default();
    let config = config_for(&server);
    {
        let first = Conversations::new(Some(Arc::new(store.clone())));
        let chat = first
            .open(
                Opening::named("", "work").context(Some("Be brief.")),
                &config,
            )
            .await
            .unwrap();
        chat.send(Message::user("one"), &Options::default())
            .text()
            .await
            .unwrap();
        // Cut by the consumer: stored as cancelled, never part of the history.
        let mut cut = chat.send(Message::user("cut"), &Options::default());
        let _ = cut.next().await;
        drop(cut);
    }
    let second = Conversations::new(Some(Arc::new(store.clone())));
    let chat = second
        .open(Opening::named("", "work"), &config)
        .await
        .unwrap();
    assert_eq!(chat.next_seq(), 2);
    let answer = chat
        .send(Message::user("two"), &Options::default())
        .text()
        .await
        .unwrap();
    assert_eq!(
        answer, "two:2",
        "the resumed request carries the done turn only"
    );
    let last = server.requests().last().unwrap().json();
    assert_eq!(last["messages"][0]["content"], "Be brief.");
    let seqs: Vec<i64> = store
        .memory
        .lock()
        .unwrap()
        .written
        .iter()
        .map(|w| w.1)
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
}

#[tokio::test]
async fn two_instances_on_a_shared_store_number_alternate_turns_once_and_in_order() {
    let server = FakeServer::start().await;
    count_users(&server, Duration::ZERO);
    let store = MemoryStore {
        shared: true,
        ..MemoryStore::default()
    };
    let config = config_for(&server);
    let instances = [
        Conversations::new(Some(Arc::new(store.clone()))),
        Conversations::new(Some(Arc::new(store.clone()))),
    ];
    // Both keep the conversation open the whole time: each must catch up before its turn.
    let a = instances[0]
        .open(Opening::named("", "alt"), &config)
        .await
        .unwrap();
    a.send(Message::user("t0"), &Options::default())
        .text()
        .await
        .unwrap();
    let b = instances[1]
        .open(Opening::named("", "alt"), &config)
        .await
        .unwrap();
    for k in 1..50 {
        let chat = if k % 2 == 0 { &a } else { &b };
        let answer = chat
            .send(Message::user(format!("t{k}")), &Options::default())
            .text()
            .await
            .unwrap();
        assert_eq!(answer, format!("t{k}:{}", k + 1));
    }
    let seqs: Vec<i64> = store
        .memory
        .lock()
        .unwrap()
        .written
        .iter()
        .map(|w| w.1)
        .collect();
    assert_eq!(seqs, (0..50).collect::<Vec<i64>>());
}

#[tokio::test]
async fn a_bing_chat_resumes_in_another_process_sending_only_the_new_prompt_on_its_conversation() {
    use oy3o_testkit::copilot::{self, Answer, CopilotSim, Turn};
    let sim = CopilotSim::start().await;
    sim.push(Turn::Answer(Answer::text(&["one"])));
    sim.push(Turn::Answer(Answer::text(&["two"])));
    let mut config = Config::default();
    config.providers.insert(
        "bing".into(),
        ProviderSettings {
            base_url: Some(sim.url()),
            max_retries: Some(0),
            ..ProviderSettings::default()
        },
    );
    config.cookie = Some(Credential::parse(&copilot::cookie_export()));
    let store = MemoryStore::default();
    {
        // The first process: a new Copilot conversation, its handle stored with the turn.
        let first = Conversations::new(Some(Arc::new(store.clone())));
        let chat = first
            .open(
                Opening::named("", "copilot")
                    .model(Some("bing"))
                    .context(Some("Be brief.")),
                &config,
            )
            .await
            .unwrap();
        let answer = chat.send(Message::user("hi"), &Options::default());
        assert_eq!(answer.text().await.unwrap(), "one");
    }
    // Another process: same store, no live conversation.
    let second = Conversations::new(Some(Arc::new(store.clone())));
    let chat = second
        .open(Opening::named("", "copilot"), &config)
        .await
        .unwrap();
    assert_eq!(chat.model(), "bing:chat");
    let answer = chat.send(Message::user("again"), &Options::default());
    assert_eq!(answer.text().await.unwrap(), "two");
    assert_eq!(sim.starts(), 1, "no second conversation was started");
    let sent = sim.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].text, "again", "only the new prompt is sent");
    assert_eq!(sent[1].conversation, sent[0].conversation);
    assert_eq!(sent[0].context.as_deref(), Some("Be brief."));
    assert_eq!(sent[1].context, None, "the service has the context already");
    assert!(
        sent[1].cookies.iter().any(|c| c == "__Host-copilot-anon"),
        "the cookie the service set for the conversation rides on: {:?}",
        sent[1].cookies
    );
    assert_eq!(sim.conversation(&sent[0].conversation), ["hi", "again"]);
}
