//! Serving certificates: generation of a CA and a serving certificate (for `azwi-webhook certs` and, later,
//! self-managed rotation).

pub mod generate;

pub use generate::{generate, write_dev_certs, CertsError, GeneratedCerts};
