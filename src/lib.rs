//! azwi-webhook: a mutating admission webhook that gives pods an Azure identity.

pub mod admission;
pub mod app;
pub mod build_info;
pub mod certs;
pub mod cloud;
pub mod config;
pub mod heap;
pub mod inject;
pub mod json_scan;
pub mod json_text;
pub mod k8s;
pub mod logging;
pub mod metrics;
pub mod mutate;
pub mod review;
pub mod server;
pub mod startup;
pub mod thread_buffers;
pub mod tls;
