#!/usr/bin/env bash
# One-time machine set-up for OCPP Witness; `make demo` and `make test` run it first.
# Idempotent: a second run only checks what is already there.
#   - libpcap-dev (Debian package) for pcap import and passive capture; libssl-dev, the system's libcrypto
#     for brainpool signatures of signed meter values; tshark and tcpdump, which the
#     tests use to check that exported pcapng files read cleanly and that tcpdump recordings import;
#     haproxy, in front of two instances in the scale-out test; chromium, the headless browser the live
#     page's test drives
#   - the official OCA JSON schemas for OCPP 1.6, 2.0.1 and 2.1, from the pinned `ocpp` wheel on PyPI,
#     verified by sha256, into schemas/ (git-ignored)
#   - a Python virtual environment in .tools/venv with that same wheel and `websockets`, used by the
#     interoperability tests against a charge point and central system written by others, and `duckdb`,
#     which runs the capture queries of docs/capture-format.md in a test, and `prometheus_client`, whose
#     parser reads the proxy's /metrics in a test, and `pyocmf` with `cryptography`, the independent oracle the
#     signed meter value tests hold OCPP Witness's verdicts against
#   - with --bench: nginx (Debian's nginx-light), the peer of the forwarding benchmark (`make bench`)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=false
[ "${1:-}" = "--bench" ] && BENCH=true

OCPP_WHEEL_VERSION="2.1.0"
OCPP_WHEEL_SHA256="0e452c14c21e2995431334ce1513d5ad8246ecb5c8fb90ed4143e2ecdd9e2845"
WEBSOCKETS_VERSION="15.0.1"
DUCKDB_VERSION="2.0.1"
PROMETHEUS_CLIENT_VERSION="0.26.0"
# The oracle for signed meter values: pyocmf judges, cryptography signs (Tests/Interop/ocmf_samples.py).
PYOCMF_VERSION="0.6.0"
CRYPTOGRAPHY_VERSION="51.0.1"
TOOLS=".tools"
SCHEMAS="schemas"
PYTHON="${PYTHON:-python3}"

say() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- Debian packages -------------------------------------------------------------------------------
missing=()
dpkg -s libpcap-dev >/dev/null 2>&1 || missing+=(libpcap-dev)
# The system's libcrypto: ECDSA over brainpool curves for signed meter values (OCMF).
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v tshark >/dev/null 2>&1 || missing+=(tshark)
command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
# HAProxy: the scale-out test shards chargers over two instances with it, as fleets are deployed.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
# Chromium: the live page's test drives it headless, as a person would use the page.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if $BENCH && [ ! -x /usr/sbin/nginx ]; then missing+=(nginx-light); fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO=sudo
        else
            fail "missing Debian packages: ${missing[*]}. Run 'sudo apt-get install ${missing[*]}' or run this as root."
        fi
    else
        SUDO=""
    fi
    say "installing ${missing[*]} with apt-get"
    $SUDO apt-get update -qq >/dev/null
    # tshark asks whether non-root users may capture; the default (no) is fine and is taken unasked.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- OCA schemas from the pinned wheel -------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || fail "python3 is needed to fetch the OCA schemas from PyPI"
wheel="$TOOLS/wheels/ocpp-${OCPP_WHEEL_VERSION}-py3-none-any.whl"
stamp="$SCHEMAS/.installed-from"
if [ "$(cat "$stamp" 2>/dev/null)" != "$OCPP_WHEEL_SHA256" ]; then
    mkdir -p "$TOOLS/wheels"
    if [ ! -f "$wheel" ] || ! echo "$OCPP_WHEEL_SHA256  $wheel" | sha256sum -c --status; then
        say "downloading ocpp==${OCPP_WHEEL_VERSION} from PyPI"
        rm -f "$wheel"
        "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: "ocpp==${OCPP_WHEEL_VERSION}" -d "$TOOLS/wheels" \
            || fail "could not download ocpp==${OCPP_WHEEL_VERSION} from PyPI"
    fi
    echo "$OCPP_WHEEL_SHA256  $wheel" | sha256sum -c --status \
        || fail "sha256 of $wheel does not match the pinned $OCPP_WHEEL_SHA256; refusing to use it"
    rm -rf "$SCHEMAS.tmp"
    "$PYTHON" - "$wheel" "$SCHEMAS.tmp" <<'PY'
import sys, zipfile, pathlib
wheel, target = sys.argv[1], pathlib.Path(sys.argv[2])
counts = {}
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        for version in ("v16", "v201", "v21"):
            prefix = f"ocpp/{version}/schemas/"
            if name.startswith(prefix) and name.endswith(".json"):
                out = target / version / name[len(prefix):]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.read(name))
                counts[version] = counts.get(version, 0) + 1
for version in ("v16", "v201", "v21"):
    if not counts.get(version):
        sys.exit(f"no schemas for {version} in {wheel}")
print("setup: schemas: " + ", ".join(f"{v} {n} files" for v, n in sorted(counts.items())))
PY
    rm -rf "$SCHEMAS"
    mv "$SCHEMAS.tmp" "$SCHEMAS"
    echo "$OCPP_WHEEL_SHA256" > "$stamp"
fi

# --- Python peers for interoperability tests -------------------------------------------------------
venv="$TOOLS/venv"
venv_stamp="$venv/.installed"
want="ocpp=${OCPP_WHEEL_SHA256} websockets=${WEBSOCKETS_VERSION} duckdb=${DUCKDB_VERSION} prometheus_client=${PROMETHEUS_CLIENT_VERSION} pyocmf=${PYOCMF_VERSION} cryptography=${CRYPTOGRAPHY_VERSION}"
if [ "$(cat "$venv_stamp" 2>/dev/null)" != "$want" ]; then
    say "creating $venv with ocpp ${OCPP_WHEEL_VERSION}, websockets ${WEBSOCKETS_VERSION}, duckdb ${DUCKDB_VERSION}, prometheus_client ${PROMETHEUS_CLIENT_VERSION}, pyocmf ${PYOCMF_VERSION} and cryptography ${CRYPTOGRAPHY_VERSION}"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv" || fail "python3 -m venv failed; install the python3-venv package"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" "websockets==${WEBSOCKETS_VERSION}" "duckdb==${DUCKDB_VERSION}" \
        "prometheus_client==${PROMETHEUS_CLIENT_VERSION}" "pyocmf[crypto]==${PYOCMF_VERSION}" "cryptography==${CRYPTOGRAPHY_VERSION}" \
        || fail "could not install the Python interoperability peers"
    echo "$want" > "$venv_stamp"
fi
say "ready"
