// Temporary: try prompts greedily.
use oy3o_llama::*;
async fn ask(rt: &Runtime, path: &std::path::Path, m: Vec<ChatMessage>) -> (String, Stats) {
    let mut rx = rt.generate(path, m, GenerateOptions { max_tokens: Some(60), ..Default::default() });
    let mut s = String::new();
    while let Some(p) = rx.recv().await { match p.unwrap() { Piece::Text(t) => s.push_str(&t), Piece::Done(st) => return (s, st) } }
    panic!()
}
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let path = std::path::PathBuf::from("/work/target-llama/oy3o-test-models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let firsts = [
        "My name is Alice.",
        "Hi! My name is Alice.",
        "Remember this word: banana.",
        "My favourite colour is blue.",
        "I have a dog called Rex.",
        "I live in Paris.",
    ];
    let seconds = ["What is my name?", "What is my name?", "What word did I ask you to remember?", "What is my favourite colour?", "What is my dog called?", "Where do I live?"];
    for (a, b) in firsts.iter().zip(seconds) {
        let mut chat = vec![ChatMessage::user(*a)];
        let (t1, s1) = ask(&rt, &path, chat.clone()).await;
        chat.push(ChatMessage::assistant(t1.clone()));
        chat.push(ChatMessage::user(b));
        let (t2, s2) = ask(&rt, &path, chat).await;
        println!("== {a} / {b}\n  1: {t1:?}\n  2: {t2:?}\n  cached {} of {}+{}", s2.cached_tokens, s1.prompt_tokens, s1.completion_tokens);
    }
    for sys in ["Your name is Zorblax.", "You are Zorblax, a robot.", "Always answer in French."] {
        for q in ["What is your name?", "Who are you?", "What is the capital of England?"] {
            let (t, _) = ask(&rt, &path, vec![ChatMessage::system(sys), ChatMessage::user(q)]).await;
            println!("## {sys} / {q}: {t:?}");
        }
    }
}
