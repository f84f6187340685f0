# Certificates and kubeconfigs for the local clusters, made with openssl.
# Sourced by control-plane.sh and cluster.sh; never run.
# shellcheck shell=bash

# gen_cert <dir> <name> <subject> [<subjectAltName>]: key + cert signed by <dir>/ca.
gen_cert() {
  local dir=$1 name=$2 subj=$3 san=${4:-}
  [ -f "$dir/$name.crt" ] && return 0
  openssl genrsa -out "$dir/$name.key" 2048 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr" 2>/dev/null
  local ext="$dir/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } > "$ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

gen_ca() {
  local dir=$1
  mkdir -p "$dir"; chmod 700 "$dir"
  [ -f "$dir/ca.crt" ] && return 0
  openssl genrsa -out "$dir/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=eventflow-e2e-ca" -days 3650 -sha256 \
    -out "$dir/ca.crt" 2>/dev/null
  # Service-account token signing key pair.
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
}

# write_kubeconfig <file> <server> <ca> <cert> <key> <context-name>
write_kubeconfig() {
  local file=$1 server=$2 ca=$3 cert=$4 key=$5 name=$6
  cat > "$file" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$ca")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 < "$cert")
    client-key-data: $(base64 -w0 < "$key")
contexts:
- name: $name
  context: {cluster: $name, user: $name}
current-context: $name
KCFG
  chmod 600 "$file"
}
