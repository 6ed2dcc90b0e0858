#!/usr/bin/env bash
# A CSR for a threshold key, signed (proof of possession) through the quorumkey provider.
#   OPENSSL_CONF=… certs/make-csr.sh KEY_REF OUT_CSR [SUBJECT] [SUBJECT_ALT_NAMES]
# The key's policy must allow x509-csr. SUBJECT_ALT_NAMES like "DNS:localhost,IP:127.0.0.1".
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 KEY_REF OUT_CSR [SUBJECT] [SUBJECT_ALT_NAMES]" >&2; exit 2; }
: "${OPENSSL_CONF:?set OPENSSL_CONF to the output of 'quorumkey openssl-conf'}"
openssl req -new -key "$1" -sha256 -subj "${3:-/CN=localhost}" -addext "subjectAltName=${4:-DNS:localhost,IP:127.0.0.1}" -out "$2"
openssl req -in "$2" -verify -noout
