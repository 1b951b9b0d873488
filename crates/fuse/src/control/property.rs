//! `property`: set (with `value`) or show (`name`, or every property) the properties of
//! a path, with the asker's credentials.

use std::io::Write;

use serde_json::{json, Value};

use super::request::{bytes_field, fail, header, Asker};
use super::Server;

pub(super) fn answer(
    server: &Server,
    req: &Value,
    asker: &Asker,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let rel = bytes_field(req, "path").unwrap_or_default();
    let ino = match server.fs.resolve_path(&rel) {
        Ok(i) => i,
        Err(e) => return fail(out, &e),
    };
    let name = req["name"].as_str();
    if let (Some(n), Some(v)) = (name, req["value"].as_str()) {
        if let Err(e) = server.fs.set_property(ino, n, v, asker.caller) {
            return fail(out, &e);
        }
    }
    match server.fs.properties(ino, name) {
        Ok(props) => {
            let list: Vec<Value> = props
                .iter()
                .map(|p| json!({"name": p.name, "value": p.value, "source": p.source}))
                .collect();
            header(out, &json!({"ok": true, "count": 0, "properties": list}))
        }
        Err(e) => fail(out, &e),
    }
}
