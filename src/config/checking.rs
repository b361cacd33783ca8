//! The precheck's item names: DM's `ignore-checking-items` values, and the connection items
//! dm-rs reports. One catalogue for the config's validation, the checker and its report.

use serde::{Serialize, Serializer};

macro_rules! items {
    ($( $(#[$doc:meta])* $variant:ident = ($name:expr, $desc:expr, $ignorable:expr); )*) => {
        /// One precheck item.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CheckingItem {
            $( $(#[$doc])* $variant, )*
        }

        impl CheckingItem {
            /// Every item, in table order.
            pub const ALL: &[CheckingItem] = &[$(CheckingItem::$variant),*];

            /// DM's name (`dump_privilege`, ...).
            pub const fn name(self) -> &'static str {
                match self { $( CheckingItem::$variant => $name, )* }
            }

            /// What the item checks (the `desc` of DM's check result JSON); empty for items
            /// dm-rs does not check.
            pub const fn desc(self) -> &'static str {
                match self { $( CheckingItem::$variant => $desc, )* }
            }

            /// Whether `ignore-checking-items` may name it.
            pub const fn ignorable(self) -> bool {
                match self { $( CheckingItem::$variant => $ignorable, )* }
            }
        }
    };
}

items! {
    /// `all`: every item that needs a connection.
    All = ("all", "", true);
    DumpPrivilege = ("dump_privilege", "check dump privileges of source DB", true);
    ReplicationPrivilege = ("replication_privilege", "check replication privileges of source DB", true);
    Version = ("version", "check whether mysql version is satisfied", true);
    ServerId = ("server_id", "check whether mysql server_id has been greater than 0", true);
    BinlogEnable = ("binlog_enable", "check whether mysql binlog is enabled", true);
    BinlogFormat = ("binlog_format", "check whether mysql binlog_format is ROW", true);
    BinlogRowImage = ("binlog_row_image", "check whether mysql binlog_row_image is FULL", true);
    TableSchema = ("table_schema", "check whether the tables have a primary key or a unique key", true);
    /// DM's; not checked by dm-rs.
    SchemaOfShardTables = ("schema_of_shard_tables", "", true);
    /// DM's; not checked by dm-rs.
    AutoIncrementId = ("auto_increment_ID", "", true);
    /// DM's; not checked by dm-rs.
    OnlineDdl = ("online_ddl", "", true);
    /// DM's; not checked by dm-rs.
    BinlogDb = ("binlog_db", "", true);
    MetaPosition = ("meta_position", "check whether the meta position exists in the source binlog", true);
    /// DM's; not checked by dm-rs.
    ConnNumber = ("conn_number", "", true);
    TargetPrivilege = ("target_privilege", "check privileges of target DB", true);
    /// DM's physical import; not checked by dm-rs.
    EmptyRegion = ("empty_region", "", true);
    /// DM's physical import; not checked by dm-rs.
    RegionDistribution = ("region_distribution", "", true);
    /// DM's physical import; not checked by dm-rs.
    DownstreamVersion = ("downstream_version", "", true);
    /// DM's physical import; not checked by dm-rs.
    FreeSpace = ("free_space", "", true);
    /// DM's physical import; not checked by dm-rs.
    DownstreamMutexFeatures = ("downstream_mutex_features", "", true);
    /// DM's physical import; not checked by dm-rs.
    DownstreamTableEmpty = ("downstream_table_empty", "", true);
    /// DM's; not checked by dm-rs.
    PrimaryKey = ("primary_key", "", true);
    /// dm-rs: a source the task names was created (not ignorable).
    SourceExist = ("source_exist", "check whether the sources of the task exist", false);
    /// dm-rs: the upstream answers (skipped only by `all`).
    UpstreamConnection = ("upstream_connection", "check whether the source database can be reached", false);
    /// dm-rs: the downstream answers (skipped only by `all`).
    DownstreamConnection = ("downstream_connection", "check whether the target database can be reached", false);
}

impl CheckingItem {
    /// The item named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|i| i.name() == name)
    }
}

impl std::fmt::Display for CheckingItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for CheckingItem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl PartialEq<&str> for CheckingItem {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        let mut names: Vec<&str> = CheckingItem::ALL.iter().map(|i| i.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CheckingItem::ALL.len());
        for i in CheckingItem::ALL {
            assert_eq!(CheckingItem::parse(i.name()), Some(*i));
        }
        assert_eq!(CheckingItem::parse("nope"), None);
        assert!(!CheckingItem::SourceExist.ignorable());
        assert!(CheckingItem::AutoIncrementId.ignorable());
    }
}
