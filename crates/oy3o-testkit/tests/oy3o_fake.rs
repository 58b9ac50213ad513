//! The `oy3o-fake copilot` process as other test suites use it: the URL and a cookie export on
//! stdout, a simulator that answers on that URL, and an exit when stdin closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

#[test]
fn oy3o_fake_copilot_prints_its_url_and_cookies_and_stops_when_stdin_closes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oy3o-fake"))
        .arg("copilot")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    let cookies: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(cookies[0]["name"], "MUID");

    let mut socket = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    socket
        .write_all(b"GET /_sim/state HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    socket.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains(r#""starts":0"#), "{reply}");

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn oy3o_fake_without_a_known_kind_explains_its_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_oy3o-fake"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: oy3o-fake copilot"));
}
