//! `azwi-webhook certs` as users run it (the real binary): files and modes, refusal to overwrite without
//! `--force`, signing with an existing CA, IP SANs, exit statuses and `--help`.

#[path = "support/process.rs"]
mod process;
#[path = "support/strict_der.rs"]
mod strict_der;
#[path = "support/tls.rs"]
mod tls_support;

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use strict_der::strict_pem;
use tempfile::TempDir;
use x509_parser::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_azwi-webhook");
const DEADLINE: Duration = Duration::from_secs(20);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `azwi-webhook certs ARGS` with an empty environment plus `env`.
fn certs(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(BIN);
    command
        .arg("certs")
        .args(args)
        .env_clear()
        .envs(env.iter().copied());
    let (code, stdout, stderr) = process::run_to_exit(command, DEADLINE);
    Run {
        code,
        stdout,
        stderr,
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Every file in `dir` (hidden ones included) with its contents.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let entry = entry.expect("entry");
            (
                entry.file_name().to_string_lossy().into_owned(),
                fs::read(entry.path()).expect("read"),
            )
        })
        .collect()
}

fn text(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A one-line error on stderr, nothing on stdout, exit status `code`.
fn assert_refused(run: &Run, code: i32, needles: &[&str]) {
    assert_eq!(run.code, Some(code), "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "{needle:?} not in {}",
            run.stderr
        );
    }
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM certificate")
        .as_ref()
        .to_vec()
}

/// Whether a TLS client trusting only `ca_pem` accepts `leaf_pem` for `name` now.
fn client_accepts(ca_pem: &str, leaf_pem: &str, name: &str) -> bool {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(der(ca_pem)))
        .expect("CA as trust anchor");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .expect("verifier");
    let leaf = CertificateDer::from(der(leaf_pem));
    let now = UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970"),
    );
    let server_name = ServerName::try_from(name.to_owned()).expect("server name");
    verifier
        .verify_server_cert(&leaf, &[], &server_name, &[], now)
        .is_ok()
}

#[cfg(unix)]
fn mode(file: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(file).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn a_new_ca_and_serving_certificate_are_written_with_private_keys_0600() {
    let dir = TempDir::new().expect("tempdir");
    let out = dir.path().join("new/certs");
    let run = certs(&["--out", path(&out), "--dns-name", "a.b.svc"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("ca.crt, ca.key, tls.crt, tls.key"),
        "{}",
        run.stderr
    );

    let ca = text(&out, "ca.crt");
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(run.stdout.trim())
        .expect("base64 caBundle on stdout");
    assert_eq!(bundle, ca.as_bytes());
    assert!(text(&out, "ca.key").contains("BEGIN PRIVATE KEY"));
    assert!(client_accepts(&ca, &text(&out, "tls.crt"), "a.b.svc"));
    let leaf = strict_pem(&text(&out, "tls.crt")).expect("strict DER");
    assert_eq!(leaf[0].dns_names, ["a.b.svc"]);
    assert!(strict_pem(&ca).expect("strict DER")[0].is_ca());
    assert_eq!(
        snapshot(&out).into_keys().collect::<Vec<_>>(),
        ["ca.crt", "ca.key", "tls.crt", "tls.key"],
        "no temporary file left behind"
    );
    #[cfg(unix)]
    for (file, want) in [
        ("ca.crt", 0o644),
        ("tls.crt", 0o644),
        ("ca.key", 0o600),
        ("tls.key", 0o600),
    ] {
        assert_eq!(mode(&out.join(file)), want, "{file}");
    }
}

#[test]
fn existing_files_are_left_untouched_without_force_and_replaced_with_it() {
    let dir = TempDir::new().expect("tempdir");
    let out = dir.path();
    assert_eq!(
        certs(&["--out", path(out), "--dns-name", "a.svc"], &[]).code,
        Some(0)
    );
    let before = snapshot(out);

    let refused = certs(&["--out", path(out), "--dns-name", "a.svc"], &[]);
    assert_refused(
        &refused,
        2,
        &["already exist", "--force", "ca.crt", "tls.key"],
    );
    assert_eq!(snapshot(out), before, "files untouched");

    // One file in the way is enough, and nothing else is created.
    let partial = TempDir::new().expect("tempdir");
    fs::write(partial.path().join("tls.key"), "mine").expect("write");
    let refused = certs(&["--out", path(partial.path()), "--dns-name", "a.svc"], &[]);
    assert_refused(&refused, 2, &["tls.key already exists"]);
    assert_eq!(snapshot(partial.path()).len(), 1);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(out.join("tls.key"), fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let forced = certs(&["--out", path(out), "--dns-name", "a.svc", "--force"], &[]);
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    let after = snapshot(out);
    assert_eq!(after.len(), 4);
    for file in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        assert_ne!(after[file], before[file], "{file} replaced");
    }
    #[cfg(unix)]
    assert_eq!(
        mode(&out.join("tls.key")),
        0o600,
        "a too-open key file is replaced by a 0600 one"
    );
}

#[test]
fn an_existing_ca_signs_the_new_serving_certificate() {
    let dir = TempDir::new().expect("tempdir");
    let first = dir.path().join("first");
    assert_eq!(
        certs(&["--out", path(&first), "--dns-name", "a.svc"], &[]).code,
        Some(0)
    );
    let ca_pem = text(&first, "ca.crt");
    let (ca_cert, ca_key) = (first.join("ca.crt"), first.join("ca.key"));

    let renewed = dir.path().join("renewed");
    let run = certs(
        &[
            "--out",
            path(&renewed),
            "--dns-name",
            "a.svc",
            "--ca-cert",
            path(&ca_cert),
            "--ca-key",
            path(&ca_key),
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("signed by the CA in"), "{}", run.stderr);
    assert_eq!(
        snapshot(&renewed).into_keys().collect::<Vec<_>>(),
        ["ca.crt", "tls.crt", "tls.key"],
        "the CA key is not copied"
    );
    assert_eq!(text(&renewed, "ca.crt"), ca_pem, "same CA");
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(run.stdout.trim())
        .expect("base64");
    assert_eq!(
        bundle,
        ca_pem.as_bytes(),
        "the caBundle already installed stays valid"
    );
    let leaf_pem = text(&renewed, "tls.crt");
    assert_ne!(
        leaf_pem,
        text(&first, "tls.crt"),
        "a new serving certificate"
    );
    assert!(client_accepts(&ca_pem, &leaf_pem, "a.svc"));
    strict_pem(&leaf_pem).expect("strict DER");

    // Renewing in place needs --force, and keeps the CA.
    let in_place_args = [
        "--out",
        path(&first),
        "--dns-name",
        "a.svc",
        "--ca-cert",
        path(&ca_cert),
        "--ca-key",
        path(&ca_key),
    ];
    assert_refused(&certs(&in_place_args, &[]), 2, &["--force"]);
    let in_place = certs(&[&in_place_args[..], &["--force"]].concat(), &[]);
    assert_eq!(in_place.code, Some(0), "{}", in_place.stderr);
    assert_eq!(text(&first, "ca.crt"), ca_pem);
    assert!(client_accepts(&ca_pem, &text(&first, "tls.crt"), "a.svc"));
}

/// A CA made elsewhere (another name, another key type, a key identifier of its own): the serving
/// certificate names it byte for byte and carries its key identifier, or clients would not chain it.
#[test]
fn a_foreign_ca_is_named_exactly_in_the_serving_certificate() {
    let dir = TempDir::new().expect("tempdir");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example Org");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Example Root CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![7; 20]);
    let ca = params.self_signed(&key).expect("CA");
    fs::write(dir.path().join("root.crt"), ca.pem()).expect("write");
    fs::write(dir.path().join("root.key"), key.serialize_pem()).expect("write");

    let out = dir.path().join("out");
    let run = certs(
        &[
            "--out",
            path(&out),
            "--dns-name",
            "a.svc",
            "--ca-cert",
            path(&dir.path().join("root.crt")),
            "--ca-key",
            path(&dir.path().join("root.key")),
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let leaf_pem = text(&out, "tls.crt");
    assert!(client_accepts(&ca.pem(), &leaf_pem, "a.svc"));
    let leaf_der = der(&leaf_pem);
    let (_, leaf) = parse_x509_certificate(&leaf_der).expect("leaf");
    let (_, root) = parse_x509_certificate(ca.der()).expect("root");
    assert_eq!(leaf.issuer().as_raw(), root.subject().as_raw());
    let aki = leaf
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.clone(),
            _ => None,
        })
        .expect("authority key identifier");
    assert_eq!(aki.0, [7; 20]);
    leaf.verify_signature(Some(root.public_key()))
        .expect("signed by the root's key");
}

#[test]
fn an_unusable_ca_is_refused_before_anything_is_written() {
    let dir = TempDir::new().expect("tempdir");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for out in [&a, &b] {
        assert_eq!(
            certs(&["--out", path(out), "--dns-name", "a.svc"], &[]).code,
            Some(0)
        );
    }
    fs::write(dir.path().join("junk.pem"), "not a certificate").expect("write");
    let pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n";
    fs::write(dir.path().join("rsa.key"), pkcs1).expect("write");
    let expired = {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = ::time::OffsetDateTime::UNIX_EPOCH + ::time::Duration::days(365 * 30);
        params.not_after = ::time::OffsetDateTime::UNIX_EPOCH + ::time::Duration::days(365 * 31);
        fs::write(
            dir.path().join("old.crt"),
            params.self_signed(&key).expect("CA").pem(),
        )
        .expect("write");
        fs::write(dir.path().join("old.key"), key.serialize_pem()).expect("write");
        (dir.path().join("old.crt"), dir.path().join("old.key"))
    };
    let two = format!("{}{}", text(&a, "ca.crt"), text(&b, "ca.crt"));
    fs::write(dir.path().join("two.crt"), two).expect("write");

    let cases: Vec<(PathBuf, PathBuf, Vec<&str>)> = vec![
        (
            a.join("ca.crt"),
            b.join("ca.key"),
            vec!["--ca-key", "is not the private key of"],
        ),
        (
            a.join("tls.crt"),
            a.join("tls.key"),
            vec!["--ca-cert", "not a CA certificate"],
        ),
        (
            dir.path().join("junk.pem"),
            a.join("ca.key"),
            vec!["--ca-cert", "holds no PEM certificate"],
        ),
        (
            dir.path().join("two.crt"),
            a.join("ca.key"),
            vec!["holds 2 certificates"],
        ),
        (
            a.join("ca.crt"),
            dir.path().join("rsa.key"),
            vec!["PKCS#1", "openssl pkcs8 -topk8"],
        ),
        (
            a.join("ca.crt"),
            dir.path().join("missing.key"),
            vec!["--ca-key", "missing.key"],
        ),
        (expired.0.clone(), expired.1.clone(), vec!["expired"]),
    ];
    for (cert, key, needles) in cases {
        let out = dir.path().join("never");
        let run = certs(
            &[
                "--out",
                path(&out),
                "--ca-cert",
                path(&cert),
                "--ca-key",
                path(&key),
                "--dns-name",
                "a.svc",
            ],
            &[],
        );
        assert_refused(&run, 2, &needles);
        assert!(!out.exists(), "{cert:?} {key:?}: nothing written");
    }

    // One without the other is a usage error.
    let run = certs(
        &["--out", path(&a), "--ca-cert", path(&a.join("ca.crt"))],
        &[],
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--ca-key"), "{}", run.stderr);
}

#[test]
fn ip_addresses_are_ip_address_entries_that_clients_accept() {
    let dir = TempDir::new().expect("tempdir");
    let run = certs(
        &[
            "--out",
            path(dir.path()),
            "--dns-name",
            "localhost",
            "--ip",
            "127.0.0.1",
            "--ip",
            "::1",
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("localhost, 127.0.0.1, ::1"),
        "{}",
        run.stderr
    );
    let leaf_pem = text(dir.path(), "tls.crt");
    let leaf = strict_pem(&leaf_pem).expect("strict DER");
    assert_eq!(leaf[0].dns_names, ["localhost"], "no IP as a DNS name");
    let ips: Vec<IpAddr> = ["127.0.0.1", "::1"]
        .iter()
        .map(|ip| ip.parse().expect("ip"))
        .collect();
    assert_eq!(leaf[0].ip_addresses, ips);
    let ca = text(dir.path(), "ca.crt");
    for name in ["127.0.0.1", "::1", "localhost"] {
        assert!(client_accepts(&ca, &leaf_pem, name), "{name}");
    }
    assert!(!client_accepts(&ca, &leaf_pem, "10.0.0.1"));

    // An IP given as a DNS name, or a bad IP: refused, nothing written.
    let out = dir.path().join("never");
    let run = certs(&["--out", path(&out), "--dns-name", "10.0.0.1"], &[]);
    assert_refused(&run, 2, &["--dns-name \"10.0.0.1\"", "--ip 10.0.0.1"]);
    let run = certs(&["--out", path(&out), "--ip", "10.0.0.300"], &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--ip"), "{}", run.stderr);
    assert!(!out.exists());
}

#[test]
fn without_dns_names_the_certificate_is_for_the_service_in_pod_namespace() {
    let dir = TempDir::new().expect("tempdir");
    let run = certs(
        &["--out", path(dir.path()), "--ip", "10.0.0.1"],
        &[("POD_NAMESPACE", "wi")],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let leaf = strict_pem(&text(dir.path(), "tls.crt")).expect("strict DER");
    assert_eq!(
        leaf[0].dns_names,
        ["azure-wi-webhook-webhook-service.wi.svc"]
    );
    assert_eq!(
        leaf[0].ip_addresses,
        ["10.0.0.1".parse::<IpAddr>().expect("ip")]
    );
}

#[test]
fn help_shows_examples() {
    let run = certs(&["--help"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for needle in [
        "Examples:",
        "--ca-cert",
        "--ca-key",
        "--ip <IP>",
        "--force",
        "Exit status",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle:?} not in {}",
            run.stdout
        );
    }
}
