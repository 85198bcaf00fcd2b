//! Connectors to systems outside Weir at run time: the Kafka source (a topic read into a
//! stream), and the sinks (a stream or view written to Kafka or PostgreSQL). The options
//! and record formats they share with the rest of Weir live in [`crate::connector`].

pub mod kafka_source;
