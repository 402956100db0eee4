//! azwi-webhook: a mutating admission webhook that gives pods an Azure identity.

pub mod k8s;
pub mod review;
pub mod server;
pub mod settings;
pub mod tls;
