#!/bin/sh
# The compose demo: streams, views, sinks and a dashboard in Weir, all through Weir's
# HTTP API (the Kafka topic is made by the kafka-topics job). Idempotent (IF NOT EXISTS),
# so `up` again is harmless.
set -eu
sql() {
  body=$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')
  curl -sf "$WEIR_URL/v1/sql" -H 'content-type: application/json' -d "{\"sql\": \"$body\"}"
  echo
}

sql "CREATE STREAM IF NOT EXISTS bids WITH (connector = 'nexmark', event = 'bid', rate = 2000)"
sql "CREATE MATERIALIZED VIEW IF NOT EXISTS bids_per_10s AS SELECT window_start, count(*) AS bids, max(price) AS top_price FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND) GROUP BY window_start"
sql "CREATE STREAM IF NOT EXISTS big_bids AS SELECT auction, bidder, price, date_time FROM bids WHERE price > 50000000"
sql "CREATE SINK IF NOT EXISTS bids_per_10s_pg FROM bids_per_10s WITH (connector = 'postgres', url = '$POSTGRES_URL', table = 'bids_per_10s', primary_key = 'window_start')"
sql "CREATE SINK IF NOT EXISTS big_bids_kafka FROM big_bids WITH (connector = 'kafka', bootstrap_servers = '$KAFKA', topic = 'big_bids', key = 'auction')"
curl -sf -X PUT "$WEIR_URL/v1/dashboards/demo" -H 'content-type: application/json' -d '{
  "title": "Demo",
  "panels": [
    {"title": "Bids per 10 s", "sql": "SELECT window_start, bids FROM bids_per_10s ORDER BY window_start", "chart": "line"},
    {"title": "Top price per 10 s", "sql": "SELECT window_start, top_price FROM bids_per_10s ORDER BY window_start", "chart": "bar"},
    {"title": "Big bids", "sql": "SELECT count(*) FROM big_bids", "chart": "number"}
  ]
}'
echo
echo "demo loaded: open http://localhost:7878 (dashboard 'Demo')"
