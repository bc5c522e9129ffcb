//! Query parameters shared by the listings: time ranges, page size and opaque cursors. Each
//! bad value is a 400 that names the parameter and what it accepts.

use super::error::ApiError;
use crate::event_type::EventPattern;
use crate::store::Keyset;
use crate::time_filter;
use axum::extract::{FromRequest, FromRequestParts, Json, Path, Query};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Query parameters; unknown ones are refused (`deny_unknown_fields`), so a typo such as
/// `?sorce=github` is a 400 rather than a silently unfiltered listing.
#[derive(FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct Params<T>(pub T);

/// A path segment such as `{id}`.
#[derive(FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct Id<T>(pub T);

/// A JSON request body.
#[derive(FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// One page of a listing.
#[derive(Debug, Serialize)]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// A time parameter: RFC 3339, or an age such as `12h` meaning that long ago.
pub fn time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|text| {
            let at = time_filter::parse(text, Utc::now()).ok_or_else(|| {
                ApiError::bad(
                    "bad-time",
                    format!(
                        "{name}={text:?} is neither an RFC 3339 time (2026-11-23T08:00:00Z) \
                         nor an age (12h)"
                    ),
                )
            })?;
            match in_range(at) {
                true => Ok(at),
                false => Err(ApiError::bad(
                    "bad-time",
                    format!("{name}={text:?} is outside the years 1 to 9999"),
                )),
            }
        })
        .transpose()
}

/// Within what Postgres stores (and beyond any event): a time outside it is the client's
/// mistake, to be answered 400, not a database error answered 503.
fn in_range(at: DateTime<Utc>) -> bool {
    (1..=9999).contains(&chrono::Datelike::year(&at))
}

/// A text parameter compared with stored text, which cannot hold NUL.
pub fn text(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.contains('\0') => Err(ApiError::bad(
            "bad-query",
            format!("{name} must not contain NUL"),
        )),
        other => Ok(other),
    }
}

/// An event type, or a prefix ending in `*`, as a destination's `events` entry is written.
pub fn event_type(value: Option<String>) -> Result<Option<String>, ApiError> {
    let value = text("event_type", value)?;
    if let Some(Err(e)) = value.as_deref().map(EventPattern::parse) {
        return Err(ApiError::bad(
            "bad-query",
            format!("event_type={:?} {e}", value.unwrap_or_default()),
        ));
    }
    Ok(value)
}

/// `since` (inclusive) and `until` (exclusive).
pub struct Range {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Parses `since` and `until`, checked to describe a non-empty range.
pub fn range(since: Option<&str>, until: Option<&str>) -> Result<Range, ApiError> {
    let range = Range {
        since: time("since", since)?,
        until: time("until", until)?,
    };
    if let (Some(s), Some(u)) = (range.since, range.until)
        && s >= u
    {
        return Err(ApiError::bad(
            "bad-time",
            "since must be earlier than until",
        ));
    }
    Ok(range)
}

/// One page of a newest-first listing.
pub struct Page {
    pub limit: u32,
    /// Items strictly older than this; `None` for the first page.
    pub before: Option<Keyset>,
}

impl Page {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<u32>() {
                Ok(n @ 1..=MAX_LIMIT) => n,
                _ => {
                    return Err(ApiError::bad(
                        "bad-limit",
                        format!("limit={text:?} must be a whole number from 1 to {MAX_LIMIT}"),
                    ));
                }
            },
        };
        let before = cursor.map(decode_cursor).transpose()?;
        Ok(Self { limit, before })
    }

    /// How many rows to fetch: one more than the page, to learn whether another follows.
    pub fn fetch(&self) -> u32 {
        self.limit + 1
    }

    /// Cuts `rows` (fetched with [`Page::fetch`]) to the page, with the cursor of the next
    /// page if there is one.
    pub fn listing<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> Keyset) -> Listing<T> {
        let next_cursor = match rows.len() > self.limit as usize {
            true => {
                rows.truncate(self.limit as usize);
                rows.last().map(|last| encode_cursor(key(last)))
            }
            false => None,
        };
        Listing {
            items: rows,
            next_cursor,
        }
    }
}

/// Opaque to clients; inside, the last item's time (microseconds, Postgres' precision) and id.
fn encode_cursor(at: Keyset) -> String {
    BASE64URL.encode(format!("{}/{}", at.at.timestamp_micros(), at.id))
}

fn decode_cursor(text: &str) -> Result<Keyset, ApiError> {
    let decoded = BASE64URL
        .decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|inner| {
            let (micros, id) = inner.split_once('/')?;
            let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
            in_range(at).then_some(Keyset {
                at,
                id: Uuid::parse_str(id).ok()?,
            })
        });
    decoded.ok_or_else(|| {
        ApiError::bad(
            "bad-cursor",
            "cursor is not one this API returned; pass next_cursor from the previous page as is",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let key = Keyset {
            at: "2026-11-23T08:00:00.123456Z".parse().unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(decode_cursor(&encode_cursor(key)).unwrap(), key);
        for bad in [
            "",
            "!!",
            "bm90LWEtY3Vyc29y",
            &BASE64URL.encode("1/not-a-uuid"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits_default_and_are_bounded() {
        assert_eq!(Page::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(Page::parse(Some("500"), None).unwrap().limit, 500);
        for bad in ["0", "501", "-1", "ten", "1e3"] {
            assert!(Page::parse(Some(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_keeps_its_limit_and_points_past_its_last_row() {
        let page = Page::parse(Some("2"), None).unwrap();
        let key = |n: &i64| Keyset {
            at: DateTime::from_timestamp_micros(*n).unwrap(),
            id: Uuid::nil(),
        };
        let listing = page.listing(vec![3, 2, 1], key);
        assert_eq!(listing.items, [3, 2]);
        assert_eq!(
            decode_cursor(&listing.next_cursor.unwrap()).unwrap(),
            key(&2)
        );
        assert_eq!(page.listing(vec![1], key).next_cursor, None);
    }

    #[test]
    fn ranges_must_not_be_empty() {
        assert!(range(Some("2026-11-23T08:00:00Z"), Some("2026-11-23T07:00:00Z")).is_err());
        assert!(range(Some("2026-11-23T08:00:00Z"), Some("2026-11-23T09:00:00Z")).is_ok());
        assert!(range(Some("last tuesday"), None).is_err());
        assert!(range(Some("10000y"), None).is_err());
        assert!(text("source", Some("a\0b".into())).is_err());
        assert!(event_type(Some("in*voice".into())).is_err());
        assert!(event_type(Some(String::new())).is_err());
        assert_eq!(
            event_type(Some("invoice.*".into())).unwrap().unwrap(),
            "invoice.*"
        );
    }
}
