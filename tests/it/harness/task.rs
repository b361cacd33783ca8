//! The one place integration tests build DM task.yaml text.
//!
//! ```ignore
//! let yaml = TaskYaml::new("t", "incremental")
//!     .meta_schema("dm_meta")
//!     .target_root(shared_downstream().port())
//!     .block_allow_list("ba", BlockAllowList::new().do_db("db"))
//!     .syncer("s", Section::new().set("worker-count", 4).set("batch", 50))
//!     .instance(Instance::new("src").block_allow_list("ba").syncer("s").meta_pos(&file, pos))
//!     .render();
//! ```
//!
//! Rendering is deterministic: top-level keys in a fixed order, sections and entries in the
//! order they were added, every string double-quoted.

use std::fmt::Write as _;

/// A YAML scalar: strings are rendered double-quoted, numbers and booleans plain.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Scalar {
    fn render(&self) -> String {
        match self {
            Scalar::Str(s) => quote(s),
            Scalar::Int(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Scalar::Str(s.to_string())
    }
}

impl From<String> for Scalar {
    fn from(s: String) -> Self {
        Scalar::Str(s)
    }
}

impl From<&String> for Scalar {
    fn from(s: &String) -> Self {
        Scalar::Str(s.clone())
    }
}

impl From<bool> for Scalar {
    fn from(b: bool) -> Self {
        Scalar::Bool(b)
    }
}

macro_rules! int_scalar {
    ($($t:ty),*) => {$(
        impl From<$t> for Scalar {
            fn from(n: $t) -> Self {
                Scalar::Int(i64::try_from(n).expect("integer fits i64"))
            }
        }
    )*};
}
int_scalar!(i32, i64, u16, u32, u64, usize);

/// `s` as a YAML double-quoted string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `["a", "b"]`.
fn flow_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// An ordered map of scalar settings: a `mydumpers`/`loaders`/`syncers` entry, or `meta`.
#[derive(Clone, Debug, Default)]
pub struct Section(Vec<(String, Scalar)>);

impl Section {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (replacing an earlier value in place).
    pub fn set(mut self, key: &str, value: impl Into<Scalar>) -> Self {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
        self
    }

    fn render(&self, out: &mut String, indent: usize) {
        for (k, v) in &self.0 {
            writeln!(out, "{:indent$}{k}: {}", "", v.render()).unwrap();
        }
    }
}

/// A `block-allow-list` entry.
#[derive(Clone, Debug, Default)]
pub struct BlockAllowList {
    do_dbs: Vec<String>,
    /// `(db-name, tbl-name)`.
    ignore_tables: Vec<(String, String)>,
}

impl BlockAllowList {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn do_db(mut self, db: &str) -> Self {
        self.do_dbs.push(db.to_string());
        self
    }

    pub fn do_dbs<S: AsRef<str>>(mut self, dbs: &[S]) -> Self {
        self.do_dbs
            .extend(dbs.iter().map(|d| d.as_ref().to_string()));
        self
    }

    pub fn ignore_table(mut self, db: &str, table: &str) -> Self {
        self.ignore_tables.push((db.to_string(), table.to_string()));
        self
    }
}

/// One `mysql-instances` item.
#[derive(Clone, Debug)]
pub struct Instance {
    source_id: String,
    block_allow_list: Option<String>,
    mydumper: Option<String>,
    loader: Option<String>,
    syncer: Option<String>,
    route_rules: Vec<String>,
    filter_rules: Vec<String>,
    expression_filters: Vec<String>,
    meta: Option<Section>,
    raw: Vec<String>,
}

impl Instance {
    pub fn new(source_id: &str) -> Self {
        Self {
            source_id: source_id.to_string(),
            block_allow_list: None,
            mydumper: None,
            loader: None,
            syncer: None,
            route_rules: Vec::new(),
            filter_rules: Vec::new(),
            expression_filters: Vec::new(),
            meta: None,
            raw: Vec::new(),
        }
    }

    pub fn block_allow_list(mut self, name: &str) -> Self {
        self.block_allow_list = Some(name.to_string());
        self
    }

    /// `mydumper-config-name`.
    pub fn mydumper(mut self, name: &str) -> Self {
        self.mydumper = Some(name.to_string());
        self
    }

    /// `loader-config-name`.
    pub fn loader(mut self, name: &str) -> Self {
        self.loader = Some(name.to_string());
        self
    }

    /// `syncer-config-name`.
    pub fn syncer(mut self, name: &str) -> Self {
        self.syncer = Some(name.to_string());
        self
    }

    pub fn route_rules<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        self.route_rules
            .extend(names.iter().map(|n| n.as_ref().to_string()));
        self
    }

    pub fn filter_rules<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        self.filter_rules
            .extend(names.iter().map(|n| n.as_ref().to_string()));
        self
    }

    pub fn expression_filters<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        self.expression_filters
            .extend(names.iter().map(|n| n.as_ref().to_string()));
        self
    }

    /// `meta` as given.
    pub fn meta(mut self, meta: Section) -> Self {
        self.meta = Some(meta);
        self
    }

    /// `meta` at a binlog position.
    pub fn meta_pos(self, binlog_name: &str, binlog_pos: u64) -> Self {
        self.meta(
            Section::new()
                .set("binlog-name", binlog_name)
                .set("binlog-pos", binlog_pos),
        )
    }

    /// `meta` at a GTID set.
    pub fn meta_gtid(self, gtid: &str) -> Self {
        self.meta(Section::new().set("binlog-gtid", gtid))
    }

    /// Extra keys of the item, verbatim (unindented; rendered at the item's indentation).
    pub fn raw(mut self, yaml: &str) -> Self {
        self.raw.extend(yaml.lines().map(str::to_string));
        self
    }

    fn render(&self, out: &mut String) {
        writeln!(out, "  - source-id: {}", quote(&self.source_id)).unwrap();
        let names = [
            ("block-allow-list", &self.block_allow_list),
            ("mydumper-config-name", &self.mydumper),
            ("loader-config-name", &self.loader),
            ("syncer-config-name", &self.syncer),
        ];
        for (key, name) in names {
            if let Some(n) = name {
                writeln!(out, "    {key}: {}", quote(n)).unwrap();
            }
        }
        let lists = [
            ("route-rules", &self.route_rules),
            ("filter-rules", &self.filter_rules),
            ("expression-filters", &self.expression_filters),
        ];
        for (key, list) in lists {
            if !list.is_empty() {
                writeln!(out, "    {key}: {}", flow_list(list)).unwrap();
            }
        }
        if let Some(meta) = &self.meta {
            out.push_str("    meta:\n");
            meta.render(out, 6);
        }
        for line in &self.raw {
            writeln!(out, "    {line}").unwrap();
        }
    }
}

/// A `target-database`.
#[derive(Clone, Debug)]
struct Target {
    host: String,
    port: u16,
    user: String,
    password: String,
}

/// A DM task.yaml; see the module documentation.
#[derive(Clone, Debug)]
pub struct TaskYaml {
    name: String,
    mode: String,
    meta_schema: Option<String>,
    ignore_checking_items: Vec<String>,
    target: Option<Target>,
    block_allow_list: Vec<(String, BlockAllowList)>,
    mydumpers: Vec<(String, Section)>,
    loaders: Vec<(String, Section)>,
    syncers: Vec<(String, Section)>,
    raw: Vec<String>,
    instances: Vec<Instance>,
}

impl TaskYaml {
    /// A task named `name` with `task-mode` `mode`, and nothing else yet.
    pub fn new(name: &str, mode: &str) -> Self {
        Self {
            name: name.to_string(),
            mode: mode.to_string(),
            meta_schema: None,
            ignore_checking_items: Vec::new(),
            target: None,
            block_allow_list: Vec::new(),
            mydumpers: Vec::new(),
            loaders: Vec::new(),
            syncers: Vec::new(),
            raw: Vec::new(),
            instances: Vec::new(),
        }
    }

    pub fn meta_schema(mut self, schema: &str) -> Self {
        self.meta_schema = Some(schema.to_string());
        self
    }

    pub fn ignore_checking_items<S: AsRef<str>>(mut self, items: &[S]) -> Self {
        self.ignore_checking_items
            .extend(items.iter().map(|i| i.as_ref().to_string()));
        self
    }

    pub fn target(mut self, host: &str, port: u16, user: &str, password: &str) -> Self {
        self.target = Some(Target {
            host: host.to_string(),
            port,
            user: user.to_string(),
            password: password.to_string(),
        });
        self
    }

    /// `target-database` at 127.0.0.1:`port`, user root, no password.
    pub fn target_root(self, port: u16) -> Self {
        self.target("127.0.0.1", port, "root", "")
    }

    pub fn block_allow_list(mut self, name: &str, rules: BlockAllowList) -> Self {
        self.block_allow_list.push((name.to_string(), rules));
        self
    }

    pub fn mydumper(mut self, name: &str, cfg: Section) -> Self {
        self.mydumpers.push((name.to_string(), cfg));
        self
    }

    pub fn loader(mut self, name: &str, cfg: Section) -> Self {
        self.loaders.push((name.to_string(), cfg));
        self
    }

    pub fn syncer(mut self, name: &str, cfg: Section) -> Self {
        self.syncers.push((name.to_string(), cfg));
        self
    }

    /// Extra top-level YAML, verbatim (`routes`, `filters`, `expression-filter` blocks),
    /// rendered before `mysql-instances`.
    pub fn raw(mut self, yaml: &str) -> Self {
        if !yaml.is_empty() {
            self.raw.push(yaml.trim_end_matches('\n').to_string());
        }
        self
    }

    pub fn instance(mut self, instance: Instance) -> Self {
        self.instances.push(instance);
        self
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        writeln!(out, "name: {}", quote(&self.name)).unwrap();
        writeln!(out, "task-mode: {}", quote(&self.mode)).unwrap();
        if let Some(schema) = &self.meta_schema {
            writeln!(out, "meta-schema: {}", quote(schema)).unwrap();
        }
        if !self.ignore_checking_items.is_empty() {
            writeln!(
                out,
                "ignore-checking-items: {}",
                flow_list(&self.ignore_checking_items)
            )
            .unwrap();
        }
        if let Some(t) = &self.target {
            out.push_str("target-database:\n");
            writeln!(out, "  host: {}", quote(&t.host)).unwrap();
            writeln!(out, "  port: {}", t.port).unwrap();
            writeln!(out, "  user: {}", quote(&t.user)).unwrap();
            writeln!(out, "  password: {}", quote(&t.password)).unwrap();
        }
        if !self.block_allow_list.is_empty() {
            out.push_str("block-allow-list:\n");
            for (name, rules) in &self.block_allow_list {
                writeln!(out, "  {name}:").unwrap();
                if !rules.do_dbs.is_empty() {
                    writeln!(out, "    do-dbs: {}", flow_list(&rules.do_dbs)).unwrap();
                }
                if !rules.ignore_tables.is_empty() {
                    out.push_str("    ignore-tables:\n");
                    for (db, table) in &rules.ignore_tables {
                        writeln!(out, "      - db-name: {}", quote(db)).unwrap();
                        writeln!(out, "        tbl-name: {}", quote(table)).unwrap();
                    }
                }
            }
        }
        for (key, sections) in [
            ("mydumpers", &self.mydumpers),
            ("loaders", &self.loaders),
            ("syncers", &self.syncers),
        ] {
            if sections.is_empty() {
                continue;
            }
            writeln!(out, "{key}:").unwrap();
            for (name, cfg) in sections {
                writeln!(out, "  {name}:").unwrap();
                cfg.render(&mut out, 4);
            }
        }
        for block in &self.raw {
            out.push_str(block);
            out.push('\n');
        }
        if !self.instances.is_empty() {
            out.push_str("mysql-instances:\n");
            for instance in &self.instances {
                instance.render(&mut out);
            }
        }
        out
    }
}
