"""Peer for `ocpp-witness benchmark validation`: the same messages validated by the Python `jsonschema`
package (what the `ocpp` library uses) against the same OCA schema files, on one core.

Usage: validate_jsonschema.py SCHEMA_ROOT SECONDS < messages.jsonl
Each input line: {"name": ..., "version": "v16"|"v201", "schema": "BootNotification.json", "message": "<json text>"}
Prints one JSON line per message name: {"name": ..., "perSecond": ..., "valid": true|false}.
"""
import json
import sys
import time

import jsonschema


def main():
    root, seconds = sys.argv[1], float(sys.argv[2])
    cases = [json.loads(line) for line in sys.stdin if line.strip()]
    for case in cases:
        with open(f"{root}/{case['version']}/{case['schema']}", encoding="utf-8-sig") as handle:
            schema = json.load(handle)
        validator_class = jsonschema.validators.validator_for(schema)
        validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
        text = case["message"]
        valid = validator.is_valid(json.loads(text))
        count = 0
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()
        while True:
            for _ in range(50):
                payload = json.loads(text)
                validator.is_valid(payload)
            count += 50
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - start
        print(json.dumps({"name": case["name"], "perSecond": count / elapsed, "valid": valid}), flush=True)


if __name__ == "__main__":
    main()
