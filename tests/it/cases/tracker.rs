//! The DDL splitter and schema tracker against a real MariaDB.
//!
//! Every statement runs three ways: as written on the upstream database `up`; through
//! `ddl::split` + `SchemaTracker::apply`; and as the split pieces (routed to a second database
//! `rep` with `ddl::rename_tables`) on the server. After each step the tracked schema must equal
//! `load_table` of the real table, of the replayed table, and `from_create_table` of the real
//! table's `SHOW CREATE TABLE`.
//!
//! Normalisation (see `norm`): MariaDB stores JSON as LONGTEXT (the tracker says `json`), the
//! tracker does not keep ZEROFILL, only textual columns' character sets are compared, and unique
//! keys and indexes compare as sets (the server reorders keys: PRIMARY, then NOT NULL unique
//! keys, ...). MariaDB prints integer display widths, so `column_type` compares as is.

use std::collections::BTreeSet;

use dm::sql::ddl;
use dm::sql::schema_tracker::{SchemaTracker, TableSchema, load_schema_charset, load_table};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::harness::{TestDb, fresh_db, shared_upstream};

/// A column as compared.
#[derive(Debug, PartialEq, Eq)]
struct Col {
    name: String,
    data_type: String,
    column_type: String,
    unsigned: bool,
    nullable: bool,
    members: Vec<String>,
    generated: bool,
    charset: Option<String>,
}

/// A table as compared.
#[derive(Debug, PartialEq, Eq)]
struct Norm {
    columns: Vec<Col>,
    primary_key: Vec<String>,
    unique_keys: BTreeSet<(String, Vec<String>)>,
    indexes: BTreeSet<(String, Vec<String>)>,
    charset: String,
    handle_key: Option<Vec<usize>>,
}

fn norm(t: &TableSchema) -> Norm {
    let columns = t
        .columns
        .iter()
        .map(|c| {
            let json = |s: &str| {
                if s == "json" {
                    "longtext".to_string()
                } else {
                    s.to_string()
                }
            };
            let data_type = json(&c.data_type);
            let textual = matches!(
                data_type.as_str(),
                "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "enum" | "set"
            );
            Col {
                name: c.name.clone(),
                column_type: json(&c.column_type).replace(" zerofill", ""),
                data_type,
                unsigned: c.unsigned,
                nullable: c.nullable,
                members: c.members.clone(),
                generated: c.generated,
                charset: if textual { c.charset.clone() } else { None },
            }
        })
        .collect();
    Norm {
        columns,
        primary_key: t.primary_key.clone(),
        unique_keys: t.unique_keys.iter().cloned().collect(),
        indexes: t.indexes.iter().cloned().collect(),
        charset: t.charset.clone(),
        handle_key: t.handle_key(),
    }
}

struct Fixture {
    up: TestDb,
    rep: TestDb,
    up_conn: Conn,
    rep_conn: Conn,
    tracker: SchemaTracker,
}

impl Fixture {
    async fn new() -> Self {
        let up = fresh_db(shared_upstream(), "tracker");
        let rep = fresh_db(shared_upstream(), "tracker_rep");
        let mut up_conn = up.conn().await;
        let rep_conn = rep.conn().await;
        // Tables created without a character set take their database's.
        let mut tracker = SchemaTracker::new(false);
        let charset = load_schema_charset(&mut up_conn, up.name())
            .await
            .expect("schema charset")
            .expect("database exists");
        tracker.set_schema_charset(up.name(), charset);
        Self {
            up,
            rep,
            up_conn,
            rep_conn,
            tracker,
        }
    }

    /// Runs `sql` on `up`, and its pieces on the tracker and (routed) on `rep`.
    async fn run(&mut self, sql: &str) {
        self.up_conn
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let up = self.up.name().to_string();
        let rep = self.rep.name().to_string();
        let pieces = ddl::split(sql, &up).unwrap_or_else(|e| panic!("split {sql}: {}", e.report()));
        for p in &pieces {
            self.tracker
                .apply(p)
                .unwrap_or_else(|e| panic!("apply {}: {}", p.sql, e.report()));
            let routed = ddl::rename_tables(p, |s, t| {
                let s = if s == up { rep.clone() } else { s.to_string() };
                (s, t.to_string())
            })
            .expect("route");
            self.rep_conn
                .query_drop(&routed.sql)
                .await
                .unwrap_or_else(|e| panic!("piece of {sql}: {}: {e}", routed.sql));
        }
    }

    /// Asserts that the tracker, the real table, the replayed table and the parsed
    /// `SHOW CREATE TABLE` agree on `table`.
    async fn check(&mut self, table: &str, after: &str) {
        let up = self.up.name().to_string();
        let rep = self.rep.name().to_string();
        let real = load_table(&mut self.up_conn, &up, table)
            .await
            .expect("load")
            .unwrap_or_else(|| panic!("{table} exists after {after}"));
        let tracked = self
            .tracker
            .get(&up, table)
            .unwrap_or_else(|| panic!("{table} tracked after {after}"));
        assert_eq!(
            norm(tracked),
            norm(&real),
            "tracker vs server after {after}"
        );
        let replayed = load_table(&mut self.rep_conn, &rep, table)
            .await
            .expect("load")
            .unwrap_or_else(|| panic!("replayed {table} exists after {after}"));
        assert_eq!(
            norm(&replayed),
            norm(&real),
            "pieces vs statement after {after}"
        );
        let show: (String, String) = self
            .up_conn
            .query_first(format!("SHOW CREATE TABLE `{up}`.`{table}`"))
            .await
            .expect("show create table")
            .expect("a row");
        let mut parsed = TableSchema::from_create_table(&show.1)
            .unwrap_or_else(|e| panic!("{}: {}", show.1, e.report()));
        parsed.schema = up.clone();
        assert_eq!(
            norm(&parsed),
            norm(&real),
            "SHOW CREATE TABLE after {after}:\n{}",
            show.1
        );
    }

    async fn gone(&mut self, table: &str) {
        let up = self.up.name().to_string();
        let real = load_table(&mut self.up_conn, &up, table)
            .await
            .expect("load");
        assert!(real.is_none(), "{table} dropped");
        assert!(self.tracker.get(&up, table).is_none(), "{table} untracked");
    }

    async fn finish(self) {
        self.up_conn.disconnect().await.expect("disconnect");
        self.rep_conn.disconnect().await.expect("disconnect");
    }
}

const TYPES_TABLE: &str = "CREATE TABLE t_types (id INT(11) UNSIGNED NOT NULL, \
    a TINYINT(1) DEFAULT 0, b SMALLINT, c MEDIUMINT UNSIGNED ZEROFILL, d BIGINT(20) UNSIGNED, \
    e DECIMAL(10,2) UNSIGNED, e2 DECIMAL, e3 NUMERIC(5), f FLOAT, f2 FLOAT(7,3), f3 FLOAT(30), \
    g DOUBLE, h DOUBLE PRECISION, i REAL, j BIT(8), j2 BIT, k BOOL, l BOOLEAN, \
    m CHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, m2 CHAR, \
    n VARCHAR(255) NOT NULL DEFAULT '' COMMENT \"it's\", o BINARY(16), p VARBINARY(32), \
    q TINYTEXT, r TEXT, r2 TEXT(100), s MEDIUMTEXT, t2 LONGTEXT, u TINYBLOB, v BLOB, w MEDIUMBLOB, \
    x LONGBLOB, y ENUM('a','b''c','d,e','(p)','x\\\\y') NOT NULL, z SET('x','y'), aa DATE, \
    ab DATETIME(6), ac TIMESTAMP(3) NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), \
    ad TIME(3), ae YEAR, af JSON, ag GEOMETRY, ag2 POINT, \
    ah INT GENERATED ALWAYS AS (id + 1) VIRTUAL, ai INT AS (id * 2) PERSISTENT, \
    aj VARCHAR(10) CHARSET latin1 BINARY, ak INT1, al MIDDLEINT, am FIXED(5,2), \
    an NATIONAL VARCHAR(3), ao LONG VARCHAR, ap INET6, aq UUID, ar SERIAL, \
    PRIMARY KEY (id), UNIQUE KEY uk_n (n), KEY idx_a (a, b), INDEX (c), UNIQUE INDEX (d), \
    FULLTEXT KEY ft (r), KEY pfx (n(10)) USING BTREE, UNIQUE (y, z)) \
    ENGINE=InnoDB DEFAULT CHARSET=latin1 COMMENT='types'";

#[tokio::test]
async fn tracker_follows_create_table_with_every_type() {
    let mut f = Fixture::new().await;
    f.run(TYPES_TABLE).await;
    f.check("t_types", "CREATE TABLE t_types").await;
    f.run("CREATE TABLE t_part (id INT NOT NULL, v INT, PRIMARY KEY (id)) PARTITION BY HASH (id) PARTITIONS 2")
        .await;
    f.check("t_part", "CREATE TABLE t_part").await;
    f.run("ALTER TABLE t_part ADD COLUMN w VARCHAR(3) REMOVE PARTITIONING")
        .await;
    f.check("t_part", "REMOVE PARTITIONING").await;
    f.run("CREATE TABLE IF NOT EXISTS t_part (other INT)").await;
    f.check("t_part", "CREATE TABLE IF NOT EXISTS").await;
    f.run("CREATE OR REPLACE TABLE t_part (x INT UNIQUE KEY, y INT NOT NULL, UNIQUE KEY uy (y))")
        .await;
    f.check("t_part", "CREATE OR REPLACE TABLE").await;
    f.finish().await;
}

#[tokio::test]
async fn tracker_follows_an_alter_sequence() {
    let mut f = Fixture::new().await;
    f.run("CREATE TABLE t2 (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, v VARCHAR(10) UNIQUE) DEFAULT CHARSET=utf8mb4")
        .await;
    f.check("t2", "CREATE TABLE t2").await;
    f.run(
        "CREATE TABLE t1 (id INT NOT NULL, a INT, b VARCHAR(10), PRIMARY KEY (id), UNIQUE KEY ub (b)) \
         ENGINE=InnoDB DEFAULT CHARSET=latin1",
    )
    .await;
    // The brief's setup: the tracker starts from the server's view of the table.
    let up = f.up.name().to_string();
    let seed = load_table(&mut f.up_conn, &up, "t1")
        .await
        .unwrap()
        .unwrap();
    f.tracker.insert(seed);
    f.check("t1", "seeding").await;

    let steps = [
        "ALTER TABLE t1 ADD COLUMN c1 INT NOT NULL DEFAULT 0 AFTER id, ADD COLUMN c0 VARCHAR(5) FIRST",
        "ALTER TABLE t1 ADD COLUMN (c2 DECIMAL(8,3) UNSIGNED, c3 ENUM('x','it''s','a,b') NOT NULL DEFAULT 'x')",
        "ALTER TABLE t1 ADD UNIQUE KEY uk_c1 (c1, c0), ADD INDEX idx_c2 (c2), ADD INDEX idx_m (c2, c0)",
        "ALTER TABLE t1 MODIFY COLUMN c0 VARCHAR(20) NOT NULL AFTER c3",
        "ALTER TABLE t1 CHANGE COLUMN c2 c2b BIGINT UNSIGNED NULL FIRST",
        "ALTER TABLE t1 RENAME COLUMN c1 TO c1b",
        "ALTER TABLE t1 DROP COLUMN c3, DROP INDEX idx_c2",
        "ALTER TABLE t1 DROP PRIMARY KEY, ADD PRIMARY KEY (id, c1b)",
        "CREATE UNIQUE INDEX u_c2b ON t1 (c2b)",
        "DROP INDEX u_c2b ON t1",
        "ALTER TABLE t1 RENAME INDEX uk_c1 TO uk_c1b",
        "ALTER TABLE t1 ADD COLUMN s SERIAL, ADD COLUMN g INT AS (id + 1) VIRTUAL",
        // MariaDB refuses to drop a column of a multi-column unique key, so the key goes first;
        // the column leaves the plain index idx_m, which remains on c2b.
        "ALTER TABLE t1 DROP KEY uk_c1b, DROP COLUMN c0",
        "ALTER TABLE t1 ENGINE=InnoDB, COMMENT 'x', ALGORITHM=COPY",
        "ALTER TABLE t1 ADD UNIQUE (c1b), ADD KEY (b)",
        "/* app */ ALTER TABLE t1 ADD COLUMN note VARCHAR(10) CHARSET utf8mb4 BINARY DEFAULT NULL COMMENT \"it's\"",
        "ALTER TABLE t1 ALTER COLUMN a SET DEFAULT 5",
        "ALTER TABLE t1 MODIFY a INT UNSIGNED ZEROFILL",
        // idx_m (c2b) serves the foreign key: no index is added.
        "ALTER TABLE t1 ADD CONSTRAINT fk FOREIGN KEY (c2b) REFERENCES t2 (id)",
        // No index has `r` first: InnoDB adds one named after the constraint.
        "ALTER TABLE t1 ADD COLUMN r BIGINT UNSIGNED, ADD CONSTRAINT fk_a FOREIGN KEY (r) REFERENCES t2 (id)",
        "ALTER TABLE t1 DROP FOREIGN KEY fk, DROP FOREIGN KEY fk_a",
        "ALTER TABLE t1 CONVERT TO CHARACTER SET utf8mb4",
        "ALTER TABLE t1 DEFAULT CHARSET = latin1",
        "TRUNCATE TABLE t1",
        "ALTER TABLE t1 DROP INDEX idx_m, DROP INDEX fk_a, ADD INDEX IF NOT EXISTS k2 (a)",
    ];
    for sql in steps {
        f.run(sql).await;
        f.check("t1", sql).await;
    }

    f.run("ALTER TABLE t1 RENAME TO t1r, ADD COLUMN after_rename INT")
        .await;
    f.gone("t1").await;
    f.check("t1r", "ALTER TABLE ... RENAME").await;
    f.run("RENAME TABLE t1r TO t1, t2 TO t2r").await;
    f.check("t1", "RENAME TABLE").await;
    f.check("t2r", "RENAME TABLE").await;
    f.run("CREATE TABLE t3 LIKE t1").await;
    f.check("t3", "CREATE TABLE LIKE").await;
    f.run("DROP TABLE t3, t2r").await;
    f.gone("t3").await;
    f.gone("t2r").await;
    f.check("t1", "DROP TABLE").await;
    f.finish().await;
}
