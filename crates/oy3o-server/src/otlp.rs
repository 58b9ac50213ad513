//! Exporting traces: when an OTLP endpoint is configured (`[server] otlp`, or the standard
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`), the spans of the
//! engine and of this server (target [`oy3o::trace::TARGET`]) go to it over OTLP/HTTP
//! protobuf (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>), batched off the request
//! path. Without one nothing is installed: every span is disabled where it is made.
//!
//! The exporter sends with our own reqwest client ([`Upload`]): opentelemetry-otlp's own is
//! reqwest 0.12, a second HTTP stack in the build.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanProcessor};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::error::{Error, Result};

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The traces endpoint: `[server] otlp` (a base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT`, to
/// which `/v1/traces` is added), else `None` when the environment names none either.
fn endpoint(configured: Option<&str>) -> Option<Option<String>> {
    if let Some(base) = configured.map(str::trim).filter(|b| !b.is_empty()) {
        return Some(Some(format!("{}/v1/traces", base.trim_end_matches('/'))));
    }
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    // The SDK reads these itself (adding `/v1/traces` to the general one).
    (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .then_some(None)
}

/// The installed exporter; [`Exporting::shutdown`] sends what is still batched.
pub(crate) struct Exporting {
    provider: SdkTracerProvider,
}

impl Exporting {
    /// Sends the spans still batched (waiting at most the export timeout).
    pub(crate) fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown_with_timeout(EXPORT_TIMEOUT) {
            tracing::warn!("otlp: the last spans were not all sent: {e}");
        }
    }
}

/// Installs the exporter and the process's `tracing` subscriber when an endpoint is
/// configured; `None` when none is, or when the process already has a subscriber (an
/// embedding program's own, which then decides).
pub(crate) fn install(configured: Option<&str>) -> Result<Option<Exporting>> {
    let Some(endpoint) = endpoint(configured) else {
        return Ok(None);
    };
    let upload = Upload {
        client: reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| Error::config(format!("otlp: cannot make the HTTP client: {e}")))?,
        runtime: tokio::runtime::Handle::current(),
    };
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(upload)
        .with_timeout(EXPORT_TIMEOUT);
    if let Some(url) = &endpoint {
        builder = builder.with_endpoint(url.clone());
    }
    let exporter = builder
        .build()
        .map_err(|e| Error::config(format!("otlp: {e}")))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("oy3o");
    }
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Arrays(BatchSpanProcessor::builder(exporter).build()))
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("oy3o");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(oy3o::trace::TARGET, tracing::Level::INFO),
        );
    let subscriber = tracing_subscriber::registry().with(layer);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        let _ = provider.shutdown();
        return Ok(None);
    }
    Ok(Some(Exporting { provider }))
}

/// Attributes the conventions type as string arrays, which `tracing` fields cannot be
/// (<https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/>:
/// `gen_ai.response.finish_reasons` is `string[]`): made arrays as each span ends.
#[derive(Debug)]
struct Arrays<P>(P);

/// The attributes [`Arrays`] turns into arrays.
const STRING_ARRAYS: [&str; 1] = ["gen_ai.response.finish_reasons"];

impl<P: SpanProcessor> SpanProcessor for Arrays<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        for kv in &mut span.attributes {
            if STRING_ARRAYS.contains(&kv.key.as_str())
                && let opentelemetry::Value::String(one) = &kv.value
            {
                let array = opentelemetry::Array::String(vec![one.clone()]);
                *kv = KeyValue::new(kv.key.clone(), opentelemetry::Value::Array(array));
            }
        }
        self.0.on_end(span);
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

/// The exporter's HTTP client: our reqwest, run on the server's runtime (the batch processor
/// exports from a thread of its own, which has no runtime).
#[derive(Debug)]
struct Upload {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for Upload {
    async fn send_bytes(
        &self,
        request: Request<Bytes>,
    ) -> std::result::Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body);
        let sent = self.runtime.spawn(async move {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = sent.await??;
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}
