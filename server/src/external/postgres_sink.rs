//! The PostgreSQL sink: a materialized view or a stream written into a table.
//!
//! - **A view** is kept equal to the table: after each checkpoint of the view's query the
//!   rows that changed are upserted by the primary key and the keys that went are
//!   deleted, in one transaction that also stores the checkpoint epoch in
//!   `weir_sink_progress`. After a restart the first transaction makes the table equal to
//!   the view whole (every row upserted, every other key deleted), so nothing is applied
//!   twice and nothing is missed.
//! - **A stream** is inserted (upserted when `primary_key` is given) from where the last
//!   transaction stopped: each transaction stores the stream's offsets reached in
//!   `weir_sink_progress` with the rows, so after kill -9 each row is in the table once.
//!
//! Rows travel as one JSON parameter per statement, expanded by PostgreSQL's
//! `json_populate_recordset(NULL::table, ...)`, which converts each value with the
//! column's own input function. The table is created when missing (types below) and
//! checked when present: every column of the view or stream must exist in it.

use std::collections::HashMap;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};
use parking_lot::Mutex;
use tokio_postgres::{Client, NoTls};

use super::{SinkInput, SinkStatus, json_rows, read_committed};
use crate::connector::sink::PostgresSinkSpec;
use crate::operators::aggregate::OP_COLUMN;

/// Rows per transaction for a stream.
const ROWS_PER_TRANSACTION: usize = 10_000;

/// The PostgreSQL type a column is created with.
pub fn pg_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "numeric(20, 0)".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("numeric({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Timestamp(TimeUnit::Second, None) => "timestamp(0)".into(),
        DataType::Timestamp(TimeUnit::Millisecond, None) => "timestamp(3)".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        _ => "jsonb".into(),
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

async fn connect(spec: &PostgresSinkSpec, sink: &str) -> Result<Client, String> {
    let (client, connection) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(&spec.url, NoTls),
    )
    .await
    .map_err(|_| {
        format!(
            "cannot reach PostgreSQL at {}: no answer in 10 s",
            redact(&spec.url)
        )
    })?
    .map_err(|e| {
        format!(
            "cannot connect to PostgreSQL at {}: {}",
            redact(&spec.url),
            describe(&e)
        )
    })?;
    let sink = sink.to_string();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(sink, "PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A PostgreSQL error with its detail, as the server gave it.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// CREATE SINK: connects, creates the table when missing or checks it, and creates the
/// progress table. Also what each (re)start of the sink does first.
pub async fn prepare(
    spec: &PostgresSinkSpec,
    sink: &str,
    schema: &Schema,
    view: bool,
) -> Result<Client, String> {
    let changes = schema.index_of(OP_COLUMN).is_ok();
    let schema = &table_schema(schema);
    if changes && spec.primary_key.is_empty() {
        return Err(format!(
            "an EMIT CHANGES stream retracts rows it wrote before (its _op column), so the sink upserts and deletes them: add primary_key = '{}' (the query's GROUP BY columns)",
            schema
                .fields()
                .first()
                .map(|f| f.name().as_str())
                .unwrap_or("a")
        ));
    }
    if view && spec.primary_key.is_empty() {
        return Err(format!(
            "a materialized view's rows change, so the sink upserts them: add primary_key = '{}' (the view's GROUP BY columns)",
            schema
                .fields()
                .first()
                .map(|f| f.name().as_str())
                .unwrap_or("a")
        ));
    }
    for key in &spec.primary_key {
        if schema.index_of(key).is_err() {
            return Err(format!(
                "primary_key column \"{key}\" is not a column of the sink's input; its columns are {}",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let client = connect(spec, sink).await?;
    let existing = client
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&spec.table],
        )
        .await
        .map_err(|e| describe(&e))?;
    if existing.is_empty() {
        let mut columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| {
                let not_null = if spec.primary_key.contains(f.name()) {
                    " NOT NULL"
                } else {
                    ""
                };
                format!("{} {}{not_null}", quote(f.name()), pg_type(f.data_type()))
            })
            .collect();
        if !spec.primary_key.is_empty() {
            columns.push(format!(
                "PRIMARY KEY ({})",
                spec.primary_key
                    .iter()
                    .map(|k| quote(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            quote(&spec.table),
            columns.join(", ")
        );
        client
            .batch_execute(&create)
            .await
            .map_err(|e| format!("cannot create table {}: {}", spec.table, describe(&e)))?;
        tracing::info!(sink, table = %spec.table, "created the PostgreSQL table");
    } else {
        let have: Vec<String> = existing.iter().map(|r| r.get::<_, String>(0)).collect();
        for field in schema.fields() {
            if !have.contains(field.name()) {
                return Err(format!(
                    "table {} has no column \"{}\"; add it (ALTER TABLE {} ADD COLUMN {} {}) or name another table",
                    spec.table,
                    field.name(),
                    quote(&spec.table),
                    quote(field.name()),
                    pg_type(field.data_type())
                ));
            }
        }
    }
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS weir_sink_progress \
             (sink text PRIMARY KEY, epoch bigint NOT NULL, offsets text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(|e| format!("cannot create table weir_sink_progress: {}", describe(&e)))?;
    Ok(client)
}

/// Runs the sink until aborted, reconnecting with backoff.
pub async fn run(
    name: String,
    spec: PostgresSinkSpec,
    input: SinkInput,
    status: std::sync::Arc<Mutex<SinkStatus>>,
) {
    super::retrying(&name, &status, || attempt(&name, &spec, &input, &status)).await;
}

async fn attempt(
    name: &str,
    spec: &PostgresSinkSpec,
    input: &SinkInput,
    status: &Mutex<SinkStatus>,
) -> Result<(), String> {
    let schema = input.schema();
    let mut client = prepare(spec, name, &schema, matches!(input, SinkInput::View(_))).await?;
    let progress = client
        .query_opt(
            "SELECT epoch, offsets FROM weir_sink_progress WHERE sink = $1",
            &[&name],
        )
        .await
        .map_err(|e| describe(&e))?;
    {
        let mut s = status.lock();
        s.state = "running".into();
        s.error = None;
    }
    let changes = schema.index_of(OP_COLUMN).is_ok();
    let statements = Statements::new(spec, &table_schema(&schema));
    match input {
        SinkInput::View(view) => {
            let mut epochs = view.subscribe();
            // Key → row as last written; `None` until the first (whole) apply.
            let mut written: Option<HashMap<String, String>> = None;
            loop {
                let epoch = *epochs.borrow_and_update();
                let rows = view_rows(&view.batches(), &spec.primary_key)?;
                let (upserts, deletes, whole) = match &written {
                    None => (rows.values().cloned().collect::<Vec<_>>(), Vec::new(), true),
                    Some(before) => {
                        let upserts = rows
                            .iter()
                            .filter(|(k, v)| before.get(*k) != Some(v))
                            .map(|(_, v)| v.clone())
                            .collect::<Vec<_>>();
                        let deletes = before
                            .iter()
                            .filter(|(k, _)| !rows.contains_key(*k))
                            .map(|(_, v)| v.clone())
                            .collect::<Vec<_>>();
                        (upserts, deletes, false)
                    }
                };
                if whole || !upserts.is_empty() || !deletes.is_empty() {
                    let tx = client.transaction().await.map_err(|e| describe(&e))?;
                    if !upserts.is_empty() {
                        tx.execute(&statements.upsert, &[&json_array(&upserts)])
                            .await
                            .map_err(|e| format!("upsert into {}: {}", spec.table, describe(&e)))?;
                    }
                    if whole {
                        let all: Vec<String> = rows.values().cloned().collect();
                        tx.execute(&statements.delete_others, &[&json_array(&all)])
                            .await
                            .map_err(|e| format!("delete from {}: {}", spec.table, describe(&e)))?;
                    } else if !deletes.is_empty() {
                        tx.execute(&statements.delete, &[&json_array(&deletes)])
                            .await
                            .map_err(|e| format!("delete from {}: {}", spec.table, describe(&e)))?;
                    }
                    tx.execute(&statements.progress, &[&name, &(epoch as i64), &"[]"])
                        .await
                        .map_err(|e| describe(&e))?;
                    tx.commit().await.map_err(|e| describe(&e))?;
                    let mut s = status.lock();
                    s.rows += (upserts.len() + deletes.len()) as u64;
                    s.epoch = epoch;
                }
                written = Some(rows);
                if epochs.changed().await.is_err() {
                    return Ok(()); // the view was dropped
                }
            }
        }
        SinkInput::Stream(stream) => {
            let mut positions: Vec<u64> = match &progress {
                Some(row) => {
                    serde_json::from_str(row.get::<_, &str>(1)).map_err(|e| e.to_string())?
                }
                None => vec![0; stream.partitions().len()],
            };
            positions.resize(stream.partitions().len(), 0);
            loop {
                let (s, mut at) = (stream.clone(), positions.clone());
                let (parts, at) = tokio::task::spawn_blocking(move || {
                    read_committed(&s, &mut at, ROWS_PER_TRANSACTION).map(|parts| (parts, at))
                })
                .await
                .map_err(|e| e.to_string())??;
                if parts.is_empty() {
                    status.lock().lag = 0;
                    super::wait_for_rows(stream, &positions).await;
                    continue;
                }
                let mut rows = Vec::new();
                for (_, batch) in &parts {
                    rows.extend(json_rows(batch)?);
                }
                let written = rows.len();
                let tx = client.transaction().await.map_err(|e| describe(&e))?;
                if changes {
                    // In order, the last change of each key wins: '+' upserts, '-' deletes.
                    let (upserts, deletes) = last_change_per_key(rows, &spec.primary_key);
                    if !deletes.is_empty() {
                        tx.execute(&statements.delete, &[&json_array(&deletes)])
                            .await
                            .map_err(|e| format!("delete from {}: {}", spec.table, describe(&e)))?;
                    }
                    if !upserts.is_empty() {
                        tx.execute(&statements.upsert, &[&json_array(&upserts)])
                            .await
                            .map_err(|e| format!("upsert into {}: {}", spec.table, describe(&e)))?;
                    }
                } else {
                    let rows: Vec<String> = rows
                        .into_iter()
                        .map(|r| serde_json::Value::Object(r).to_string())
                        .collect();
                    let insert = if spec.primary_key.is_empty() {
                        &statements.insert
                    } else {
                        &statements.upsert
                    };
                    tx.execute(insert, &[&json_array(&rows)])
                        .await
                        .map_err(|e| format!("insert into {}: {}", spec.table, describe(&e)))?;
                }
                let offsets = serde_json::to_string(&at).expect("offsets serialize");
                tx.execute(&statements.progress, &[&name, &0i64, &offsets])
                    .await
                    .map_err(|e| describe(&e))?;
                tx.commit().await.map_err(|e| describe(&e))?;
                positions = at;
                let mut s = status.lock();
                s.rows += written as u64;
                s.positions = positions.clone();
                s.lag = super::lag(stream, &positions);
            }
        }
    }
}

/// The statements a sink runs, built once.
struct Statements {
    insert: String,
    upsert: String,
    delete: String,
    delete_others: String,
    progress: String,
}

impl Statements {
    fn new(spec: &PostgresSinkSpec, schema: &Schema) -> Statements {
        let table = quote(&spec.table);
        let rows = format!("json_populate_recordset(NULL::{table}, $1::text::json)");
        let columns: Vec<String> = schema.fields().iter().map(|f| quote(f.name())).collect();
        let list = columns.join(", ");
        let keys = spec
            .primary_key
            .iter()
            .map(|k| quote(k))
            .collect::<Vec<_>>()
            .join(", ");
        let others: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| !spec.primary_key.contains(f.name()))
            .map(|f| format!("{0} = EXCLUDED.{0}", quote(f.name())))
            .collect();
        let on_conflict = if others.is_empty() {
            format!("ON CONFLICT ({keys}) DO NOTHING")
        } else {
            format!("ON CONFLICT ({keys}) DO UPDATE SET {}", others.join(", "))
        };
        Statements {
            insert: format!("INSERT INTO {table} ({list}) SELECT {list} FROM {rows}"),
            upsert: format!("INSERT INTO {table} ({list}) SELECT {list} FROM {rows} {on_conflict}"),
            delete: format!("DELETE FROM {table} WHERE ({keys}) IN (SELECT {keys} FROM {rows})"),
            delete_others: format!("DELETE FROM {table} WHERE ({keys}) NOT IN (SELECT {keys} FROM {rows})"),
            progress: "INSERT INTO weir_sink_progress (sink, epoch, offsets) VALUES ($1, $2, $3) \
                       ON CONFLICT (sink) DO UPDATE SET epoch = EXCLUDED.epoch, offsets = EXCLUDED.offsets, updated_at = now()"
                .into(),
        }
    }
}

/// The table's columns: the input's, without an EMIT CHANGES stream's `_op`.
fn table_schema(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != OP_COLUMN)
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// An EMIT CHANGES stream's rows, in order, reduced to the last change of each key:
/// (rows to upsert, rows whose key to delete).
fn last_change_per_key(
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
    primary_key: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut last: HashMap<String, (bool, String)> = HashMap::new();
    for row in rows {
        let insert = row.get(OP_COLUMN).and_then(|v| v.as_str()) != Some("-");
        let key: Vec<&serde_json::Value> = primary_key
            .iter()
            .map(|k| row.get(k).unwrap_or(&serde_json::Value::Null))
            .collect();
        let key = serde_json::to_string(&key).expect("keys serialize");
        last.insert(key, (insert, serde_json::Value::Object(row).to_string()));
    }
    let (upserts, deletes): (Vec<_>, Vec<_>) = last.into_values().partition(|(insert, _)| *insert);
    (
        upserts.into_iter().map(|(_, r)| r).collect(),
        deletes.into_iter().map(|(_, r)| r).collect(),
    )
}

/// A view's rows by key: key (the primary key's values as JSON) → row (a JSON object).
fn view_rows(
    batches: &[datafusion::arrow::array::RecordBatch],
    primary_key: &[String],
) -> Result<HashMap<String, String>, String> {
    let mut rows = HashMap::new();
    for batch in batches {
        for row in json_rows(batch)? {
            let key: Vec<&serde_json::Value> = primary_key
                .iter()
                .map(|k| row.get(k).unwrap_or(&serde_json::Value::Null))
                .collect();
            let key = serde_json::to_string(&key).expect("keys serialize");
            rows.insert(key, serde_json::Value::Object(row).to_string());
        }
    }
    Ok(rows)
}

fn json_array(rows: &[String]) -> String {
    format!("[{}]", rows.join(","))
}
