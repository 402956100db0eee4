//! The shutdown timing of `serve`: how long it keeps serving after SIGTERM, how long it then waits
//! for in-flight requests, and whether both fit in the pod's termination grace period.

use std::time::Duration;

use super::cli::ServeArgs;
use super::error::ConfigError;
use super::values;

/// Time kept after the drain bound for cutting the connections left and exiting, before the
/// kubelet's SIGKILL at the end of the grace period.
pub const SHUTDOWN_EXIT_MARGIN: Duration = Duration::from_secs(2);

/// `--shutdown-delay` and `--shutdown-drain-timeout`, checked against `--termination-grace-period`
/// when it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownTiming {
    pub delay: Duration,
    pub drain: Duration,
}

impl ShutdownTiming {
    pub fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
        let timing = ShutdownTiming {
            delay: values::duration("--shutdown-delay", &args.shutdown_delay)?,
            drain: values::duration("--shutdown-drain-timeout", &args.shutdown_drain_timeout)?,
        };
        if let Some(raw) = &args.termination_grace_period {
            let grace = values::duration("--termination-grace-period", raw)?;
            let needed = timing.needed();
            if needed > grace {
                return Err(ConfigError::ShutdownExceedsGracePeriod {
                    grace: raw.clone(),
                    delay: args.shutdown_delay.clone(),
                    drain: args.shutdown_drain_timeout.clone(),
                    margin_secs: SHUTDOWN_EXIT_MARGIN.as_secs(),
                    needed_secs: whole_seconds_up(needed),
                });
            }
        }
        Ok(timing)
    }

    /// The grace period a pod needs so that the process exits on its own after SIGTERM.
    pub fn needed(self) -> Duration {
        self.delay
            .saturating_add(self.drain)
            .saturating_add(SHUTDOWN_EXIT_MARGIN)
    }
}

fn whole_seconds_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
