// The OpenAPI 3.0 description of the server's API (docs/server.md is the prose).
#include "server/server.h"

namespace shoal {

const std::string& OpenApiJson() {
  static const std::string kText = R"json({
"openapi": "3.0.3",
"info": {"title": "shoal", "version": "0.1.0",
  "description": "Real-time customer profiles, memberships and activation. Bearer tokens with read (GET) and write (POST) scopes when configured."},
"components": {
  "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
  "schemas": {
    "Error": {"type": "object", "required": ["error"], "properties": {
      "error": {"type": "string"}, "field": {"type": "string", "description": "the offending field, when one is"}}},
    "Event": {"type": "object", "description": "A canonical event (docs/events.md).", "required": ["type", "timestamp"],
      "properties": {"event_id": {"type": "string"}, "type": {"type": "string"},
        "timestamp": {"oneOf": [{"type": "string"}, {"type": "number"}]},
        "customer_id": {"type": "string"}, "email": {"type": "string"}, "anonymous_id": {"type": "string"},
        "phone": {"type": "string"}, "channel": {"type": "string"}, "device": {"type": "string"},
        "properties": {"type": "object"}}, "additionalProperties": true},
    "ItemResult": {"type": "object", "properties": {"index": {"type": "integer"}, "ok": {"type": "boolean"},
      "event_id": {"type": "string"}, "field": {"type": "string"}, "error": {"type": "string"}}},
    "IngestResult": {"type": "object", "properties": {"accepted": {"type": "integer"}, "rejected": {"type": "integer"},
      "stored": {"type": "integer"}, "duplicates": {"type": "integer"}, "suppressed": {"type": "integer"},
      "results": {"type": "array", "items": {"$ref": "#/components/schemas/ItemResult"}}}},
    "Profile": {"type": "object", "properties": {"profile": {"type": "integer"}, "customer_id": {"type": "string"},
      "as_of": {"type": "string"}, "identifiers": {"type": "array", "items": {"type": "object"}},
      "traits": {"type": "object", "additionalProperties": {"type": "number", "nullable": true}},
      "memberships": {"type": "array", "items": {"type": "string"}},
      "by_kind": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}},
    "Members": {"type": "object", "properties": {"membership": {"type": "string"},
      "members": {"type": "array", "items": {"type": "object", "properties": {"profile": {"type": "integer"}, "customer_id": {"type": "string"}}}},
      "next_cursor": {"type": "integer", "nullable": true}}},
    "MembershipChange": {"type": "object", "description": "The body POSTed to webhooks (signed: X-Shoal-Signature: sha256=HMAC-SHA256 hex of the body; X-Shoal-Idempotency-Key = id).",
      "properties": {"id": {"type": "string"}, "type": {"type": "string", "enum": ["entered", "exited"]},
        "membership": {"type": "string"}, "profile": {"type": "integer"}, "customer_id": {"type": "string"},
        "at": {"type": "string"}, "before": {"type": "array", "items": {"type": "string"}},
        "after": {"type": "array", "items": {"type": "string"}}, "cause": {"type": "object"}}}
  },
  "parameters": {
    "cursor": {"name": "cursor", "in": "query", "schema": {"type": "integer"}},
    "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}}
  },
  "responses": {
    "Error": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
  }
},
"security": [{"bearer": []}],
"paths": {
  "/v1/events": {"post": {"summary": "Ingest one event or an array; durable before the answer.",
    "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [
      {"$ref": "#/components/schemas/Event"}, {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}]}}}},
    "responses": {
      "200": {"description": "all accepted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}}},
      "207": {"description": "some accepted, some refused (per-item results)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}}},
      "400": {"description": "malformed JSON, or no event accepted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}}},
      "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"},
      "413": {"$ref": "#/components/responses/Error"}, "500": {"$ref": "#/components/responses/Error"}}}},
  "/v1/profiles/{identifier}": {"get": {"summary": "A profile by customer id, email or anonymous id: traits and memberships; after a build also rfm, segment, audiences and scores as of now, the build's recommendations and build_as_of.",
    "parameters": [{"name": "identifier", "in": "path", "required": true, "schema": {"type": "string"}}],
    "responses": {"200": {"description": "the profile", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Profile"}}}},
      "404": {"$ref": "#/components/responses/Error"}}}},
  "/v1/segments": {"get": {"summary": "Every membership the server evaluates, with member counts.",
    "responses": {"200": {"description": "list", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
  "/v1/segments/{id}/members": {"get": {"summary": "Members of a membership (\"kind:name\"; a bare name means segment:name), paged.",
    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
      {"$ref": "#/components/parameters/cursor"}, {"$ref": "#/components/parameters/limit"}],
    "responses": {"200": {"description": "a page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Members"}}}}}}},
  "/v1/audiences/{name}/members": {"get": {"summary": "Members of audience:name, paged.",
    "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
      {"$ref": "#/components/parameters/cursor"}, {"$ref": "#/components/parameters/limit"}],
    "responses": {"200": {"description": "a page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Members"}}}}}}},
  "/v1/audiences/{name}/export": {"post": {"summary": "The audience as CSV, JSONL or an ad-platform customer list (SHA-256 of normalised email and E.164 phone). Opted-out customers are left out unless marketing=false (never for customer_list).",
    "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
      {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "jsonl", "customer_list"], "default": "csv"}},
      {"name": "marketing", "in": "query", "schema": {"type": "boolean", "default": true}}],
    "responses": {"200": {"description": "the export", "content": {"text/csv": {}, "application/x-ndjson": {}}},
      "400": {"$ref": "#/components/responses/Error"}}}},
  "/v1/forget": {"post": {"summary": "Erase a person (docs/storage.md, Erasure), their memberships and undelivered records.",
    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["identifier"],
      "properties": {"identifier": {"type": "string"}}}}}},
    "responses": {"200": {"description": "forgotten"}, "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
  "/v1/rebuild": {"post": {"summary": "Run the build (segments, RFM, audiences, BTYD, cross-sell) on a copy of the profiles while ingestion and lookups go on, swap its models in, emit every membership change with cause rebuild, checkpoint.",
    "responses": {"200": {"description": "done", "content": {"application/json": {"schema": {"type": "object",
        "properties": {"rebuilt": {"type": "boolean"}, "segments": {"type": "integer"}, "membership_changes": {"type": "integer"},
          "copy_seconds": {"type": "number"}, "build_seconds": {"type": "number"}, "seconds": {"type": "number"}}}}}},
      "409": {"$ref": "#/components/responses/Error"}, "500": {"$ref": "#/components/responses/Error"}}}},
  "/healthz": {"get": {"summary": "Liveness; no token needed.", "security": [],
    "responses": {"200": {"description": "ok"}}}},
  "/metrics": {"get": {"summary": "Prometheus text: requests, latencies, events, queue and outbox depths, deliveries, dead letters.",
    "responses": {"200": {"description": "metrics", "content": {"text/plain": {}}}}}},
  "/openapi.json": {"get": {"summary": "This document.", "security": [], "responses": {"200": {"description": "OpenAPI 3"}}}}
}
})json";
  return kText;
}

}  // namespace shoal
