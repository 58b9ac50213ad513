//! The accept loop every test-kit server shares.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Binds a free port on `127.0.0.1` and serves each accepted connection with `serve` on its own
/// task, on the current tokio runtime, for as long as the runtime lives.
pub(crate) async fn serve_loopback<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket));
        }
    });
    addr
}
