//! Everything that talks to the Kubernetes API server.

pub mod client;
pub mod live;
pub mod service_accounts;
