//! Unit tests of the schema tracker: CREATE TABLE mapping and DDL pieces applied in order.

use super::*;
use crate::sql::ddl::split;

fn apply_all(tr: &mut SchemaTracker, sql: &str) {
    for p in split(sql, "db").unwrap_or_else(|e| panic!("{sql}: {}", e.report())) {
        tr.apply(&p)
            .unwrap_or_else(|e| panic!("{sql}: {}", e.report()));
    }
}

fn table<'a>(tr: &'a SchemaTracker, name: &str) -> &'a TableSchema {
    tr.get("db", name)
        .unwrap_or_else(|| panic!("{name} not tracked"))
}

/// `name type` of every column (type = column_type, then flags).
fn shape(t: &TableSchema) -> Vec<String> {
    t.columns
        .iter()
        .map(|c| {
            let mut s = format!("{} {}", c.name, c.column_type);
            if !c.nullable {
                s.push_str(" NOT NULL");
            }
            if c.generated {
                s.push_str(" GENERATED");
            }
            s
        })
        .collect()
}

fn keys(list: &[(String, Vec<String>)]) -> Vec<String> {
    list.iter()
        .map(|(n, c)| format!("{n}({})", c.join(",")))
        .collect()
}

#[test]
fn create_table_maps_types_and_keys() {
    let t = TableSchema::from_create_table(
        "CREATE TABLE `s`.`t` (id INT(11) UNSIGNED NOT NULL AUTO_INCREMENT, a TINYINT(1) DEFAULT 0, \
         b SMALLINT, c MEDIUMINT UNSIGNED ZEROFILL, d BIGINT UNSIGNED, e DECIMAL(10,2) UNSIGNED, \
         e2 DECIMAL, e3 NUMERIC(5), f FLOAT, f2 FLOAT(7,3), f3 FLOAT(30), g DOUBLE, h DOUBLE PRECISION, \
         i REAL, j BIT(8), j2 BIT, k BOOL, m CHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, \
         m2 CHAR, n VARCHAR(255) NOT NULL DEFAULT '', o BINARY(16), p VARBINARY(32), q TINYTEXT, \
         r TEXT, s MEDIUMTEXT, t2 LONGTEXT, u TINYBLOB, v BLOB, w MEDIUMBLOB, x LONGBLOB, \
         y ENUM('a','b''c','d,e') NOT NULL, z SET('x','y'), aa DATE, ab DATETIME(6), ab2 DATETIME, \
         ac TIMESTAMP(3) NULL, ad TIME, ae YEAR, af JSON, ag GEOMETRY, \
         ah INT GENERATED ALWAYS AS (id + 1) VIRTUAL, ai INT AS (id * 2) PERSISTENT, \
         aj VARCHAR(10) CHARSET latin1 BINARY, ak INT1, al MIDDLEINT, am FIXED(5,2), \
         an NATIONAL VARCHAR(3), ao LONG VARCHAR, ap INT8, aq INTEGER UNSIGNED, ar SERIAL, \
         PRIMARY KEY (id), UNIQUE KEY uk_n (n), KEY idx_a (a, b), INDEX (c), UNIQUE INDEX (d), \
         FULLTEXT KEY ft (r), KEY pfx (n(10)) USING BTREE) \
         ENGINE=InnoDB DEFAULT CHARSET=latin1 COMMENT='x' /*!50100 PARTITION BY HASH (id) */",
    )
    .unwrap();
    assert_eq!(
        (t.schema.as_str(), t.name.as_str(), t.charset.as_str()),
        ("s", "t", "latin1")
    );
    assert_eq!(
        shape(&t),
        [
            "id int(11) unsigned NOT NULL",
            "a tinyint(1)",
            "b smallint(6)",
            "c mediumint(8) unsigned",
            "d bigint(20) unsigned",
            "e decimal(10,2) unsigned",
            "e2 decimal(10,0)",
            "e3 decimal(5,0)",
            "f float",
            "f2 float(7,3)",
            "f3 double",
            "g double",
            "h double",
            "i double",
            "j bit(8)",
            "j2 bit(1)",
            "k tinyint(1)",
            "m char(10)",
            "m2 char(1)",
            "n varchar(255) NOT NULL",
            "o binary(16)",
            "p varbinary(32)",
            "q tinytext",
            "r text",
            "s mediumtext",
            "t2 longtext",
            "u tinyblob",
            "v blob",
            "w mediumblob",
            "x longblob",
            "y enum('a','b''c','d,e') NOT NULL",
            "z set('x','y')",
            "aa date",
            "ab datetime(6)",
            "ab2 datetime",
            "ac timestamp(3)",
            "ad time",
            "ae year(4)",
            "af json",
            "ag geometry",
            "ah int(11) GENERATED",
            "ai int(11) GENERATED",
            "aj varchar(10)",
            "ak tinyint(4)",
            "al mediumint(9)",
            "am decimal(5,2)",
            "an varchar(3)",
            "ao mediumtext",
            "ap bigint(20)",
            "aq int(10) unsigned",
            "ar bigint(20) unsigned NOT NULL",
        ]
    );
    let col = |n: &str| &t.columns[t.column_index(n).unwrap()];
    assert_eq!(col("y").members, ["a", "b'c", "d,e"]);
    assert_eq!(col("y").data_type, "enum");
    assert_eq!(col("z").members, ["x", "y"]);
    assert!(col("id").unsigned && col("c").unsigned && !col("b").unsigned);
    assert_eq!(col("m").charset.as_deref(), Some("utf8mb4"));
    assert_eq!(col("m").collation.as_deref(), Some("utf8mb4_bin"));
    assert_eq!(col("n").charset.as_deref(), Some("latin1"));
    assert_eq!(col("an").charset.as_deref(), Some("utf8mb3"));
    assert_eq!(col("o").charset, None);
    assert_eq!(col("f3").data_type, "double");
    assert_eq!(t.primary_key, ["id"]);
    assert_eq!(keys(&t.unique_keys), ["ar(ar)", "uk_n(n)", "d(d)"]);
    assert_eq!(keys(&t.indexes), ["idx_a(a,b)", "c(c)", "ft(r)", "pfx(n)"]);
    assert_eq!(t.handle_key(), Some(vec![0]));
}

#[test]
fn handle_key_follows_dm() {
    let t = |sql: &str| TableSchema::from_create_table(sql).unwrap();
    // PK wins.
    let a = t("CREATE TABLE a (x INT, y INT NOT NULL, UNIQUE KEY (y), PRIMARY KEY (x))");
    assert_eq!(a.handle_key(), Some(vec![0]));
    assert!(!a.columns[0].nullable, "PK columns are NOT NULL");
    // First all-NOT-NULL unique key; a nullable one is skipped.
    let b = t(
        "CREATE TABLE b (x INT, y INT NOT NULL, z INT NOT NULL, UNIQUE KEY ux (x), UNIQUE KEY uyz (y, z))",
    );
    assert_eq!(b.handle_key(), Some(vec![1, 2]));
    assert_eq!(b.unique_keys_all(), vec![vec![0], vec![1, 2]]);
    // None at all.
    let c = t("CREATE TABLE c (x INT, UNIQUE KEY (x), KEY (x))");
    assert_eq!(c.handle_key(), None);
    assert_eq!(keys(&c.unique_keys), ["x(x)"]);
    assert_eq!(keys(&c.indexes), ["x_2(x)"]);
    let d = t("CREATE TABLE d (p INT NOT NULL, q INT NOT NULL, PRIMARY KEY (q, p), UNIQUE (p))");
    assert_eq!(d.handle_key(), Some(vec![1, 0]));
    assert_eq!(d.unique_keys_all(), vec![vec![1, 0], vec![0]]);
}

#[test]
fn alter_sequence_applies_in_order() {
    let mut tr = SchemaTracker::new(false);
    apply_all(
        &mut tr,
        "CREATE TABLE t (id INT NOT NULL, a INT, b VARCHAR(10), PRIMARY KEY (id), UNIQUE KEY ub (b))",
    );
    let steps: &[(&str, &[&str], &str, &[&str])] = &[
        (
            "ALTER TABLE t ADD COLUMN c INT NOT NULL AFTER id, ADD COLUMN z INT FIRST",
            &[
                "z int(11)",
                "id int(11) NOT NULL",
                "c int(11) NOT NULL",
                "a int(11)",
                "b varchar(10)",
            ],
            "id",
            &["ub(b)"],
        ),
        (
            "ALTER TABLE t ADD COLUMN (d INT, e INT), ADD UNIQUE KEY uc (c, a)",
            &[
                "z int(11)",
                "id int(11) NOT NULL",
                "c int(11) NOT NULL",
                "a int(11)",
                "b varchar(10)",
                "d int(11)",
                "e int(11)",
            ],
            "id",
            &["ub(b)", "uc(c,a)"],
        ),
        (
            "ALTER TABLE t DROP COLUMN a, MODIFY b VARCHAR(20) NOT NULL FIRST",
            &[
                "b varchar(20) NOT NULL",
                "z int(11)",
                "id int(11) NOT NULL",
                "c int(11) NOT NULL",
                "d int(11)",
                "e int(11)",
            ],
            "id",
            &["ub(b)", "uc(c)"],
        ),
        (
            "ALTER TABLE t CHANGE COLUMN c cc BIGINT UNSIGNED NOT NULL, RENAME COLUMN b TO bb",
            &[
                "bb varchar(20) NOT NULL",
                "z int(11)",
                "id int(11) NOT NULL",
                "cc bigint(20) unsigned NOT NULL",
                "d int(11)",
                "e int(11)",
            ],
            "id",
            &["ub(bb)", "uc(cc)"],
        ),
        (
            "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (cc, id)",
            &[
                "bb varchar(20) NOT NULL",
                "z int(11)",
                "id int(11) NOT NULL",
                "cc bigint(20) unsigned NOT NULL",
                "d int(11)",
                "e int(11)",
            ],
            "cc,id",
            &["ub(bb)", "uc(cc)"],
        ),
        (
            "ALTER TABLE t DROP INDEX ub, RENAME INDEX uc TO ucc",
            &[
                "bb varchar(20) NOT NULL",
                "z int(11)",
                "id int(11) NOT NULL",
                "cc bigint(20) unsigned NOT NULL",
                "d int(11)",
                "e int(11)",
            ],
            "cc,id",
            &["ucc(cc)"],
        ),
        (
            "CREATE UNIQUE INDEX ud ON t (d)",
            &[
                "bb varchar(20) NOT NULL",
                "z int(11)",
                "id int(11) NOT NULL",
                "cc bigint(20) unsigned NOT NULL",
                "d int(11)",
                "e int(11)",
            ],
            "cc,id",
            &["ucc(cc)", "ud(d)"],
        ),
        (
            "DROP INDEX ucc ON t",
            &[
                "bb varchar(20) NOT NULL",
                "z int(11)",
                "id int(11) NOT NULL",
                "cc bigint(20) unsigned NOT NULL",
                "d int(11)",
                "e int(11)",
            ],
            "cc,id",
            &["ud(d)"],
        ),
        (
            "ALTER TABLE t DROP COLUMN cc, MODIFY COLUMN e INT AFTER bb, ADD COLUMN f INT UNIQUE",
            &[
                "bb varchar(20) NOT NULL",
                "e int(11)",
                "z int(11)",
                "id int(11) NOT NULL",
                "d int(11)",
                "f int(11)",
            ],
            "id",
            &["ud(d)", "f(f)"],
        ),
        (
            "ALTER TABLE t ENGINE=InnoDB, COMMENT 'x', ALGORITHM=INPLACE, ALTER COLUMN d SET DEFAULT 1",
            &[
                "bb varchar(20) NOT NULL",
                "e int(11)",
                "z int(11)",
                "id int(11) NOT NULL",
                "d int(11)",
                "f int(11)",
            ],
            "id",
            &["ud(d)", "f(f)"],
        ),
        (
            // IF [NOT] EXISTS semantics: re-adding and re-dropping are no-ops.
            "ALTER TABLE t ADD COLUMN f INT, DROP COLUMN nope, DROP INDEX nope, ADD UNIQUE KEY ud (e)",
            &[
                "bb varchar(20) NOT NULL",
                "e int(11)",
                "z int(11)",
                "id int(11) NOT NULL",
                "d int(11)",
                "f int(11)",
            ],
            "id",
            &["ud(d)", "f(f)"],
        ),
    ];
    for (sql, cols, pk, uks) in steps {
        apply_all(&mut tr, sql);
        let t = table(&tr, "t");
        assert_eq!(shape(t), *cols, "{sql}");
        assert_eq!(t.primary_key.join(","), *pk, "{sql}");
        assert_eq!(keys(&t.unique_keys), *uks, "{sql}");
    }
}

#[test]
fn table_level_ddl() {
    let mut tr = SchemaTracker::new(false);
    apply_all(&mut tr, "CREATE TABLE a (x INT PRIMARY KEY)");
    apply_all(&mut tr, "CREATE TABLE o.b (y INT)");
    // CREATE TABLE IF NOT EXISTS keeps the existing definition.
    apply_all(&mut tr, "CREATE TABLE a (other INT)");
    assert_eq!(table(&tr, "a").columns[0].name, "x");
    apply_all(&mut tr, "CREATE TABLE c LIKE a");
    assert_eq!(table(&tr, "c").primary_key, ["x"]);
    assert_eq!(table(&tr, "c").name, "c");
    apply_all(&mut tr, "RENAME TABLE a TO o.a2, c TO c2");
    assert!(tr.get("db", "a").is_none());
    assert_eq!(tr.get("o", "a2").unwrap().schema, "o");
    apply_all(&mut tr, "ALTER TABLE c2 RENAME TO c3, ADD COLUMN z INT");
    assert_eq!(shape(table(&tr, "c3")), ["x int(11) NOT NULL", "z int(11)"]);
    apply_all(&mut tr, "TRUNCATE c3");
    apply_all(&mut tr, "DROP TABLE c3, nope");
    assert!(tr.get("db", "c3").is_none());
    assert_eq!(tr.len(), 2);
    apply_all(&mut tr, "DROP DATABASE o");
    assert!(tr.is_empty());
    // Case-insensitive names by default.
    apply_all(&mut tr, "CREATE TABLE Mixed (A INT)");
    assert!(tr.get("DB", "mixed").is_some());
    apply_all(&mut tr, "ALTER TABLE MIXED ADD INDEX (a), DROP COLUMN a");
    assert!(tr.get("db", "Mixed").unwrap().columns.is_empty());
    let mut cs = SchemaTracker::new(true);
    apply_all(&mut cs, "CREATE TABLE Mixed (A INT)");
    assert!(cs.get("db", "mixed").is_none());
    assert!(cs.get("db", "Mixed").is_some());
}

#[test]
fn unknown_tables_and_columns_are_coded_errors() {
    let mut tr = SchemaTracker::new(false);
    let code = codes::SYNCER_UNIT_HANDLE_DDL_FAILED.code;
    for sql in [
        "ALTER TABLE nope ADD COLUMN c INT",
        "CREATE INDEX i ON nope (a)",
        "RENAME TABLE nope TO x",
        "CREATE TABLE x LIKE nope",
    ] {
        let p = split(sql, "db").unwrap().remove(0);
        assert_eq!(tr.apply(&p).unwrap_err().code, code, "{sql}");
    }
    apply_all(&mut tr, "CREATE TABLE t (a INT)");
    let before = table(&tr, "t").clone();
    for sql in [
        "ALTER TABLE t MODIFY COLUMN nope INT",
        "ALTER TABLE t ADD COLUMN b INT AFTER nope",
        "ALTER TABLE t ADD INDEX i (nope)",
        "ALTER TABLE t RENAME INDEX nope TO x",
    ] {
        let p = split(sql, "db").unwrap().remove(0);
        assert_eq!(tr.apply(&p).unwrap_err().code, code, "{sql}");
        assert_eq!(
            table(&tr, "t"),
            &before,
            "a failed piece changes nothing: {sql}"
        );
    }
}

#[test]
fn foreign_keys_charset_and_generated_names() {
    let mut tr = SchemaTracker::new(false);
    apply_all(
        &mut tr,
        "CREATE TABLE t (a INT, b INT, c VARCHAR(3), KEY (a, b), CONSTRAINT fk FOREIGN KEY (b) REFERENCES p (id), \
         FOREIGN KEY (a) REFERENCES p (id)) DEFAULT CHARSET=utf8mb4",
    );
    let t = table(&tr, "t");
    // (a) is covered by KEY (a, b); (b) is not, so InnoDB adds an index named after the constraint.
    assert_eq!(keys(&t.indexes), ["a(a,b)", "fk(b)"]);
    assert_eq!(t.columns[2].charset.as_deref(), Some("utf8mb4"));
    apply_all(
        &mut tr,
        "ALTER TABLE t ADD UNIQUE (a), ADD UNIQUE (a), ADD INDEX (c)",
    );
    assert_eq!(keys(&table(&tr, "t").unique_keys), ["a_2(a)", "a_3(a)"]);
    apply_all(&mut tr, "ALTER TABLE t CONVERT TO CHARACTER SET latin1");
    let t = table(&tr, "t");
    assert_eq!(t.charset, "latin1");
    assert_eq!(t.columns[2].charset.as_deref(), Some("latin1"));
    assert_eq!(t.columns[0].charset, None);
    apply_all(&mut tr, "ALTER TABLE t DEFAULT CHARACTER SET utf8mb3");
    assert_eq!(table(&tr, "t").charset, "utf8mb3");
    apply_all(&mut tr, "ALTER TABLE t DROP CONSTRAINT a_2");
    assert_eq!(keys(&table(&tr, "t").unique_keys), ["a_3(a)"]);
}

#[test]
fn json_round_trip_for_the_checkpoint() {
    let t = TableSchema::from_create_table(
        "CREATE TABLE t (id BIGINT UNSIGNED PRIMARY KEY, e ENUM('x','y') NULL, g INT AS (id) VIRTUAL, UNIQUE KEY (e))",
    )
    .unwrap();
    let json = serde_json::to_string(&t).unwrap();
    let back: TableSchema = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
    // Older/smaller JSON (no optional fields) still reads.
    let minimal: TableSchema = serde_json::from_str(
        r#"{"schema":"s","name":"t","columns":[{"name":"a","data_type":"int","column_type":"int(11)","unsigned":false,"nullable":true}]}"#,
    )
    .unwrap();
    assert_eq!(minimal.columns[0].members, Vec::<String>::new());
    assert!(minimal.primary_key.is_empty() && minimal.charset.is_empty());
}

#[test]
fn show_create_table_output_parses() {
    // MariaDB 10.11 `SHOW CREATE TABLE` text.
    let sql = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  \
        `v` varchar(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL,\n  \
        `j` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`j`)),\n  \
        `ts` timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),\n  \
        `g` int(11) GENERATED ALWAYS AS (`id` + 1) VIRTUAL,\n  \
        PRIMARY KEY (`id`),\n  UNIQUE KEY `v` (`v`),\n  KEY `g` (`g`)\n) \
        ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci";
    let t = TableSchema::from_create_table(sql).unwrap();
    assert_eq!(t.schema, "");
    assert_eq!(
        shape(&t),
        [
            "id int(11) NOT NULL",
            "v varchar(10)",
            "j longtext",
            "ts timestamp NOT NULL",
            "g int(11) GENERATED"
        ]
    );
    assert_eq!(keys(&t.unique_keys), ["v(v)"]);
    assert_eq!(t.columns[1].collation.as_deref(), Some("utf8mb4_bin"));
    assert_eq!(t.columns[2].collation.as_deref(), Some("utf8mb4_bin"));
    assert!(TableSchema::from_create_table("DROP TABLE t").is_err());
}

#[test]
fn database_charsets_reach_new_tables() {
    let mut tr = SchemaTracker::new(false);
    apply_all(&mut tr, "CREATE DATABASE d2 DEFAULT CHARACTER SET latin1");
    assert_eq!(tr.schema_charset("D2"), Some("latin1"));
    apply_all(&mut tr, "CREATE TABLE d2.t (a VARCHAR(3), b INT)");
    let t = tr.get("d2", "t").unwrap();
    assert_eq!(t.charset, "latin1");
    assert_eq!(t.columns[0].charset.as_deref(), Some("latin1"));
    apply_all(&mut tr, "ALTER DATABASE d2 COLLATE utf8mb4_bin");
    assert_eq!(tr.schema_charset("d2"), Some("utf8mb4"));
    // A table's own charset wins.
    apply_all(&mut tr, "CREATE TABLE d2.u (a TEXT) CHARSET=ascii");
    assert_eq!(tr.get("d2", "u").unwrap().charset, "ascii");
    // Unknown database charset: left empty.
    apply_all(&mut tr, "CREATE TABLE t (a CHAR(1))");
    assert_eq!(table(&tr, "t").charset, "");
    assert_eq!(table(&tr, "t").columns[0].charset, None);
    tr.set_schema_charset("db", "utf8mb3");
    apply_all(&mut tr, "CREATE TABLE t2 (a CHAR(1))");
    assert_eq!(
        table(&tr, "t2").columns[0].charset.as_deref(),
        Some("utf8mb3")
    );
    apply_all(&mut tr, "DROP DATABASE d2");
    assert_eq!(tr.schema_charset("d2"), None);
    assert!(tr.get("d2", "t").is_none());
}
