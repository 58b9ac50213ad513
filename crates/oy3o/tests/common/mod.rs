//! Helpers shared by the provider behaviour tests: a config pointing one provider at a fake
//! server, an event recorder, and a reply run to its end.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use oy3o::{Config, Credential, Error, Event, Output, ProviderSettings, Reply};

/// The key the fake servers are given; messages must never show it.
pub const KEY: &str = "sk-test-0123456789abcdef";

/// A config whose `provider` section points at `base_url` with a key.
pub fn config_for(provider: &str, base_url: String) -> Config {
    let mut config = Config::default();
    config.providers.insert(
        provider.into(),
        ProviderSettings {
            base_url: Some(base_url),
            api_key: Some(Credential::parse(KEY)),
            ..ProviderSettings::default()
        },
    );
    config
}

/// Changes the settings of `provider` in `config`.
pub fn tune(config: &mut Config, provider: &str, f: impl FnOnce(&mut ProviderSettings)) {
    f(config.providers.entry(provider.into()).or_default());
}

/// Records every event the listeners see.
pub fn recorder(config: &mut Config) -> Arc<Mutex<Vec<Event>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    config
        .listeners
        .on("*", move |e| s.lock().unwrap().push(e.clone()));
    seen
}

/// The names of the recorded events, in order.
pub fn names(events: &Arc<Mutex<Vec<Event>>>) -> Vec<String> {
    events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.name().to_owned())
        .collect()
}

/// What a reply produced, read to its end.
#[derive(Debug, Default)]
pub struct Run {
    /// The answer text.
    pub text: String,
    /// The events, in order (lifecycle ones included).
    pub events: Vec<Event>,
    /// The error it ended with, if any.
    pub error: Option<Error>,
}

impl Run {
    /// Reads `reply` to its end.
    pub async fn of(reply: Reply) -> Run {
        let mut run = Run::default();
        let mut outputs = reply.outputs();
        while let Some(item) = outputs.next().await {
            match item {
                Ok(Output::Text(t)) => run.text.push_str(&t),
                Ok(Output::Event(e)) => run.events.push(e),
                Err(e) => run.error = Some(e),
            }
        }
        run
    }

    /// The reasoning text.
    pub fn reasoning(&self) -> String {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Reasoning(r) => Some(r.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The events named `name`.
    pub fn named(&self, name: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.name() == name).collect()
    }

    /// The error, which the test expects.
    pub fn err(&self) -> &Error {
        self.error.as_ref().expect("the reply should have failed")
    }
}

/// A base URL on a loopback port where nothing listens.
pub fn unreachable_url() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    format!("http://127.0.0.1:{port}")
}
