//! The JSON-lines layer: each event becomes one object, `{"timestamp":…,"level":…,"message":…,
//! <fields>…,"target":…}`, written straight into a reused per-thread buffer.
//!
//! tracing-subscriber's JSON formatter first copies every field into a `BTreeMap` of
//! `serde_json::Value`s (an allocation per field) and formats the timestamp through `fmt`; at one line
//! per admission review that was most of the logging cost on the request path. Here a field is
//! escaped from its source into the line as it is visited, and the line costs no allocation once the
//! thread's buffer has grown to a line's size.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};

use crate::json_text;

/// A line longer than this is not kept as the thread's buffer, so one huge event does not pin memory.
const KEPT_BUFFER_BYTES: usize = 16 * 1024;

thread_local! {
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes each event as one JSON line to a writer from `make_writer`.
pub struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W> {
    pub fn new(make_writer: W) -> Self {
        JsonLines { make_writer }
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let write = |line: &mut Vec<u8>| {
            line.clear();
            format_event(line, event, SystemTime::now());
            // A log line that cannot be written has nowhere else to go.
            let _ = self.make_writer.make_writer().write_all(line);
        };
        let reused = LINE.try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                write(&mut line);
                if line.capacity() > KEPT_BUFFER_BYTES {
                    *line = Vec::new();
                }
                true
            }
            // An event logged while formatting another one (a field's `Display` that logs).
            Err(_) => false,
        });
        if reused != Ok(true) {
            write(&mut Vec::with_capacity(256));
        }
    }
}

/// Appends the event's line, newline included, to `line`.
fn format_event(line: &mut Vec<u8>, event: &Event<'_>, now: SystemTime) {
    let metadata = event.metadata();
    line.extend_from_slice(b"{\"timestamp\":\"");
    write_timestamp(line, now);
    line.extend_from_slice(b"\",\"level\":\"");
    line.extend_from_slice(metadata.level().as_str().as_bytes());
    line.push(b'"');
    event.record(&mut FieldWriter { line });
    line.extend_from_slice(b",\"target\":");
    json_text::push_str(line, metadata.target());
    line.extend_from_slice(b"}\n");
}

/// Appends each field as `,"name":value`.
struct FieldWriter<'a> {
    line: &'a mut Vec<u8>,
}

impl FieldWriter<'_> {
    fn key(&mut self, field: &Field) {
        self.line.push(b',');
        json_text::push_str(self.line, field.name());
        self.line.push(b':');
    }

    fn number(&mut self, field: &Field, value: impl itoa::Integer) {
        self.key(field);
        self.line
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        json_text::push_str(self.line, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.number(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.number(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.line
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            self.line
                .extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
        } else {
            // JSON has no NaN or infinity: written as a string, as serde_json's `Value` cannot.
            self.line.push(b'"');
            let _ = write!(Escaped(self.line), "{value}");
            self.line.push(b'"');
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.key(field);
        self.line.push(b'"');
        let _ = write!(Escaped(self.line), "{value}");
        self.line.push(b'"');
    }

    /// Also `%value` fields and the message: `tracing` hands `Display` over as `Debug`.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.line.push(b'"');
        let _ = write!(Escaped(self.line), "{value:?}");
        self.line.push(b'"');
    }
}

/// A `fmt::Write` that escapes what it is given as the inside of a JSON string.
struct Escaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        json_text::push_escaped(self.0, s);
        Ok(())
    }
}

/// RFC 3339 in UTC with microseconds, `2026-12-03T12:30:05.123456Z`.
pub(super) fn write_timestamp(line: &mut Vec<u8>, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let second_of_day = secs % 86_400;
    let fields = [
        (u64::from(month), 2, b'-'),
        (u64::from(day), 2, b'T'),
        (second_of_day / 3600, 2, b':'),
        (second_of_day / 60 % 60, 2, b':'),
        (second_of_day % 60, 2, b'.'),
        (u64::from(since_epoch.subsec_micros()), 6, b'Z'),
    ];
    push_digits(line, year, 4);
    line.push(b'-');
    for (value, width, after) in fields {
        push_digits(line, value, width);
        line.push(after);
    }
}

/// `value` in exactly `width` decimal digits, zero-padded (higher digits are dropped).
fn push_digits(line: &mut Vec<u8>, value: u64, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u64.pow(place) % 10;
        line.push(b'0' + digit as u8);
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn timestamp(secs: u64, micros: u32) -> String {
        let mut line = Vec::new();
        write_timestamp(&mut line, UNIX_EPOCH + Duration::new(secs, micros * 1000));
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (a leap day in a century leap year), 23:59:59.999999.
        assert_eq!(
            timestamp(951_868_799, 999_999),
            "2000-02-29T23:59:59.999999Z"
        );
        assert_eq!(timestamp(1_796_300_405, 42), "2026-12-03T12:20:05.000042Z");
        // 2100 is not a leap year: the day after 2100-02-28 is 2100-03-01.
        assert_eq!(timestamp(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
    }

    #[test]
    fn every_day_matches_a_day_by_day_count() {
        let (mut year, mut month, mut day) = (1970u64, 1u32, 1u32);
        for days in 0..(200 * 366) {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let month_days = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > month_days {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }
}
