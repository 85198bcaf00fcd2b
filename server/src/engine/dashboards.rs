//! Saved dashboards (design/HTTP.md): JSON documents the console keeps in the catalog,
//! so they survive restarts with everything else. Weir checks the shape it relies on
//! (a title and a list of panels with SQL and a chart kind) and keeps any other fields.

use serde_json::Value;

use super::{Engine, Error, Result};

const CHARTS: &[&str] = &["line", "area", "bar", "number", "table"];

impl Engine {
    /// Every dashboard as `{id, ...body}`, by id.
    pub async fn dashboards(&self) -> Vec<Value> {
        let catalog = self.catalog.lock().await;
        catalog
            .dashboards()
            .map(|(id, body)| with_id(id, body.clone()))
            .collect()
    }

    pub async fn dashboard(&self, id: &str) -> Result<Value> {
        let catalog = self.catalog.lock().await;
        catalog
            .dashboard(id)
            .map(|body| with_id(id, body.clone()))
            .ok_or_else(|| not_found(id))
    }

    /// Creates or replaces a dashboard; returns it and whether it was new.
    pub async fn put_dashboard(&self, id: &str, body: Value) -> Result<(Value, bool)> {
        check_id(id)?;
        let mut body = check_body(body)?;
        if let Some(map) = body.as_object_mut() {
            map.remove("id");
        }
        let existed = self.catalog.lock().await.put_dashboard(id, body.clone())?;
        Ok((with_id(id, body), !existed))
    }

    pub async fn delete_dashboard(&self, id: &str) -> Result<()> {
        if self.catalog.lock().await.remove_dashboard(id)? {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }
}

fn with_id(id: &str, mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        map.insert("id".into(), Value::String(id.to_string()));
    }
    body
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!(
        "unknown dashboard \"{id}\"; GET /v1/dashboards lists the dashboards that exist"
    ))
}

fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "dashboard id \"{id}\" is not a slug: use letters, digits, '_' and '-' (at most 128)"
        )))
    }
}

fn check_body(body: Value) -> Result<Value> {
    let invalid = |m: String| Err(Error::Invalid(m));
    let Some(map) = body.as_object() else {
        return invalid(
            "a dashboard is a JSON object: {\"title\": \"...\", \"panels\": [...]}".into(),
        );
    };
    match map.get("title") {
        Some(Value::String(_)) => {}
        _ => return invalid("a dashboard needs a \"title\" string".into()),
    }
    let Some(Value::Array(panels)) = map.get("panels") else {
        return invalid("a dashboard needs a \"panels\" array (it may be empty)".into());
    };
    for (i, panel) in panels.iter().enumerate() {
        let n = i + 1;
        let Some(panel) = panel.as_object() else {
            return invalid(format!("panel {n} is not a JSON object"));
        };
        if !matches!(panel.get("sql"), Some(Value::String(s)) if !s.trim().is_empty()) {
            return invalid(format!("panel {n} needs a \"sql\" string"));
        }
        match panel.get("chart") {
            Some(Value::String(c)) if CHARTS.contains(&c.as_str()) => {}
            other => {
                return invalid(format!(
                    "panel {n} has chart {}; use one of {}",
                    other
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "missing".into()),
                    CHARTS.join(", ")
                ));
            }
        }
        if let Some(title) = panel.get("title")
            && !title.is_string()
        {
            return invalid(format!("panel {n}: \"title\" must be a string"));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_are_checked_and_extra_fields_kept() {
        let ok = json!({"title": "T", "panels": [{"sql": "SELECT 1", "chart": "line", "x": 1}], "layout": "grid"});
        assert_eq!(check_body(ok.clone()).unwrap(), ok);
        let bad = json!({"title": "T", "panels": [{"sql": "SELECT 1", "chart": "pie"}]});
        let msg = check_body(bad).unwrap_err().to_string();
        assert!(
            msg.contains("panel 1") && msg.contains("line, area"),
            "{msg}"
        );
        assert!(check_body(json!({"panels": []})).is_err());
        assert!(check_id("ops-1_a").is_ok());
        assert!(check_id("a/b").is_err());
    }
}
