{{/*
How the pods reach Redis and Kafka: credentials from Secrets the operator manages, CA
and client certificates mounted from Secrets. Only the edge and the publisher talk to
Kafka, so only they get its settings (auth would refuse SASL without a password).
Mounted files live under /var/run/roomcast/<volume>/.
*/}}

{{/* Refusals of link values that cannot work; called once by deployments.yaml. */}}
{{- define "roomcast.checkLinks" -}}
{{- $kafka := .Values.kafka }}
{{- $sasl := hasPrefix "SASL_" $kafka.securityProtocol }}
{{- $tls := has $kafka.securityProtocol (list "SSL" "SASL_SSL") }}
{{- if and $sasl (not $kafka.sasl.existingSecret) }}
{{- fail (printf "kafka.securityProtocol %s needs kafka.sasl.existingSecret: a Secret with the user name (key %s) and password (key %s)" $kafka.securityProtocol $kafka.sasl.usernameKey $kafka.sasl.passwordKey) }}
{{- end }}
{{- if and (not $tls) (or $kafka.tls.caSecret $kafka.tls.clientSecret) }}
{{- fail (printf "kafka.tls is set but kafka.securityProtocol is %s: use SSL or SASL_SSL" $kafka.securityProtocol) }}
{{- end }}
{{- $redis := .Values.redis }}
{{- if and (not $redis.urlKey) (or $redis.tls.caSecret $redis.tls.clientSecret) (not (hasPrefix "rediss://" $redis.url)) }}
{{- fail "redis.tls is set but redis.url is not rediss:// (TLS)" }}
{{- end }}
{{- if regexMatch "^rediss?://[^/@]*:[^/@]*@" $redis.url }}
{{- fail "redis.url carries a password, which would sit in plain text in a ConfigMap: put the password (redis.passwordKey) or the whole URL (redis.urlKey) in the Secret named by redis.existingSecret" }}
{{- end }}
{{- if and $redis.urlKey (not $redis.existingSecret) }}
{{- fail "redis.urlKey needs redis.existingSecret, the Secret holding the URL" }}
{{- end }}
{{- end }}

{{/* A file mounted from a Secret: (dict "volume" "kafka-ca" "file" "ca.crt"). */}}
{{- define "roomcast.mounted" -}}
{{- printf "/var/run/roomcast/%s/%s" .volume .file }}
{{- end }}

{{/* env entries of the links; call with (dict "root" $ "c" $component). */}}
{{- define "roomcast.linkEnv" -}}
{{- $redis := .root.Values.redis }}
{{- if and $redis.existingSecret $redis.urlKey }}
- name: ROOMCAST_REDIS__URL
  valueFrom:
    secretKeyRef:
      name: {{ $redis.existingSecret }}
      key: {{ $redis.urlKey }}
{{- end }}
{{- if and $redis.existingSecret $redis.passwordKey }}
- name: ROOMCAST_REDIS__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $redis.existingSecret }}
      key: {{ $redis.passwordKey }}
{{- end }}
{{- with $redis.tls.caSecret }}
- name: ROOMCAST_REDIS__CA_FILE
  value: {{ include "roomcast.mounted" (dict "volume" "redis-ca" "file" $redis.tls.caKey) }}
{{- end }}
{{- if $redis.tls.clientSecret }}
- name: ROOMCAST_REDIS__CERT_FILE
  value: {{ include "roomcast.mounted" (dict "volume" "redis-client" "file" "tls.crt") }}
- name: ROOMCAST_REDIS__KEY_FILE
  value: {{ include "roomcast.mounted" (dict "volume" "redis-client" "file" "tls.key") }}
{{- end }}
{{- if .c.kafka }}
{{- $kafka := .root.Values.kafka }}
- name: ROOMCAST_KAFKA__SECURITY_PROTOCOL
  value: {{ $kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL_" $kafka.securityProtocol }}
- name: ROOMCAST_KAFKA__SASL_MECHANISM
  value: {{ $kafka.sasl.mechanism | quote }}
- name: ROOMCAST_KAFKA__SASL_USERNAME
{{- if $kafka.sasl.username }}
  value: {{ $kafka.sasl.username | quote }}
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ $kafka.sasl.existingSecret }}
      key: {{ $kafka.sasl.usernameKey }}
{{- end }}
- name: ROOMCAST_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $kafka.sasl.existingSecret }}
      key: {{ $kafka.sasl.passwordKey }}
{{- end }}
{{- with $kafka.tls.caSecret }}
- name: ROOMCAST_KAFKA__SSL_CA_FILE
  value: {{ include "roomcast.mounted" (dict "volume" "kafka-ca" "file" $kafka.tls.caKey) }}
{{- end }}
{{- if $kafka.tls.clientSecret }}
- name: ROOMCAST_KAFKA__SSL_CERT_FILE
  value: {{ include "roomcast.mounted" (dict "volume" "kafka-client" "file" "tls.crt") }}
- name: ROOMCAST_KAFKA__SSL_KEY_FILE
  value: {{ include "roomcast.mounted" (dict "volume" "kafka-client" "file" "tls.key") }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secrets mounted for the links, as (volume name, Secret name) pairs. */}}
{{- define "roomcast.linkSecrets" -}}
{{- $pairs := list }}
{{- $redis := .root.Values.redis.tls }}
{{- with $redis.caSecret }}{{ $pairs = append $pairs (list "redis-ca" .) }}{{ end }}
{{- with $redis.clientSecret }}{{ $pairs = append $pairs (list "redis-client" .) }}{{ end }}
{{- if .c.kafka }}
{{- $kafka := .root.Values.kafka.tls }}
{{- with $kafka.caSecret }}{{ $pairs = append $pairs (list "kafka-ca" .) }}{{ end }}
{{- with $kafka.clientSecret }}{{ $pairs = append $pairs (list "kafka-client" .) }}{{ end }}
{{- end }}
{{- toJson $pairs }}
{{- end }}

{{- define "roomcast.linkMounts" -}}
{{- range include "roomcast.linkSecrets" . | fromJsonArray }}
- name: {{ index . 0 }}
  mountPath: /var/run/roomcast/{{ index . 0 }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "roomcast.linkVolumes" -}}
{{- range include "roomcast.linkSecrets" . | fromJsonArray }}
- name: {{ index . 0 }}
  secret:
    secretName: {{ index . 1 }}
    defaultMode: 0440
{{- end }}
{{- end }}
