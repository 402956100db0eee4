//! Serving certificates: generation of a CA and a serving certificate for `azwi-webhook certs` (or of a
//! serving certificate signed by an existing CA), and self-managed rotation (`serve` without
//! `--disable-cert-rotation`): the CA and serving certificate live in a Secret, the CA bundle in the
//! MutatingWebhookConfiguration (both watched, so changes are repaired within seconds), the serving
//! certificate goes straight into the TLS resolver.

pub mod cli;
mod dev_certs;
mod existing_ca;
mod extensions;
pub mod generate;
pub mod plan;
pub mod rotate;
mod secret;
mod watch;
mod webhook_config;

pub use dev_certs::{write_dev_certs, DevCerts, DevCertsError, Written};
pub use existing_ca::{ExistingCa, ExistingCaError};
pub use generate::{generate, CertsError, GeneratedCerts, ServingNames, SigningCa};
pub use plan::{CertData, Plan, Policy};
pub use rotate::{start_rotation, RotateError, RotationConfig, Rotator};
