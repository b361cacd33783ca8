//! MySQL/MariaDB server error numbers dm-rs acts on, each declared once (the names are the
//! servers' own `ER_*` names). Match on these, never on message text.

/// Can't drop database; database doesn't exist.
pub const ER_DB_DROP_EXISTS: u16 = 1008;
/// Can't create database; database exists.
pub const ER_DB_CREATE_EXISTS: u16 = 1007;
/// Too many connections.
pub const ER_CON_COUNT_ERROR: u16 = 1040;
/// Access denied for user to database.
pub const ER_DBACCESS_DENIED_ERROR: u16 = 1044;
/// Access denied for user (using password).
pub const ER_ACCESS_DENIED_ERROR: u16 = 1045;
/// Unknown database.
pub const ER_BAD_DB_ERROR: u16 = 1049;
/// Table already exists.
pub const ER_TABLE_EXISTS_ERROR: u16 = 1050;
/// Unknown table (DROP).
pub const ER_BAD_TABLE_ERROR: u16 = 1051;
/// Server shutdown in progress.
pub const ER_SERVER_SHUTDOWN: u16 = 1053;
/// Duplicate column name.
pub const ER_DUP_FIELDNAME: u16 = 1060;
/// Duplicate key name.
pub const ER_DUP_KEYNAME: u16 = 1061;
/// Duplicate entry for key.
pub const ER_DUP_ENTRY: u16 = 1062;
/// SQL syntax error.
pub const ER_PARSE_ERROR: u16 = 1064;
/// Multiple primary key defined.
pub const ER_MULTIPLE_PRI_KEY: u16 = 1068;
/// Can't DROP a column or key; check that it exists.
pub const ER_CANT_DROP_FIELD_OR_KEY: u16 = 1091;
/// Unknown character set.
pub const ER_UNKNOWN_CHARACTER_SET: u16 = 1115;
/// Command denied to user for table.
pub const ER_TABLEACCESS_DENIED_ERROR: u16 = 1142;
/// Command denied to user for column.
pub const ER_COLUMNACCESS_DENIED_ERROR: u16 = 1143;
/// Table doesn't exist.
pub const ER_NO_SUCH_TABLE: u16 = 1146;
/// Syntax error (older servers).
pub const ER_SYNTAX_ERROR: u16 = 1149;
/// Key doesn't exist in table.
pub const ER_KEY_DOES_NOT_EXITS: u16 = 1176;
/// Unknown system variable.
pub const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
/// Lock wait timeout exceeded.
pub const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// Deadlock found when trying to get lock.
pub const ER_LOCK_DEADLOCK: u16 = 1213;
/// Access denied; you need (at least one of) the X privilege(s).
pub const ER_SPECIFIC_ACCESS_DENIED_ERROR: u16 = 1227;
/// Variable can't be set to the value.
pub const ER_WRONG_VALUE_FOR_VAR: u16 = 1231;
/// Incorrect argument type to variable.
pub const ER_WRONG_TYPE_FOR_VAR: u16 = 1232;
/// Variable is a SESSION/GLOBAL variable and can't be used with SET GLOBAL/SESSION.
pub const ER_INCORRECT_GLOBAL_LOCAL_VAR: u16 = 1238;
/// The replica asked for a binlog position or GTID the server no longer has.
pub const ER_MASTER_FATAL_ERROR_READING_BINLOG: u16 = 1236;
/// EXPLAIN/SHOW can not be issued; lacking privileges for underlying table.
pub const ER_VIEW_NO_EXPLAIN: u16 = 1345;
/// View references invalid table(s) or column(s) or function(s).
pub const ER_VIEW_INVALID: u16 = 1356;
/// Unknown collation.
pub const ER_UNKNOWN_COLLATION: u16 = 1273;
/// Query execution was interrupted.
pub const ER_QUERY_INTERRUPTED: u16 = 1317;
/// Connection was killed.
pub const ER_CONNECTION_KILLED: u16 = 1927;
/// MariaDB: a second replica connection with the same server id.
pub const ER_CONNECTION_ALREADY_EXISTS: u16 = 4052;

/// DDL errors that mean "already done": replaying a DDL after a restart may hit them, and the
/// statement's effect is then in place.
pub const IDEMPOTENT_DDL: &[u16] = &[
    ER_DB_CREATE_EXISTS,
    ER_DB_DROP_EXISTS,
    ER_TABLE_EXISTS_ERROR,
    ER_BAD_TABLE_ERROR,
    ER_DUP_FIELDNAME,
    ER_DUP_KEYNAME,
    ER_MULTIPLE_PRI_KEY,
    ER_CANT_DROP_FIELD_OR_KEY,
    ER_KEY_DOES_NOT_EXITS,
];

/// Errors retrying cannot heal: the statement, the account or the configuration must change
/// (unknown variables in `session`, syntax, missing privileges, unknown charsets).
pub const PERMANENT: &[u16] = &[
    ER_DBACCESS_DENIED_ERROR,
    ER_ACCESS_DENIED_ERROR,
    ER_PARSE_ERROR,
    ER_UNKNOWN_CHARACTER_SET,
    ER_TABLEACCESS_DENIED_ERROR,
    ER_COLUMNACCESS_DENIED_ERROR,
    ER_SYNTAX_ERROR,
    ER_UNKNOWN_SYSTEM_VARIABLE,
    ER_SPECIFIC_ACCESS_DENIED_ERROR,
    ER_WRONG_VALUE_FOR_VAR,
    ER_WRONG_TYPE_FOR_VAR,
    ER_INCORRECT_GLOBAL_LOCAL_VAR,
    ER_UNKNOWN_COLLATION,
];
