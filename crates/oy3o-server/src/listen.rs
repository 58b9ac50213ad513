//! The accept loop: what every TCP connection gets before any route, guard or token check
//! sees it. A connection cap (`max_connections`: more are closed as soon as they are
//! accepted), a time limit on request headers (`header_timeout_secs`, also the wait for a new
//! connection's first request), one on the wait for the next request on a kept-alive
//! connection (`keepalive_timeout_secs`), and one on request bodies (`body_timeout_secs`). A
//! silent or half-sent connection cannot hold a descriptor for long, with or without a token.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::settings::Limits;

/// Set on a request whose body did not arrive within `body_timeout_secs`, so its error can
/// say so (408) instead of "bad body".
#[derive(Clone, Default)]
pub(crate) struct BodyTimedOut(Arc<AtomicBool>);

impl BodyTimedOut {
    /// Whether the body ran out of time.
    pub(crate) fn happened(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled; then stops accepting, lets every
/// HTTP connection finish its request, and returns when they are done. (Upgraded WebSocket
/// connections close on the same signal by themselves.)
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's header timer starts when it waits for the next request, so it would be the
    // keep-alive timeout too: each connection's `Expiry` keeps both waits instead.
    builder.header_read_timeout(None).keep_alive(true);
    let builder = Arc::new(builder);
    // Every connection task holds a receiver; shutdown waits until they are all dropped.
    let (closing, _) = watch::channel(false);
    let (done_tx, mut done) = watch::channel(());
    let body_timeout = limits.body_timeout;
    let waits = Waits {
        header: limits.header_timeout,
        keepalive: limits.keepalive_timeout,
    };
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("connection refused: max_connections reached");
            drop(tcp);
            continue;
        };
        // Answer chunks are small and must leave at once.
        let _ = tcp.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Counted {
            tcp,
            _slot: slot,
            activity: activity.clone(),
        });
        let app = app.clone();
        let serving = activity.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut app = app.clone();
            let guard = Serving::start(serving.clone());
            let timed_out = BodyTimedOut::default();
            let mut request =
                request.map(|body| Body::new(Deadline::new(body, body_timeout, timed_out.clone())));
            request.extensions_mut().insert(timed_out);
            async move {
                let response = app.call(request).await.unwrap_or_else(|e| match e {});
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    guard.upgraded();
                }
                // The request counts as served until its response's last byte is out.
                let response = response.map(|body| {
                    Body::new(Finishing {
                        body,
                        serving: Some(guard),
                    })
                });
                Ok::<_, Infallible>(response)
            }
        });
        let builder = builder.clone();
        let mut closing = closing.subscribe();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let connection = builder.serve_connection(io, service).with_upgrades();
            tokio::pin!(connection);
            let expiry = Expiry::new(activity, waits);
            tokio::pin!(expiry);
            loop {
                tokio::select! {
                    // The connection first: it is what moves the deadline the expiry reads.
                    biased;
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!("connection ended: {e}");
                        }
                        break;
                    }
                    _ = closing.changed() => connection.as_mut().graceful_shutdown(),
                    why = expiry.as_mut() => {
                        tracing::debug!("connection closed: {why}");
                        break;
                    }
                }
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    drop(done_tx);
    // Resolves once every connection task has dropped its sender.
    let _ = done.changed().await;
}

/// The two waits of an HTTP connection that is not serving a request.
#[derive(Clone, Copy)]
struct Waits {
    /// For a new connection's first request, and for a request's headers once its first
    /// byte is in.
    header: Duration,
    /// For the next request after a response.
    keepalive: Duration,
}

/// What an HTTP connection is doing, as far as its time limits care.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// No request under way: since the connection opened (`fresh`) or since the last
    /// response ended.
    Waiting { since: Instant, fresh: bool },
    /// A request's first bytes are in, its headers not yet all.
    Head { since: Instant },
    /// Requests being answered: their handlers run or their responses stream. No limit here
    /// (a body has its own; an answer takes as long as it takes).
    Busy(usize),
    /// Handed to a WebSocket, which keeps its own idle timeout.
    Upgraded,
}

impl Phase {
    /// When the connection is closed if nothing changes, with the setting that decides it.
    fn deadline(self, waits: Waits) -> Option<(Instant, &'static str)> {
        match self {
            Phase::Waiting { since, fresh: true } => Some((
                since + waits.header,
                "no request within header_timeout_secs",
            )),
            Phase::Waiting {
                since,
                fresh: false,
            } => Some((since + waits.keepalive, "idle for keepalive_timeout_secs")),
            Phase::Head { since } => Some((
                since + waits.header,
                "headers not sent within header_timeout_secs",
            )),
            Phase::Busy(_) | Phase::Upgraded => None,
        }
    }
}

/// One connection's [`Phase`], shared by its socket (bytes read), its service (requests
/// started and finished) and its [`Expiry`].
struct Activity(Mutex<Phase>);

impl Activity {
    fn new() -> Self {
        Self(Mutex::new(Phase::Waiting {
            since: Instant::now(),
            fresh: true,
        }))
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = change(*phase);
    }

    fn phase(&self) -> Phase {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: a waiting connection has started its next request. A new connection's
    /// headers keep the clock that started when it opened.
    fn read_some(&self) {
        self.update(|phase| match phase {
            Phase::Waiting { since, fresh: true } => Phase::Head { since },
            Phase::Waiting { fresh: false, .. } => Phase::Head {
                since: Instant::now(),
            },
            other => other,
        });
    }
}

/// One request being served, from its headers to its response's end (or to the upgrade).
struct Serving(Arc<Activity>);

impl Serving {
    fn start(activity: Arc<Activity>) -> Self {
        activity.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Upgraded => Phase::Upgraded,
            _ => Phase::Busy(1),
        });
        Self(activity)
    }

    /// The connection is becoming a WebSocket: its HTTP waits end here.
    fn upgraded(&self) {
        self.0.update(|_| Phase::Upgraded);
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            Phase::Busy(_) => Phase::Waiting {
                since: Instant::now(),
                fresh: false,
            },
            other => other,
        });
    }
}

/// A response body that ends its request's [`Serving`] when its last frame is out (or when
/// hyper drops it unfinished).
struct Finishing {
    body: Body,
    serving: Option<Serving>,
}

impl http_body::Body for Finishing {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) {
            this.serving = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Resolves, with the reason, once a connection has waited past the limit of its phase.
/// Every phase change happens while the connection is polled, and the accept loop polls the
/// connection before this, so the timer is re-armed on each poll from the current phase.
struct Expiry {
    activity: Arc<Activity>,
    waits: Waits,
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Expiry {
    fn new(activity: Arc<Activity>, waits: Waits) -> Self {
        Self {
            activity,
            waits,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
        }
    }
}

impl Future for Expiry {
    type Output = &'static str;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
        let this = &mut *self;
        let Some((deadline, why)) = this.activity.phase().deadline(this.waits) else {
            this.armed = None;
            return Poll::Pending;
        };
        if this.armed != Some(deadline) {
            this.sleep.as_mut().reset(deadline);
            this.armed = Some(deadline);
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(why),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A TCP stream holding one of the `max_connections` slots for as long as it is open, also
/// after it is upgraded to a WebSocket; its reads tell the connection's [`Activity`] when a
/// request starts.
struct Counted {
    tcp: TcpStream,
    _slot: OwnedSemaphorePermit,
    activity: Arc<Activity>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A request body that must arrive whole before a deadline; past it, reading fails (and
/// [`BodyTimedOut`] is set). The clock starts when the body is first read, so it costs
/// nothing on requests without one.
struct Deadline {
    body: Incoming,
    limit: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: BodyTimedOut,
}

impl Deadline {
    fn new(body: Incoming, limit: Duration, timed_out: BodyTimedOut) -> Self {
        Self {
            body,
            limit,
            sleep: None,
            timed_out,
        }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(axum::Error::new)));
        }
        let limit = this.limit;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.timed_out.0.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request body did not arrive within body_timeout_secs",
            )))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
