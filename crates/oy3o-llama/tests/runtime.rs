//! Inference on the real SmolLM2-135M model: prompt, answers, KV-cache reuse, steering,
//! cancellation, fairness and bad inputs. Tests run one at a time (2 cores; timings matter).

mod common;

use std::time::{Duration, Instant};

use oy3o_llama::{
    ChatMessage, Finish, GenerateOptions, LlamaError, Piece, Runtime, RuntimeOptions, Stats,
};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

fn runtime() -> Runtime {
    Runtime::new(RuntimeOptions {
        context_tokens: 4096,
        ..RuntimeOptions::default()
    })
    .unwrap()
}

/// Collects a whole answer.
async fn answer(
    rt: &Runtime,
    messages: Vec<ChatMessage>,
    options: GenerateOptions,
) -> Result<(String, Stats), LlamaError> {
    let mut pieces = rt.generate(common::smollm2(), messages, options);
    let mut text = String::new();
    while let Some(piece) = pieces.recv().await {
        match piece? {
            Piece::Text(t) => text.push_str(&t),
            Piece::Done(stats) => return Ok((text, stats)),
            Piece::ToolCall(call) => panic!("no tools were offered, yet {call:?}"),
        }
    }
    panic!("the stream ended without Done; text so far: {text:?}");
}

fn greedy(max_tokens: u32) -> GenerateOptions {
    GenerateOptions {
        max_tokens: Some(max_tokens),
        ..GenerateOptions::default()
    }
}

/// Greedy decoding with the repeat penalty turned off: the way small models fall into loops.
fn plain_greedy(max_tokens: u32) -> GenerateOptions {
    GenerateOptions {
        repeat_penalty: Some(1.0),
        ..greedy(max_tokens)
    }
}

/// The ChatML prompt SmolLM2's template produces for one question (with its default system
/// prompt), and its token ids as llama.cpp's tokenizer gives them for that exact string.
const ONE_PLUS_ONE_PROMPT: &str = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n";
const ONE_PLUS_ONE_IDS: [i32; 37] = [
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
    19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 216, 33, 27, 33, 47, 2, 198, 1, 520, 9531, 198,
];

#[tokio::test]
async fn the_prompt_for_one_question_is_smollm2_chatml_with_llama_cpp_token_ids() {
    let _serial = SERIAL.lock().await;
    let rendered = runtime()
        .render(common::smollm2(), vec![ChatMessage::user("What is 1+1?")])
        .await
        .unwrap();
    assert_eq!(rendered.text, ONE_PLUS_ONE_PROMPT);
    assert_eq!(rendered.tokens, ONE_PLUS_ONE_IDS);
}

#[tokio::test]
async fn the_model_answers_what_is_one_plus_one_with_two() {
    let _serial = SERIAL.lock().await;
    let (text, stats) = answer(
        &runtime(),
        vec![ChatMessage::user("What is 1+1?")],
        greedy(64),
    )
    .await
    .unwrap();
    eprintln!("answer: {text:?} {stats:?}");
    assert!(text.contains('2'), "{text:?}");
    assert_eq!(stats.prompt_tokens, 37);
    assert_eq!(stats.finish, Finish::Stop);
    assert!(stats.completion_tokens > 0);
}

/// Stop sequences on the real model. Greedy answers repeat, so the answer with a stop sequence
/// taken from the middle of the plain answer is the plain answer cut before that sequence's
/// first place, ended with `Stop`; no streamed piece carries any of the stop text.
#[tokio::test]
async fn a_stop_sequence_ends_the_answer_before_it_and_is_never_streamed() {
    let _serial = SERIAL.lock().await;
    let question = || vec![ChatMessage::user("Why is the sky blue?")];
    // Each answer on a fresh runtime: both read the whole prompt the same way.
    let (full, plain) = answer(&runtime(), question(), greedy(48)).await.unwrap();
    eprintln!("plain answer: {full:?} {plain:?}");
    // Six characters from the middle: several tokens of the answer, not its first ones.
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() > 40, "{full:?}");
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 6].iter().collect();
    let expected = &full[..full.find(&stop).unwrap()];

    let options = GenerateOptions {
        stop: vec!["never in this answer".into(), stop.clone()],
        ..greedy(48)
    };
    let rt = runtime();
    let mut pieces = rt.generate(common::smollm2(), question(), options);
    let (mut streamed, mut text, mut stats) = (Vec::new(), String::new(), None);
    while let Some(piece) = pieces.recv().await {
        match piece.unwrap() {
            Piece::Text(t) => {
                text.push_str(&t);
                streamed.push(t);
            }
            Piece::Done(s) => stats = Some(s),
            Piece::ToolCall(call) => panic!("no tools were offered, yet {call:?}"),
        }
    }
    let stats = stats.expect("the stream ends with Done");
    eprintln!("with stop {stop:?}: {text:?} {stats:?}");
    assert_eq!(text, expected);
    assert!(!text.contains(&stop), "{text:?}");
    assert_eq!(stats.finish, Finish::Stop);
    assert!(
        stats.completion_tokens < plain.completion_tokens,
        "{stats:?}"
    );
    // Nothing of the stop text went out: the streamed text is exactly the part before it.
    assert_eq!(streamed.concat().len(), expected.len());
}

#[tokio::test]
async fn a_second_turn_keeps_the_history_and_reuses_the_kv_cache() {
    let _serial = SERIAL.lock().await;
    let rt = runtime();
    // Without the repeat penalty: with it SmolLM2 answers this one turn with "Ladle, I am a
    // LADLE" and then forgets the name, although over twelve such two-turn conversations it
    // remembered as many with the penalty as without (8).
    let mut chat = vec![ChatMessage::user("I have a dog called Rex.")];
    let (first, s1) = answer(&rt, chat.clone(), plain_greedy(64)).await.unwrap();
    eprintln!("turn 1: {first:?} {s1:?}");
    assert_eq!(s1.cached_tokens, 0);

    chat.push(ChatMessage::assistant(first));
    chat.push(ChatMessage::user("What is my dog called?"));
    let (second, s2) = answer(&rt, chat, plain_greedy(32)).await.unwrap();
    eprintln!("turn 2: {second:?} {s2:?}");
    // The name is only in the first turn.
    assert!(second.contains("Rex"), "{second:?}");
    // Everything the first turn read and wrote is reused; only its last token or two can
    // differ when the answer is tokenized again.
    let first_turn = s1.prompt_tokens + s1.completion_tokens;
    assert!(s2.cached_tokens + 2 >= first_turn, "{s2:?} vs {first_turn}");
    assert!(s2.cached_tokens <= first_turn);
    assert!(s2.prompt_tokens > s2.cached_tokens);
}

#[tokio::test]
async fn a_system_message_steers_the_answer() {
    let _serial = SERIAL.lock().await;
    let messages = vec![
        ChatMessage::system("Your name is Zorblax."),
        ChatMessage::user("What is your name?"),
    ];
    let (text, _) = answer(&runtime(), messages, greedy(48)).await.unwrap();
    eprintln!("answer: {text:?}");
    assert!(text.contains("Zorblax"), "{text:?}");
}

#[tokio::test]
async fn dropping_the_receiver_stops_generation_and_frees_the_model() {
    let _serial = SERIAL.lock().await;
    let rt = runtime();
    let short = || vec![ChatMessage::user("What is 1+1?")];
    // Load the model, then time a short request as the yardstick (the machine may be busy).
    answer(&rt, short(), greedy(8)).await.unwrap();
    let started = Instant::now();
    answer(&rt, short(), greedy(8)).await.unwrap();
    let yardstick = started.elapsed();

    // 4000 tokens would keep the model busy for a minute or more if the drop were ignored.
    let long = vec![ChatMessage::user("Write a very long story about a dragon.")];
    let mut pieces = rt.generate(common::smollm2(), long, greedy(4000));
    let mut received = 0;
    while let Some(piece) = pieces.recv().await {
        if let Piece::Text(_) = piece.unwrap() {
            received += 1;
            if received == 3 {
                break;
            }
        }
    }
    drop(pieces);

    let started = Instant::now();
    let (_, stats) = answer(&rt, short(), greedy(8)).await.unwrap();
    let waited = started.elapsed();
    eprintln!("yardstick {yardstick:?}, after the drop {waited:?}: {stats:?}");
    assert!(
        waited < (yardstick * 10).max(Duration::from_secs(2)),
        "{waited:?} vs {yardstick:?}"
    );
}

#[tokio::test]
async fn stop_ends_the_answer_being_read_unloads_the_model_and_a_later_request_loads_it_again() {
    let _serial = SERIAL.lock().await;
    let rt = runtime();
    let long = vec![ChatMessage::user("Write a very long story about a dragon.")];
    let mut pieces = rt.generate(common::smollm2(), long, greedy(4000));
    match pieces.recv().await {
        Some(Ok(Piece::Text(_))) => {}
        other => panic!("the answer did not start: {other:?}"),
    }
    assert!(rt.is_loaded(common::smollm2()));
    // Still read, yet ended: the receiver sees the stream close without `Done`.
    let stopping = rt.clone();
    let stopped = tokio::task::spawn_blocking(move || stopping.stop(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(stopped, "the model thread ended");
    assert!(!rt.is_loaded(common::smollm2()));
    let mut pieces_after = 0;
    while let Some(piece) = pieces.recv().await {
        assert!(matches!(piece, Ok(Piece::Text(_))), "{piece:?}");
        pieces_after += 1;
    }
    assert!(pieces_after < 100, "{pieces_after} pieces after the stop");

    let (text, _) = answer(&rt, vec![ChatMessage::user("What is 1+1?")], greedy(16))
        .await
        .unwrap();
    assert!(text.contains('2'), "{text:?}");
}

#[tokio::test]
async fn two_concurrent_requests_both_complete_in_arrival_order() {
    let _serial = SERIAL.lock().await;
    let rt = runtime();
    let a = rt.generate(
        common::smollm2(),
        vec![ChatMessage::user("What is 1+1?")],
        greedy(24),
    );
    let b = rt.generate(
        common::smollm2(),
        vec![ChatMessage::user("What is 2+2?")],
        greedy(24),
    );
    let collect = |mut rx: tokio::sync::mpsc::Receiver<Result<Piece, LlamaError>>| async move {
        let mut text = String::new();
        while let Some(piece) = rx.recv().await {
            match piece.unwrap() {
                Piece::Text(t) => text.push_str(&t),
                Piece::Done(_) => return (text, Instant::now()),
                Piece::ToolCall(call) => panic!("no tools were offered, yet {call:?}"),
            }
        }
        panic!("no Done");
    };
    let ((ta, done_a), (tb, done_b)) = tokio::join!(collect(a), collect(b));
    eprintln!("a: {ta:?}\nb: {tb:?}");
    assert!(!ta.is_empty() && !tb.is_empty());
    assert!(done_a <= done_b, "the first request should finish first");
}

#[tokio::test]
async fn max_tokens_ends_the_answer_with_length() {
    let _serial = SERIAL.lock().await;
    let (_, stats) = answer(
        &runtime(),
        vec![ChatMessage::user("Tell me a story.")],
        greedy(5),
    )
    .await
    .unwrap();
    assert_eq!((stats.completion_tokens, stats.finish), (5, Finish::Length));
}

#[tokio::test]
async fn sampling_with_a_seed_is_repeatable() {
    let _serial = SERIAL.lock().await;
    let rt = runtime();
    let options = GenerateOptions {
        temperature: Some(0.8),
        top_p: Some(0.95),
        seed: Some(42),
        max_tokens: Some(24),
        ..GenerateOptions::default()
    };
    let question = vec![ChatMessage::user("Name a colour.")];
    let (a, _) = answer(&rt, question.clone(), options.clone())
        .await
        .unwrap();
    let (b, sb) = answer(&rt, question, options).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(sb.cached_tokens, sb.prompt_tokens - 1);
}

#[tokio::test]
async fn bad_model_files_are_clear_errors_not_panics() {
    let _serial = SERIAL.lock().await;
    let rt = runtime();
    let dir = common::scratch_dir("bad-models");
    let text = dir.join("notes.gguf");
    std::fs::write(&text, "just some text").unwrap();
    let truncated = dir.join("truncated.gguf");
    let bytes = std::fs::read(common::smollm2()).unwrap();
    std::fs::write(&truncated, &bytes[..2_000_000]).unwrap();

    let first_error = |path: std::path::PathBuf| {
        let rt = rt.clone();
        async move {
            let mut rx = rt.generate(path, vec![ChatMessage::user("Hi")], greedy(4));
            rx.recv().await.expect("one item").expect_err("an error")
        }
    };
    let missing = first_error(dir.join("missing.gguf")).await;
    assert!(
        matches!(missing, LlamaError::ModelNotFound { .. }),
        "{missing}"
    );
    let not_gguf = first_error(text).await;
    assert!(matches!(not_gguf, LlamaError::NotGguf { .. }), "{not_gguf}");
    let cut = first_error(truncated).await;
    eprintln!("{cut}");
    assert!(matches!(cut, LlamaError::Load { .. }), "{cut}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_conversation_longer_than_the_context_is_a_clear_error() {
    let _serial = SERIAL.lock().await;
    let rt = Runtime::new(RuntimeOptions {
        context_tokens: 64,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let long = "word ".repeat(1000);
    let err = answer(&rt, vec![ChatMessage::user(long)], greedy(4))
        .await
        .unwrap_err();
    assert!(matches!(err, LlamaError::PromptTooLong { .. }), "{err}");
}

/// A prompt SmolLM2-135M answers greedily, without the repeat penalty, with a loop that runs to
/// the cap when nothing stops it.
const LOOPING_PROMPT: &str = "Repeat after me forever: la la la";

#[tokio::test]
async fn an_answer_whose_tail_repeats_itself_ends_with_repetition() {
    let _serial = SERIAL.lock().await;
    let rt = runtime();
    let (text, stats) = answer(
        &rt,
        vec![ChatMessage::user(LOOPING_PROMPT)],
        plain_greedy(1000),
    )
    .await
    .unwrap();
    eprintln!("answer: {text:?} {stats:?}");
    let Finish::Repetition(found) = stats.finish else {
        panic!("no loop found: {stats:?} {text:?}");
    };
    assert!(found.repeats >= 3, "{found:?}");
    // It stops soon after the loop starts, far from the cap.
    assert!(stats.completion_tokens < 300, "{stats:?}");
}

/// A question SmolLM2-135M answers greedily, without a repeat penalty, by looping on a French
/// phrase ("la femme au martyre, la femme au martyre, …") instead of naming Paris.
const FRANCE: &str = "What is the capital of France?";

#[tokio::test]
async fn the_default_repeat_penalty_keeps_a_greedy_answer_out_of_its_loop() {
    let _serial = SERIAL.lock().await;
    let rt = runtime();
    let question = vec![ChatMessage::user(FRANCE)];
    let (looped, stats) = answer(&rt, question.clone(), plain_greedy(256))
        .await
        .unwrap();
    eprintln!("without: {looped:?} {stats:?}");
    assert!(
        matches!(stats.finish, Finish::Repetition(_)),
        "{stats:?} {looped:?}"
    );
    let (text, stats) = answer(&rt, question, greedy(256)).await.unwrap();
    eprintln!("with: {text:?} {stats:?}");
    assert_eq!(stats.finish, Finish::Stop, "{text:?}");
    assert!(text.contains("Paris"), "{text:?}");
}

#[tokio::test]
async fn after_soft_max_tokens_the_answer_ends_where_its_sentence_ends() {
    let _serial = SERIAL.lock().await;
    let options = GenerateOptions {
        soft_max_tokens: Some(24),
        ..greedy(400)
    };
    let question = vec![ChatMessage::user(
        "Tell me a very long story about a dragon and a knight.",
    )];
    let (text, stats) = answer(&runtime(), question, options).await.unwrap();
    eprintln!("answer: {text:?} {stats:?}");
    assert_eq!(stats.finish, Finish::Length, "{text:?}");
    assert!(
        (24..200).contains(&stats.completion_tokens),
        "{stats:?} {text:?}"
    );
    let end = text.trim_end().trim_end_matches(['"', '\'', ')', '*']);
    assert!(end.ends_with(['.', '!', '?']), "{text:?}");
}

#[tokio::test]
async fn the_default_models_chat_template_renders_the_prompt_its_catalog_entry_expects() {
    let _serial = SERIAL.lock().await;
    runtime()
        .check_template(common::smollm2(), common::smollm2_entry())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_file_whose_template_renders_another_prompt_fails_the_check() {
    let _serial = SERIAL.lock().await;
    let qwen = oy3o_llama::find_model("qwen2.5-0.5b").unwrap();
    match runtime().check_template(common::smollm2(), qwen).await {
        Err(LlamaError::TemplateMismatch { model, got, .. }) => {
            assert_eq!(model, "qwen2.5-0.5b");
            assert!(got.contains("SmolLM"), "{got:?}");
        }
        other => panic!("expected a template mismatch, got {other:?}"),
    }
}
