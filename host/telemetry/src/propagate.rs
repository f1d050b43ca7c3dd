//! W3C trace context across Sluice: a request's span continues the `traceparent` the client sent
//! (when it sent one), and a forward's `traceparent` names the forward's span, so the
//! coordinator's own trace hangs below Sluice's.
use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Make `span` a child of the trace the request's headers name, if any (nothing happens for a
/// disabled span: tracing is off).
pub fn continue_from(span: &tracing::Span, headers: &HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Write `span`'s trace context into outgoing `headers` (`traceparent`, `tracestate`),
/// replacing what the client sent; with tracing off the client's headers pass as they are.
pub fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    if span.is_disabled() {
        return;
    }
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }
}
