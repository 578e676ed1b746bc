"""Signed meter values (OCMF) made and judged by independent code: keys and signatures from `cryptography`, the
verdicts from `pyocmf` (both from PyPI, not OCPP Witness code). The test holds every verdict of OCPP Witness
against pyocmf's.

Usage: ocmf_samples.py
Prints a JSON list; each sample has `name`, `curve` (secp256r1 or brainpoolP256r1), `ocmf` (the OCMF text),
`publicKey` (the signer's public key, DER SubjectPublicKeyInfo as hex, or another key for the wrong-key samples),
`kwh` (the reading the payload signs) and `pyocmf` (true: the signature verifies; false: it does not; null:
pyocmf refused to judge it). Per curve: valid, tampered (the payload changed after signing), wrongKey (verified
with another key of the same curve), a begin and an end record (TX B, TX E), base64 signature encoding; for
brainpool also the algorithm's other name (ECDSA-brainpool256r1-SHA256), which pyocmf 0.6.0 refuses.
"""

import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyocmf import OCMF

CURVES = {
    "secp256r1": (ec.SECP256R1(), "ECDSA-secp256r1-SHA256"),
    "brainpoolP256r1": (ec.BrainpoolP256R1(), "ECDSA-brainpoolP256r1-SHA256"),
}


def der_hex(key):
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo).hex().upper()


def payload(kwh, marker, page):
    return json.dumps(
        {
            "FV": "1.0", "GI": "WITNESS-ORACLE", "GS": "SN-ORACLE-1", "GV": "1.0", "PG": f"T{page}", "MV": "Witness Labs",
            "MM": "Meter 1", "MS": "METER-1", "IS": True, "IL": "TRUSTED", "IF": ["RFID_PLAIN"], "IT": "ISO14443", "ID": "04A2B3C4",
            "RD": [{"TM": "2026-12-04T08:00:00,000+0000 S", "TX": marker, "RV": kwh, "RI": "1-b:1.8.0", "RU": "kWh", "RT": "AC", "EF": "", "ST": "G"}],
        },
        separators=(",", ":"),
    )


def sign(key, algorithm, text, encoding="hex"):
    signature = key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    import base64

    data = base64.b64encode(signature).decode() if encoding == "base64" else signature.hex().upper()
    section = {"SA": algorithm, "SD": data}
    if encoding == "base64":
        section["SE"] = "base64"
    return json.dumps(section, separators=(",", ":"))


def judged(ocmf_text, public_key):
    try:
        return bool(OCMF.from_string(ocmf_text).verify_signature(public_key))
    except Exception:
        return None


samples = []
for curve, (curve_object, algorithm) in CURVES.items():
    key = ec.generate_private_key(curve_object)
    other = ec.generate_private_key(curve_object)
    begin = payload(1.000, "B", 1)
    end = payload(1.500, "E", 2)
    cases = [
        ("begin", f"OCMF|{begin}|{sign(key, algorithm, begin)}", der_hex(key), 1.0),
        ("end", f"OCMF|{end}|{sign(key, algorithm, end)}", der_hex(key), 1.5),
        ("tampered", f"OCMF|{end.replace('1.5', '2.5')}|{sign(key, algorithm, end)}", der_hex(key), 2.5),
        ("wrongKey", f"OCMF|{end}|{sign(key, algorithm, end)}", der_hex(other), 1.5),
        ("base64", f"OCMF|{end}|{sign(key, algorithm, end, 'base64')}", der_hex(key), 1.5),
    ]
    if curve == "brainpoolP256r1":
        # The other name of the same algorithm in use in the field; pyocmf 0.6.0 refuses to match it to a brainpool key.
        alias = "ECDSA-brainpool256r1-SHA256"
        cases.append(("aliasName", f"OCMF|{end}|{sign(key, alias, end)}", der_hex(key), 1.5))
    for name, text, public_key, kwh in cases:
        samples.append({"name": f"{curve}-{name}", "curve": curve, "ocmf": text, "publicKey": public_key, "kwh": kwh, "pyocmf": judged(text, public_key)})

print(json.dumps(samples))
