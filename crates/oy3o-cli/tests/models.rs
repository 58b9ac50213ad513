//! `oy3o models`: providers, default models, aliases and credential status, never a secret.

use std::process::Command;

#[test]
fn models_lists_providers_aliases_and_credential_status_without_secrets() {
    let dir = std::env::temp_dir().join(format!("oy3o-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        "[aliases]\nsmart = [\"anthropic:claude-sonnet-4-5\", \"openai:gpt-4o\"]\n[cookies]\nanthropic = \"sk-ant-secret-123\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oy3o"))
        .args(["models", "--config", config.to_str().unwrap()])
        .env_clear()
        .env("HOME", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for provider in ["openai", "anthropic", "gemini", "ollama", "local"] {
        assert!(stdout.contains(provider), "{stdout}");
    }
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("anthropic").contains("configured"), "{stdout}");
    assert!(line("gemini").contains("missing"), "{stdout}");
    assert!(line("local").contains("not needed"), "{stdout}");
    assert!(
        line("smart").contains("anthropic:claude-sonnet-4-5"),
        "{stdout}"
    );
    assert!(!stdout.contains("sk-ant-secret-123"));
}
