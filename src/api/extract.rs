//! Request extractors shared by the master's APIs, so that no handler parses by hand:
//!
//! - [`StrictJson<T>`]: a JSON body decoded strictly (an empty body is `{}`; bad JSON, a
//!   missing field or an unknown key is a coded 400 naming the request).
//! - [`ApiQuery<T>`]: the query string decoded into a typed struct. DM's clients send flags as
//!   `?force`, `?force=true` or `?force=1` ([`flag`]) and lists as repeated keys or
//!   comma-separated values ([`list`]); repeated keys arrive as arrays.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::master::openapi::ApiError;
use super::openapi::model::from_slice;
use crate::error::{DmError, codes};

/// A strictly decoded JSON body.
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for StrictJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let what = format!("request body of {} {}", req.method(), req.path());
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = bytes.await.map_err(|e| {
                ApiError::from(
                    DmError::new(&codes::OPENAPI_COMMON, format!("cannot read the {what}"))
                        .with_cause_text(e.to_string()),
                )
            })?;
            Ok(StrictJson(from_slice(&body, &what)?))
        })
    }
}

/// A query string decoded into `T`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

/// The query string as a JSON object: one key per name, repeated names as arrays.
pub fn query_object(query: &str) -> Map<String, Value> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let mut obj = Map::new();
    for (k, v) in pairs {
        match obj.get_mut(&k) {
            None => {
                obj.insert(k, Value::String(v));
            }
            Some(Value::Array(a)) => a.push(Value::String(v)),
            Some(other) => {
                let first = other.take();
                *other = Value::Array(vec![first, Value::String(v)]);
            }
        }
    }
    obj
}

impl<T: DeserializeOwned> ApiQuery<T> {
    /// Decodes `query` (without the `?`).
    pub fn parse(query: &str, what: &str) -> Result<T, DmError> {
        serde_json::from_value(Value::Object(query_object(query)))
            .map_err(|e| DmError::new(&codes::OPENAPI_COMMON, format!("query of {what}: {e}")))
    }
}

impl<T: DeserializeOwned> FromRequest for ApiQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let what = format!("{} {}", req.method(), req.path());
        std::future::ready(
            ApiQuery::<T>::parse(req.query_string(), &what)
                .map(ApiQuery)
                .map_err(ApiError::from),
        )
    }
}

/// A query value: one, or several for a repeated key.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A flag: present empty, `true` or `1` is true (any of a repeated key).
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(OneOrMany::deserialize(d)?
        .into_vec()
        .iter()
        .any(|v| v.is_empty() || v == "true" || v == "1"))
}

/// A list: every value of a repeated key, comma-separated values split, blanks dropped.
pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(OneOrMany::deserialize(d)?
        .into_vec()
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect())
}

/// `?with_status`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct WithStatus {
    #[serde(deserialize_with = "flag")]
    pub with_status: bool,
}

/// `?force`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Force {
    #[serde(deserialize_with = "flag")]
    pub force: bool,
}

/// `?source_name_list=a&source_name_list=b` (or `a,b`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct SourceNames {
    #[serde(deserialize_with = "list")]
    pub source_name_list: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Q {
        #[serde(deserialize_with = "flag")]
        force: bool,
        #[serde(deserialize_with = "flag")]
        keep_meta: bool,
        #[serde(deserialize_with = "list")]
        source_name_list: Vec<String>,
    }

    #[test]
    fn flags_and_lists_as_dms_clients_send_them() {
        let q: Q =
            ApiQuery::<Q>::parse("force&source_name_list=a&source_name_list=b,c", "t").unwrap();
        assert_eq!(
            q,
            Q {
                force: true,
                keep_meta: false,
                source_name_list: vec!["a".into(), "b".into(), "c".into()],
            }
        );
        let q: Q = ApiQuery::<Q>::parse("force=false&keep_meta=1", "t").unwrap();
        assert!(!q.force && q.keep_meta);
        let q: Q = ApiQuery::<Q>::parse("", "t").unwrap();
        assert_eq!(q, Q::default());
        // Unknown parameters are ignored, as DM's OpenAPI does.
        assert!(ApiQuery::<Q>::parse("page=2", "t").is_ok());
    }
}
