//! Integration tests: the real `weir` binary, started as a user would, driven over HTTP.
//! One test binary (each links all of DataFusion); one module per area.

mod bench;
mod connectors;
mod console;
mod crash;
mod differential;
mod docker;
mod faults;
mod fuzz;
mod graph_differential;
mod http;
mod kafka;
mod pg;
mod s3;
mod security;
mod server;
mod soak;
