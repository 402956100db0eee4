//! Serving certificates: generation of a CA and a serving certificate (for `azwi-webhook certs`), and
//! self-managed rotation (`serve` without `--disable-cert-rotation`): the CA and serving certificate live in
//! a Secret, the CA bundle in the MutatingWebhookConfiguration, the serving certificate goes straight into
//! the TLS resolver.

mod extensions;
pub mod generate;
pub mod plan;
pub mod rotate;
mod secret;
mod webhook_config;

pub use generate::{
    generate, write_dev_certs, CertsError, GeneratedCerts, ServingNames, SigningCa,
};
pub use plan::{CertData, Plan, Policy};
pub use rotate::{start_rotation, RotateError, RotationConfig, Rotator};
