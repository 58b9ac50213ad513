//! A team server (issue #22): keys made with `oy3o keys` on a real PostgreSQL, two `oy3o serve`
//! instances sharing it and a real Redis; each key's models, rpm, tpm, concurrency and budget
//! hold across both instances, a revoked key is refused by the other instance within seconds,
//! the static `tokens` keep working, and each turn's cost (cached and reasoning tokens priced
//! apart) is stored and summed by `oy3o usage`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use oy3o_testkit::postgres::{Postgres, TempDir};
use oy3o_testkit::redis::Redis;
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

/// A guard against hanging, not a measurement.
const PATIENCE: Duration = Duration::from_secs(60);

/// Every answer of the fake: 10,000 tokens read (4,000 cached), 3,000 written (1,000
/// reasoning). At the test's prices ($2 / $0.5 / $8 / $12 per million) a turn costs
/// 6,000 × 2 + 4,000 × 0.5 + 2,000 × 8 + 1,000 × 12 = $0.042 (per million: / 1e6).
const TURN_COST: f64 = 0.042;

struct Team {
    _pg: Postgres,
    _redis: Redis,
    dir: TempDir,
    config: PathBuf,
    fake: FakeServer,
}

impl Team {
    /// PostgreSQL, Redis and a config whose `[server]` shares counters through Redis when
    /// `shared`, else counts per instance.
    async fn start_with(shared: bool) -> Self {
        let pg = Postgres::start();
        let redis = Redis::start();
        let limits = if shared {
            format!("limits = {}\n", json!(redis.url()))
        } else {
            String::new()
        };
        let dir = TempDir::new("team");
        let config = dir.0.join("oy3o.toml");
        std::fs::write(
            &config,
            format!(
                "store = {}\n\n[prices.\"openai:gpt-4o-mini\"]\ninput = 2.0\ncached_input = 0.5\noutput = 8.0\nreasoning = 12.0\n\n[server]\nkeys = true\n{limits}tokens = [\"t-static\"]\n",
                json!(pg.url()),
            ),
        )
        .expect("write config");
        let fake = FakeServer::start().await;
        fake.respond(|request| {
            let reply = if request.json()["stream"] == true {
                openai::answer_with_usage("ok", 10_000, 4_000, 3_000, 1_000).build()
            } else {
                openai::whole_with_usage("ok", 10_000, 4_000, 3_000, 1_000)
            };
            if openai::prompt_of(request).contains("slow") {
                reply.delayed(Duration::from_secs(3))
            } else {
                reply
            }
        });
        Self {
            _pg: pg,
            _redis: redis,
            dir,
            config,
            fake,
        }
    }

    async fn start() -> Self {
        Self::start_with(true).await
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oy3o"));
        cmd.args(args)
            .arg("--config")
            .arg(&self.config)
            .env_clear()
            .env("HOME", &self.dir.0)
            .env("XDG_CONFIG_HOME", self.dir.0.join("config"))
            .env("XDG_DATA_HOME", self.dir.0.join("data"))
            .env("OPENAI_BASE_URL", self.fake.base_url())
            .env("OPENAI_API_KEY", "sk-test")
            .env("OY3O_MODEL", "openai:gpt-4o-mini")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `oy3o ARGS` to its end: (exit code, stdout, stderr).
    async fn oy3o(&self, args: &[&str]) -> (i32, String, String) {
        let out = tokio::time::timeout(PATIENCE, self.command(args).output())
            .await
            .expect("oy3o ends")
            .expect("run oy3o");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `oy3o keys add ARGS`: the secret it printed.
    async fn key(&self, args: &[&str]) -> String {
        let mut all = vec!["keys", "add"];
        all.extend_from_slice(args);
        let (code, out, err) = self.oy3o(&all).await;
        assert_eq!(code, 0, "keys add {args:?}: {err}");
        let secret = out.trim().to_owned();
        assert!(secret.starts_with("oy3o-") && secret.len() == 69, "{out}");
        secret
    }

    /// Starts `oy3o serve --port 0`: the child and its address.
    async fn serve(&self) -> (Child, String) {
        let mut child = self
            .command(&["serve", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start oy3o serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the server starts")
            .expect("read stdout")
            .expect("a first line");
        let addr = line
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        (child, addr)
    }

    async fn store(&self) -> std::sync::Arc<dyn oy3o_store::Store> {
        let url = self._pg.url();
        oy3o_store::open(&oy3o_store::StoreSetting::Postgres(url))
            .await
            .expect("open")
            .expect("a store")
    }
}

/// One chat completion on `addr` with `token`: (status, Retry-After, body).
async fn complete(addr: &str, token: &str, model: &str, prompt: &str) -> (u16, Option<u64>, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(token)
        .json(&json!({ "model": model, "messages": [{ "role": "user", "content": prompt }] }))
        .timeout(PATIENCE)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry, response.json().await.unwrap_or(Value::Null))
}

const MODEL: &str = "openai:gpt-4o-mini";

/// Waits until late enough in a minute that a test counting per-minute windows does not see
/// the minute turn (the counters use fixed UTC minutes).
async fn early_in_a_minute() {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if secs % 60 > 35 {
        tokio::time::sleep(Duration::from_secs(61 - secs % 60)).await;
    }
}

/// Waits until `f` is true (the background counting landed), or fails after a while.
async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn keys_limits_and_budgets_hold_across_two_instances_sharing_postgres_and_redis() {
    let team = Team::start().await;
    let alice = team
        .key(&["alice", "--models", "openai:*,ollama:*", "--rpm", "3"])
        .await;
    let bob = team.key(&["bob", "--budget", "0.05/day"]).await;
    let carol = team.key(&["carol", "--models", "anthropic:*"]).await;
    let dave = team.key(&["dave", "--concurrent", "1"]).await;
    let erin = team.key(&["erin", "--tpm", "20000"]).await;
    // The secret is printed once and never listed.
    let (code, listed, _) = team.oy3o(&["keys", "list", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(listed.lines().count(), 5, "{listed}");
    assert!(
        !listed.contains(&alice[5..]) && !listed.contains(&bob[5..]),
        "{listed}"
    );
    let (code, _, err) = team.oy3o(&["keys", "add", "alice"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("exists already"), "{err}");

    let (_a, a) = team.serve().await;
    let (_b, b) = team.serve().await;

    // No key, a wrong one: unauthorized. The static token keeps working, without limits.
    assert_eq!(complete(&a, "oy3o-nope", MODEL, "hi").await.0, 401);
    for _ in 0..4 {
        assert_eq!(complete(&b, "t-static", MODEL, "hi").await.0, 200);
    }

    // A model outside the key's globs is forbidden, and never sent upstream.
    let upstream = team.fake.requests().len();
    let (status, _, body) = complete(&a, &carol, MODEL, "hi").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(team.fake.requests().len(), upstream);

    // rpm 3 across both instances: the fourth request of the minute is refused, on either.
    early_in_a_minute().await;
    for addr in [&a, &b, &a] {
        let (status, _, body) = complete(addr, &alice, MODEL, "hi").await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, retry, body) = complete(&b, &alice, MODEL, "hi").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(retry.is_some_and(|s| (1..=60).contains(&s)), "{retry:?}");

    // Concurrency 1 across both: a second request while the first runs is refused.
    let slow = {
        let (a, dave) = (a.clone(), dave.clone());
        tokio::spawn(async move { complete(&a, &dave, MODEL, "slow please").await })
    };
    until("the slow request reaches the fake", async || {
        team.fake
            .requests()
            .iter()
            .any(|r| openai::prompt_of(r).contains("slow"))
    })
    .await;
    let (status, retry, body) = complete(&b, &dave, MODEL, "hi").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (429, json!("rate_limited")),
        "{body}"
    );
    assert_eq!(retry, Some(1));
    assert_eq!(slow.await.unwrap().0, 200);
    // The slot is freed in the background once the answer is written.
    until("the slot is free again", async || {
        complete(&b, &dave, MODEL, "hi").await.0 == 200
    })
    .await;

    // tpm 20,000 across both: two answers of 13,000 tokens, then the third waits.
    early_in_a_minute().await;
    assert_eq!(complete(&a, &erin, MODEL, "hi").await.0, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(complete(&b, &erin, MODEL, "hi").await.0, 200);
    let mut refused = (0, None, Value::Null);
    until("erin's tokens reach the shared counter", async || {
        refused = complete(&a, &erin, MODEL, "hi").await;
        refused.0 == 429
    })
    .await;
    assert_eq!(refused.2["error"]["code"], "rate_limited", "{}", refused.2);
    assert!(
        refused.2["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tpm")
    );

    // Budget $0.05 a day: one turn ($0.042) on each instance, then both refuse until tomorrow.
    let store = team.store().await;
    let today = oy3o_store::Period::Day.start(oy3o_store::now_ms());
    assert_eq!(complete(&a, &bob, MODEL, "hi").await.0, 200);
    until("bob's first turn is counted", async || {
        store.spend("bob", today).await.unwrap() >= TURN_COST - 1e-9
    })
    .await;
    assert_eq!(complete(&b, &bob, MODEL, "hi").await.0, 200);
    until("bob's second turn is counted", async || {
        store.spend("bob", today).await.unwrap() >= 2.0 * TURN_COST - 1e-9
    })
    .await;
    // Each instance reads the spend again within 2 s (SPEND_TTL).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    for addr in [&a, &b] {
        let (status, retry, body) = complete(addr, &bob, MODEL, "hi").await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "budget_exceeded");
        assert!(retry.is_some_and(|s| s <= 86_400), "{retry:?}");
    }

    // Each turn's cost is stored with it, at the table's prices, and summed by key.
    let (code, usage, err) = team.oy3o(&["usage", "--by", "key", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let groups: Vec<Value> = usage
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |name: &str| {
        groups
            .iter()
            .find(|g| g["group"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(of("alice")["turns"], 3, "{usage}");
    let cost = of("alice")["cost_usd"].as_f64().unwrap();
    assert!((cost - 3.0 * TURN_COST).abs() < 1e-9, "{cost}");
    assert_eq!(of("alice")["cached_tokens"], 12_000);
    assert_eq!(of("alice")["reasoning_tokens"], 3_000);
    assert_eq!(of("bob")["turns"], 2, "{usage}");
    let (code, by_model, _) = team.oy3o(&["usage", "--by", "model"]).await;
    assert_eq!(code, 0);
    assert!(
        by_model.contains(MODEL) && by_model.contains("TOTAL"),
        "{by_model}"
    );

    // A revoked key is refused by the other instance within seconds, without a restart.
    assert_eq!(complete(&b, &dave, MODEL, "hi").await.0, 200);
    let (code, _, err) = team.oy3o(&["keys", "revoke", "dave"]).await;
    assert_eq!(code, 0, "{err}");
    let revoked = Instant::now();
    until("the revocation reaches the instance", async || {
        complete(&b, &dave, MODEL, "hi").await.0 == 401
    })
    .await;
    assert!(
        revoked.elapsed() < Duration::from_secs(4),
        "{:?}",
        revoked.elapsed()
    );
    let (_, listed, _) = team.oy3o(&["keys", "list"]).await;
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("dave") && l.contains("revoked")),
        "{listed}"
    );
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_a_rate_limited_error_frame_over_websocket() {
    let team = Team::start().await;
    let frank = team.key(&["frank", "--rpm", "1"]).await;
    let (_a, a) = team.serve().await;
    early_in_a_minute().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{a}/?token={frank}"))
        .await
        .expect("websocket handshake");
    let mut ask = async |prompt: &str| {
        ws.send(Message::Text(
            json!({ "prompt": prompt }).to_string().into(),
        ))
        .await
        .expect("send");
        let mut frames = Vec::new();
        loop {
            let frame = tokio::time::timeout(PATIENCE, ws.next())
                .await
                .expect("a frame")
                .expect("open")
                .expect("a frame");
            if let Message::Text(text) = frame {
                let frame: Value = serde_json::from_str(&text).unwrap();
                let end = frame["type"] == "signal";
                frames.push(frame);
                if end {
                    return frames;
                }
            }
        }
    };
    let first = ask("hi").await;
    assert!(first.iter().all(|f| f["type"] != "error"), "{first:?}");
    let second = ask("hi again").await;
    let error = second
        .iter()
        .find(|f| f["type"] == "error")
        .expect("an error frame");
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert!(
        error["retry_after"]
            .as_u64()
            .is_some_and(|s| (1..=60).contains(&s)),
        "{error}"
    );
}

#[tokio::test]
async fn log_cost_shows_each_turns_tokens_and_dollars_at_the_configured_prices() {
    let team = Team::start().await;
    let (code, _, err) = team.oy3o(&["hello"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = team.oy3o(&["log", "--cost"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("10000 in (4000 cached), 3000 out (1000 reasoning), $0.0420"),
        "{out}"
    );
    let (_, json_out, _) = team.oy3o(&["log", "--json"]).await;
    let turn: Value = serde_json::from_str(json_out.lines().next().unwrap()).unwrap();
    assert!(
        (turn["cost_usd"].as_f64().unwrap() - TURN_COST).abs() < 1e-9,
        "{turn}"
    );
}

#[tokio::test]
async fn without_redis_each_instance_counts_a_keys_requests_on_its_own() {
    let team = Team::start_with(false).await;
    let grace = team
        .key(&["grace", "--rpm", "2", "--models", "openai:*"])
        .await;
    let (_a, a) = team.serve().await;
    let (_b, b) = team.serve().await;
    early_in_a_minute().await;
    assert_eq!(complete(&a, &grace, MODEL, "hi").await.0, 200);
    assert_eq!(complete(&a, &grace, MODEL, "hi").await.0, 200);
    let (status, retry, body) = complete(&a, &grace, MODEL, "hi").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (429, json!("rate_limited")),
        "{body}"
    );
    assert!(retry.is_some());
    // The other instance has its own count (documented: share them with `limits`).
    assert_eq!(complete(&b, &grace, MODEL, "hi").await.0, 200);
    assert_eq!(
        complete(&b, &grace, "anthropic:claude-haiku-4-5", "hi")
            .await
            .0,
        403
    );
}
