//! decode_binlog: reads local binlog files and decodes every rows event with dm-rs's decoder
//! (`dm::binlog::decode`, the one the syncer uses), throwing the rows away. It measures the
//! decoder: rows, bytes, seconds, rows/s and MB/s of one thread.
//!
//! ```sh
//! cargo build --release --examples
//! # columns from a running server's information_schema (read once, before timing):
//! target/release/examples/decode_binlog --host 127.0.0.1 --port 3306 --user root mysql-bin.000002
//! # or from a column spec (`name type; name type; ...`, types as in COLUMN_TYPE):
//! target/release/examples/decode_binlog --columns sysbench mysql-bin.000002 mysql-bin.000003
//! target/release/examples/decode_binlog --table 'shop.t=id bigint unsigned; v varchar(20)' f
//! ```
//!
//! Framing is done here (19-byte header, body, CRC32 footer when the FORMAT_DESCRIPTION says
//! so) into one reused buffer; `--verify-checksum` also checks each event's CRC32. The seconds
//! reported cover reading and decoding only (not the information_schema query). `--json`
//! prints one JSON object instead of the text line.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use dm::binlog::decode::{DecodePlan, RowKind, decode_rows, rows_table_id};
use dm::binlog::event::types;
use dm::binlog::value::{ColumnInfo, SqlType};

/// The sysbench table: `id INT, k INT, c CHAR(120), pad CHAR(60)`.
const SYSBENCH: &str = "id int; k int; c char(120); pad char(60)";
/// Binlog files start with these four bytes.
const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
const HEADER_LEN: usize = 19;

/// Decode every rows event of binlog files with dm-rs's decoder (to /dev/null).
#[derive(Debug, Parser)]
#[command(name = "decode_binlog")]
struct Args {
    /// Binlog files, decoded in order (a table map may be used by a later file's events only
    /// if the server wrote it there again, as servers do).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Columns of every table not named by --table or found on the server:
    /// `name type; name type; ...` (types as in information_schema COLUMN_TYPE, optionally
    /// followed by `charset NAME`), or `sysbench`.
    #[arg(long)]
    columns: Option<String>,
    /// Columns of one table: `DB.TABLE=name type; ...` (repeatable).
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Read the columns of every table from this server's information_schema.
    #[arg(long)]
    host: Option<String>,
    #[arg(long, default_value_t = 3306)]
    port: u16,
    #[arg(long, default_value = "root")]
    user: String,
    #[arg(long, default_value = "")]
    password: String,
    /// Check the CRC32 of every event (when the files have checksums).
    #[arg(long)]
    verify_checksum: bool,
    /// Print one JSON object instead of the text line.
    #[arg(long)]
    json: bool,
}

/// Totals of a run.
#[derive(Debug, Default)]
struct Totals {
    files: usize,
    bytes: u64,
    events: u64,
    rows_events: u64,
    inserts: u64,
    updates: u64,
    deletes: u64,
    table_maps: u64,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("decode_binlog: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let mut known: HashMap<(String, String), Vec<ColumnInfo>> = HashMap::new();
    if let Some(host) = &args.host {
        known = read_server_columns(host, args.port, &args.user, &args.password)?;
    }
    for t in &args.tables {
        let (name, spec) = t
            .split_once('=')
            .ok_or_else(|| format!("--table `{t}`: expected DB.TABLE=SPEC"))?;
        let (db, tbl) = name
            .split_once('.')
            .ok_or_else(|| format!("--table `{t}`: expected DB.TABLE before `=`"))?;
        known.insert((db.to_string(), tbl.to_string()), parse_spec(spec)?);
    }
    let fallback = match args.columns.as_deref() {
        Some("sysbench") => Some(parse_spec(SYSBENCH)?),
        Some(spec) => Some(parse_spec(spec)?),
        None => None,
    };

    let mut totals = Totals::default();
    let mut plans: HashMap<u64, DecodePlan> = HashMap::new();
    let started = Instant::now();
    for path in &args.files {
        decode_file(
            path,
            args,
            &known,
            fallback.as_deref(),
            &mut plans,
            &mut totals,
        )?;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let rows = totals.inserts + totals.updates + totals.deletes;
    let rows_per_sec = rows as f64 / secs;
    let mb_per_sec = totals.bytes as f64 / 1e6 / secs;
    if args.json {
        println!(
            "{{\"files\":{},\"bytes\":{},\"events\":{},\"table_maps\":{},\"rows_events\":{},\"rows\":{},\"inserts\":{},\"updates\":{},\"deletes\":{},\"seconds\":{:.6},\"rows_per_sec\":{:.1},\"mb_per_sec\":{:.3}}}",
            totals.files,
            totals.bytes,
            totals.events,
            totals.table_maps,
            totals.rows_events,
            rows,
            totals.inserts,
            totals.updates,
            totals.deletes,
            secs,
            rows_per_sec,
            mb_per_sec
        );
    } else {
        println!(
            "decode_binlog: files={} bytes={} events={} rows_events={} rows={} (insert={} update={} delete={}) seconds={:.3} rows/s={:.0} MB/s={:.1}",
            totals.files,
            totals.bytes,
            totals.events,
            totals.rows_events,
            rows,
            totals.inserts,
            totals.updates,
            totals.deletes,
            secs,
            rows_per_sec,
            mb_per_sec
        );
    }
    Ok(())
}

/// Parses `name type; name type charset latin1; ...`.
fn parse_spec(spec: &str) -> Result<Vec<ColumnInfo>, String> {
    let mut cols = Vec::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, rest) = part
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("column `{part}`: expected `name type`"))?;
        let rest = rest.trim();
        let lower = rest.to_ascii_lowercase();
        let (column_type, charset) = match lower.find(" charset ") {
            Some(i) => (rest[..i].trim(), Some(rest[i + 9..].trim().to_string())),
            None => (rest, None),
        };
        let data_type: String = column_type
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
            .to_ascii_lowercase();
        if data_type.is_empty() {
            return Err(format!("column `{part}`: no type"));
        }
        // Text types get utf8mb4 unless told otherwise; others have no charset.
        let default_charset = ColumnInfo::new(name, SqlType::from_data_type(&data_type)).charset;
        let charset = charset.or_else(|| (!default_charset.is_empty()).then_some(default_charset));
        cols.push(ColumnInfo::from_information_schema(
            name,
            &data_type,
            column_type,
            charset.as_deref(),
        ));
    }
    if cols.is_empty() {
        return Err(format!("empty column spec `{spec}`"));
    }
    Ok(cols)
}

type ColumnsRow = (String, String, String, String, String, Option<String>);

/// Every user table's columns (in table order) from `information_schema.COLUMNS`.
fn read_server_columns(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> Result<HashMap<(String, String), Vec<ColumnInfo>>, String> {
    use mysql_async::prelude::*;
    let mut b = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host.to_string())
        .tcp_port(port)
        .user(Some(user.to_string()))
        .prefer_socket(false);
    if !password.is_empty() {
        b = b.pass(Some(password.to_string()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let rows: Vec<ColumnsRow> = rt.block_on(async {
        let mut conn = mysql_async::Conn::new(b)
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let rows = conn
            .query(
                "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME \
                 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA NOT IN ('mysql','information_schema','performance_schema','sys') \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
            )
            .await
            .map_err(|e| format!("information_schema.COLUMNS: {e}"))?;
        let _ = conn.disconnect().await;
        Ok::<_, String>(rows)
    })?;
    let mut out: HashMap<(String, String), Vec<ColumnInfo>> = HashMap::new();
    for (schema, table, name, data_type, column_type, charset) in rows {
        out.entry((schema, table))
            .or_default()
            .push(ColumnInfo::from_information_schema(
                &name,
                &data_type,
                &column_type,
                charset.as_deref(),
            ));
    }
    Ok(out)
}

/// Reads the schema and table names of a TABLE_MAP body (after the 6-byte table id and
/// 2 bytes of flags: a length byte, the name, a NUL, twice).
fn table_map_names(body: &[u8]) -> Option<(String, String)> {
    let mut at = 8;
    let mut name = || {
        let len = usize::from(*body.get(at)?);
        let s = body.get(at + 1..at + 1 + len)?;
        at += len + 2;
        Some(String::from_utf8_lossy(s).into_owned())
    };
    let schema = name()?;
    let table = name()?;
    Some((schema, table))
}

fn decode_file(
    path: &Path,
    args: &Args,
    known: &HashMap<(String, String), Vec<ColumnInfo>>,
    fallback: Option<&[ColumnInfo]>,
    plans: &mut HashMap<u64, DecodePlan>,
    totals: &mut Totals,
) -> Result<(), String> {
    let where_ = |at: u64| format!("{} at {at}", path.display());
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if magic != MAGIC {
        return Err(format!("{} is not a binlog file", path.display()));
    }
    totals.files += 1;
    totals.bytes += size;
    let mut at: u64 = 4;
    let mut checksum = false;
    let mut header = [0u8; HEADER_LEN];
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    loop {
        match read_full(&mut r, &mut header) {
            Ok(0) => break,
            Ok(n) if n < HEADER_LEN => {
                // A file being written may end in a partial event.
                eprintln!(
                    "decode_binlog: {}: partial event header, stopping",
                    where_(at)
                );
                break;
            }
            Ok(_) => {}
            Err(e) => return Err(format!("{}: {e}", where_(at))),
        }
        let event_type = header[4];
        let size = u32::from_le_bytes(header[9..13].try_into().expect("4 bytes")) as usize;
        if size < HEADER_LEN {
            return Err(format!(
                "{}: event size {size} below the header",
                where_(at)
            ));
        }
        buf.resize(size - HEADER_LEN, 0);
        if read_full(&mut r, &mut buf).map_err(|e| format!("{}: {e}", where_(at)))? < buf.len() {
            eprintln!("decode_binlog: {}: partial event, stopping", where_(at));
            break;
        }
        totals.events += 1;
        let is_fde = event_type == types::FORMAT_DESCRIPTION;
        if is_fde {
            // ... post-header lengths, checksum algorithm (1 byte), CRC32 (4 bytes).
            checksum = buf.len() >= 5 && buf[buf.len() - 5] == 1;
        }
        let has_crc = checksum || is_fde && buf.len() >= 5 && buf[buf.len() - 5] <= 1;
        let body_len = if has_crc { buf.len() - 4 } else { buf.len() };
        if has_crc && args.verify_checksum {
            let mut h = crc32fast::Hasher::new();
            h.update(&header);
            h.update(&buf[..body_len]);
            let want = u32::from_le_bytes(buf[body_len..].try_into().expect("4 bytes"));
            if h.finalize() != want {
                return Err(format!("{}: CRC32 mismatch", where_(at)));
            }
        }
        let body = &buf[..body_len];
        match event_type {
            types::TABLE_MAP => {
                totals.table_maps += 1;
                let id = rows_table_id(body).map_err(|e| format!("{}: {e}", where_(at)))?;
                if let Entry::Vacant(slot) = plans.entry(id) {
                    let (schema, table) = table_map_names(body)
                        .ok_or_else(|| format!("{}: short TABLE_MAP", where_(at)))?;
                    let cols = known
                        .get(&(schema.clone(), table.clone()))
                        .map(Vec::as_slice)
                        .or(fallback)
                        .ok_or_else(|| {
                            format!(
                                "{}: no columns for `{schema}`.`{table}`: pass --host, --table or --columns",
                                where_(at)
                            )
                        })?;
                    let plan = DecodePlan::from_table_map_body(body, cols)
                        .map_err(|e| format!("{}: `{schema}`.`{table}`: {e}", where_(at)))?;
                    slot.insert(plan);
                }
            }
            types::WRITE_ROWS_V1
            | types::UPDATE_ROWS_V1
            | types::DELETE_ROWS_V1
            | types::WRITE_ROWS_V2
            | types::UPDATE_ROWS_V2
            | types::DELETE_ROWS_V2
            | types::MARIA_WRITE_ROWS_COMPRESSED_V1..=types::MARIA_DELETE_ROWS_COMPRESSED => {
                totals.rows_events += 1;
                let id = rows_table_id(body).map_err(|e| format!("{}: {e}", where_(at)))?;
                let plan = plans.get(&id).ok_or_else(|| {
                    format!("{}: rows event of unknown table id {id}", where_(at))
                })?;
                let batch = decode_rows(plan, event_type, body)
                    .map_err(|e| format!("{}: {e}", where_(at)))?;
                let n = batch.rows.len() as u64;
                match batch.kind {
                    RowKind::Insert => totals.inserts += n,
                    RowKind::Update => totals.updates += n,
                    RowKind::Delete => totals.deletes += n,
                }
                std::hint::black_box(batch);
            }
            _ => {}
        }
        at += size as u64;
    }
    Ok(())
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
