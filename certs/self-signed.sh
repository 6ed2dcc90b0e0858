#!/usr/bin/env bash
# A self-signed server certificate for a threshold key, through the quorumkey provider.
#   OPENSSL_CONF=… certs/self-signed.sh KEY_REF OUT_CERT [COMMON_NAME] [SUBJECT_ALT_NAMES] [DAYS]
# The key's policy must allow x509-cert (a key that signs its own certificate).
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 KEY_REF OUT_CERT [COMMON_NAME] [SUBJECT_ALT_NAMES] [DAYS]" >&2; exit 2; }
: "${OPENSSL_CONF:?set OPENSSL_CONF to the output of 'quorumkey openssl-conf'}"
openssl req -x509 -new -key "$1" -sha256 -days "${5:-397}" -subj "/CN=${3:-localhost}" \
  -addext "subjectAltName=${4:-DNS:localhost,IP:127.0.0.1}" -addext extendedKeyUsage=serverAuth -out "$2"
