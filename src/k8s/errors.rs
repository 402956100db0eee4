//! Turning Kubernetes client errors into one short line for admission messages and logs.

/// Longest failure reason passed on; API server messages can embed whole objects.
pub const MAX_REASON_LEN: usize = 300;

/// The message and its causes on one line: the useful part ("connection refused", "file not
/// found", "invalid certificate") usually lives in the source chain.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// The API status for answered requests (code, reason, message), else the error's source chain,
/// cut to [`MAX_REASON_LEN`].
pub fn short_reason(error: &kube::Error) -> String {
    let mut reason = match error {
        kube::Error::Api(status) => {
            let mut text = format!("API server answered {}", status.code);
            if !status.reason.is_empty() {
                text.push(' ');
                text.push_str(&status.reason);
            }
            if !status.message.is_empty() {
                text.push_str(": ");
                text.push_str(&status.message);
            }
            text
        }
        other => error_chain(other),
    };
    truncate(&mut reason, MAX_REASON_LEN);
    reason
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn truncate(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push('…');
}
