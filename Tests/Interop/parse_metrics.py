"""Parses a Prometheus text exposition from stdin with prometheus_client's own parser (the one Prometheus
client libraries agree with) and prints one JSON object per sample: metric family, type, sample name,
labels and value. A line the parser rejects ends the script with its error on stderr and status 1."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            print(json.dumps({
                "family": family.name, "type": family.type, "help": family.documentation,
                "name": sample.name, "labels": sample.labels, "value": sample.value,
            }))
except Exception as error:  # the parser raises ValueError and others on malformed input
    print(f"not a valid exposition: {error}", file=sys.stderr)
    sys.exit(1)
