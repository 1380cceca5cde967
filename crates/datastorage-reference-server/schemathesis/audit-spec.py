#!/usr/bin/env python3
"""Writes the real DataStorage OpenAPI document narrowed to what the reference server serves.

Usage: audit-spec.py SPEC OUT

Keeps the three audit operations (createAuditEvent, createAuditEventsBatch, queryAuditEvents)
and every component. Two readings are applied, both documented in TESTING.md:
- AuditEventRequest.event_data's `oneOf` + `discriminator` is spelt out in keywords
  schemathesis honours: `anyOf` over the mapping's targets, each one "`event_type` is one of
  the keys that map to me, and I match". Schemathesis reads `oneOf` literally and ignores the
  discriminator, and many payload schemas (few required fields, no additionalProperties:
  false) match the same object, so even the spec's own examples fail `oneOf`. The server
  reads the discriminator the same way (src/openapi.rs).
- RFC7807Problem.instance's `format: uri` becomes `uri-reference`: the spec's own example is
  a path (`/api/v1/audit/notifications`), RFC 7807 calls it a URI reference, and the real
  service sends the request path.
The fixture itself is never changed.
"""
import sys

import yaml

KEEP = {"createAuditEvent", "createAuditEventsBatch", "queryAuditEvents"}


def main(source: str, out: str) -> None:
    with open(source, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    paths = {}
    for path, item in spec["paths"].items():
        ops = {m: op for m, op in item.items() if isinstance(op, dict) and op.get("operationId") in KEEP}
        if ops:
            paths[path] = ops
    assert {op["operationId"] for item in paths.values() for op in item.values()} == KEEP, paths.keys()
    spec["paths"] = paths
    schemas = spec["components"]["schemas"]
    event_data = schemas["AuditEventRequest"]["properties"]["event_data"]
    event_data.pop("oneOf")
    discriminator = event_data.pop("discriminator")
    name = discriminator["propertyName"]
    keys_by_target = {}
    for key, target in discriminator["mapping"].items():
        keys_by_target.setdefault(target, []).append(key)
    event_data["anyOf"] = [
        {
            "allOf": [
                {"$ref": target},
                {"type": "object", "required": [name], "properties": {name: {"type": "string", "enum": keys}}},
            ]
        }
        for target, keys in keys_by_target.items()
    ]
    schemas["RFC7807Problem"]["properties"]["instance"]["format"] = "uri-reference"
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump(spec, f, sort_keys=False, allow_unicode=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: audit-spec.py SPEC OUT")
    main(sys.argv[1], sys.argv[2])
