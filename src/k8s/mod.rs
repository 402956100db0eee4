//! Everything that talks to the Kubernetes API server.

pub mod authz;
pub mod cache;
pub mod client;
pub mod discovery;
pub mod errors;
pub mod live;
pub mod service_accounts;
