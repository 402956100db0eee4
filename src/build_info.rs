//! What is running: the crate version, the git commit and the build time, fixed at compile time by
//! `build.rs`. Shown by `azwi-webhook version` and as labels of `azwi_build_info`.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The full commit id the binary was built from, or "unknown" (a build without `.git` and without
/// `AZWI_GIT_COMMIT`).
pub const GIT_COMMIT: &str = env!("AZWI_BUILD_GIT_COMMIT");
/// Seconds since the Unix epoch (`SOURCE_DATE_EPOCH` or the build time), or "unknown".
const BUILD_EPOCH: &str = env!("AZWI_BUILD_EPOCH");

/// The build time in RFC 3339, UTC (`2026-12-03T10:00:41Z`), or "unknown".
pub fn build_date() -> String {
    BUILD_EPOCH
        .parse::<i64>()
        .ok()
        .and_then(rfc3339_utc)
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The lines `azwi-webhook version` prints.
pub fn version_text() -> String {
    format!(
        "azwi-webhook {VERSION}\ncommit: {GIT_COMMIT}\nbuild date: {}\n",
        build_date()
    )
}

fn rfc3339_utc(epoch: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_format_as_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339_utc(1_709_251_199).as_deref(),
            Some("2024-02-29T23:59:59Z")
        );
        assert_eq!(rfc3339_utc(i64::MAX), None);
    }

    #[test]
    fn version_text_names_version_commit_and_date() {
        let text = version_text();
        assert!(
            text.starts_with(&format!("azwi-webhook {VERSION}\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("\ncommit: {GIT_COMMIT}\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("\nbuild date: {}\n", build_date())),
            "{text}"
        );
    }
}
