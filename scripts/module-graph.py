#!/usr/bin/env python3
"""The module graph of docs/architecture.md, generated from Package.swift so that it cannot drift.

Reads `swift package dump-package` (JSON) on standard input and
  --print          prints the generated block;
  --check FILE     exits 1 (saying what differs) when FILE's block is not what Package.swift gives;
  --write FILE     replaces FILE's block with it.
The block sits between the two marker lines below; everything else in FILE is left alone.
"""
import json
import sys

BEGIN = "<!-- module graph: generated from Package.swift by scripts/module-graph.py; `make docs` rewrites it -->"
END = "<!-- end of module graph -->"


def dependencies(target):
    """(modules of this package, external products) a target depends on, in manifest order."""
    internal, external = [], []
    for dependency in target["dependencies"]:
        if "byName" in dependency:
            internal.append(dependency["byName"][0])
        elif "target" in dependency:
            internal.append(dependency["target"][0])
        elif "product" in dependency:
            external.append(dependency["product"][0])
    return internal, external


def block(package):
    targets = [t for t in package["targets"] if t["type"] != "test"]
    tests = [t for t in package["targets"] if t["type"] == "test"]
    def node(name):
        return name.replace("-", "_")

    lines = [BEGIN, "", "```mermaid", "graph BT"]
    lines += [f"  {node(t['name'])}[{t['name']}]" for t in targets if node(t["name"]) != t["name"]]
    for target in targets:
        internal, _ = dependencies(target)
        lines += [f"  {node(target['name'])} --> {node(name)}" for name in internal]
    lines += ["```", "", "| module | kind | modules it uses | packages it uses |", "|---|---|---|---|"]
    for target in targets:
        internal, external = dependencies(target)
        kind = {"regular": "library", "executable": "executable", "system": "system library"}.get(target["type"], target["type"])
        lines.append(
            f"| `{target['name']}` | {kind} | {', '.join(internal) or '—'} | {', '.join(external) or '—'} |"
        )
    lines += ["", "Test targets: " + ", ".join(f"`{t['name']}`" for t in tests) + ".", "", END]
    return "\n".join(lines)


def split(text, path):
    if BEGIN not in text or END not in text:
        sys.exit(f"{path}: the module graph markers are missing (see scripts/module-graph.py)")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head, BEGIN + rest.split(END, 1)[0] + END, tail


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "--print"
    generated = block(json.load(sys.stdin))
    if mode == "--print":
        print(generated)
        return
    path = sys.argv[2]
    text = open(path, encoding="utf-8").read()
    head, current, tail = split(text, path)
    if mode == "--check":
        if current != generated:
            old, new = current.splitlines(), generated.splitlines()
            print(f"{path}: the module graph is not what Package.swift gives; run `make docs`", file=sys.stderr)
            for line in [f"- {l}" for l in old if l not in new] + [f"+ {l}" for l in new if l not in old]:
                print("  " + line, file=sys.stderr)
            sys.exit(1)
    elif mode == "--write":
        open(path, "w", encoding="utf-8").write(head + generated + tail)
    else:
        sys.exit(f"unknown mode {mode}; use --print, --check FILE or --write FILE")


if __name__ == "__main__":
    main()
