//! The code table. Numbers are DM's where DM has the same error (see its `errors.toml`), so a
//! DM user's runbooks and alerts keep working; codes new in dm-rs take numbers DM leaves unused
//! at the end of a class's range (config from 20901, the `actor` class at 45001).
//!
//! `resumable` says whether the worker's auto-resume may re-create the failed unit from its
//! checkpoint; it is the only place retryability is decided.

use super::{ErrorClass, ErrorLevel, ErrorScope};

/// One entry of the code table.
#[derive(Debug, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: u32,
    /// The constant's name, as rendered in `docs/errors.toml`.
    pub name: &'static str,
    pub class: ErrorClass,
    pub scope: ErrorScope,
    pub level: ErrorLevel,
    /// Generic message, used when an occurrence has nothing to add.
    pub message: &'static str,
    /// What the operator should do.
    pub workaround: &'static str,
    pub resumable: bool,
}

macro_rules! define_codes {
    ($( $(#[$doc:meta])* $name:ident = ($code:expr, $class:ident, $scope:ident, $level:ident, $resumable:expr, $msg:expr, $work:expr); )*) => {
        $(
            $(#[$doc])*
            pub const $name: ErrorCode = ErrorCode {
                code: $code,
                name: stringify!($name),
                class: ErrorClass::$class,
                scope: ErrorScope::$scope,
                level: ErrorLevel::$level,
                message: $msg,
                workaround: $work,
                resumable: $resumable,
            };
        )*
        /// Every code, in table order.
        pub static ALL_CODES: &[&ErrorCode] = &[$(&$name),*];
    };
}

const CHECK_CONFIG: &str = "Correct the named keys in the configuration file, then retry.";
const CHECK_NETWORK: &str =
    "Check that the database is reachable and the account is valid; dm-rs retries on its own.";

define_codes! {
    // ---- database (10001) ----
    DB_DRIVER_ERROR = (10001, Database, NotSet, High, true, "database driver error", CHECK_NETWORK);
    DB_BAD_CONN = (10002, Database, NotSet, High, true, "bad database connection", CHECK_NETWORK);
    DB_INVALID_CONN = (10003, Database, NotSet, High, true, "invalid database connection", CHECK_NETWORK);
    DB_UNEXPECTED = (10004, Database, NotSet, High, false, "unexpected database error", "Read the cause; it comes from the database server.");
    DB_QUERY_FAILED = (10005, Database, NotSet, High, true, "query statement failed", "Read the cause; check the server's state and the account's privileges.");
    DB_EXECUTE_FAILED = (10006, Database, NotSet, High, true, "execute statement failed", "Read the cause; check the server's state and the account's privileges.");

    // ---- functional (11001) ----
    PARSE_SQL = (11006, Functional, Internal, High, false, "parse SQL statement failed", "Check the statement; if the server accepts it, report it as a dm-rs bug.");
    PARSE_GTID = (11009, Functional, Internal, High, false, "invalid GTID set", "Write MariaDB GTIDs as `domain-server-seq[,...]` and MySQL GTIDs as `uuid:interval[:interval][,...]`.");
    SHARD_DDL_OPTIMISM_TRY_SYNC_FAIL = (11111, Functional, Internal, High, false, "there will be conflicts if the DDLs are applied to the downstream (optimistic shard DDL)", "Make the conflicting shards agree (run the same change on every shard), or resolve the table with `shard-ddl-lock unlock <lock-id> -s <source> -d <db> -t <table> --action skip|exec`.");
    SHARD_DDL_OPTIMISM_NEED_SKIP_AND_REDIRECT = (11127, Functional, Internal, High, false, "conflicting optimistic shard DDL: the table is skipped until the other shards make the same change", "Run the same change on every other shard; the task replays the skipped table then.");
    SHARD_DDL_OPTIMISM_ADD_NOT_FULLY_DROPPED_COLUMN = (11128, Functional, Internal, High, false, "a column is added again before every shard dropped it", "Drop the column on every shard first, or skip this DDL with a `filters` rule with `action: Ignore` and a `sql-pattern` matching the statement (`stop-task`, edit the task file, `start-task` resumes from the checkpoint).");
    NOT_SUPPORTED_FLAVOR = (11010, Functional, Internal, High, false, "flavor not supported", "Set `flavor` to `mysql` or `mariadb`, or leave it empty to detect it.");
    ENCRYPT_SECRET_KEY_NOT_VALID = (11044, Functional, Internal, High, false, "secret key is not valid", "Write 64 hex characters (32 bytes) into the key file.");
    CIPHERTEXT_NOT_VALID = (11048, Functional, Internal, High, false, "cipher text is not valid", "Produce the cipher text with `dmctl encrypt` and the same key file.");

    // ---- config (20001) ----
    CONFIG_CHECK_ITEM_NOT_SUPPORT = (20001, Config, Internal, Medium, false, "checking item is not supported", "Use one of DM's checking item names in `ignore-checking-items`.");
    CONFIG_TOML_TRANSFORM = (20002, Config, Internal, Medium, false, "TOML config is not valid", CHECK_CONFIG);
    CONFIG_YAML_TRANSFORM = (20003, Config, Internal, Medium, false, "YAML config is not valid", CHECK_CONFIG);
    CONFIG_TASK_NAME_EMPTY = (20004, Config, Internal, Medium, false, "task name should not be empty", "Set `name`.");
    CONFIG_EMPTY_SOURCE_ID = (20005, Config, Internal, Medium, false, "empty source-id is not valid", "Set `source-id`.");
    CONFIG_TOO_LONG_SOURCE_ID = (20006, Config, Internal, Medium, false, "source-id is longer than 32 characters", "Use a source-id of at most 32 characters.");
    CONFIG_ONLINE_SCHEME_NOT_SUPPORT = (20007, Config, Internal, Medium, false, "online DDL scheme is not supported", "Remove `online-ddl-scheme` and set `online-ddl: true`.");
    CONFIG_INVALID_TIMEZONE = (20008, Config, Internal, Medium, false, "invalid timezone", "Use `+08:00`-style offsets, `SYSTEM`, or a zone name such as `Asia/Shanghai`.");
    CONFIG_PARSE_FLAG_SET = (20009, Config, Internal, Medium, false, "invalid command-line flags", "Run with `--help` to see the flags.");
    CONFIG_DECRYPT_DB_PASSWORD = (20010, Config, Internal, Medium, false, "decrypting a database password failed", "Encrypt the password with `dmctl encrypt` and the master's key, or give it as plain text.");
    CONFIG_META_INVALID = (20011, Config, Internal, Medium, false, "meta is not valid", "Give `binlog-name` (and `binlog-pos`) for position mode, or `binlog-gtid` for GTID mode.");
    CONFIG_MYSQL_INST_NOT_FOUND = (20012, Config, Internal, Medium, false, "mysql instance config is empty", "Remove the empty item from `mysql-instances`.");
    CONFIG_MYSQL_INSTS_AT_LEAST_ONE = (20013, Config, Internal, Medium, false, "at least one mysql-instances item is needed", "Add a `mysql-instances` item for each source.");
    CONFIG_MYSQL_INST_SAME_SOURCE_ID = (20014, Config, Internal, Medium, false, "two mysql-instances have the same source-id", "Give each source once in `mysql-instances`.");
    CONFIG_MYDUMPER_CFG_CONFLICT = (20015, Config, Internal, Medium, false, "mydumper-config-name and mydumper are both set", "Keep only one of them.");
    CONFIG_LOADER_CFG_CONFLICT = (20016, Config, Internal, Medium, false, "loader-config-name and loader are both set", "Keep only one of them.");
    CONFIG_SYNCER_CFG_CONFLICT = (20017, Config, Internal, Medium, false, "syncer-config-name and syncer are both set", "Keep only one of them.");
    CONFIG_READ_CFG_FROM_FILE = (20018, Config, Internal, Medium, false, "cannot read config file", "Check the path and the file's permissions.");
    CONFIG_INVALID_TASK_MODE = (20020, Config, Internal, Medium, false, "invalid task-mode", "Use one of `all`, `full`, `incremental`, `dump`, `load`, `load&sync`.");
    CONFIG_NEED_TARGET_DB = (20021, Config, Internal, Medium, false, "target-database is missing", "Set `target-database` with host, port, user and password.");
    CONFIG_METADATA_NOT_SET = (20022, Config, Internal, Medium, false, "meta is missing for an incremental task", "Set `meta` on the mysql-instances item, or start from an existing checkpoint.");
    CONFIG_ROUTE_RULE_NOT_FOUND = (20023, Config, Internal, Medium, false, "route rule is not defined", "Define the rule under `routes`, or remove it from `route-rules`.");
    CONFIG_FILTER_RULE_NOT_FOUND = (20024, Config, Internal, Medium, false, "filter rule is not defined", "Define the rule under `filters`, or remove it from `filter-rules`.");
    CONFIG_BA_LIST_NOT_FOUND = (20026, Config, Internal, Medium, false, "block-allow-list rule is not defined", "Define the rule under `block-allow-list`, or fix the instance's `block-allow-list` name.");
    CONFIG_MYDUMPER_CFG_NOT_FOUND = (20027, Config, Internal, Medium, false, "mydumper config is not defined", "Define it under `mydumpers`, or fix `mydumper-config-name`.");
    CONFIG_LOADER_CFG_NOT_FOUND = (20029, Config, Internal, Medium, false, "loader config is not defined", "Define it under `loaders`, or fix `loader-config-name`.");
    CONFIG_SYNCER_CFG_NOT_FOUND = (20030, Config, Internal, Medium, false, "syncer config is not defined", "Define it under `syncers`, or fix `syncer-config-name`.");
    CONFIG_SOURCE_ID_NOT_FOUND = (20031, Config, Internal, Medium, false, "source is not found", "Create the source first (`dmctl operate-source create`), or fix `source-id`.");
    CONFIG_SHARD_MODE_NOT_SUPPORT = (20033, Config, Internal, Medium, false, "shard-mode is not supported", "Use `pessimistic`, `optimistic`, or leave `shard-mode` empty.");
    CONFIG_BINLOG_EVENT_FILTER = (20037, Config, Internal, High, false, "binlog event filter rule is not valid", "Fix the filter rule's events, sql-pattern or action.");
    CONFIG_GLOBAL_CONFIGS_UNUSED = (20038, Config, Internal, High, false, "global rules are defined but used by no mysql-instances item", "Reference the rule from an instance, or remove it.");
    CONFIG_EXPR_FILTER_MANY_EXPR = (20039, Config, Internal, High, false, "expression filter must set exactly one kind of expression", "Set one of insert-value-expr, update-old/new-value-expr, delete-value-expr.");
    CONFIG_EXPR_FILTER_NOT_FOUND = (20040, Config, Internal, High, false, "expression filter is not defined", "Define it under `expression-filter`, or remove it from `expression-filters`.");
    CONFIG_EXPR_FILTER_WRONG_GRAMMAR = (20041, Config, Internal, High, false, "expression filter has wrong grammar", "Write the expression as a SQL boolean expression over the table's columns.");
    CONFIG_EXPR_FILTER_EMPTY_NAME = (20042, Config, Internal, High, false, "expression filter has an empty field", "Set `schema` and `table` of the expression filter.");
    CONFIG_CHECKER_MAX_TOO_SMALL = (20043, Config, Internal, High, false, "checker backoff-max is less than backoff-min", "Make `backoff-max` at least `backoff-min`.");
    CONFIG_GEN_BA_LIST = (20044, Config, Internal, High, false, "block-allow-list rule is not valid", "Fix the rule's names; a `~` prefix makes the rest a regular expression.");
    CONFIG_GEN_TABLE_ROUTER = (20045, Config, Internal, High, false, "route rule is not valid", "Fix the route rule's patterns and targets.");
    CONFIG_INVALID_CHUNK_FILE_SIZE = (20047, Config, Internal, High, false, "invalid chunk-filesize", "Use a size such as `64` (MiB) or `256MiB`.");
    CONFIG_ONLINE_DDL_INVALID_REGEX = (20048, Config, Internal, High, false, "online DDL table rule is not a valid regular expression", "Fix the regex; it must have exactly one capture group.");
    CONFIG_COLLATION_COMPATIBLE_NOT_SUPPORT = (20052, Config, Internal, Medium, false, "collation_compatible is not supported", "Use `loose` or `strict`.");
    CONFIG_INVALID_LOAD_MODE = (20053, Config, Internal, Medium, false, "invalid loader import-mode", "Use `logical` (aliases `sql`, `loader`).");
    CONFIG_INVALID_LOAD_DUPLICATE_RESOLUTION = (20054, Config, Internal, Medium, false, "invalid loader on-duplicate-logical", "Use `replace`, `error` or `ignore`.");
    CONFIG_VALIDATION_MODE = (20055, Config, Internal, High, false, "invalid validator mode", "Use `none`, `fast` or `full`.");
    CONFIG_VALIDATOR_CFG_NOT_FOUND = (20056, Config, Internal, High, false, "validator config is not defined", "Define it under `validators`, or fix `validator-config-name`.");
    CONFIG_LOADER_DIR_INVALID = (20058, Config, Internal, High, false, "loader dir is not valid", "Use a local directory path.");
    CONFIG_LOADER_S3_NOT_SUPPORT = (20059, Config, Internal, High, false, "loader dir on object storage is not supported", "Use a local directory path.");
    CONFIG_INVALID_SAFE_MODE_DURATION = (20060, Config, Internal, Medium, false, "invalid safe-mode-duration", "Write a duration such as `60s`.");
    CONFIG_CONFLICT_SAFE_MODE_DURATION_AND_SAFE_MODE = (20061, Config, Internal, Low, false, "safe-mode true conflicts with safe-mode-duration 0s", "Remove one of them.");
    CONFIG_INVALID_LOAD_PHYSICAL_DUPLICATE_RESOLUTION = (20062, Config, Internal, Medium, false, "invalid loader on-duplicate-physical", "Use `none` or `manual`.");
    CONFIG_INVALID_LOAD_PHYSICAL_CHECKSUM = (20063, Config, Internal, Medium, false, "invalid loader checksum-physical", "Use `required`, `optional` or `off`.");
    CONFIG_COLUMN_MAPPING_DEPRECATED = (20064, Config, Internal, High, false, "column-mappings is no longer supported", "Remove `column-mappings`; use route `extract-table`/`extract-schema`/`extract-source` to add columns.");
    CONFIG_INVALID_LOAD_ANALYZE = (20065, Config, Internal, Medium, false, "invalid loader analyze", "Use `required`, `optional` or `off`.");
    CONFIG_STRICT_OPTIMISTIC_SHARD_MODE = (20066, Config, Internal, Medium, false, "strict-optimistic-shard-mode needs shard-mode optimistic", "Set `shard-mode: optimistic`, or remove `strict-optimistic-shard-mode`.");
    CONFIG_SECRET_KEY = (20067, Config, Internal, High, false, "invalid secret key path or content", "Write 64 hex characters (32 bytes) into the file named by `secret-key-path`.");
    CONFIG_FOREIGN_KEY_CHECKS_OPTION = (20070, Config, Internal, Medium, false, "option not supported with foreign_key_checks=1", "Turn off `compact` and `multiple-rows`, or set `foreign_key_checks: 0` in the target session.");
    /// dm-rs: a key no DM version has (typos included).
    CONFIG_UNKNOWN_KEY = (20901, Config, Internal, Medium, false, "unknown configuration key", "Remove the key or fix its spelling; see config/ for samples of every file.");
    /// dm-rs: a key has a value out of its range or of the wrong form.
    CONFIG_INVALID_VALUE = (20902, Config, Internal, Medium, false, "invalid configuration value", CHECK_CONFIG);
    /// dm-rs: a regular expression in a rule does not compile.
    CONFIG_INVALID_REGEX = (20903, Config, Internal, Medium, false, "invalid regular expression", "Fix the regex (Rust `regex` syntax, close to Go's RE2).");
    /// dm-rs: a duration key does not parse.
    CONFIG_INVALID_DURATION = (20904, Config, Internal, Medium, false, "invalid duration", "Write a Go duration such as `30s`, `5m` or `1h30m`.");
    /// dm-rs: a feature DM has through TiDB Lightning or TiDB only, which dm-rs does not offer.
    CONFIG_FEATURE_NOT_SUPPORTED = (20905, Config, Internal, Medium, false, "feature not supported by dm-rs", "Use the supported alternative named in the message.");
    /// dm-rs: a required key is missing.
    CONFIG_MISSING_KEY = (20906, Config, Internal, Medium, false, "required configuration key is missing", CHECK_CONFIG);

    // ---- task-check (26001) ----
    /// dm-rs: the upstream does not log rows.
    TASK_CHECK_BINLOG_FORMAT = (26901, TaskCheck, Upstream, High, false, "upstream binlog_format is not ROW", "Set `binlog_format=ROW` on the upstream (my.cnf and SET GLOBAL), then restart the task.");
    /// dm-rs: the upstream logs partial row images.
    TASK_CHECK_BINLOG_ROW_IMAGE = (26902, TaskCheck, Upstream, High, false, "upstream binlog_row_image is not FULL", "Set `binlog_row_image=FULL` on the upstream, then restart the task.");
    /// dm-rs: the upstream has no binary log.
    TASK_CHECK_BINLOG_DISABLED = (26903, TaskCheck, Upstream, High, false, "upstream binary log is off", "Start the upstream with `log-bin`, `binlog_format=ROW` and `binlog_row_image=FULL`.");

    // ---- dump-unit (32001) ----
    DUMP_UNIT_RUNTIME = (32001, DumpUnit, Internal, High, false, "the dump failed", "Read the cause; fix the upstream or the dump directory, then resume the task.");
    DUMP_UNIT_GLOBAL_LOCK = (32004, DumpUnit, Upstream, High, false, "could not acquire the global read lock", "Grant RELOAD to the dump account, or set `--consistency lock` (LOCK TABLES) or `--consistency none` in the mydumper extra-args.");
    /// dm-rs: the account lacks a privilege the chosen consistency needs.
    DUMP_PRIVILEGE_MISSING = (32901, DumpUnit, Upstream, High, false, "the dump account lacks a privilege", "Grant the named privilege, or choose a consistency that does not need it (extra-args `--consistency lock` or `--consistency none`).");
    /// dm-rs: writing dump files failed (disk full, permissions).
    DUMP_WRITE_FILE = (32902, DumpUnit, Internal, High, false, "writing a dump file failed", "Check the loader `dir`: free space and permissions.");
    /// dm-rs: reading a table from the upstream failed; retried by auto-resume.
    DUMP_TABLE_FAILED = (32903, DumpUnit, Upstream, High, true, "dumping a table failed", "Read the cause; the dump resumes from scratch after the upstream recovers.");

    // ---- load-unit (34001) ----
    LOAD_UNIT_READ_SCHEMA_FILE = (34005, LoadUnit, Internal, High, false, "reading a dump file failed", "Check the dump directory is complete and readable.");
    LOAD_UNIT_PARSE_STATEMENT = (34006, LoadUnit, Internal, High, false, "a statement in a dump file could not be parsed", "Check the dump file named in the message; re-dump if it is truncated.");
    LOAD_UNIT_NOT_CREATE_TABLE = (34007, LoadUnit, Internal, High, false, "a schema file does not hold a CREATE TABLE", "Check the schema file named in the message.");
    /// dm-rs: executing a dump statement on the target failed; retried by auto-resume.
    LOAD_EXECUTE_FAILED = (34901, LoadUnit, Downstream, High, true, "loading a chunk on the target failed", "Read the cause; fix the target, then resume: finished chunks are not loaded again.");
    /// dm-rs: a row already exists and `on-duplicate-logical` is `error`.
    LOAD_DUPLICATE_ENTRY = (34902, LoadUnit, Downstream, High, false, "a loaded row already exists on the target", "Empty the target table, or set loader `on-duplicate-logical` to `replace` or `ignore`.");
    /// dm-rs: the dump directory is missing or incomplete.
    LOAD_DUMP_DIR_INVALID = (34903, LoadUnit, Internal, High, false, "the dump directory is missing or incomplete", "Run the dump again (task-mode all/full), or point loader `dir` at a complete dumpling/mydumper dump.");
    /// dm-rs: adding the secondary indexes deferred past the data phase failed.
    LOAD_ADD_INDEX_FAILED = (34904, LoadUnit, Downstream, High, true, "adding a deferred secondary index on the target failed", "Read the cause (the table and index are named); fix the target table, then resume: only the missing indexes are added, loaded data is not loaded again.");

    // ---- sync-unit (36001) ----
    SYNC_UNIT_DDL_WRONG_SEQUENCE = (36008, SyncUnit, Internal, High, false, "shard DDL sequence differs between tables of a shard group", "Make every shard run the same DDLs in the same order, then resume the task.");
    SYNC_UNIT_DDL_ON_MULTIPLE_TABLE = (36022, SyncUnit, Internal, High, false, "a shard DDL statement changes more than one table", "Run the change as one statement per table upstream, or skip it with a `filters` rule with `action: Ignore` and a `sql-pattern` matching the statement (`stop-task`, edit the task file, `start-task` resumes from the checkpoint) and apply it downstream by hand.");
    SYNCER_SHARD_DDL_CONFLICT = (36062, SyncUnit, Internal, High, false, "fail to handle shard DDL in optimistic mode, because schema conflict detected", "Run the same change on every shard, then `resume-task`; without strict-optimistic-shard-mode a conflicting shard's change can instead be given up with `shard-ddl-lock unlock <lock-id> -s <source> -d <db> -t <table> --action skip`.");
    SYNCER_UNSUPPORTED_STMT = (36068, SyncUnit, Internal, High, false, "statement not supported in this shard mode", "Skip it with a `filters` rule with `action: Ignore` and a `sql-pattern` matching the statement (`stop-task`, edit the task file, `start-task` resumes from the checkpoint), or use pessimistic mode.");
    SYNC_SHARD_COORDINATION = (36906, SyncUnit, Internal, High, true, "shard DDL coordination with dm-master failed", "Check that dm-master (its etcd) is reachable; the subtask resumes from its checkpoint.");
    SYNCER_UNIT_DML_COLUMN_NOT_MATCH = (36027, SyncUnit, Internal, High, false, "row has a different column count than the tracked table schema", "Check that no filter or block-allow-list rule drops the table's DDLs (the tracked schema follows them); after fixing the task file, `stop-task` and `start-task` resume from the checkpoint.");
    SYNCER_UNIT_DML_STATEMENT_FOUND = (36014, SyncUnit, Upstream, High, false, "a statement-format DML is in the binlog", "Use binlog_format=ROW on the upstream; skip an older statement with a `filters` rule with `action: Ignore` and a `sql-pattern` matching the statement (`stop-task`, edit the task file, `start-task` resumes from the checkpoint).");
    SYNCER_UNIT_HANDLE_DDL_FAILED = (36061, SyncUnit, Internal, High, false, "handling a DDL failed", "Read the cause; if the target cannot run the DDL, apply an equivalent by hand downstream and skip it with a `filters` rule with `action: Ignore` and a `sql-pattern` matching the statement (`stop-task`, edit the task file, `start-task` resumes from the checkpoint).");

    /// dm-rs: neither a checkpoint nor `meta` says where to start.
    SYNC_NO_START_POSITION = (36901, SyncUnit, Internal, High, false, "no position to start replication from", "Set `meta` (binlog-name/binlog-pos or binlog-gtid) on the mysql-instances item for task-mode incremental.");
    /// dm-rs: a replicated table's schema cannot be found upstream.
    SYNC_TABLE_NOT_FOUND = (36902, SyncUnit, Upstream, High, false, "table schema not found", "Check the table exists upstream; if it was dropped, exclude it with block-allow-list (`stop-task`, edit the task file, `start-task`).");
    /// dm-rs: the binlog no longer has the position to resume from.
    SYNC_BINLOG_PURGED = (36903, SyncUnit, Upstream, High, false, "the binlog position to resume from was purged", "Restart the task from a newer position or with a new full migration; keep binlogs longer upstream.");
    /// dm-rs: a binlog event could not be decoded.
    SYNC_DECODE_FAILED = (36904, SyncUnit, Internal, High, false, "a binlog event could not be decoded", "Report the event (binlog file and position) as a dm-rs bug; skip it with a `filters` rule with `action: Ignore` and a `sql-pattern` matching the statement (`stop-task`, edit the task file, `start-task` resumes from the checkpoint) when it is a statement, or exclude its table with block-allow-list.");
    /// dm-rs: a DML worker failed on the target.
    SYNC_EXECUTE_FAILED = (36905, SyncUnit, Downstream, High, true, "applying changes on the target failed", "Read the cause; fix the target (space, privileges, schema) and resume the task.");

    // ---- dm-master (38001) ----
    MASTER_CONFIG_PARSE_FLAG_SET = (38010, DmMaster, Internal, Medium, false, "invalid dm-master flags", "Run `dm-master --help` to see the flags.");
    MASTER_CONFIG_UNKNOWN_ITEM = (38011, DmMaster, Internal, Medium, false, "dm-master config has unknown keys", "Remove the keys or fix their spelling; see config/dm-master.toml.");
    MASTER_CONFIG_INVALID_FLAG = (38012, DmMaster, Internal, Medium, false, "invalid dm-master flag value", "Run `dm-master --help` to see the flags.");
    MASTER_CONFIG_TOML_TRANSFORM = (38013, DmMaster, Internal, Medium, false, "dm-master config is not valid", "Correct the named keys in the dm-master config file.");
    MASTER_SHARDING_DDL_DIFF = (38016, DmMaster, Internal, High, false, "sharding ddls in ddl lock is different", "Make every source run the same DDL; or `shard-ddl-lock unlock <lock-id> --force-remove` and repair the shards by hand.");
    MASTER_LOCK_NOT_FOUND = (38019, DmMaster, Internal, Medium, false, "lock with this ID not found", "List the locks with `shard-ddl-lock`.");
    MASTER_LOCK_IS_RESOLVING = (38020, DmMaster, Internal, Medium, false, "the lock is resolving or resolved already", "List the locks with `shard-ddl-lock`; nothing to do for a lock that is gone.");
    MASTER_WORKER_NOT_WAIT_LOCK = (38022, DmMaster, Internal, Medium, false, "the owner is not waiting for the lock", "Name a source that reported the DDLs with `--owner`, or add `--force-remove`.");
    MASTER_OWNER_EXEC_DDL = (38024, DmMaster, Internal, High, true, "the owner did not execute the lock's DDLs", "Check the owner's subtask with `query-status`; retry the unlock, or add `--force-remove`.");
    MASTER_PART_WORKER_EXEC_DDL_FAIL = (38025, DmMaster, Internal, High, true, "some sources did not finish the lock's DDLs", "Check those sources' subtasks with `query-status`; the lock was removed.");
    MASTER_START_SERVICE = (38017, DmMaster, Internal, High, false, "dm-master could not start", "Read the cause (a port in use, an unreachable etcd, ...), fix it and start again.");
    MASTER_WORKER_ERROR = (38032, DmMaster, Internal, High, true, "some error occurs in dm-worker", "Read the cause; check the dm-worker's log and that it is reachable from the master.");
    MASTER_REQUEST_WORKER_TIMEOUT = (38033, DmMaster, Internal, High, true, "request to dm-worker timed out, but the request may have succeeded", "Query the status again; check the dm-worker is alive.");
    MASTER_HOST_PORT_NOT_VALID = (38035, DmMaster, Internal, High, false, "host:port is not valid", "Write addresses as `host:port`, for example `127.0.0.1:8261`.");
    MASTER_START_EMBED_ETCD = (38038, DmMaster, Internal, High, false, "fail to start embed etcd", "Read the cause: give each dm-master its own ports and data-dir, check that `name`, `peer-urls` and `initial-cluster` match the other masters, and read `<data-dir>/etcd.log`.");
    MASTER_INVALID_OPERATE = (38041, DmMaster, Internal, Medium, false, "invalid operation", "Read the message for the operations this command accepts.");
    MASTER_ADVERTISE_ADDR_NOT_VALID = (38042, DmMaster, Internal, High, false, "advertise-addr is not valid", "Write `advertise-addr` as `host:port` with a host other peers can reach.");
    MASTER_NOT_LEADER_NO_FORWARD = (38043, DmMaster, Internal, High, true, "master is not leader, and can't forward request to leader", "Retry in a few seconds, once a leader is elected; check `list-member --master`.");
    MASTER_FAIL_TO_GET_EXPECT_RESULT = (38045, DmMaster, Internal, Medium, true, "fail to get expected result", "The request was recorded; run `query-status` to see whether the workers reached the expected stage.");
    MASTER_NOT_EXIST = (38048, DmMaster, Internal, Medium, false, "dm-master with this name does not exist", "Check the name with `list-member --master`.");
    MASTER_OPTIMISTIC_INCONSISTENT_DDLS = (38054, DmMaster, Internal, High, false, "the DDLs and table-info-after of an optimistic info differ in length", "Report this as a bug: a worker sent an inconsistent info.");
    MASTER_OFFLINE_MEMBER_TYPE_INVALID = (38049, DmMaster, Internal, Medium, false, "offline member type is invalid", "Use `master` or `worker`.");
    /// dm-rs: a client sent more requests than `rpc-rate-limit` / `rpc-rate-burst` allow.
    MASTER_RATE_LIMITED = (38901, DmMaster, Internal, Low, true, "too many requests from this client", "Wait and retry; raise `rpc-rate-limit` / `rpc-rate-burst` in the dm-master config if this is expected load.");
    /// dm-rs: the task failed its precheck.
    MASTER_PRECHECK_FAILED = (38902, DmMaster, Internal, Medium, false, "the task failed its precheck", "Fix the failed checks listed in the message (or list them in `ignore-checking-items`), then start the task again.");
    /// dm-rs: `offline-member --master` on a master whose etcd member still answers.
    MASTER_MEMBER_ALIVE = (38903, DmMaster, Internal, Medium, false, "the dm-master is still alive", "Stop the dm-master process first, then offline it.");

    // ---- dm-worker (40001) ----
    WORKER_PARSE_FLAG_SET = (40001, DmWorker, Internal, Medium, false, "invalid dm-worker flags", "Run `dm-worker --help` to see the flags.");
    WORKER_INVALID_FLAG = (40002, DmWorker, Internal, Medium, false, "invalid dm-worker flag value", "Run `dm-worker --help` to see the flags.");
    WORKER_DECODE_CONFIG_FROM_FILE = (40003, DmWorker, Internal, Medium, false, "dm-worker config is not valid", "Correct the named keys in the dm-worker config file.");
    WORKER_UNDECODED_ITEM_FROM_FILE = (40004, DmWorker, Internal, Medium, false, "dm-worker config has unknown keys", "Remove the keys or fix their spelling; see config/dm-worker.toml.");
    WORKER_START_SERVICE = (40048, DmWorker, Internal, High, false, "dm-worker could not start", "Read the cause (a port in use, an unreachable master, ...), fix it and start again.");
    WORKER_NO_START = (40070, DmWorker, Internal, High, false, "no mysql source is being handled in the worker", "Bind a source to this worker (`operate-source create`, `transfer-source`) or query the worker the source is bound to.");
    WORKER_SOURCE_CONFIG_NOT_FOUND = (40074, DmWorker, Internal, High, true, "there is no relative source config for the bound source in etcd", "Check the source with `operate-source show`; the worker retries on its own.");
    WORKER_FAIL_CONNECT_MASTER = (40077, DmWorker, Internal, High, false, "cannot join with the master endpoints", "Check the network between the worker and the masters in `join`, and that the worker's `name` is unique.");
    /// dm-rs: the worker holds no keepalive lease, so it runs no source work.
    WORKER_NO_LEASE = (40901, DmWorker, Internal, High, true, "the dm-worker holds no keepalive lease", "Check that etcd is reachable from the worker; it takes a new lease on its own.");

    // ---- ha (42501) ----
    HA_FAIL_TXN_OPERATION = (42501, Ha, Internal, High, true, "etcd transaction failed", "Check that etcd is healthy; dm-rs retries on its own.");
    HA_FAIL_WATCH_ETCD = (42503, Ha, Internal, High, true, "etcd watch failed", "Check that etcd is healthy; dm-rs retries on its own.");
    HA_FAIL_LEASE_OPERATION = (42504, Ha, Internal, High, true, "etcd lease operation failed", "Check that etcd is healthy; dm-rs retries on its own.");

    // ---- actor (45001, dm-rs) ----
    /// A request was parked on an actor that restarted before answering.
    ACTOR_RESTARTING = (45001, Actor, Internal, Medium, true, "the actor restarted before answering", "Retry the request.");
    /// A child's restart budget is used up; its parent keeps it stopped.
    ACTOR_RESTART_BUDGET_EXHAUSTED = (45002, Actor, Internal, High, false, "the actor failed too often and was stopped", "Read the earlier errors of this actor in the log, fix the cause, then resume.");
    /// A mailbox was closed: the receiving actor has stopped.
    ACTOR_MAILBOX_CLOSED = (45003, Actor, Internal, High, true, "the receiving actor has stopped", "Retry; if it persists, read the log for the actor's exit.");

    // ---- scheduler (46001) ----
    SCHEDULER_NOT_STARTED = (46001, Scheduler, Internal, High, true, "the scheduler has not started", "Retry in a few seconds; the master leader is starting or being elected.");
    SCHEDULER_WORKER_EXIST = (46003, Scheduler, Internal, High, false, "a dm-worker with this name already exists", "Give every dm-worker a unique `name`; to reuse a name, `offline-member --worker` the old one first.");
    SCHEDULER_WORKER_NOT_EXIST = (46004, Scheduler, Internal, High, false, "no dm-worker with this name exists", "Check the name with `list-member --worker`.");
    SCHEDULER_WORKER_ONLINE = (46005, Scheduler, Internal, High, false, "the dm-worker is still online", "Stop the dm-worker process first, then offline it.");
    SCHEDULER_WORKER_INVALID_TRANS = (46006, Scheduler, Internal, High, false, "invalid stage transformation for the dm-worker", "Read the message for the worker's current stage.");
    SCHEDULER_SOURCE_CFG_EXIST = (46007, Scheduler, Internal, High, false, "a source config with this ID already exists", "Use `operate-source update`, or stop the existing source first.");
    SCHEDULER_SOURCE_CFG_NOT_EXIST = (46008, Scheduler, Internal, High, false, "no source config with this ID exists", "Create the source with `operate-source create` first; check the ID with `operate-source show`.");
    SCHEDULER_MULTI_TASK = (46013, Scheduler, Internal, High, false, "the scheduler cannot perform multiple different tasks in one operation", "Send one task per request.");
    SCHEDULER_SUBTASK_EXIST = (46014, Scheduler, Internal, High, false, "subtasks with this name already exist", "Stop the task first, or use another task name.");
    SCHEDULER_SUBTASK_STAGE_INVALID_UPDATE = (46015, Scheduler, Internal, Medium, false, "invalid new expected subtask stage", "Use Running (resume), Paused (pause) or Stopped (stop).");
    SCHEDULER_TASK_NOT_EXIST = (46018, Scheduler, Internal, High, false, "no task with this name exists", "Check the task name with `query-status`.");
    SCHEDULER_REQUIRE_RUNNING_TASK_IN_SYNC_UNIT = (46019, Scheduler, Internal, High, false, "running tasks to be transferred should be in the sync unit", "Wait for the tasks to reach the sync unit, or pause them, then transfer the source.");
    SCHEDULER_SOURCE_CFG_UPDATE = (46025, Scheduler, Internal, High, false, "a source can only be updated when relay is disabled and no tasks are running", "Stop the source's tasks first, then update the source.");
    SCHEDULER_PAUSE_TASK_FOR_TRANSFER_SOURCE = (46032, Scheduler, Internal, High, true, "failed to pause tasks when transferring the source", "Retry the transfer; check the tasks with `query-status`.");
    SCHEDULER_WORKER_NOT_FREE = (46033, Scheduler, Internal, High, false, "the dm-worker is not free", "Choose a free worker (`list-member --worker`), or stop the source bound to it first.");
    SCHEDULER_SUBTASK_NOT_EXIST = (46034, Scheduler, Internal, High, false, "subtasks with this name do not exist for these sources", "Check the task and source names with `query-status`.");
    SCHEDULER_SUBTASK_CFG_UPDATE = (46035, Scheduler, Internal, Low, false, "a subtask can only be updated while it is not running", "Pause the task (`pause-task`) first, then update it.");
    /// dm-rs: a source cannot be removed while tasks use it.
    SCHEDULER_SOURCE_HAS_TASKS = (46901, Scheduler, Internal, High, false, "the source still has tasks", "Stop the source's tasks first (`stop-task`), or remove it with force.");

    // ---- dmctl (48001) ----
    CTL_CONNECT_MASTER = (48001, Dmctl, Internal, High, true, "cannot reach dm-master", "Check `--master-addr` and that dm-master is running.");
    /// dm-rs: dmctl was called with bad arguments.
    CTL_INVALID_ARGS = (48901, Dmctl, Internal, Medium, false, "invalid dmctl arguments", "Run `dmctl --help` or `dmctl <command> --help`.");
    /// dm-rs: dm-master's answer was not a JSON response.
    CTL_INVALID_RESPONSE = (48902, Dmctl, Internal, High, false, "dm-master's answer is not a DM response", "Check that `--master-addr` names dm-master's address (not a worker's or etcd's) and that dmctl and dm-master are the same version.");

    // ---- openapi (49001) ----
    OPENAPI_COMMON = (49001, Openapi, Internal, High, false, "the OpenAPI request failed", "Read the message; fix the request body or the named resource.");
    OPENAPI_TASK_SOURCE_NOT_FOUND = (49002, Openapi, Internal, High, false, "source of the task is not found", "Create the source first, or fix the task's source names.");

    // ---- not-set (50000) ----
    NOT_SET = (50000, NotSet, NotSet, High, false, "unclassified error", "Read the cause; report it if it recurs.");
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_and_in_their_class_range() {
        let mut seen = HashSet::new();
        let mut names = HashSet::new();
        for c in ALL_CODES {
            assert!(seen.insert(c.code), "duplicate code {}", c.code);
            assert!(names.insert(c.name), "duplicate name {}", c.name);
            assert!(
                (c.class.base()..c.class.end()).contains(&c.code),
                "{} = {} outside {:?} range {}..{}",
                c.name,
                c.code,
                c.class,
                c.class.base(),
                c.class.end()
            );
            assert!(!c.message.is_empty(), "{} has no message", c.name);
            assert!(!c.workaround.is_empty(), "{} has no workaround", c.name);
        }
    }

    /// `docs/errors.toml` is generated from this table; the test fails when it is stale and
    /// rewrites it, so a second run passes and the diff shows up in review.
    #[test]
    fn errors_toml_is_current() {
        let mut out =
            String::from("# Generated from src/error/codes.rs by `cargo test`; do not edit.\n");
        for c in ALL_CODES {
            out.push_str(&format!(
                "\n[error.DM-{}-{}]\nname = \"{}\"\nmessage = \"{}\"\nworkaround = \"{}\"\ntags = [\"{}\", \"{}\"]\nresumable = {}\n",
                c.class.name(),
                c.code,
                c.name,
                c.message.replace('"', "\\\""),
                c.workaround.replace('"', "\\\""),
                c.scope.name(),
                c.level.name(),
                c.resumable
            ));
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.toml");
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != out {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &out).unwrap();
            panic!("docs/errors.toml was stale and has been regenerated; commit it");
        }
    }
}
