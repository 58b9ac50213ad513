//! The terminal faces in a real terminal: tmux runs `oy3o` against the fake server, keys are
//! typed with `send-keys`, and the screen is read back with `capture-pane`.

use std::process::Command;
use std::time::{Duration, Instant};

use oy3o_testkit::{FakeServer, openai};

/// One tmux server of our own (its own socket file), killed and removed on drop.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    /// Starts `command` in a 120×40 pane named `app`. The command is run by `sh -c`, then
    /// `exit=STATUS` is printed and the pane stays open, so a test can see how it ended.
    fn start(command: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmux = Tmux {
            socket: std::env::temp_dir().join(format!("oy3o-tmux-{}-{n}.sock", std::process::id())),
        };
        // A blank line first: tmux may drop the first line of a pane's output.
        let wrapped = format!("sh -c 'echo; {command}; echo exit=$?; sleep 60'");
        tmux.run(&[
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "-s",
            "app",
            &wrapped,
        ]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed (scripts/setup installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "app"])
    }

    fn type_line(&self, line: &str) {
        if !line.is_empty() {
            self.run(&["send-keys", "-t", "app", "-l", line]);
        }
        self.run(&["send-keys", "-t", "app", "Enter"]);
    }

    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited 15 s for {text:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The shell command that runs `oy3o ARGS` with a clean environment against `server`. Each
/// command has a store of its own, so apps running side by side never resume each other's chats.
/// PATH is kept: the MCP servers a config names are programs found on it.
fn oy3o_command(server: &FakeServer, args: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let home = std::env::temp_dir().join(format!("oy3o-tmux-home-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&home);
    format!(
        "env -i HOME={home} XDG_CONFIG_HOME={home}/config XDG_DATA_HOME={home}/data-{n} \
         PATH={path} TERM=xterm-256color OPENAI_BASE_URL={base} OY3O_MODEL=openai:gpt-test \
         {bin} {args}",
        home = home.display(),
        path = std::env::var("PATH").unwrap_or_default(),
        base = server.base_url(),
        bin = env!("CARGO_BIN_EXE_oy3o"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_chats_views_edits_runs_a_task_saves_loads_and_exits_in_a_real_terminal() {
    let server = FakeServer::start().await;
    server.respond(|_| {
        openai::answer(&["The answer ", "is ", "2."])
            .delay(Duration::from_millis(30))
            .build()
    });
    let tmux = Tmux::start(&oy3o_command(&server, ""));

    let start = tmux.wait_for("enter \"view 0\" to show help");
    assert!(start.contains("Tasks: none │ Chats: none"), "{start}");

    tmux.type_line("chat a");
    tmux.wait_for("chat a (openai:gpt-test): each line is a prompt");
    tmux.type_line("What is 1+1?");
    let answered = tmux.wait_for("4| a: The answer is 2.");
    assert!(answered.contains("3| a> What is 1+1?"), "{answered}");
    assert_eq!(openai::prompt_of(&server.requests()[0]), "What is 1+1?");

    tmux.type_line("/back");
    tmux.type_line("view 4");
    let view = tmux.wait_for("message 4");
    assert!(view.contains("The answer is 2."), "{view}");
    tmux.run(&["send-keys", "-t", "app", "Escape"]);
    tmux.wait_for("left chat a");

    tmux.type_line("edit 1");
    tmux.wait_for("edit 1: Ctrl+D keeps");
    tmux.run(&["send-keys", "-t", "app", "C-d"]);
    tmux.wait_for("message 1 changed");

    tmux.type_line("nosuch");
    tmux.wait_for("unknown command: nosuch");
    // No display here: Ctrl+V says how to paste instead of failing.
    tmux.run(&["send-keys", "-t", "app", "C-v"]);
    tmux.wait_for("no system clipboard here");

    tmux.type_line("task t");
    tmux.wait_for("t stage 1 task 1 prompt");
    // The prompt is a multi-line editor: Enter is a new line, Ctrl+D sends it.
    tmux.type_line("Name a colour.");
    tmux.run(&["send-keys", "-t", "app", "-l", "Just one."]);
    tmux.run(&["send-keys", "-t", "app", "C-d"]);
    tmux.wait_for("t model (empty: default)");
    for line in ["", "", ""] {
        tmux.type_line(line);
    }
    tmux.wait_for("t chain to next tasks? [y/n]");
    tmux.type_line("y");
    tmux.wait_for("t stage 2 task 1 prompt");
    tmux.run(&["send-keys", "-t", "app", "-l", "Use {{previous}}"]);
    tmux.run(&["send-keys", "-t", "app", "C-d"]);
    for line in ["", "", "", "n"] {
        tmux.type_line(line);
    }
    let done = tmux.wait_for("task t finished");
    let first_stage = server
        .requests()
        .iter()
        .map(openai::prompt_of)
        .find(|p| p.starts_with("Name a colour."));
    assert_eq!(first_stage.as_deref(), Some("Name a colour.\nJust one."));
    assert!(done.contains("Tasks: t(done)"), "{done}");
    assert!(
        done.contains("t stage 2 [default]: The answer is 2."),
        "{done}"
    );

    let saved = std::env::temp_dir().join(format!("oy3o-tmux-save-{}.json", std::process::id()));
    tmux.type_line(&format!("save {}", saved.display()));
    tmux.wait_for("saved to");
    let session = std::fs::read_to_string(&saved).unwrap();
    assert!(
        session.contains("What is 1+1?") && !session.contains("OPENAI"),
        "{session}"
    );

    tmux.type_line("exit");
    tmux.wait_for("exit=");
    // The alternate screen is gone: the app's drawing does not stay behind.
    let after = tmux.screen();
    assert!(after.contains("exit=0"), "{after}");
    assert!(!after.contains("Chats: a"), "{after}");

    // --load reopens the saved flow and chats.
    let reopened = Tmux::start(&oy3o_command(
        &server,
        &format!("--load {}", saved.display()),
    ));
    let screen = reopened.wait_for("loaded ");
    assert!(screen.contains("3| a> What is 1+1?"), "{screen}");
    assert!(screen.contains("Chats: a"), "{screen}");
    // ... and chat a's model goes on with the saved conversation.
    let before = server.requests().len();
    reopened.type_line("chat a");
    reopened.wait_for("back in chat a");
    reopened.type_line("And 2+2?");
    reopened.wait_for("a> And 2+2?");
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.requests().len() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let requests = server.requests();
    assert_eq!(
        requests.last().unwrap().json()["messages"],
        serde_json::json!([
            {"role": "user", "content": "What is 1+1?"},
            {"role": "assistant", "content": "The answer is 2."},
            {"role": "user", "content": "And 2+2?"}
        ])
    );
    reopened.type_line("/exit");
    reopened.wait_for("exit=0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_shot_answer_on_a_terminal_is_rendered_as_markdown_after_its_reasoning() {
    let server = FakeServer::start().await;
    let answer = openai::answer(&["# Plan\n", "- first **step**\n", "- `code` here\n"]);
    server.push(
        oy3o_testkit::SseScript::default()
            .data(&openai::reasoning_chunk(
                "reasoning_content",
                "Let me think.",
            ))
            .raw(&answer.body_text())
            .build(),
    );
    let tmux = Tmux::start(&oy3o_command(&server, "hi"));
    let screen = tmux.wait_for("exit=");
    assert!(screen.contains("# Plan"), "{screen}");
    // The reasoning goes to stderr, here the same terminal, before the answer.
    assert!(screen.contains("Let me think."), "{screen}");
    assert!(screen.contains("• first step"), "{screen}");
    assert!(screen.contains("• code here"), "{screen}");
    assert!(!screen.contains("**"), "{screen}");
    assert!(screen.contains("exit=0"), "{screen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn esc_stops_a_streaming_answer_in_the_app_and_closes_the_request() {
    let server = FakeServer::start().await;
    let pieces = vec!["word "; 100];
    server.push(
        openai::answer(&pieces)
            .delay(Duration::from_millis(100))
            .build(),
    );
    let tmux = Tmux::start(&oy3o_command(&server, ""));
    tmux.wait_for("enter \"view 0\" to show help");
    tmux.type_line("chat a");
    tmux.type_line("talk");
    tmux.wait_for("a: word word");
    tmux.run(&["send-keys", "-t", "app", "Escape"]);
    tmux.wait_for("[stopped with Esc]");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.aborted_by_client() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.aborted_by_client(), 1);
    tmux.type_line("/exit");
    tmux.wait_for("exit=0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rust_code_block_is_coloured_on_a_terminal_unless_raw() {
    let server = FakeServer::start().await;
    server.respond(|_| openai::answer(&["```rust\n", "fn main() {}\n", "```\n"]).build());
    let coloured = Tmux::start(&oy3o_command(&server, "hi"));
    coloured.wait_for("exit=0");
    // -e keeps the styles: the block's tokens carry 256-colour foregrounds.
    let screen = coloured.run(&["capture-pane", "-p", "-e", "-t", "app"]);
    assert!(
        screen.contains("fn main() {}") || screen.contains("main"),
        "{screen}"
    );
    assert!(screen.contains("\x1b[38;5;"), "{screen:?}");

    let raw = Tmux::start(&oy3o_command(&server, "hi --raw"));
    raw.wait_for("exit=0");
    let screen = raw.run(&["capture-pane", "-p", "-e", "-t", "app"]);
    assert!(screen.contains("fn main() {}"), "{screen}");
    assert!(!screen.contains("\x1b[38;"), "{screen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_name_in_the_app_resumes_a_stored_chat_with_its_history_in_the_flow() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Hello, Ada!"]).build());
    server.push(openai::answer(&["You are Ada."]).build());
    let home = std::env::temp_dir().join(format!("oy3o-tmux-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    // A first turn from the command line...
    let first = Command::new(env!("CARGO_BIN_EXE_oy3o"))
        .args([
            "--chat",
            "stored",
            "My name is Ada.",
            "--model",
            "openai:gpt-test",
        ])
        .env_clear()
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("OPENAI_BASE_URL", server.base_url())
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // ... then the app resumes that chat.
    let tmux = Tmux::start(&format!(
        "env -i HOME={home} XDG_CONFIG_HOME={home}/config TERM=xterm-256color \
         OPENAI_BASE_URL={base} {bin}",
        home = home.display(),
        base = server.base_url(),
        bin = env!("CARGO_BIN_EXE_oy3o"),
    ));
    tmux.wait_for("enter \"view 0\" to show help");
    tmux.type_line("chat stored");
    let screen = tmux.wait_for("chat stored resumed: 1 earlier turn above");
    assert!(screen.contains("stored> My name is Ada."), "{screen}");
    assert!(screen.contains("stored: Hello, Ada!"), "{screen}");
    tmux.type_line("What is my name?");
    tmux.wait_for("stored: You are Ada.");
    let body = server.requests()[1].json();
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(
        body["messages"],
        serde_json::json!([
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello, Ada!"},
            {"role": "user", "content": "What is my name?"}
        ])
    );
    tmux.type_line("/exit");
    tmux.wait_for("exit=0");
    // `oy3o --chat NAME` on a terminal opens the app in that chat, its history in the flow.
    let reopened = Tmux::start(&format!(
        "env -i HOME={home} XDG_CONFIG_HOME={home}/config TERM=xterm-256color \
         OPENAI_BASE_URL={base} {bin} --chat stored",
        home = home.display(),
        base = server.base_url(),
        bin = env!("CARGO_BIN_EXE_oy3o"),
    ));
    let screen = reopened.wait_for("chat stored resumed: 2 earlier turns above");
    assert!(screen.contains("stored: You are Ada."), "{screen}");
    // The flow names the model the status bar shows.
    assert!(
        screen.contains("Chats: stored(openai:gpt-test)"),
        "{screen}"
    );
    assert!(
        screen.contains("chat stored (openai:gpt-test): each line"),
        "{screen}"
    );
    assert!(!screen.contains("default model"), "{screen}");
    reopened.type_line("/exit");
    reopened.wait_for("exit=0");
    // The app's turn went into the store too.
    let log = Command::new(env!("CARGO_BIN_EXE_oy3o"))
        .args(["log", "--json"])
        .env_clear()
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    let turns: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(turns.len(), 2, "{log}");
    assert_eq!(turns[1]["prompt"], "What is my name?");
    assert_eq!(turns[1]["answer"], "You are Ada.");
    assert_eq!(turns[1]["state"], "done");
    assert_eq!(turns[1]["seq"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_the_app_with_the_terminal_restored() {
    let server = FakeServer::start().await;
    let stty = std::env::temp_dir().join(format!("oy3o-tmux-stty-{}", std::process::id()));
    let _ = std::fs::remove_file(&stty);
    // After the app: the terminal's modes, as the next program would find them.
    let command = format!(
        "{}; echo exit=$?; stty -a > {}",
        oy3o_command(&server, ""),
        stty.display()
    );
    let tmux = Tmux::start(&command);
    tmux.wait_for("enter \"view 0\" to show help");
    let shell = tmux.run(&["list-panes", "-t", "app", "-F", "#{pane_pid}"]);
    let children = Command::new("pgrep")
        .args(["-P", shell.trim()])
        .output()
        .expect("pgrep runs");
    let app = String::from_utf8_lossy(&children.stdout);
    let app = app
        .lines()
        .next()
        .expect("the app runs under the pane's shell");
    let killed = Command::new("kill").args(["-TERM", app]).status().unwrap();
    assert!(killed.success());
    let screen = tmux.wait_for("exit=143");
    assert!(
        !screen.contains("Tasks: none"),
        "the app's screen is gone:\n{screen}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let modes = loop {
        let modes = std::fs::read_to_string(&stty).unwrap_or_default();
        if modes.contains("echo") || Instant::now() > deadline {
            break modes;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let flags: Vec<&str> = modes.split_whitespace().collect();
    for on in ["echo", "icanon", "opost", "icrnl"] {
        assert!(flags.contains(&on), "{on} is off after the app:\n{modes}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_chat_a_model_the_config_refuses_is_said_at_once_and_slash_commands_are_not_sent() {
    let server = FakeServer::start().await;
    let tmux = Tmux::start(&oy3o_command(&server, ""));
    tmux.wait_for("enter \"view 0\" to show help");
    tmux.type_line("chat a");
    tmux.wait_for("chat a (openai:gpt-test): each line is a prompt");
    tmux.type_line("/model nosuch:x");
    let refused = tmux.wait_for("/model nosuch:x:");
    assert!(refused.contains("a keeps"), "{refused}");
    tmux.type_line("/view 0");
    tmux.wait_for("start or resume a chat");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!tmux.screen().contains("a> /view 0"), "{}", tmux.screen());
    assert!(
        server.requests().is_empty(),
        "nothing was sent to the model"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_help_table_lines_up_and_a_long_answer_wraps_between_words() {
    let server = FakeServer::start().await;
    const LONG: &str = "The quick brown fox jumps over the lazy dog while the cautious cat \
                        watches from the warm windowsill nearby, counting birds.";
    server.respond(|_| openai::answer(&[LONG]).build());
    let tmux = Tmux::start(&oy3o_command(&server, ""));
    tmux.wait_for("enter \"view 0\" to show help");
    tmux.type_line("view 0");
    let view = tmux.wait_for("message 0");
    let columns: Vec<usize> = view
        .lines()
        .filter(|l| l.contains("description") || l.contains('┼') || l.contains("Ctrl+"))
        .filter_map(|l| l.chars().skip(1).position(|c| c == '│' || c == '┼'))
        .collect();
    assert!(columns.len() > 10, "{view}");
    assert!(columns.iter().all(|&c| c == columns[0]), "{view}");
    tmux.run(&["send-keys", "-t", "app", "Escape"]);

    tmux.run(&["resize-window", "-t", "app", "-x", "50", "-y", "30"]);
    tmux.type_line("chat a");
    tmux.type_line("tell me");
    let screen = tmux.wait_for("birds.");
    for word in LONG.split_whitespace() {
        assert!(screen.contains(word), "{word:?} is cut:\n{screen}");
    }
    let answer_rows: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.contains("a: The quick"))
        .take_while(|l| !l.starts_with("Tasks:"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(answer_rows.len() >= 3, "{screen}");
    assert!(
        answer_rows[1..].iter().all(|l| !l.starts_with(' ')),
        "{screen}"
    );
    tmux.type_line("/exit");
    tmux.wait_for("exit=0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_with_tools_draws_each_tool_call_and_result_above_the_answer() {
    oy3o_testkit::mcp::require_python("mcp_server_time");
    let config = std::env::temp_dir().join(format!("oy3o-tmux-tools-{}.toml", std::process::id()));
    std::fs::write(&config, oy3o_testkit::mcp::TIME_SERVER_TOML).unwrap();
    let server = FakeServer::start().await;
    // The model calls the time tool, then answers once the tool's result is in the request.
    server.respond(|request| {
        let messages = request.json()["messages"].clone();
        let has_result = messages
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
        if has_result {
            openai::answer(&["It is ", "noon in UTC."]).build()
        } else {
            openai::tool_calls(&[("call_t", "time__get_current_time", r#"{"timezone":"UTC"}"#)])
                .build()
        }
    });
    let tmux = Tmux::start(&oy3o_command(
        &server,
        &format!("--config {}", config.display()),
    ));
    tmux.wait_for("enter \"view 0\" to show help");
    tmux.type_line("chat a");
    tmux.wait_for("chat a (openai:gpt-test): each line is a prompt");
    tmux.type_line("/tools time");
    tmux.wait_for("a uses the tools time");
    tmux.type_line("What time is it?");
    let screen = tmux.wait_for("It is noon in UTC.");
    assert!(
        screen.contains(r#"→ time__get_current_time {"timezone":"UTC"}"#),
        "{screen}"
    );
    assert!(screen.contains("← time__get_current_time ("), "{screen}");
    // The steps are drawn above the answer.
    let call = screen.find("→ time__get_current_time").unwrap();
    let result = screen.find("← time__get_current_time").unwrap();
    let answer = screen.find("It is noon in UTC.").unwrap();
    assert!(call < result && result < answer, "{screen}");

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one request per model step");
    assert_eq!(
        requests[0].json()["tools"][0]["function"]["name"],
        "time__get_current_time"
    );
    let messages = requests[1].json()["messages"].clone();
    let tool = messages
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap_or_else(|| panic!("no tool result in the second request: {messages}"))
        .clone();
    assert_eq!(tool["tool_call_id"], "call_t");
    // What the real server answered: the time in UTC.
    let content = tool["content"].as_str().unwrap_or_default();
    assert!(content.contains("UTC"), "{content}");
    tmux.type_line("/exit");
    tmux.wait_for("exit=0");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_attaches_an_image_to_the_next_prompt_in_a_real_terminal() {
    use oy3o_testkit::image;
    let server = FakeServer::start().await;
    server.respond(image::openai_echo);
    let dir = std::env::temp_dir().join(format!("oy3o-tmux-attach-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dot = dir.join("dot.png");
    std::fs::write(&dot, image::png1()).unwrap();
    let tmux = Tmux::start(&oy3o_command(&server, ""));
    tmux.wait_for("enter \"view 0\" to show help");
    tmux.type_line("chat a");
    tmux.wait_for("chat a (openai:gpt-test): each line is a prompt");

    tmux.type_line(&format!("/attach {}", dir.join("nosuch.png").display()));
    tmux.wait_for("there is no such file; nothing attached");
    tmux.type_line(&format!("/attach {}", dot.display()));
    tmux.wait_for("(image/png, 69 bytes); sent with the next prompt in a");
    assert!(server.requests().is_empty(), "attaching sends nothing");

    tmux.type_line("What is this?");
    tmux.wait_for("a: image/png 69 bytes");
    let body = server.requests()[0].json();
    assert_eq!(
        body["messages"][0]["content"][1]["image_url"]["url"],
        format!("data:image/png;base64,{}", image::PNG1)
    );
    // The attachment went with that prompt only; the next one carries it as history.
    tmux.type_line("And this?");
    tmux.wait_for("And this?");
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.requests().len() < 2 {
        assert!(Instant::now() < deadline, "the second prompt was not sent");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = server.requests()[1].json();
    let last = &body["messages"].as_array().unwrap().last().unwrap()["content"];
    assert_eq!(last, "And this?", "{body}");
    tmux.type_line("/exit");
    tmux.wait_for("exit=0");
}
