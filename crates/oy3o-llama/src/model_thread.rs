//! One OS thread per loaded model: it loads the model on its first job, then serves jobs one at a
//! time in arrival order, keeping the tokens of the last conversation in the KV cache so the next
//! turn reads only what is new.

use std::io::Read;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use tokio::sync::{mpsc, oneshot};

use crate::backend;
use crate::chat::{
    ChatRequest, DEFAULT_MIN_P, DEFAULT_REPEAT_PENALTY, DEFAULT_TOP_K, DEFAULT_TOP_P, Finish,
    GenerateOptions, Piece, REPEAT_WINDOW, RenderedPrompt, Stats,
};
use crate::error::LlamaError;
use crate::grammar::Grammar;
use crate::repetition::RepetitionGuard;
use crate::stop::StopMatcher;
use crate::template::{CHATML_TEMPLATE, ChatTemplate};
use crate::text::{Utf8Pieces, starts_new_sentence};
use crate::tool_calls::{Found, ToolCallParser};

/// Where generated pieces go.
pub(crate) type PieceSender = mpsc::Sender<Result<Piece, LlamaError>>;

/// Work for a model thread.
pub(crate) enum Job {
    /// Answer a conversation, streaming pieces.
    Generate {
        /// Boxed: a job travels through channels and `Result`s, and a request is large.
        request: Box<ChatRequest>,
        options: GenerateOptions,
        reply: PieceSender,
    },
    /// Render and tokenize a conversation without generating.
    Render {
        request: Box<ChatRequest>,
        reply: oneshot::Sender<Result<RenderedPrompt, LlamaError>>,
    },
}

impl Job {
    /// Answers the job with an error. Never blocks: a fresh piece channel always has room.
    pub(crate) fn fail(self, error: LlamaError) {
        match self {
            Job::Generate { reply, .. } => {
                let _ = reply.try_send(Err(error));
            }
            Job::Render { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }

    /// The caller has gone away, so the job need not run.
    fn is_abandoned(&self) -> bool {
        match self {
            Job::Generate { reply, .. } => reply.is_closed(),
            Job::Render { reply, .. } => reply.is_closed(),
        }
    }
}

/// Settings a model thread needs, fixed for its life.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) threads: i32,
    pub(crate) context_tokens: u32,
}

/// The handle of a running model thread. Dropping it lets the thread finish its queued jobs and
/// exit, which frees the model; [`ModelThread::stop`] ends it sooner.
pub(crate) struct ModelThread {
    jobs: std_mpsc::Sender<Job>,
    handle: JoinHandle<()>,
    /// Set by [`ModelThread::stop`]: the job in progress ends before its next token and the
    /// queued ones are dropped.
    stopping: Arc<AtomicBool>,
}

impl ModelThread {
    /// Starts a thread for `path`. `evicted` is the thread of a model this one replaces: the new
    /// thread waits for it to exit before loading, so memory never holds more models than allowed.
    pub(crate) fn spawn(
        path: PathBuf,
        settings: Settings,
        evicted: Option<ModelThread>,
    ) -> Result<Self, LlamaError> {
        let (jobs, rx) = std_mpsc::channel();
        let evicted = evicted.map(ModelThread::into_handle);
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let handle = std::thread::Builder::new()
            .name("oy3o-llama".into())
            .spawn(move || {
                if let Some(h) = evicted {
                    let _ = h.join();
                }
                run(&path, settings, &rx, &stop);
            })
            .map_err(|e| LlamaError::Thread(e.to_string()))?;
        Ok(Self {
            jobs,
            handle,
            stopping,
        })
    }

    /// Queues a job; gives it back when the thread is gone.
    pub(crate) fn send(&self, job: Job) -> Result<(), Job> {
        self.jobs.send(job).map_err(|e| e.0)
    }

    /// Closes the queue and returns the handle to wait on.
    fn into_handle(self) -> JoinHandle<()> {
        drop(self.jobs);
        self.handle
    }

    /// Ends the thread: the job in progress stops before its next token (or prompt chunk), the
    /// queued ones are dropped unanswered (their receivers see the stream end), and the model
    /// is freed. Waits until `deadline` at most; true when the thread has ended.
    pub(crate) fn stop(self, deadline: Instant) -> bool {
        self.stopping.store(true, Ordering::Relaxed);
        let handle = self.into_handle();
        while !handle.is_finished() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(5)));
        }
        handle.join().is_ok()
    }
}

/// The thread body: load on the first job (a failed load fails that job; the next one tries
/// again), then serve every job until the queue closes.
fn run(path: &Path, settings: Settings, jobs: &std_mpsc::Receiver<Job>, stopping: &AtomicBool) {
    while let Ok(job) = jobs.recv() {
        if job.is_abandoned() || stopping.load(Ordering::Relaxed) {
            continue;
        }
        let started = Instant::now();
        let model = match load(path) {
            Ok(model) => model,
            Err(e) => {
                job.fail(e);
                continue;
            }
        };
        let mut session = match Session::new(&model, path, settings, stopping) {
            Ok(s) => s,
            Err(e) => {
                job.fail(e);
                continue;
            }
        };
        session.serve(job, millis(started));
        while let Ok(job) = jobs.recv() {
            if !stopping.load(Ordering::Relaxed) {
                session.serve(job, 0);
            }
        }
        return;
    }
}

/// Checks the file before handing it to llama.cpp, whose own checks end in bare null pointers.
fn load(path: &Path) -> Result<LlamaModel, LlamaError> {
    let not_gguf = |reason: String| LlamaError::NotGguf {
        path: path.to_path_buf(),
        reason,
    };
    let mut magic = [0u8; 4];
    match std::fs::File::open(path) {
        Ok(mut f) => f
            .read_exact(&mut magic)
            .map_err(|e| not_gguf(format!("cannot read it: {e}")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LlamaError::ModelNotFound {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(not_gguf(format!("cannot open it: {e}"))),
    }
    if &magic != b"GGUF" {
        return Err(not_gguf(
            "it does not start with the GGUF signature; pass a .gguf model file".into(),
        ));
    }
    let backend = backend::backend()?;
    backend::clear_errors();
    LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).map_err(|e| {
        let logged = backend::take_errors();
        LlamaError::Load {
            path: path.to_path_buf(),
            reason: if logged.is_empty() {
                e.to_string()
            } else {
                logged
            },
        }
    })
}

/// A loaded model with its context and the tokens currently held in the KV cache.
struct Session<'m> {
    model: &'m LlamaModel,
    /// The thread is being stopped: generation ends as if the caller had gone.
    stopping: &'m AtomicBool,
    ctx: LlamaContext<'m>,
    /// The model file, for messages.
    path: PathBuf,
    template: ChatTemplate,
    /// The last template a request brought instead of the file's, compiled.
    custom: Option<(String, ChatTemplate)>,
    bos_text: String,
    eos_text: String,
    /// Tokens whose keys and values are in the cache, from position 0.
    cached: Vec<LlamaToken>,
    batch: LlamaBatch<'static>,
    batch_size: usize,
}

impl<'m> Session<'m> {
    fn new(
        model: &'m LlamaModel,
        path: &Path,
        settings: Settings,
        stopping: &'m AtomicBool,
    ) -> Result<Self, LlamaError> {
        let backend = backend::backend()?;
        let n_ctx = settings
            .context_tokens
            .min(model.n_ctx_train().max(1))
            .max(16);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_threads(settings.threads)
            .with_n_threads_batch(settings.threads);
        backend::clear_errors();
        let ctx = model.new_context(backend, params).map_err(|e| {
            let logged = backend::take_errors();
            LlamaError::Backend(format!(
                "cannot create a context of {n_ctx} tokens: {}; try a smaller context",
                if logged.is_empty() {
                    e.to_string()
                } else {
                    logged
                }
            ))
        })?;
        let source = model
            .chat_template(None)
            .ok()
            .and_then(|t| t.to_string().ok())
            .unwrap_or_else(|| CHATML_TEMPLATE.to_owned());
        let vocab = model.vocab();
        let bos_text = special_text(model, vocab.bos());
        let eos_text = special_text(model, vocab.eos());
        let batch_size = usize::try_from(ctx.n_batch()).unwrap_or(512).max(1);
        Ok(Self {
            model,
            stopping,
            path: path.to_path_buf(),
            template: ChatTemplate::new(&source)?,
            custom: None,
            bos_text,
            eos_text,
            cached: Vec::new(),
            batch: LlamaBatch::new(batch_size, 1),
            batch_size,
            ctx,
        })
    }

    /// Runs one job; a panic inside llama-cpp-2 fails the job instead of killing the thread.
    fn serve(&mut self, job: Job, load_ms: u64) {
        if job.is_abandoned() {
            return;
        }
        match job {
            Job::Render { request, reply } => {
                let _ = reply.send(self.render(&request));
            }
            Job::Generate {
                request,
                options,
                reply,
            } => {
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    self.generate(&request, options, &reply, load_ms)
                }));
                let outcome = match result {
                    Ok(Ok(Some(stats))) => Ok(Piece::Done(stats)),
                    Ok(Ok(None)) => return, // cancelled: nobody is listening
                    Ok(Err(e)) => Err(e),
                    Err(_) => {
                        self.forget_cache();
                        Err(LlamaError::Decode(
                            "internal panic during generation".into(),
                        ))
                    }
                };
                let _ = reply.blocking_send(outcome);
            }
        }
    }

    fn render(&mut self, request: &ChatRequest) -> Result<RenderedPrompt, LlamaError> {
        let text = self.render_text(request)?;
        let tokens = self.tokenize(&text).into_iter().map(|t| t.0).collect();
        Ok(RenderedPrompt { text, tokens })
    }

    /// The prompt of `request`, with its own template if it brings one, else the file's. Tools
    /// offered to a template that cannot show them are an error, never silently dropped.
    fn render_text(&mut self, request: &ChatRequest) -> Result<String, LlamaError> {
        let template = match &request.chat_template {
            None => &self.template,
            Some(source) => {
                if self.custom.as_ref().is_none_or(|(s, _)| s != source) {
                    self.custom = Some((source.clone(), ChatTemplate::new(source)?));
                }
                &self
                    .custom
                    .as_ref()
                    .ok_or_else(|| LlamaError::Template("no template".into()))?
                    .1
            }
        };
        if !request.tools.is_empty() && !template.takes_tools() {
            return Err(LlamaError::NoTools {
                model: self.path.display().to_string(),
            });
        }
        template.render_with_tools(
            &request.messages,
            &request.tools,
            &self.bos_text,
            &self.eos_text,
        )
    }

    /// Tokenizes a rendered prompt: special tokens written in it are parsed, and BOS is added
    /// only when the model wants one and the template did not already write it.
    fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        let mut tokens = Vec::new();
        let bos = vocab.bos();
        if vocab.should_add_bos()
            && is_valid(self.model, bos)
            && (self.bos_text.is_empty() || !text.starts_with(&self.bos_text))
        {
            tokens.push(bos);
        }
        tokens.extend(vocab.tokenize(text.as_bytes(), false, true));
        tokens
    }

    /// Answers one conversation. `Ok(None)` means the caller went away and nothing more is sent.
    fn generate(
        &mut self,
        request: &ChatRequest,
        options: GenerateOptions,
        reply: &PieceSender,
        load_ms: u64,
    ) -> Result<Option<Stats>, LlamaError> {
        let rendered = self.render_text(request)?;
        // A grammar is checked before the prompt is read.
        let mut grammar = request
            .grammar
            .as_ref()
            .map(|g| grammar_sampler(self.model, g))
            .transpose()?;
        let mut sampler = sampler(&options, self.model.n_vocab(), grammar.is_some());
        let tokens = self.tokenize(&rendered);
        let n_ctx = self.ctx.n_ctx() as usize;
        if tokens.is_empty() {
            return Err(LlamaError::Template(
                "the conversation rendered to no tokens".into(),
            ));
        }
        if tokens.len() >= n_ctx {
            return Err(LlamaError::PromptTooLong {
                prompt_tokens: tokens.len(),
                context_tokens: self.ctx.n_ctx(),
            });
        }

        // Reuse the longest prefix already in the cache; at least one token must be read so
        // there are logits to sample from.
        let prompt_started = Instant::now();
        let mut keep = common_prefix(&self.cached, &tokens).min(tokens.len() - 1);
        if keep < self.cached.len() {
            if self
                .ctx
                .kv_cache_seq_rm(0, Some(keep as u32), None)
                .is_err()
            {
                self.ctx.clear_kv_cache();
                keep = 0;
            }
            self.cached.truncate(keep);
        }
        for chunk in tokens[keep..].chunks(self.batch_size) {
            if self.abandoned(reply) {
                return Ok(None);
            }
            let is_last_chunk = self.cached.len() + chunk.len() == tokens.len();
            self.decode(chunk, is_last_chunk)?;
        }
        let prompt_ms = millis(prompt_started);

        let generation_started = Instant::now();
        // With tools offered, calls are taken out of the text as they complete.
        let mut calls = (!request.tools.is_empty()).then(ToolCallParser::default);
        // Stop sequences are cut out of the text before tool calls are looked for in it.
        let mut stops = StopMatcher::new(&options.stop);
        let mut guard = RepetitionGuard::default();
        let room = n_ctx - tokens.len();
        let max_new = options.max_tokens.map_or(room, |m| (m as usize).min(room));
        let soft_max = options.soft_max_tokens.map_or(usize::MAX, |m| m as usize);
        // The answer's bytes, to see where its sentences end.
        let mut answer: Vec<u8> = Vec::new();
        let vocab = self.model.vocab();
        let mut text = Utf8Pieces::default();
        let mut completion = 0usize;
        let mut logits_at = self.batch.n_tokens() - 1;
        let finish = loop {
            if completion >= max_new {
                break Finish::Length;
            }
            let token = match grammar.as_mut() {
                None => sampler.sample(&self.ctx, logits_at),
                Some(grammar) => match pick(&self.ctx, &mut sampler, grammar, logits_at) {
                    Some(token) => token,
                    None => break Finish::Stop,
                },
            };
            if vocab.is_eog(token) {
                break Finish::Stop;
            }
            let bytes = piece_bytes(self.model, token);
            if completion >= soft_max && starts_new_sentence(&answer, &bytes) {
                break Finish::Length;
            }
            completion += 1;
            answer.extend_from_slice(&bytes);
            let released = stops.push(&text.push(&bytes));
            if !send(reply, calls.as_mut(), released.text) {
                return Ok(None);
            }
            if released.stopped {
                break Finish::Stop;
            }
            if self.abandoned(reply) {
                return Ok(None);
            }
            if let Some(found) = guard.push(token.0) {
                break Finish::Repetition(found);
            }
            if completion >= max_new {
                break Finish::Length;
            }
            self.decode(&[token], true)?;
            logits_at = 0;
        };
        let tail = stops.finish(&text.finish());
        let finish = if tail.stopped { Finish::Stop } else { finish };
        let mut rest = send(reply, calls.as_mut(), tail.text);
        if let Some(parser) = calls.as_mut() {
            rest &= parser
                .finish()
                .into_iter()
                .all(|found| send_found(reply, found));
        }
        if !rest {
            return Ok(None);
        }
        let finish = match (finish, calls.as_ref().map(ToolCallParser::calls)) {
            (Finish::Stop, Some(n)) if n > 0 => Finish::ToolCalls,
            (finish, _) => finish,
        };
        Ok(Some(Stats {
            prompt_tokens: count(tokens.len()),
            cached_tokens: count(keep),
            completion_tokens: count(completion),
            load_ms,
            prompt_ms,
            generation_ms: millis(generation_started),
            finish,
        }))
    }

    /// Nobody will read more: the caller went away, or the thread is being stopped.
    fn abandoned(&self, reply: &PieceSender) -> bool {
        reply.is_closed() || self.stopping.load(Ordering::Relaxed)
    }

    /// Reads `tokens` at the end of the cache; `logits_for_last` asks for the logits of the last
    /// one. On failure the cache is forgotten, since its state is then unknown.
    fn decode(&mut self, tokens: &[LlamaToken], logits_for_last: bool) -> Result<(), LlamaError> {
        self.batch.clear();
        let start = self.cached.len();
        for (i, &token) in tokens.iter().enumerate() {
            let pos = i32::try_from(start + i).unwrap_or(i32::MAX);
            let wants_logits = logits_for_last && i + 1 == tokens.len();
            if let Err(e) = self.batch.add(token, pos, &[0], wants_logits) {
                self.forget_cache();
                return Err(LlamaError::Decode(e.to_string()));
            }
        }
        if let Err(e) = self.ctx.decode(&mut self.batch) {
            self.forget_cache();
            return Err(LlamaError::Decode(e.to_string()));
        }
        self.cached.extend_from_slice(tokens);
        Ok(())
    }

    fn forget_cache(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
    }
}

/// A repeat penalty over the answer's last [`REPEAT_WINDOW`] tokens, as llama.cpp's server and
/// Ollama apply, then greedy unless a temperature above zero is asked for; sampling goes
/// through llama.cpp's chain (top-k, top-p, min-p, temperature) with its defaults for what is
/// not set. Measured on SmolLM2-135M (`bench/local_answers.py`'s 24 one-line questions and 12
/// two-turn "remember what I told you" conversations): greedy with the penalty answered 16
/// questions right and 8 conversations, greedy without it 13 and 8, llama.cpp's sampling
/// (temperature 0.8) 15.7 and 8.5 on average over three seeds, at 0.3 16.7 questions. The penalty
/// looks at the answer only: with the prompt in its window SmolLM2 could not repeat a name it
/// was given ("Zorblax" became "Zorba").
///
/// With a grammar (`constrained`) the repeat penalty is left out: JSON repeats its quotes,
/// commas and keys by nature.
fn sampler(options: &GenerateOptions, n_vocab: i32, constrained: bool) -> LlamaSampler {
    let mut chain = Vec::new();
    let penalty = options.repeat_penalty.unwrap_or(DEFAULT_REPEAT_PENALTY);
    if !constrained && penalty > 0.0 && (penalty - 1.0).abs() > f32::EPSILON {
        let window = i32::try_from(REPEAT_WINDOW).unwrap_or(i32::MAX);
        chain.push(LlamaSampler::penalties(n_vocab, window, penalty, 0.0, 0.0));
    }
    match options.temperature {
        Some(t) if t > 0.0 => {
            // llama.cpp's order: top-k, top-p, min-p, then the temperature.
            let k = options.top_k.unwrap_or(DEFAULT_TOP_K);
            if k > 0 {
                chain.push(LlamaSampler::top_k(i32::try_from(k).unwrap_or(i32::MAX)));
            }
            let p = options.top_p.unwrap_or(DEFAULT_TOP_P);
            if p > 0.0 && p < 1.0 {
                chain.push(LlamaSampler::top_p(p, 1));
            }
            let p = options.min_p.unwrap_or(DEFAULT_MIN_P);
            if p > 0.0 && p <= 1.0 {
                chain.push(LlamaSampler::min_p(p, 1));
            }
            chain.push(LlamaSampler::temp(t));
            // llama.cpp picks a random seed for this value.
            chain.push(LlamaSampler::dist(options.seed.unwrap_or(u32::MAX)));
        }
        _ => chain.push(LlamaSampler::greedy()),
    }
    LlamaSampler::chain_simple(chain)
}

/// llama.cpp's grammar sampler for `grammar`; a grammar it cannot parse is an error.
fn grammar_sampler(model: &LlamaModel, grammar: &Grammar) -> Result<LlamaSampler, LlamaError> {
    backend::clear_errors();
    LlamaSampler::grammar(model, grammar.as_str(), "root").map_err(|e| {
        let logged = backend::take_errors();
        LlamaError::Schema(format!(
            "(its grammar does not parse: {}): {}",
            if logged.is_empty() {
                e.to_string()
            } else {
                logged
            },
            grammar.as_str().chars().take(400).collect::<String>()
        ))
    })
}

/// The next token under a grammar, as llama.cpp's own sampler picks it
/// (`common_sampler_sample` in `common/sampling.cpp`: "grammar-based rejection sampling"): the
/// chain's choice when the grammar allows that one token, else the chain's choice among the
/// tokens the grammar allows. Holding the whole vocabulary to the grammar on every token is
/// far slower (inside a JSON string nearly every token is allowed, and each is checked). The
/// token is accepted by both samplers; `None` when no token is left.
fn pick(
    ctx: &LlamaContext<'_>,
    chain: &mut LlamaSampler,
    grammar: &mut LlamaSampler,
    at: i32,
) -> Option<LlamaToken> {
    let mut all = ctx.token_data_array_ith(at);
    chain.apply(&mut all);
    let first = all.selected_token();
    let fits = first.is_some_and(|token| {
        let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
        grammar.apply(&mut one);
        one.data.first().is_some_and(|d| d.logit().is_finite())
    });
    let token = if fits {
        first?
    } else {
        let mut allowed = ctx.token_data_array_ith(at);
        grammar.apply(&mut allowed);
        chain.apply(&mut allowed);
        let token = allowed.selected_token()?;
        // A token the grammar rejects would abort inside llama.cpp when accepted.
        if !allowed
            .data
            .iter()
            .any(|d| d.id() == token && d.logit().is_finite())
        {
            return None;
        }
        token
    };
    grammar.accept(token);
    chain.accept(token);
    Some(token)
}

/// Passes answer text on: through the tool-call parser when tools were offered. False when
/// the caller has gone.
fn send(reply: &PieceSender, calls: Option<&mut ToolCallParser>, text: String) -> bool {
    if text.is_empty() {
        return true;
    }
    match calls {
        None => reply.blocking_send(Ok(Piece::Text(text))).is_ok(),
        Some(parser) => parser.push(&text).into_iter().all(|f| send_found(reply, f)),
    }
}

fn send_found(reply: &PieceSender, found: Found) -> bool {
    let piece = match found {
        Found::Text(text) => Piece::Text(text),
        Found::Call(call) => Piece::ToolCall(call),
    };
    reply.blocking_send(Ok(piece)).is_ok()
}

/// The text of a generated token. Special tokens are left out, except the tool-call tags
/// that some vocabularies have as single tokens (Qwen2.5's `<tool_call>`), which the
/// tool-call parser needs to see.
fn piece_bytes(model: &LlamaModel, token: LlamaToken) -> Vec<u8> {
    let vocab = model.vocab();
    let plain = vocab.token_to_piece(token, false, None);
    if plain.is_empty() {
        let special = vocab.token_to_piece(token, true, None);
        if special == b"<tool_call>" || special == b"</tool_call>" {
            return special;
        }
    }
    plain
}

fn is_valid(model: &LlamaModel, token: LlamaToken) -> bool {
    token.0 >= 0 && token.0 < model.n_vocab()
}

/// The text of a special token such as BOS, or "" when the model has none (llama.cpp would
/// throw on an out-of-range id).
fn special_text(model: &LlamaModel, token: LlamaToken) -> String {
    if !is_valid(model, token) {
        return String::new();
    }
    String::from_utf8_lossy(&model.vocab().token_to_piece(token, true, None)).into_owned()
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
