//! Prometheus metrics in the text exposition format: HTTP requests by route and status
//! with a latency histogram, and per-stream figures read live from the streams at scrape
//! time. Small enough to write out here rather than wire a registry crate's collectors
//! to state that already lives in the streams.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

use crate::stream::Stream;

/// Upper bounds (seconds) of the request latency histogram.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl HttpMetrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        let mut latency = self.latency.lock();
        let h = latency.entry(route.to_string()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The whole exposition: HTTP metrics and the streams'.
    pub fn render(&self, streams: &[std::sync::Arc<Stream>]) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "# HELP weir_http_requests_total HTTP requests by method, route and status.\n# TYPE weir_http_requests_total counter"
        );
        for ((method, route, status), n) in self.requests.lock().iter() {
            let _ = writeln!(
                text,
                "weir_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let mut histograms = String::new();
        let _ = writeln!(
            histograms,
            "# HELP weir_http_request_duration_seconds HTTP request latency by route.\n# TYPE weir_http_request_duration_seconds histogram"
        );
        for (route, h) in self.latency.lock().iter() {
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    histograms,
                    "weir_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                histograms,
                "weir_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                histograms,
                "weir_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                histograms,
                "weir_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        text.push_str(&histograms);
        let per_stream: [(&str, &str, &str, fn(&Stream) -> u64); 4] = [
            (
                "weir_stream_ingested_rows_total",
                "counter",
                "Rows appended to the stream since start.",
                Stream::ingested_rows,
            ),
            (
                "weir_stream_ingested_bytes_total",
                "counter",
                "Arrow bytes appended to the stream since start.",
                Stream::ingested_bytes,
            ),
            (
                "weir_stream_retained_rows",
                "gauge",
                "Rows retained in the stream now.",
                Stream::retained_rows,
            ),
            (
                "weir_stream_size_bytes",
                "gauge",
                "Bytes of the stream's segments on disk.",
                Stream::size_bytes,
            ),
        ];
        for (name, kind, help, value) in per_stream {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for stream in streams {
                let _ = writeln!(
                    text,
                    "{name}{{stream=\"{}\"}} {}",
                    stream.name(),
                    value(stream)
                );
            }
        }
        text
    }
}
