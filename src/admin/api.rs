//! The console's JSON: a number previewed as the agent would see it, and the service's state.

use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;

use super::{with_type, Console};
use crate::call::CallDetails;
use crate::explain;
use crate::http::reply::{error_json, popup_json};
use crate::lookup::LookupError;

/// `GET /admin/api/preview?phone=&did=&state=&format=`: the answer Voicenter would get, the
/// request it would send, and the `lookup` explanation.
pub(super) async fn preview(console: &Console, query: &str) -> Response {
    let field = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let call = CallDetails {
        phone: field("phone"),
        did: field("did"),
        state: field("state"),
        ..CallDetails::default()
    };
    let format = field("format").unwrap_or_else(|| "get".to_owned());
    let running = console.app.running();
    let (status, answer, explanation) = match running.lookup.answer(&call).await {
        Ok(answer) => (
            200,
            popup_json(&answer.popup),
            explain::report(&running.lookup, &call, &answer),
        ),
        Err(e @ (LookupError::MissingPhone | LookupError::BadPhone(_))) => {
            (400, error_json(&e.to_string()), String::new())
        }
        Err(e) => (503, error_json(&e.to_string()), e.to_string()),
    };
    let answer: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
    json_response(&json!({
        "status": status,
        "request": request(&format, &running.path, &call),
        "answer": answer,
        "explanation": explanation,
    }))
}

/// The request Voicenter would send for `call`, in `format` (`get`, `form` or `json`).
fn request(format: &str, path: &str, call: &CallDetails) -> String {
    let mut fields = Vec::new();
    for (name, value) in [
        ("phone", &call.phone),
        ("did", &call.did),
        ("statusCall", &call.state),
    ] {
        if let Some(value) = value {
            fields.push((name, value.as_str()));
        }
    }
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().copied())
        .finish();
    match format {
        "form" => format!("POST {path}\nContent-Type: application/x-www-form-urlencoded\n\n{form}"),
        "json" => {
            let body: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
                .collect();
            format!(
                "POST {path}\nContent-Type: application/json\n\n{}",
                Value::Object(body)
            )
        }
        _ => format!("GET {path}?{form}"),
    }
}

/// `GET /admin/api/status`: the source, readiness, the index's syncs, each server, and the
/// request counters `/metrics` has.
pub(super) async fn status(console: &Console) -> Response {
    let running = console.app.running();
    let directory = running.lookup.directory();
    let ready = directory.readiness().await;
    let index = directory.index_figures().map(|f| {
        json!({
            "entries": f.entries,
            "numbers": f.numbers,
            "synced_seconds_ago": f.status.age().map(|a| a.as_secs()),
            "last_sync_ms": f.status.last_duration.map(|d| d.as_millis() as u64),
            "last_sync_kind": f.status.last_full.map(|full| if full { "full" } else { "changes only" }),
            "from_saved_state": f.status.from_snapshot,
            "server": f.status.server,
            "last_error": f.status.last_error,
            "syncs_succeeded": f.status.succeeded,
            "syncs_failed": f.status.failed,
        })
    });
    let servers: Vec<Value> = directory
        .servers()
        .into_iter()
        .map(|s| json!({"url": s.url, "active": s.active, "resting": s.resting, "connects": s.connects, "failures": s.failures}))
        .collect();
    let metrics = &console.app.metrics;
    let outcomes: Vec<Value> = metrics
        .outcomes()
        .into_iter()
        .map(|(outcome, count)| json!({"outcome": outcome, "count": count}))
        .collect();
    let (lookups, micros) = metrics.lookup_totals();
    json_response(&json!({
        "last_hour": console.history.minutes(&console.app),
        "source": directory.describe(),
        "ready": ready.is_ok(),
        "not_ready_because": ready.err(),
        "index": index,
        "servers": servers,
        "requests": outcomes,
        "lookups": lookups,
        "mean_lookup_us": micros.checked_div(lookups),
    }))
}

/// `GET /admin/api/recent`: the last calls, newest first (numbers as the log shows them; the
/// full number only when `log.mask_numbers = false`).
pub(super) fn recent(console: &Console) -> Response {
    let now = std::time::SystemTime::now();
    let calls: Vec<Value> = console
        .app
        .recent
        .newest_first()
        .into_iter()
        .map(|c| {
            json!({
                "seconds_ago": now.duration_since(c.at).map(|d| d.as_secs()).unwrap_or(0),
                "number": c.shown,
                "phone": c.phone,
                "outcome": c.outcome,
                "total": c.total,
                "us": c.micros,
            })
        })
        .collect();
    json_response(&json!({"enabled": console.settings.recent_calls, "calls": calls}))
}

fn json_response(value: &Value) -> Response {
    with_type(
        StatusCode::OK,
        value.to_string(),
        "application/json; charset=utf-8",
    )
}

/// What [`hygiene`] answers with.
pub(super) enum Format {
    /// The rows and per-attribute counts, for the page's tables.
    Json,
    /// The rows as CSV, to download.
    Csv,
    /// The repair LDIF, to download.
    RepairLdif,
}

/// One row of the hygiene tables.
struct Row {
    scope: String,
    kind: &'static str,
    dn: String,
    attribute: String,
    value: String,
}

/// `GET /admin/api/hygiene` (`.csv`, and `repair.ldif`): the `check-config` hygiene report of
/// every scope, read from the directory now.
pub(super) async fn hygiene(console: &Console, format: Format) -> Response {
    let running = console.app.running();
    let lookup = &running.lookup;
    let (mut rows, mut attributes, mut ldif) = (Vec::new(), Vec::new(), String::new());
    for scope in 0..lookup.scopes() {
        let Some((phone, attrs)) = lookup.scope_rules(scope) else {
            continue;
        };
        let entries = match lookup.directory().read_all(scope).await {
            Ok(entries) => entries,
            Err(e) => {
                return with_type(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": e.to_string()}).to_string(),
                    "application/json; charset=utf-8",
                )
            }
        };
        let name = lookup
            .directory()
            .scope_name(scope)
            .unwrap_or("")
            .to_owned();
        let report = crate::hygiene::examine(&entries, attrs, phone);
        for (attribute, with, values) in &report.per_attribute {
            attributes.push(
                json!({"scope": name, "attribute": attribute, "entries": with, "values": values}),
            );
        }
        rows.extend(report_rows(&name, report));
        ldif.push_str(&crate::hygiene::repair_ldif(&entries, attrs, phone).ldif);
    }
    match format {
        Format::Json => json_response(&json!({
            "rows": rows.iter().map(|r| json!({
                "scope": r.scope, "kind": r.kind, "dn": r.dn, "attribute": r.attribute, "value": r.value,
            })).collect::<Vec<_>>(),
            "attributes": attributes,
            "repairs": ldif.matches("\nchangetype: modify\n").count(),
        })),
        Format::Csv => download(
            csv(&rows),
            "text/csv; charset=utf-8",
            "popup-ldap-hygiene.csv",
        ),
        Format::RepairLdif => download(ldif, "text/plain; charset=utf-8", "popup-ldap-repair.ldif"),
    }
}

fn report_rows(scope: &str, report: crate::hygiene::Report) -> Vec<Row> {
    let row = |kind, f: crate::hygiene::Finding| Row {
        scope: scope.to_owned(),
        kind,
        dn: f.dn,
        attribute: f.attribute,
        value: f.value,
    };
    let mut rows: Vec<Row> = Vec::new();
    rows.extend(report.no_number.into_iter().map(|f| row("no number", f)));
    rows.extend(
        report
            .unknown_to_plan
            .into_iter()
            .map(|f| row("no known numbering plan", f)),
    );
    rows.extend(
        report
            .guessed_country
            .into_iter()
            .map(|f| row("country guessed", f)),
    );
    for (number, dns) in report.shared {
        for dn in dns {
            rows.push(Row {
                scope: scope.to_owned(),
                kind: "held by several entries",
                dn,
                attribute: String::new(),
                value: number.clone(),
            });
        }
    }
    rows
}

/// RFC 4180 CSV. By hand: five columns of text need quoting and nothing else, less than the
/// `csv` crate's reader and writer would bring.
fn csv(rows: &[Row]) -> String {
    let field = |text: &str| {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    };
    let mut out = String::from("scope,kind,dn,attribute,value\r\n");
    for r in rows {
        let fields = [r.scope.as_str(), r.kind, &r.dn, &r.attribute, &r.value];
        out.push_str(&fields.map(field).join(","));
        out.push_str("\r\n");
    }
    out
}

/// A file to save.
fn download(body: String, kind: &'static str, name: &'static str) -> Response {
    let mut r = with_type(StatusCode::OK, body, kind);
    let disposition = format!("attachment; filename=\"{name}\"");
    if let Ok(value) = warp::http::HeaderValue::from_str(&disposition) {
        r.headers_mut()
            .insert(warp::http::header::CONTENT_DISPOSITION, value);
    }
    r
}
