//! The upstream settings replication needs (binary log on, ROW format, FULL row image),
//! read and judged in one place for the precheck and the sync unit.

use mysql_async::Conn;
use mysql_async::prelude::*;

use crate::error::{DmError, codes};

/// The upstream's binlog variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinlogSettings {
    pub log_bin: String,
    pub format: String,
    /// Empty on servers older than MySQL 5.6.2 / MariaDB 10.1.6, which have no such
    /// variable and always log full rows.
    pub row_image: String,
}

impl BinlogSettings {
    /// From variables looked up by name (`SHOW GLOBAL VARIABLES` rows); a missing one is
    /// empty.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            log_bin: get("log_bin").unwrap_or_default(),
            format: get("binlog_format").unwrap_or_default(),
            row_image: get("binlog_row_image").unwrap_or_default(),
        }
    }

    /// Reads them (a variable the server lacks reads as empty).
    pub async fn read(conn: &mut Conn) -> Result<Self, mysql_async::Error> {
        let rows: Vec<(String, String)> = conn
            .query(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
                 ('log_bin', 'binlog_format', 'binlog_row_image')",
            )
            .await?;
        Ok(Self::from_vars(|n| {
            rows.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        }))
    }

    /// The binary log is on.
    pub fn log_bin_on(&self) -> bool {
        self.log_bin.eq_ignore_ascii_case("on") || self.log_bin == "1"
    }

    /// Rows are logged as row events.
    pub fn row_format(&self) -> bool {
        self.format.eq_ignore_ascii_case("row")
    }

    /// Row events carry every column (FULL, or a server without the variable).
    pub fn full_image(&self) -> bool {
        self.row_image.is_empty() || self.row_image.eq_ignore_ascii_case("full")
    }

    /// The first unmet requirement as its coded error (DM's task-check codes).
    pub fn check(&self) -> Result<(), DmError> {
        if !self.log_bin_on() {
            return Err(DmError::new(
                &codes::TASK_CHECK_BINLOG_DISABLED,
                format!("upstream log_bin is `{}`, and should be ON", self.log_bin),
            ));
        }
        if !self.row_format() {
            return Err(DmError::new(
                &codes::TASK_CHECK_BINLOG_FORMAT,
                format!(
                    "upstream binlog_format is `{}`, and should be ROW",
                    self.format
                ),
            ));
        }
        if !self.full_image() {
            return Err(DmError::new(
                &codes::TASK_CHECK_BINLOG_ROW_IMAGE,
                format!(
                    "upstream binlog_row_image is `{}`, and should be FULL",
                    self.row_image
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(log_bin: &str, format: &str, image: &str) -> BinlogSettings {
        BinlogSettings {
            log_bin: log_bin.into(),
            format: format.into(),
            row_image: image.into(),
        }
    }

    #[test]
    fn requirements_are_judged_alike_everywhere() {
        assert!(s("ON", "ROW", "FULL").check().is_ok());
        assert!(s("1", "row", "full").check().is_ok());
        // No binlog_row_image variable: an old server, which logs full rows.
        assert!(s("ON", "ROW", "").check().is_ok());
        let code = |x: BinlogSettings| x.check().unwrap_err().code;
        assert_eq!(
            code(s("OFF", "ROW", "FULL")),
            codes::TASK_CHECK_BINLOG_DISABLED.code
        );
        assert_eq!(
            code(s("ON", "MIXED", "FULL")),
            codes::TASK_CHECK_BINLOG_FORMAT.code
        );
        assert_eq!(
            code(s("ON", "ROW", "MINIMAL")),
            codes::TASK_CHECK_BINLOG_ROW_IMAGE.code
        );
    }
}
