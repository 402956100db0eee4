//! Parsers for single serve-flag values: listen addresses, durations and the closed sets (TLS version,
//! metrics backend, log level, RBAC check mode). Kept apart from the clap definitions so that every rule and
//! every message is a plain function with a table test.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::error::ConfigError;
use crate::mutate::settings::RbacCheck;

/// The TLS listener's own type: config only decides which value the flag gives.
pub use crate::tls::TlsMinVersion;

/// `--log-level`: the webhook's verbosity, also passed on to the proxy sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Flag absent or empty: warnings and errors only (upstream's default).
    #[default]
    Unset,
    Info,
    Debug,
    Trace,
    All,
}

impl LogLevel {
    /// The flag value as given (lower case), `""` when unset; this is what the proxy sidecar receives.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
            Self::All => "all",
        }
    }

    /// A `tracing_subscriber::EnvFilter` directive for this level (`all` is as verbose as `trace`).
    pub fn tracing_directive(self) -> &'static str {
        match self {
            Self::Unset => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace | Self::All => "trace",
        }
    }
}

pub fn tls_min_version(value: &str) -> Result<TlsMinVersion, ConfigError> {
    match value {
        "1.2" => Ok(TlsMinVersion::V1_2),
        "1.3" => Ok(TlsMinVersion::V1_3),
        "1.0" | "1.1" => Err(ConfigError::TlsVersionInsecure {
            value: value.to_owned(),
        }),
        _ => Err(ConfigError::TlsVersion {
            value: value.to_owned(),
        }),
    }
}

/// `--metrics-backend`: only Prometheus exists (upstream too), so there is nothing to choose, only a
/// value to check. Case-insensitive, as upstream.
pub fn metrics_backend(value: &str) -> Result<(), ConfigError> {
    if value.eq_ignore_ascii_case("prometheus") {
        Ok(())
    } else {
        Err(ConfigError::MetricsBackend {
            value: value.to_owned(),
        })
    }
}

/// Case-insensitive; `""` (upstream's default, `--log-level=`) means unset.
pub fn log_level(value: &str) -> Result<LogLevel, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "" => Ok(LogLevel::Unset),
        "info" => Ok(LogLevel::Info),
        "debug" => Ok(LogLevel::Debug),
        "trace" => Ok(LogLevel::Trace),
        "all" => Ok(LogLevel::All),
        _ => Err(ConfigError::LogLevel {
            value: value.to_owned(),
        }),
    }
}

pub fn rbac_check(value: &str) -> Result<RbacCheck, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "deny" => Ok(RbacCheck::Deny),
        "warn" => Ok(RbacCheck::Warn),
        "off" => Ok(RbacCheck::Off),
        _ => Err(ConfigError::RbacCheck {
            value: value.to_owned(),
        }),
    }
}

/// Parses a Go-style listen address. `:PORT` means every interface and becomes `[::]:PORT`, which on Linux
/// accepts IPv4 too (dual stack), like Go's listener; see [`ipv4_fallback`] for hosts without IPv6.
/// `HOST:PORT` with a host name is resolved once, here, and the first address is used.
pub fn listen_addr(flag: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    let err = |reason: &str| ConfigError::ListenAddress {
        flag,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(port) = value.strip_prefix(':').filter(|p| !p.contains(':')) {
        let port = port
            .parse::<u16>()
            .map_err(|_| err("the port must be a number from 0 to 65535"))?;
        return Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
    }
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(err("missing port"));
    };
    if host.contains(':') {
        return Err(err("an IPv6 host must be in brackets"));
    }
    if host.is_empty() || host.contains(['[', ']']) {
        return Err(err("the host is not an IP address or host name"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| err("the port must be a number from 0 to 65535"))?;
    (host, port)
        .to_socket_addrs()
        .map_err(|e| err(&format!("cannot resolve {host:?}: {e}")))?
        .next()
        .ok_or_else(|| err(&format!("{host:?} resolves to no address")))
}

/// For an all-interfaces IPv6 address (what `:PORT` becomes), the IPv4 all-interfaces address with the same
/// port: the server should bind that instead when the kernel has IPv6 disabled and binding `[::]` fails.
pub fn ipv4_fallback(addr: SocketAddr) -> Option<SocketAddr> {
    (addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        .then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port()))
}

/// Parses a duration like Go's `time.ParseDuration` restricted to whole numbers: one or more
/// `<digits><unit>` with unit `ms`, `s`, `m` or `h` (`1m30s`), or a bare `0`.
pub fn duration(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let err = |reason: &str| ConfigError::Duration {
        flag,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    if value.is_empty() {
        return Err(err("it is empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(err("expected a whole number before each unit"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| err("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "" if rest.starts_with('.') => {
                return Err(err(
                    "fractions are not accepted; use a smaller unit (1500ms, not 1.5s)",
                ))
            }
            "" => return Err(err("a unit (ms, s, m or h) is missing")),
            _ => return Err(err("the unit must be ms, s, m or h")),
        };
        rest = &rest[unit_len..];
        total = total
            .checked_add(part)
            .ok_or_else(|| err("it is too long"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_versions() {
        assert_eq!(tls_min_version("1.2"), Ok(TlsMinVersion::V1_2));
        assert_eq!(tls_min_version("1.3"), Ok(TlsMinVersion::V1_3));
        for old in ["1.0", "1.1"] {
            let msg = tls_min_version(old).err().map(|e| e.to_string());
            assert!(msg.is_some_and(|m| m.contains("--tls-min-version") && m.contains("refused")));
        }
        let msg = tls_min_version("1.4").err().map(|e| e.to_string());
        assert_eq!(
            msg.as_deref(),
            Some("--tls-min-version \"1.4\" is not supported; accepted: 1.2, 1.3")
        );
    }

    #[test]
    fn closed_sets_are_case_insensitive_and_name_their_flag() {
        assert_eq!(metrics_backend("Prometheus"), Ok(()));
        assert!(metrics_backend("otlp")
            .err()
            .is_some_and(|e| e.to_string().starts_with("--metrics-backend \"otlp\"")));
        assert_eq!(log_level(""), Ok(LogLevel::Unset));
        assert_eq!(log_level("INFO"), Ok(LogLevel::Info));
        assert_eq!(log_level("all").map(LogLevel::as_str), Ok("all"));
        assert!(log_level("warn")
            .err()
            .is_some_and(|e| e.to_string().starts_with("--log-level \"warn\"")));
        assert_eq!(rbac_check("Warn"), Ok(RbacCheck::Warn));
        assert_eq!(rbac_check("off"), Ok(RbacCheck::Off));
        assert!(rbac_check("allow")
            .err()
            .is_some_and(|e| e.to_string().starts_with("--rbac-check \"allow\"")));
    }

    #[test]
    fn listen_addresses() {
        let ok = [
            (":9443", "[::]:9443"),
            ("0.0.0.0:8095", "0.0.0.0:8095"),
            ("127.0.0.1:0", "127.0.0.1:0"),
            ("[::1]:9440", "[::1]:9440"),
        ];
        for (raw, want) in ok {
            assert_eq!(
                listen_addr("--webhook-addr", raw).map(|a| a.to_string()),
                Ok(want.to_owned()),
                "{raw}"
            );
        }
        assert!(listen_addr("--health-addr", "localhost:9440").is_ok_and(|a| a.port() == 9440));
        for (raw, reason) in [
            ("9443", "missing port"),
            (":http", "port must be a number"),
            (":70000", "port must be a number"),
            ("::1:9443", "in brackets"),
            ("[x]:1", "host is not"),
            ("", "missing port"),
        ] {
            let msg = listen_addr("--health-addr", raw)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.starts_with("--health-addr"), "{raw}: {msg}");
            assert!(msg.contains(reason), "{raw}: {msg}");
        }
    }

    #[test]
    fn ipv4_fallback_only_for_all_interfaces() {
        let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 9443);
        assert_eq!(
            ipv4_fallback(any6).map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:9443")
        );
        let lo: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        assert_eq!(ipv4_fallback(lo), None);
    }

    #[test]
    fn durations() {
        let ok = [
            ("0", 0),
            ("5s", 5_000),
            ("500ms", 500),
            ("1m", 60_000),
            ("1m30s", 90_000),
            ("2h", 7_200_000),
            ("0s", 0),
        ];
        for (raw, ms) in ok {
            assert_eq!(
                duration("--shutdown-delay", raw),
                Ok(Duration::from_millis(ms)),
                "{raw}"
            );
        }
        for (raw, reason) in [
            ("5", "unit"),
            ("", "empty"),
            ("s", "whole number"),
            ("1.5s", "fractions"),
            ("5d", "unit must be"),
            ("-5s", "whole number"),
            ("99999999999999999999s", "too large"),
        ] {
            let msg = duration("--shutdown-delay", raw)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.starts_with("--shutdown-delay"), "{raw}: {msg}");
            assert!(msg.contains(reason), "{raw}: {msg}");
        }
    }
}
