//! Everything that talks to the Kubernetes API server.

pub mod authz;
pub mod client;
pub mod live;
pub mod service_accounts;
