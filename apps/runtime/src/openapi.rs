//! The OpenAPI 3.0 document of a web role, generated from the aggregates it
//! serves (so it cannot drift from the routes in [`crate::web`]) and served
//! at `/openapi.json`. Schemathesis checks the live API against it.

use serde_json::{Map, Value, json};

use crate::{aggregate::Aggregate, web::MAX_PAGE_SIZE};

/// Builds the document one aggregate at a time.
pub struct OpenApi {
    title: String,
    paths: Map<String, Value>,
    schemas: Map<String, Value>,
}

fn problem(description: &str) -> Value {
    json!({ "description": description,
            "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } })
}

fn hal(description: &str, schema: &str) -> Value {
    json!({ "description": description,
            "content": { "application/hal+json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn path_param(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

fn paging() -> Value {
    json!([
        { "name": "after", "in": "query", "required": false,
          "description": "Position after which the page starts (from a `next` link).",
          "schema": { "type": "integer", "format": "int64", "minimum": 0 } },
        { "name": "limit", "in": "query", "required": false,
          "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE } }
    ])
}

fn idempotency_header() -> Value {
    json!({ "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Applies the request once; a repeat returns the first result. Workers send `<event id>:<command>:<target id>`.",
            "schema": { "type": "string", "pattern": "^[A-Za-z0-9:._-]{1,200}$" } })
}

/// `_links`: relation -> `{ href }`.
fn links_schema() -> Value {
    json!({ "type": "object",
            "additionalProperties": { "type": "object", "required": ["href"],
                                      "properties": { "href": { "type": "string" } } } })
}

fn with_links(mut schema: Value, required_links: &[&str]) -> Value {
    let mut links = links_schema();
    links["required"] = json!(required_links);
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("_links".into(), links);
    }
    if let Some(req) = schema.get_mut("required").and_then(Value::as_array_mut) {
        req.push(json!("_links"));
    }
    schema
}

fn collection(item_ref: &str, key: &str) -> Value {
    json!({ "type": "object", "required": ["_embedded", "_links"],
            "properties": {
                "_embedded": { "type": "object", "required": [key],
                               "properties": { key: { "type": "array",
                                   "items": { "$ref": format!("#/components/schemas/{item_ref}") } } } },
                "_links": with_links(json!({}), &["self"]).get("_links").cloned().unwrap_or_else(links_schema)
            } })
}

impl OpenApi {
    pub fn new(title: &str) -> Self {
        let mut schemas = Map::new();
        schemas.insert(
            "Problem".into(),
            json!({ "type": "object", "required": ["type", "title", "status", "detail"],
                    "properties": { "type": { "type": "string" }, "title": { "type": "string" },
                                    "status": { "type": "integer" }, "detail": { "type": "string" },
                                    "field": { "type": "string", "description": "The request field at fault." } } }),
        );
        let mut links = links_schema();
        links["required"] = json!(["self"]);
        schemas.insert(
            "Event".into(),
            json!({ "type": "object",
                    "required": ["eventId", "eventType", "aggregateType", "aggregateId", "version", "position", "createdAt", "payload", "_links"],
                    "properties": { "eventId": { "type": "string" }, "eventType": { "type": "string" },
                                    "aggregateType": { "type": "string" }, "aggregateId": { "type": "string" },
                                    "version": { "type": "integer" }, "position": { "type": "integer" },
                                    "createdAt": { "type": "string", "format": "date-time" },
                                    "payload": { "type": "object" }, "_links": links } }),
        );
        schemas.insert("EventCollection".into(), collection("Event", "events"));
        let mut paths = Map::new();
        let mut feed_params = paging();
        if let Some(a) = feed_params.as_array_mut() {
            a.truncate(2);
        }
        paths.insert(
            "/v1/events".into(),
            json!({ "get": { "operationId": "feed", "summary": "Every event of this context, in commit order (replay from after=0).",
                             "parameters": feed_params,
                             "responses": { "200": hal("A page of events", "EventCollection"),
                                            "400": problem("Bad paging parameter"),
                                            "503": problem("Event store unavailable") } } }),
        );
        Self {
            title: title.to_owned(),
            paths,
            schemas,
        }
    }

    /// Adds the routes of [`crate::web::aggregate_routes`] for `A`.
    pub fn aggregate<A: Aggregate>(mut self) -> Self {
        let s = A::schemas();
        let (k, c) = (A::KIND, A::COLLECTION);
        let name = {
            let mut chars = k.chars();
            chars
                .next()
                .map(|f| f.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        };
        self.schemas.insert(
            name.clone(),
            with_links(s.resource, &["self", "events", "commands"]),
        );
        self.schemas.insert(format!("New{name}"), s.create);
        self.schemas
            .insert(format!("{name}Collection"), collection(&name, c));
        self.schemas.insert(
            format!("{name}Commands"),
            json!({ "type": "object", "required": ["commands", "_links"],
                    "properties": { "commands": { "type": "array", "items": { "type": "string", "enum": A::COMMANDS } },
                                    "_links": links_schema() } }),
        );
        let id = path_param("id", json!({ "type": "string" }));
        let unavailable = problem("Event store unavailable");
        self.paths.insert(
            format!("/v1/{c}"),
            json!({
                "post": { "operationId": format!("create{name}"), "parameters": [idempotency_header()],
                          "requestBody": { "required": true, "content": { "application/json": {
                              "schema": { "$ref": format!("#/components/schemas/New{name}") } } } },
                          "responses": { "201": hal("Created", &name), "200": hal("First result of this Idempotency-Key", &name),
                                         "400": problem("Malformed JSON, a missing or invalid field (named in `field`)"),
                                         "409": problem("A unique value is already taken"), "503": unavailable } },
                "get": { "operationId": format!("list{name}s"), "parameters": paging(),
                         "responses": { "200": hal("A page; `_links.next` when more follow", &format!("{name}Collection")),
                                        "400": problem("Bad paging parameter"), "503": unavailable } }
            }),
        );
        let get = |op: String, schema: &str, params: Value| {
            json!({ "get": { "operationId": op, "parameters": params,
                             "responses": { "200": hal("OK", schema), "404": problem("Unknown"), "503": unavailable } } })
        };
        self.paths.insert(
            format!("/v1/{c}/{{id}}"),
            get(format!("get{name}"), &name, json!([id])),
        );
        self.paths.insert(
            format!("/v1/{c}/{{id}}/events"),
            get(format!("{k}Events"), "EventCollection", json!([id])),
        );
        self.paths.insert(
            format!("/v1/{c}/{{id}}/events/{{eventId}}"),
            get(
                format!("{k}Event"),
                "Event",
                json!([id, path_param("eventId", json!({ "type": "string" }))]),
            ),
        );
        self.paths.insert(
            format!("/v1/{c}/{{id}}/commands"),
            get(
                format!("{k}Commands"),
                &format!("{name}Commands"),
                json!([id]),
            ),
        );
        self.paths.insert(
            format!("/v1/{c}/{{id}}/commands/{{command}}"),
            json!({ "post": { "operationId": format!("run{name}Command"),
                              "parameters": [id, path_param("command", json!({ "type": "string", "enum": A::COMMANDS })), idempotency_header()],
                              "responses": { "200": hal("The resource after the command", &name),
                                             "400": problem("Malformed body"), "404": problem("Unknown aggregate or command"),
                                             "409": problem("The current state forbids the command"),
                                             "501": problem("The command needs a context that is not deployed"),
                                             "503": unavailable } } }),
        );
        let _ = s.event_types;
        self
    }

    /// Adds (or replaces) one path item, for routes beyond the common shape.
    pub fn path(mut self, path: &str, item: Value) -> Self {
        self.paths.insert(path.to_owned(), item);
        self
    }

    /// Adds a schema under `#/components/schemas/{name}`.
    pub fn schema(mut self, name: &str, schema: Value) -> Self {
        self.schemas.insert(name.to_owned(), schema);
        self
    }

    pub fn build(self) -> Value {
        json!({
            "openapi": "3.0.3",
            "info": { "title": self.title, "version": env!("CARGO_PKG_VERSION") },
            "paths": self.paths,
            "components": { "schemas": self.schemas },
        })
    }
}
