#!/usr/bin/env bash
# A self-signed CA certificate for a threshold key, signed through the quorumkey provider.
#   OPENSSL_CONF=<quorumkey openssl-conf output> certs/make-ca.sh CA_KEY_REF OUT_CERT [SUBJECT] [DAYS]
# The key's policy must allow x509-cert.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 CA_KEY_REF OUT_CERT [SUBJECT] [DAYS]" >&2; exit 2; }
: "${OPENSSL_CONF:?set OPENSSL_CONF to the output of 'quorumkey openssl-conf'}"
openssl req -x509 -new -key "$1" -sha256 -days "${4:-3650}" -subj "${3:-/O=quorumkey/CN=quorumkey threshold CA}" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out "$2"
