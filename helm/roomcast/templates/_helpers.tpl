{{/* Chart name, overridable. */}}
{{- define "roomcast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-<chart>" unless the release name already contains the chart name. */}}
{{- define "roomcast.fullname" -}}
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

{{- define "roomcast.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image tag every service runs: pinned in values, else the chart's appVersion. */}}
{{- define "roomcast.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* Labels every resource carries (Kubernetes' recommended set). */}}
{{- define "roomcast.labels" -}}
helm.sh/chart: {{ include "roomcast.chart" . }}
{{ include "roomcast.selectorLabels" . }}
app.kubernetes.io/version: {{ include "roomcast.imageTag" . | quote }}
app.kubernetes.io/part-of: roomcast
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "roomcast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roomcast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The three services in a fixed order. Each entry: the values key under .Values.services,
the component name (resource suffix and label), the Python module the container runs,
the settings section of its port, which secrets it reads and whether it talks to Kafka.
*/}}
{{- define "roomcast.components" -}}
- key: auth
  component: auth
  module: roomcast_auth
  section: AUTH
  jwtSecret: true
  apiKeys: auth-api-keys
  kafka: false
- key: wsEdge
  component: ws-edge
  module: roomcast_edge
  section: EDGE
  jwtSecret: true
  apiKeys: ""
  kafka: true
- key: publisher
  component: publisher
  module: roomcast_publisher
  section: PUBLISHER
  jwtSecret: false
  apiKeys: publisher-api-keys
  kafka: true
{{- end }}

{{/* The list above as data: (include "roomcast.componentList" . | fromYamlArray). */}}
{{- define "roomcast.componentList" -}}
{{- include "roomcast.components" . }}
{{- end }}

{{/* Labels of one component; call with (dict "root" $ "component" "auth"). */}}
{{- define "roomcast.componentLabels" -}}
{{ include "roomcast.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "roomcast.componentSelectorLabels" -}}
{{ include "roomcast.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
No public registry holds roomcast's images: without a registry a cluster would try
docker.io/library/roomcast-auth and never start. Refuse unless told the nodes have them.
*/}}
{{- define "roomcast.image" -}}
{{- $root := .root }}
{{- $repo := .repository }}
{{- if $root.Values.image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" $root.Values.image.registry) $repo (include "roomcast.imageTag" $root) }}
{{- else if $root.Values.image.local }}
{{- printf "%s:%s" $repo (include "roomcast.imageTag" $root) }}
{{- else }}
{{- fail "image.registry is empty and no public registry holds roomcast's images: push them with `make images REGISTRY=<your registry>` and set image.registry=<your registry>, or set image.local=true when every node already holds them (kind load, minikube image load)" }}
{{- end }}
{{- end }}

{{- define "roomcast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "roomcast.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "roomcast.secretName" -}}
{{- default (printf "%s-secrets" (include "roomcast.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "roomcast.configName" -}}
{{- printf "%s-config" (include "roomcast.fullname" .) }}
{{- end }}

{{/* Seconds a component needs between SIGTERM and exit, besides the preStop sleep. */}}
{{- define "roomcast.drainSeconds" -}}
{{- if eq .key "wsEdge" }}{{ .values.drainSeconds }}{{ else }}0{{ end }}
{{- end }}

{{/* OTEL_RESOURCE_ATTRIBUTES: the pod's identity (expanded by the kubelet) plus values. */}}
{{- define "roomcast.otelResourceAttributes" -}}
{{- $attrs := list "k8s.pod.name=$(POD_NAME)" "k8s.namespace.name=$(POD_NAMESPACE)" (printf "service.version=%s" (include "roomcast.imageTag" .root)) }}
{{- range $k, $v := .root.Values.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $attrs }}
{{- end }}

{{/* One Ingress path to a Service's http port. */}}
{{- define "roomcast.ingressPath" -}}
- path: {{ .path }}
  pathType: Prefix
  backend:
    service:
      name: {{ .service }}
      port:
        name: http
{{- end }}

{{/* A Kubernetes memory quantity ("1Gi", "512M", "1073741824") in bytes. */}}
{{- define "roomcast.quantityBytes" -}}
{{- $text := toString . }}
{{- if kindIs "float64" . }}
{{- $text = int64 . | toString }}
{{- end }}
{{- $number := regexFind `^[0-9]+([.][0-9]+)?` $text }}
{{- $suffix := trimPrefix $number $text }}
{{- $factors := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if or (not $number) (not (hasKey $factors $suffix)) }}
{{- fail (printf "%q is not a memory quantity (a number with an optional k, M, G, T, Ki, Mi, Gi or Ti suffix)" $text) }}
{{- end }}
{{- mulf (float64 $number) (index $factors $suffix) | int64 }}
{{- end }}

{{/*
The edge's memory limit must hold its recovery history, its connections and the
process itself; an edge over its limit is killed with every client at once.
A setting given in extraEnv wins over the chart value, as it does in the pod.
*/}}
{{- define "roomcast.checkEdgeMemory" -}}
{{- $svc := .Values.services.wsEdge }}
{{- $limit := dig "limits" "memory" "" $svc.resources }}
{{- if not $limit }}
{{- fail "services.wsEdge.resources.limits.memory must be set: it is checked against services.wsEdge.memoryBudget" }}
{{- end }}
{{- $history := int64 $svc.historyBytes }}
{{- with $svc.extraEnv.ROOMCAST_EDGE__HISTORY_BYTES }}{{ $history = int64 . }}{{ end }}
{{- $connections := int64 $svc.maxConnections }}
{{- with $svc.extraEnv.ROOMCAST_EDGE__MAX_CONNECTIONS }}{{ $connections = int64 . }}{{ end }}
{{- $base := int64 $svc.memoryBudget.baseBytes }}
{{- $perConnection := int64 $svc.memoryBudget.perConnectionBytes }}
{{- $needed := add $base $history (mul $perConnection $connections) }}
{{- $limitBytes := include "roomcast.quantityBytes" $limit | int64 }}
{{- if lt $limitBytes $needed }}
{{- fail (printf "services.wsEdge.resources.limits.memory (%v = %d bytes) is below the edge's memory budget: memoryBudget.baseBytes + historyBytes + memoryBudget.perConnectionBytes * maxConnections = %d + %d + %d * %d = %d bytes; raise the limit or lower historyBytes or maxConnections" $limit $limitBytes $base $history $perConnection $connections $needed) }}
{{- end }}
{{- end }}
