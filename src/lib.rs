//! azwi-webhook: a mutating admission webhook that gives pods an Azure identity.

pub mod certs;
pub mod cloud;
pub mod config;
pub mod k8s;
pub mod review;
pub mod settings;
