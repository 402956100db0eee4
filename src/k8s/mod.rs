//! Everything that talks to the Kubernetes API server.

pub mod service_accounts;
