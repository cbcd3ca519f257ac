{{/*
Helpers of the remex chart. The chart uses only what tests/helm/render
implements (see helm/remex/README.md): text/template, sprig, include, tpl,
required, toYaml, fromYaml, toJson; no lookup, no .Files.Glob.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "remex.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else the release
name when it contains the chart name, else RELEASE-CHART. At most 63
characters (DNS label).
*/}}
{{- define "remex.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* CHART-VERSION, as in the helm.sh/chart label. */}}
{{- define "remex.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the server's pods; never change them after install. */}}
{{- define "remex.selectorLabels" -}}
app.kubernetes.io/name: {{ include "remex.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* Labels of every object. */}}
{{- define "remex.labels" -}}
helm.sh/chart: {{ include "remex.chart" . }}
{{ include "remex.selectorLabels" . }}
app.kubernetes.io/version: {{ include "remex.imageTag" . | quote }}
app.kubernetes.io/part-of: remex
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "remex.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "remex.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "remex.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is set. */}}
{{- define "remex.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "remex.imageTag" .) }}
{{- end }}
{{- end }}

{{/* Where the ConfigMap's config.yaml is mounted. */}}
{{- define "remex.configDir" -}}
/etc/remex
{{- end }}

{{/*
The server's config file: .Values.config as YAML. Only keys the server
knows are allowed (values.schema.json mirrors them).
*/}}
{{- define "remex.configFile" -}}
{{ toYaml .Values.config }}
{{- end }}

{{/*
The pod's grace, in seconds: preStop pause + drain grace + margin. With a
store the margin is at least storeExtraSeconds: after the grace the server
hands its running tasks back, and gives up on a hung database at grace +
20 s (values.yaml, shutdown).
*/}}
{{- define "remex.terminationGracePeriodSeconds" -}}
{{- $s := .Values.shutdown }}
{{- $extra := int $s.extraSeconds }}
{{- if .Values.store.existingSecret }}
{{- $extra = max $extra (int $s.storeExtraSeconds) }}
{{- end }}
{{- add (int $s.preStopSleepSeconds) (int $s.graceSeconds) $extra }}
{{- end }}

{{/*
Whether the Deployment leaves its replicas to an autoscaler: the chart's
HPA (autoscaling.enabled) or one of yours (autoscaling.external, e.g. KEDA).
*/}}
{{- define "remex.autoscaled" -}}
{{- if or .Values.autoscaling.enabled .Values.autoscaling.external -}}
true
{{- end }}
{{- end }}

{{/*
More than one replica only on a shared store: with the memory store a task
lives in the replica that accepted it. Also refuses autoscaler settings
that contradict each other (this holds without the schema too).
*/}}
{{- define "remex.validateScaling" -}}
{{- $a := .Values.autoscaling }}
{{- if not .Values.store.existingSecret }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail "replicaCount: at most 1 with the memory store: a task lives in the memory of the replica that accepted it, and another replica would answer NOT_FOUND for it. To run more replicas on one PostgreSQL database, set store.existingSecret (a Secret holding its URL; see the chart README, Scaling out)" }}
{{- end }}
{{- if include "remex.autoscaled" . }}
{{- fail "autoscaling needs store.existingSecret: with the memory store there is one replica at most (a task lives in the replica that accepted it); set store.existingSecret to scale replicas on one PostgreSQL database" }}
{{- end }}
{{- end }}
{{- if and $a.enabled $a.external }}
{{- fail "autoscaling: enabled (the chart's HPA) and external (KEDA or another autoscaler) both set; two autoscalers on one Deployment fight: keep one" }}
{{- end }}
{{- if $a.enabled }}
{{- if lt (int $a.minReplicas) 1 }}
{{- fail "autoscaling.minReplicas: at least 1" }}
{{- end }}
{{- if lt (int $a.maxReplicas) (int $a.minReplicas) }}
{{- fail "autoscaling.maxReplicas: at least autoscaling.minReplicas" }}
{{- end }}
{{- if not (or $a.targetCPUUtilizationPercentage $a.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling.enabled needs autoscaling.targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- $requests := default dict (default dict .Values.resources).requests }}
{{- if and $a.targetCPUUtilizationPercentage (not $requests.cpu) }}
{{- fail "autoscaling.targetCPUUtilizationPercentage needs resources.requests.cpu (the HPA's utilization is relative to it)" }}
{{- end }}
{{- if and $a.targetMemoryUtilizationPercentage (not $requests.memory) }}
{{- fail "autoscaling.targetMemoryUtilizationPercentage needs resources.requests.memory (the HPA's utilization is relative to it)" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The server's command line, after the binary. */}}
{{- define "remex.args" -}}
- --listen=0.0.0.0:{{ int .Values.service.port }}
- --config={{ include "remex.configDir" . }}/config.yaml
- --shutdown-grace={{ int .Values.shutdown.graceSeconds }}s
{{- if .Values.metrics.enabled }}
- --metrics-listen=0.0.0.0:{{ int .Values.metrics.port }}
{{- else }}
- --metrics-listen=none
{{- end }}
- --log-format={{ .Values.log.format }}
- --log-level={{ .Values.log.level }}
{{- with .Values.memoryBudget }}
- --memory-budget={{ . }}
{{- end }}
{{- if .Values.plugins.enabled }}
{{- range .Values.plugins.files }}
- --plugin={{ $.Values.plugins.mountPath }}/{{ . }}
{{- end }}
{{- end }}
{{- if .Values.auth.enabled }}
- --auth={{ include "remex.secretsDir" . }}/auth/{{ include "remex.authKey" . }}
{{- end }}
{{- if .Values.tls.enabled }}
- --tls-cert={{ include "remex.secretsDir" . }}/tls/tls.crt
- --tls-key={{ include "remex.secretsDir" . }}/tls/tls.key
{{- if .Values.tls.clientCA.enabled }}
- --tls-client-ca={{ include "remex.secretsDir" . }}/client-ca/ca.crt
{{- end }}
{{- end }}
{{- if eq .Values.security.mode "insecure" }}
- --insecure
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Where the Secrets (and the client CA) are mounted, one directory each:
auth/, tls/, client-ca/. Directories, not subPath mounts, so that the kubelet
updates the files when the Secret changes (the server rereads them on SIGHUP).
*/}}
{{- define "remex.secretsDir" -}}
/var/run/secrets/remex
{{- end }}

{{/* The Secret that holds the auth file, and its key. */}}
{{- define "remex.authSecretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- printf "%s-auth" (include "remex.fullname" . | trunc 58 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{- define "remex.authKey" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecretKey }}
{{- else -}}
auth.yaml
{{- end }}
{{- end }}

{{/* The auth file rendered from auth.principals. */}}
{{- define "remex.authFile" -}}
{{ toYaml (dict "principals" .Values.auth.principals) }}
{{- end }}

{{/* The kubernetes.io/tls Secret the server's certificate comes from. */}}
{{- define "remex.tlsSecretName" -}}
{{- if .Values.tls.secretName }}
{{- .Values.tls.secretName }}
{{- else if .Values.tls.certManager.enabled }}
{{- printf "%s-tls" (include "remex.fullname" . | trunc 59 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/*
Secure by default: fails the render unless callers must authenticate (auth
or mTLS), or security.mode says "insecure". Also refuses settings that
contradict each other, so that what is deployed is what was meant (this
holds without the schema too, e.g. helm --skip-schema-validation).
*/}}
{{- define "remex.validateSecurity" -}}
{{- $auth := .Values.auth }}
{{- $tls := .Values.tls }}
{{- $mtls := and $tls.enabled $tls.clientCA.enabled }}
{{- if not (has .Values.security.mode (list "secure" "insecure")) }}
{{- fail (printf "security.mode: %q is neither secure nor insecure" (toString .Values.security.mode)) }}
{{- end }}
{{- if eq .Values.security.mode "secure" }}
{{- if not (or $auth.enabled $mtls) }}
{{- fail "remex is secure by default and nothing authenticates its callers: set auth.enabled with auth.principals (or auth.existingSecret), or tls.enabled with tls.clientCA (mTLS); or, to let anyone who reaches the port call it, security.mode: insecure (see the chart README, Security)" }}
{{- end }}
{{- else if or $auth.enabled $mtls }}
{{- fail "security.mode: insecure, yet auth.enabled or tls.clientCA.enabled is set: the server would not be insecure; drop security.mode: insecure" }}
{{- end }}
{{- if $auth.enabled }}
{{- if and $auth.principals $auth.existingSecret }}
{{- fail "auth: set auth.principals or auth.existingSecret, not both" }}
{{- end }}
{{- if not (or $auth.principals $auth.existingSecret) }}
{{- fail "auth.enabled needs auth.principals or auth.existingSecret (a Secret holding the auth file)" }}
{{- end }}
{{- range $auth.principals }}
{{- if and .token_sha256 (not (regexMatch "^[0-9a-f]{64}$" (toString .token_sha256))) }}
{{- fail (printf "auth.principals %s: token_sha256 must be 64 lowercase hex digits (the SHA-256 of the token, not the token)" (toString .name)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (or $auth.enabled $tls.enabled) (not .Values.podSecurityContext.fsGroup) }}
{{- fail "auth and tls mount Secrets with mode 0440, readable by the group podSecurityContext.fsGroup: keep podSecurityContext.fsGroup (65532)" }}
{{- end }}
{{- if and $tls.clientCA.enabled (not $tls.enabled) }}
{{- fail "tls.clientCA (mTLS) needs tls.enabled (the server's own certificate)" }}
{{- end }}
{{- if and $tls.certManager.enabled (not $tls.enabled) }}
{{- fail "tls.certManager.enabled needs tls.enabled" }}
{{- end }}
{{- if $tls.enabled }}
{{- if not (include "remex.tlsSecretName" .) }}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret) or tls.certManager.enabled" }}
{{- end }}
{{- if $tls.certManager.enabled }}
{{- $_ := required "tls.certManager.enabled needs tls.certManager.issuerRef.name" $tls.certManager.issuerRef.name }}
{{- end }}
{{- if $tls.clientCA.enabled }}
{{- if eq (empty $tls.clientCA.secretName) (empty $tls.clientCA.configMapName) }}
{{- fail "tls.clientCA needs one of tls.clientCA.secretName and tls.clientCA.configMapName" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The probes' action: gRPC health without TLS, tcpSocket with TLS. */}}
{{- define "remex.probeAction" -}}
{{- if .Values.tls.enabled -}}
tcpSocket:
  port: {{ int .Values.service.port }}
{{- else -}}
grpc:
  port: {{ int .Values.service.port }}
  {{- with .Values.probes.grpcService }}
  service: {{ . | quote }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Whether the reloader sidecar runs: on, and something to watch. */}}
{{- define "remex.reloader" -}}
{{- if and .Values.reloader.enabled (or .Values.auth.enabled .Values.tls.enabled) -}}
true
{{- end }}
{{- end }}

{{/*
The files the reloader watches: those the server's flags name, all in the
Secret (and client CA) mounts.
*/}}
{{- define "remex.watchedFiles" -}}
{{- $dir := include "remex.secretsDir" . }}
{{- if .Values.auth.enabled }}
- {{ $dir }}/auth/{{ include "remex.authKey" . }}
{{- end }}
{{- if .Values.tls.enabled }}
- {{ $dir }}/tls/tls.crt
- {{ $dir }}/tls/tls.key
{{- if .Values.tls.clientCA.enabled }}
- {{ $dir }}/client-ca/ca.crt
{{- end }}
{{- end }}
{{- end }}

{{/*
The reloader's script (POSIX sh, coreutils): when the digest of the files
changes, SIGHUP to the process whose command line starts with INIT and
contains MARKER (tini running this release's server: in the pod's shared
process namespace there is one). tini forwards it to remex-server only
(process-pool workers never get it). Arguments: INTERVAL INIT MARKER FILE...
*/}}
{{- define "remex.reloaderScript" -}}
set -u
interval=$1 init=$2 marker=$3
shift 3
digest() { cat "$@" 2>/dev/null | sha256sum; }
last=$(digest "$@")
echo "reloader: watching $*"
while sleep "$interval"; do
  now=$(digest "$@")
  [ "$now" = "$last" ] && continue
  last=$now
  found=
  for dir in /proc/[0-9]*; do
    cmdline=$(tr '\000' ' ' < "$dir/cmdline" 2>/dev/null) || continue
    case "$cmdline" in
      "$init "*"$marker"*) found=${dir#/proc/}; break ;;
    esac
  done
  if [ -n "$found" ] && kill -HUP "$found"; then
    echo "reloader: files changed: SIGHUP to $init (pid $found)"
  else
    echo "reloader: files changed, but no $init running $marker to signal" >&2
  fi
done
{{- end }}

{{/* The read-only mounts of the auth and TLS Secrets (server, reloader). */}}
{{- define "remex.secretMounts" -}}
{{- if .Values.auth.enabled }}
- name: auth
  mountPath: {{ include "remex.secretsDir" . }}/auth
  readOnly: true
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ include "remex.secretsDir" . }}/tls
  readOnly: true
{{- if .Values.tls.clientCA.enabled }}
- name: client-ca
  mountPath: {{ include "remex.secretsDir" . }}/client-ca
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/*
The helm test's health check, run by the image's bash (it has no gRPC
client): grpc.health.v1.Health/Check over HTTP/2 without TLS, frames
written by hand (HPACK literals, no Huffman), the answer's DATA frames read
back; exit 0 only on SERVING. Arguments: HOST PORT SERVICE TIMEOUT, or
HOST PORT --tcp TIMEOUT to check only that the port accepts connections
(TLS). tests/helm runs it against a real remex-server.
*/}}
{{- define "remex.healthCheckScript" -}}
set -uo pipefail
host=$1 port=$2 service=$3 timeout=$4
if ! timeout "$timeout" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port"; then
  echo "FAIL: cannot connect to $host:$port"
  exit 1
fi
if [[ $service == --tcp ]]; then
  echo "OK: $host:$port accepts connections (TLS: health not asked)"
  exit 0
fi
# An HPACK integer with a 7-bit prefix (string lengths), or a protobuf
# varint, as printf escapes.
hpack_length() {
  local n=$1
  if (( n < 127 )); then printf '\\x%02x' "$n"; return; fi
  printf '\\x7f'; n=$(( n - 127 ))
  while (( n >= 128 )); do printf '\\x%02x' $(( n % 128 + 128 )); n=$(( n / 128 )); done
  printf '\\x%02x' "$n"
}
varint() {
  local n=$1
  while (( n >= 128 )); do printf '\\x%02x' $(( n % 128 + 128 )); n=$(( n / 128 )); done
  printf '\\x%02x' "$n"
}
literal() { hpack_length "${#1}"; printf '%s' "$1"; }
frame_header() {  # LENGTH TYPE FLAGS, stream 1 (0 for SETTINGS)
  printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x%02x' \
    $(( $1 >> 16 & 255 )) $(( $1 >> 8 & 255 )) $(( $1 & 255 )) "$2" "$3" "$4"
}
# :method POST, :scheme http, :path, :authority, content-type, te.
headers="\\x83\\x86\\x04$(literal /grpc.health.v1.Health/Check)"
headers+="\\x01$(literal "$host:$port")\\x0f\\x10$(literal application/grpc)"
headers+="\\x00$(literal te)$(literal trailers)"
request=""
if [[ -n $service ]]; then request="\\x0a$(varint "${#service}")$service"; fi
request_length=$(printf "$request" | wc -c)
message="\\x00$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' 0 0 0 "$request_length")$request"
exec 3<>"/dev/tcp/$host/$port"
{
  printf 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
  printf "$(frame_header 0 4 0 0)"
  printf "$(frame_header "$(printf "$headers" | wc -c)" 1 4 1)$headers"
  printf "$(frame_header $(( request_length + 5 )) 0 1 1)$message"
} >&3
reply=$(timeout "$timeout" cat <&3 | od -An -v -tx1 | tr -d ' \n')
# The DATA frames (type 0) of stream 1: a gRPC message whose field 1 is the
# status (1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN).
data="" i=0
while (( i + 18 <= ${#reply} )); do
  length=$(( 16#${reply:i:6} ))
  if [[ ${reply:i+6:2} == 00 && ${reply:i+10:8} == 00000001 ]]; then
    data+=${reply:i+18:length*2}
  fi
  i=$(( i + 18 + length * 2 ))
done
case ${data:10} in
  0801) echo "OK: $host:$port health${service:+ of $service}: SERVING"; exit 0 ;;
  0802) status=NOT_SERVING ;;
  0803) status=SERVICE_UNKNOWN ;;
  "") status="no answer (an error status: unknown service, or not gRPC)" ;;
  *) status="unexpected answer $data" ;;
esac
echo "FAIL: $host:$port health${service:+ of $service}: $status"
exit 1
{{- end }}
