//! Who may use the server: loopback by default, a token off loopback (bearer header or
//! `?token=`), the browser origin allow-list, and secrets that never come back to a client.

mod common;

use common::{Client, config_for, echo, settings, start, text_of};
use oy3o_server::{Server, Settings, Token};
use oy3o_testkit::{FakeServer, Scripted};
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

const TOKEN: &str = "t0ken-with/+and=";

fn with_token() -> Settings {
    Settings {
        token: Token::new(TOKEN),
        ..settings()
    }
}

fn status_of(result: Result<Client, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, the handshake succeeded"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_bind_is_loopback_and_other_addresses_need_a_token() {
    assert_eq!(Settings::default().host, "127.0.0.1");
    let fake = echo().await;
    for host in ["0.0.0.0", "::"] {
        let refused = Server::new(
            config_for(&fake),
            Settings {
                host: host.into(),
                ..settings()
            },
        )
        .bind()
        .await;
        let message = refused.err().expect("refused without a token").to_string();
        assert!(
            message.contains("without a token") && message.contains("OY3O_SERVER_TOKEN"),
            "{message}"
        );
    }
    let server = start(config_for(&fake), settings()).await;
    assert!(server.addr.ip().is_loopback());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_required_and_accepted_as_a_bearer_header_or_a_query_parameter() {
    let fake = echo().await;
    let server = start(config_for(&fake), with_token()).await;

    assert_eq!(
        status_of(Client::connect(&server.ws_url("/"), &[]).await),
        401
    );
    let wrong = Client::connect(&server.ws_url("/"), &[("authorization", "Bearer nope")]).await;
    assert_eq!(status_of(wrong), 401);
    assert_eq!(
        status_of(Client::connect(&server.ws_url("/?token=t0ken"), &[]).await),
        401
    );

    let bearer = format!("Bearer {TOKEN}");
    let mut ws = Client::connect(&server.ws_url("/"), &[("authorization", &bearer)])
        .await
        .unwrap();
    ws.send(json!({"prompt": "header"})).await;
    assert_eq!(ws.until_signals(1).await[0]["message"], "ANSWER(header)");

    let query = "/?token=t0ken-with%2F%2Band%3D";
    let mut ws = Client::connect(&server.ws_url(query), &[]).await.unwrap();
    ws.send(json!({"prompt": "query"})).await;
    assert_eq!(ws.until_signals(1).await[0]["message"], "ANSWER(query)");

    let http = reqwest::Client::new();
    let models = http.get(server.http("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 401);
    let body = models.text().await.unwrap();
    assert!(!body.contains(TOKEN), "{body}");
    let models = http
        .get(server.http("/v1/models"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    // Liveness stays open for probes.
    assert_eq!(
        http.get(server.http("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_origins_outside_the_allow_list_are_refused() {
    let fake = echo().await;
    let listed = Settings {
        origins: vec!["https://app.example".into()],
        ..settings()
    };
    let server = start(config_for(&fake), listed).await;
    let evil = Client::connect(&server.ws_url("/"), &[("origin", "http://evil.example")]).await;
    assert_eq!(status_of(evil), 403);

    let own = format!("http://{}", server.addr);
    for origin in [own.as_str(), "https://app.example"] {
        let mut ws = Client::connect(&server.ws_url("/"), &[("origin", origin)])
            .await
            .unwrap();
        ws.send(json!({"prompt": "hi"})).await;
        assert_eq!(
            ws.until_signals(1).await[0]["message"],
            "ANSWER(hi)",
            "{origin}"
        );
    }
    let http = reqwest::Client::new();
    let refused = http
        .post(server.http("/v1/chat/completions"))
        .header("origin", "http://evil.example")
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(fake.requests().len() == 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_a_rebound_host_name_is_refused() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let http = reqwest::Client::new();
    let rebound = http
        .get(server.http("/v1/models"))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let local = http.get(server.http("/v1/models")).send().await.unwrap();
    assert_eq!(local.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clients_key_never_comes_back_in_a_frame() {
    const SECRET: &str = "sk-client-SECRET-9f8e7d6c5b4a";
    let fake = FakeServer::start().await;
    // An upstream that echoes the credential it got in its error, as some servers do.
    fake.respond(|r| {
        let auth = r.header("authorization").unwrap_or_default().to_owned();
        let body = json!({"error": {"message": format!("Incorrect API key provided: {auth}"),
                                    "type": "invalid_request_error", "code": "invalid_api_key"}});
        Scripted::json(401, &body.to_string())
    });
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "k", "model": "openai", "key": SECRET, "prompt": "hi"}))
        .await;
    let frames = ws.until_signals(1).await;
    let error = frames.iter().find(|f| f["type"] == "error").unwrap();
    assert_eq!(error["code"], "auth");
    let text = serde_json::to_string(&frames).unwrap();
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains(common::SERVER_KEY), "{text}");
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );

    ws.send(json!({"model": "openai", "prompt": "server key"}))
        .await;
    let frames = ws.until_signals(1).await;
    let text = serde_json::to_string(&frames).unwrap();
    assert!(text.contains("Incorrect API key"), "{text}");
    assert!(!text.contains(common::SERVER_KEY), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_can_be_refused_by_the_server() {
    let fake = echo().await;
    let strict = Settings {
        allow_client_credentials: false,
        ..settings()
    };
    let server = start(config_for(&fake), strict).await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "a", "model": "openai", "cookie": "sk-mine", "prompt": "hi"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["code"], "forbidden");
    assert!(!serde_json::to_string(&frames).unwrap().contains("sk-mine"));
    ws.send(json!({"id": "a", "model": "openai", "prompt": "hi"}))
        .await;
    assert_eq!(text_of(&ws.until_signals(1).await, "a"), "ANSWER(hi)");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clients_proxy_is_used_on_loopback_and_refused_beyond_it_by_default() {
    let fake = echo().await;
    let proxy = oy3o_testkit::HttpProxy::start().await;

    // Loopback: the original protocol's per-request proxy carries the upstream request (with
    // the client's own key: the server's never goes through a client's proxy).
    let local = start(config_for(&fake), settings()).await;
    let mut ws = local.client().await;
    ws.send(json!({"id": "a", "model": "openai", "key": "sk-client", "proxy": proxy.url(), "prompt": "hi"}))
        .await;
    assert_eq!(text_of(&ws.until_signals(1).await, "a"), "ANSWER(hi)");
    assert_eq!(
        proxy.seen().len(),
        1,
        "the request went through the client's proxy"
    );

    // Beyond loopback (with a token): a client may not pick where the server connects.
    let open = start(
        config_for(&fake),
        Settings {
            host: "0.0.0.0".into(),
            ..with_token()
        },
    )
    .await;
    let url = format!(
        "ws://127.0.0.1:{}/?token=t0ken-with%2F%2Band%3D",
        open.addr.port()
    );
    let mut ws = Client::connect(&url, &[]).await.expect("token accepted");
    ws.send(json!({"id": "b", "model": "openai", "key": "sk-client", "proxy": proxy.url(), "prompt": "hi"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["type"], "error");
    assert_eq!(frames[0]["code"], "forbidden");
    assert_eq!(proxy.seen().len(), 1, "nothing more went through the proxy");
    // The same request without a proxy is served.
    ws.send(json!({"id": "b", "model": "openai", "prompt": "hi"}))
        .await;
    assert_eq!(text_of(&ws.until_signals(1).await, "b"), "ANSWER(hi)");
}
