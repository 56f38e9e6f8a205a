//! The OpenAPI 3.1 document: what the handlers' annotations say, completed by rules that hold
//! for every route, so no route can be published without them: each response has a
//! description, each `{name}` of a path is a declared path parameter, the two ways to
//! authenticate are security schemes, and `/api` and `/ws` (served outside the annotated
//! routers) are described, and the refusals of the gateway's own layers (origin check, JSON
//! type and size, budgets) are declared where they apply. `scripts/test.sh` validates the
//! result (`hilo-gateway openapi`).

use serde_json::{Map, Value, json};

/// Session cookie name of Better Auth (the gateway's default `SESSION_COOKIE`).
const SESSION_COOKIE: &str = "better-auth.session_token";

/// The document as served at `/openapi.json`.
pub fn document() -> anyhow::Result<String> {
    let mut doc = serde_json::to_value(super::api().1)?;
    complete(&mut doc);
    Ok(serde_json::to_string_pretty(&doc)?)
}

fn complete(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            declare_edge_refusals(path, method, operation);
            describe_responses(operation);
            declare_path_parameters(path, operation);
            if path.starts_with("/api/auth/") {
                // Sign-up, sign-in and the OAuth dance need no session; the rest accept one.
                operation.insert(
                    "security".into(),
                    json!([{}, {"bearer": []}, {"session": []}]),
                );
            }
        }
    }
    paths.insert("/api".into(), api_root());
    paths.insert("/ws".into(), websocket());
    doc["security"] = json!([{"bearer": []}, {"session": []}]);
    let components = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})));
    if let Some(components) = components {
        components["securitySchemes"] = json!({
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The session token of sign-up or sign-in (Better Auth's bearer plugin)",
            },
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": SESSION_COOKIE,
                "description": "Better Auth's signed session cookie",
            },
        });
    }
}

/// The answers of the layers in front of every handler, added where an operation can meet
/// them and does not already say so: 403 from the origin check (unsafe methods), 413 and 415
/// for JSON bodies, 429 from the budgets of RATE_LIMITS (app routes; `/api/auth` declares its
/// own).
fn declare_edge_refusals(path: &str, method: &str, operation: &mut Map<String, Value>) {
    let unsafe_method = matches!(method, "post" | "put" | "patch" | "delete");
    let json_body = operation
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .is_some_and(|c| c.get("application/json").is_some());
    let budgeted = path.starts_with("/api/") && !path.starts_with("/api/auth/");
    let refusals = [
        (
            unsafe_method,
            "403",
            "An untrusted Origin, or a session cookie sent with none (INVALID_ORIGIN, MISSING_OR_NULL_ORIGIN)",
        ),
        (json_body, "413", "The body is larger than 1 MiB"),
        (json_body, "415", "The body is not declared as JSON"),
        (
            budgeted,
            "429",
            "A budget of RATE_LIMITS is spent; see Retry-After and X-RateLimit-*",
        ),
    ];
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (applies, status, description) in refusals {
        if applies && !responses.contains_key(status) {
            responses.insert(
                status.into(),
                json!({
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                }),
            );
        }
    }
}

/// Every response gets a description (required by OpenAPI): its status's reason phrase.
fn describe_responses(operation: &mut Map<String, Value>) {
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        if response.get("description").is_none() {
            let reason = status
                .parse::<u16>()
                .ok()
                .and_then(|s| http::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Response");
            response["description"] = reason.into();
        }
    }
}

/// Declares each `{name}` of `path` as a required string path parameter, unless declared.
fn declare_path_parameters(path: &str, operation: &mut Map<String, Value>) {
    let parameters = operation.entry("parameters").or_insert_with(|| json!([]));
    let Some(parameters) = parameters.as_array_mut() else {
        return;
    };
    for name in path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
    {
        let declared = parameters
            .iter()
            .any(|p| p["in"] == "path" && p["name"] == name);
        if !declared {
            parameters.push(json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": {"type": "string"},
                "description": "An id (an unknown or malformed one is a 404)",
            }));
        }
    }
    if parameters.is_empty() {
        operation.remove("parameters");
    }
}

fn api_root() -> Value {
    json!({"get": {
        "tags": ["meta"],
        "summary": "The API's name (the original's root route)",
        "operationId": "api_root",
        "security": [{}],
        "responses": {"200": {
            "description": "OK",
            "content": {"text/plain": {"schema": {"type": "string", "const": "Hilo chat API"}}},
        }},
    }})
}

fn websocket() -> Value {
    let error = json!({"$ref": "#/components/schemas/ErrorBody"});
    let failure = |description: &str| json!({"description": description, "content": {"application/json": {"schema": error}}});
    json!({"get": {
        "tags": ["realtime"],
        "summary": "Open the realtime WebSocket",
        "description": "A WebSocket upgrade (RFC 6455). Client frames: JOIN_THREAD (with sinceSeq to resume), LEAVE_THREAD, TYPING; server frames: the thread events, JOINED_THREAD, LEFT_THREAD, RESYNC_REQUIRED, TYPING, ERROR. Their JSON Schemas are served at /frames/client.schema.json, /frames/server.schema.json and /frames/thread-events.schema.json (the events as NATS carries them).",
        "operationId": "websocket",
        "responses": {
            "101": {"description": "Switching Protocols: the socket is open"},
            "400": failure("A broken handshake (Sec-WebSocket-Key or version)"),
            "401": failure("No valid session"),
            "403": failure("An Origin that is not trusted"),
            "426": failure("Not a WebSocket upgrade"),
            "503": failure("Shutting down, or the session could not be checked"),
        },
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_response_is_described_and_every_path_parameter_declared() {
        let doc: Value = serde_json::from_str(&document().unwrap()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for (status, response) in operation["responses"].as_object().unwrap() {
                    assert!(
                        response["description"].is_string(),
                        "{method} {path} {status}"
                    );
                }
                let params = operation["parameters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for p in &params {
                    if p["in"] == "path" {
                        let name = p["name"].as_str().unwrap();
                        assert!(
                            path.contains(&format!("{{{name}}}")),
                            "{method} {path} {name}"
                        );
                    }
                }
            }
        }
        assert!(doc["paths"]["/ws"]["get"]["responses"]["101"].is_object());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
