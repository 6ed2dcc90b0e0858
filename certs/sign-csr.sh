#!/usr/bin/env bash
# Issues a TLS server certificate for a CSR with a threshold CA key, through the quorumkey provider.
#   OPENSSL_CONF=… certs/sign-csr.sh CSR CA_CERT CA_KEY_REF OUT_CERT [DAYS]
# The CA key's policy must allow x509-cert. The CSR's subjectAltName is copied.
set -euo pipefail
[[ $# -ge 4 ]] || { echo "usage: $0 CSR CA_CERT CA_KEY_REF OUT_CERT [DAYS]" >&2; exit 2; }
: "${OPENSSL_CONF:?set OPENSSL_CONF to the output of 'quorumkey openssl-conf'}"
ext=$(mktemp)
trap 'rm -f "$ext"' EXIT
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' > "$ext"
openssl x509 -req -in "$1" -CA "$2" -CAkey "$3" -sha256 -days "${5:-397}" -set_serial "0x$(openssl rand -hex 16)" \
  -copy_extensions copy -extfile "$ext" -out "$4"
openssl verify -CAfile "$2" "$4" >/dev/null
