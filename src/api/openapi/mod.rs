//! dm-master's OpenAPI (`/api/v1/`, DM's `openapi/spec/dm.yaml`): the JSON models with DM's
//! field names, their conversions to and from dm-rs configs and status views, and the served
//! OpenAPI document and docs page.

pub mod convert;
pub mod model;
pub mod spec;
