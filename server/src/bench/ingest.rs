//! Durable ingest over real HTTP: the API served in this process on a loopback port,
//! producers on their own threads speaking HTTP/1.1 with keep-alive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{run, scratch_engine};

/// One request body of `rows` rows of about `row_bytes` bytes each.
fn body(format: &str, rows: usize, row_bytes: usize) -> Result<Vec<u8>, String> {
    let payload = "x".repeat(row_bytes.saturating_sub(30));
    match format {
        "ndjson" => Ok((0..rows)
            .map(|i| format!("{{\"id\":{i},\"payload\":\"{payload}\"}}\n"))
            .collect::<String>()
            .into_bytes()),
        _ => {
            use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
            let batch = RecordBatch::try_from_iter([
                (
                    "id",
                    Arc::new(Int64Array::from_iter_values(0..rows as i64)) as _,
                ),
                (
                    "payload",
                    Arc::new(StringArray::from(vec![payload.as_str(); rows])) as _,
                ),
            ])
            .map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            let mut writer =
                datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())
                    .map_err(|e| e.to_string())?;
            writer.write(&batch).map_err(|e| e.to_string())?;
            writer.finish().map_err(|e| e.to_string())?;
            drop(writer);
            Ok(out)
        }
    }
}

/// Sends `body` to `path` over one keep-alive connection until `deadline`; returns the
/// requests acknowledged with 200.
fn produce(
    address: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
    deadline: Instant,
) -> Result<u64, String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).ok();
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut acked = 0;
    while Instant::now() < deadline {
        writer
            .write_all(head.as_bytes())
            .map_err(|e| e.to_string())?;
        writer.write_all(body).map_err(|e| e.to_string())?;
        let (mut status, mut length, mut line) = (0u16, 0usize, String::new());
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(code) = l.strip_prefix("HTTP/1.1 ") {
                status = code.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            } else if let Some((name, value)) = l.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut answer = vec![0; length];
        reader.read_exact(&mut answer).map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!(
                "ingest answered {status}: {}",
                String::from_utf8_lossy(&answer)
            ));
        }
        acked += 1;
    }
    Ok(acked)
}

/// Durable ingest over HTTP: formats × row sizes × producers.
pub(super) async fn ingest_matrix(each: Duration) -> Result<Vec<Value>, String> {
    let (_dir, engine) = scratch_engine(Duration::from_secs(1)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let state = crate::api::ApiState::with_engine(engine.clone(), 256 << 20);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, crate::api::router(state)).await;
    });
    println!(
        "\n{:<10} {:>9} {:>10} {:>14} {:>10}",
        "ingest", "row size", "producers", "rows/s", "MB/s"
    );
    let mut out = Vec::new();
    let mut n = 0;
    for format in ["ndjson", "arrow"] {
        for (row_bytes, rows) in [(100usize, 2000usize), (1000, 200)] {
            for producers in [1usize, 4] {
                n += 1;
                let stream = format!("ingest_{n}");
                run(
                    &engine,
                    &format!(
                        "CREATE STREAM {stream} (id BIGINT, payload TEXT) WITH (partitions = 4)"
                    ),
                )
                .await?;
                let body = Arc::new(body(format, rows, row_bytes)?);
                let content_type = if format == "ndjson" {
                    "application/x-ndjson"
                } else {
                    "application/vnd.apache.arrow.stream"
                };
                let path = format!("/v1/streams/{stream}/records");
                let started = Instant::now();
                let deadline = started + each;
                let threads: Vec<_> = (0..producers)
                    .map(|_| {
                        let (body, path) = (body.clone(), path.clone());
                        std::thread::spawn(move || {
                            produce(address, &path, content_type, &body, deadline)
                        })
                    })
                    .collect();
                let requests = tokio::task::spawn_blocking(move || {
                    threads
                        .into_iter()
                        .map(|t| t.join().map_err(|_| "a producer panicked".to_string())?)
                        .sum::<Result<u64, String>>()
                })
                .await
                .map_err(|e| e.to_string())??;
                let secs = started.elapsed().as_secs_f64();
                let rows_per_s = (requests * rows as u64) as f64 / secs;
                let mb_per_s = (requests * body.len() as u64) as f64 / secs / 1e6;
                println!(
                    "{format:<10} {:>8}B {producers:>10} {rows_per_s:>14.0} {mb_per_s:>10.1}",
                    row_bytes
                );
                out.push(
                    json!({"format": format, "row_bytes": row_bytes, "producers": producers,
                    "rows_per_s": rows_per_s, "mb_per_s": mb_per_s}),
                );
                run(&engine, &format!("DROP STREAM {stream}")).await?;
            }
        }
    }
    server.abort();
    engine.shutdown().await;
    Ok(out)
}
