{{/*
Component model. Every template ranges over the enabled components and reads the merged
component: componentDefaults deep-merged with components.<name>. The merge is hand-written
because sprig's merge/mergeOverwrite cannot let a `false` or `0` in the component win.
*/}}

{{/* Deep merge: maps merge recursively, anything else in `over` replaces. Takes dict base, over. Returns YAML. */}}
{{- define "hilo.deepMerge" -}}
{{- $out := deepCopy (default dict .base) -}}
{{- range $k, $v := (default dict .over) -}}
{{- $cur := get $out $k -}}
{{- if and (kindIs "map" $v) (kindIs "map" $cur) -}}
{{- $_ := set $out $k (include "hilo.deepMerge" (dict "base" $cur "over" $v) | fromYaml) -}}
{{- else -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The merged component as YAML. Takes dict root, name. Use: $c := include "hilo.component" (dict ...) | fromYaml */}}
{{- define "hilo.component" -}}
{{- include "hilo.deepMerge" (dict "base" .root.Values.componentDefaults "over" (index .root.Values.components .name)) -}}
{{- end -}}

{{/* Names of the enabled components, sorted, as a JSON list. Takes root. Use: include ... | fromJsonArray */}}
{{- define "hilo.enabledComponents" -}}
{{- $names := list -}}
{{- range $name, $_ := .Values.components -}}
{{- if include "hilo.componentField" (dict "root" $ "name" $name "key" "enabled") | fromJson | dig "v" false }}{{ $names = append $names $name }}{{ end -}}
{{- end -}}
{{- toJson (sortAlpha $names) -}}
{{- end -}}

{{/* One top-level field of a component without the full merge (cheap). Takes dict root, name, key. Returns JSON {"v": value}. */}}
{{- define "hilo.componentField" -}}
{{- $c := default dict (index .root.Values.components .name) -}}
{{- if hasKey $c .key -}}
{{- toJson (dict "v" (get $c .key)) -}}
{{- else -}}
{{- toJson (dict "v" (get .root.Values.componentDefaults .key)) -}}
{{- end -}}
{{- end -}}

{{/* Enabled components this one calls (dependsOn minus disabled). Takes dict root, c. JSON list. */}}
{{- define "hilo.enabledDependencies" -}}
{{- $enabled := include "hilo.enabledComponents" .root | fromJsonArray -}}
{{- $deps := list -}}
{{- range (default list .c.dependsOn) -}}
{{- if has . $enabled }}{{ $deps = append $deps . }}{{ end -}}
{{- end -}}
{{- toJson (uniq $deps) -}}
{{- end -}}

{{/* Enabled components that call this one (their dependsOn names it). Takes dict root, name. JSON list. */}}
{{- define "hilo.callers" -}}
{{- $callers := list -}}
{{- $target := .name -}}
{{- $root := .root -}}
{{- range $name := include "hilo.enabledComponents" $root | fromJsonArray -}}
{{- $deps := include "hilo.componentField" (dict "root" $root "name" $name "key" "dependsOn") | fromJson | dig "v" list -}}
{{- if has $target (default list $deps) }}{{ $callers = append $callers $name }}{{ end -}}
{{- end -}}
{{- toJson $callers -}}
{{- end -}}

{{/* The component's main port name: http or grpc. Takes c. */}}
{{- define "hilo.portName" -}}
{{- ternary "grpc" "http" (eq .kind "grpc") -}}
{{- end -}}

{{/* The component's non-secret env as a YAML map of strings (its ConfigMap data). Takes dict root, name, c. */}}
{{- define "hilo.componentConfig" -}}
{{- $root := .root -}}
{{- $c := .c -}}
{{- $v := $root.Values -}}
{{- $cfg := dict
  "LISTEN_ADDR" (printf "0.0.0.0:%d" (int $c.port))
  "ADMIN_ADDR" (printf "0.0.0.0:%d" (int $c.metricsPort))
  "LOG_FORMAT" $v.config.logFormat
  "RUST_LOG" $v.config.rustLog
  "OTEL_SERVICE_NAME" (printf "hilo-%s" .name)
-}}
{{- with $v.otel.endpoint }}{{ $_ := set $cfg "OTEL_EXPORTER_OTLP_ENDPOINT" . }}{{ end -}}
{{- if eq $c.kind "grpc" -}}
{{- $_ := set $cfg "GRPC_MAX_CONNECTION_AGE_SECS" (toString (int $c.grpc.maxConnectionAgeSeconds)) -}}
{{- $_ := set $cfg "GRPC_REFLECTION" (toString (default false $c.grpc.reflection)) -}}
{{- $_ := set $cfg "JWT_ISSUER" $v.jwt.issuer -}}
{{- $_ := set $cfg "JWT_AUDIENCE" $v.jwt.audience -}}
{{- end -}}
{{- range $dep := include "hilo.enabledDependencies" (dict "root" $root "c" $c) | fromJsonArray -}}
{{- $d := include "hilo.component" (dict "root" $root "name" $dep) | fromYaml -}}
{{- $_ := set $cfg (printf "%s_URL" (upper $dep | replace "-" "_")) (printf "http://%s:%d" (include "hilo.componentName" (dict "root" $root "name" $dep)) (int $d.port)) -}}
{{- end -}}
{{- if has "s3" (default list $c.uses) -}}
{{- $s3 := $v.externals.s3 -}}
{{- with $s3.endpoint }}{{ $_ := set $cfg "S3_ENDPOINT" . }}{{ end -}}
{{- $_ := set $cfg "S3_REGION" $s3.region -}}
{{- $_ := set $cfg "S3_BUCKET" $s3.bucket -}}
{{- with $s3.publicUrl }}{{ $_ := set $cfg "S3_PUBLIC_URL" . }}{{ end -}}
{{- $_ := set $cfg "S3_FORCE_PATH_STYLE" (toString $s3.forcePathStyle) -}}
{{- end -}}
{{- range $k, $val := (default dict $c.env) -}}
{{- $_ := set $cfg $k (tpl (toString $val) $root) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
Where one secret env var comes from. Takes dict root, env, value, existingSecret, existingSecretKey, generate.
Returns YAML {source: existing|chart|none, secret: NAME, key: KEY}.
*/}}
{{- define "hilo.secretSource" -}}
{{- $v := .root.Values -}}
{{- if .existingSecret -}}
source: existing
secret: {{ .existingSecret }}
key: {{ default .env .existingSecretKey }}
{{- else if .value -}}
source: chart
secret: {{ include "hilo.fullname" .root }}
key: {{ .env }}
{{- else if $v.existingSecret -}}
source: existing
secret: {{ $v.existingSecret }}
key: {{ default .env .existingSecretKey }}
{{- else if and .generate (ne .generate "none") -}}
source: chart
secret: {{ include "hilo.fullname" .root }}
key: {{ .env }}
{{- else -}}
source: none
{{- end -}}
{{- end -}}

{{/*
Every secret env var of the chart, as a YAML map ENV -> {source, secret, key, value, generate}.
Takes root.
*/}}
{{- define "hilo.secretTable" -}}
{{- $v := .Values -}}
{{- $e := $v.externals -}}
{{- $items := list
  (dict "env" "DATABASE_URL" "value" $e.postgresql.url "existingSecret" $e.postgresql.existingSecret "existingSecretKey" $e.postgresql.existingSecretKey "generate" "none" "external" "postgresql")
  (dict "env" "REDIS_URL" "value" $e.redis.url "existingSecret" $e.redis.existingSecret "existingSecretKey" $e.redis.existingSecretKey "generate" "none" "external" "redis")
  (dict "env" "NATS_URL" "value" $e.nats.url "existingSecret" $e.nats.existingSecret "existingSecretKey" $e.nats.existingSecretKey "generate" "none" "external" "nats")
  (dict "env" "S3_ACCESS_KEY_ID" "value" $e.s3.accessKeyId "existingSecret" $e.s3.existingSecret "existingSecretKey" $e.s3.existingSecretAccessKeyIdKey "generate" "none" "external" "s3")
  (dict "env" "S3_SECRET_ACCESS_KEY" "value" $e.s3.secretAccessKey "existingSecret" $e.s3.existingSecret "existingSecretKey" $e.s3.existingSecretSecretAccessKeyKey "generate" "none" "external" "s3")
-}}
{{- range $id, $s := $v.secrets -}}
{{- $items = append $items (dict "env" $s.env "value" $s.value "existingSecret" $s.existingSecret "existingSecretKey" $s.existingSecretKey "generate" (default "none" $s.generate) "optional" (default false $s.optional) "id" $id) -}}
{{- end -}}
{{- $out := dict -}}
{{- range $items -}}
{{- $src := include "hilo.secretSource" (merge (dict "root" $) .) | fromYaml -}}
{{- $_ := set $out .env (merge $src (omit . "root")) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The secret env var names a component reads, as a JSON list. Takes dict root, c. */}}
{{- define "hilo.componentSecretEnvNames" -}}
{{- $names := list -}}
{{- $uses := default list .c.uses -}}
{{- if has "postgresql" $uses }}{{ $names = append $names "DATABASE_URL" }}{{ end -}}
{{- if has "redis" $uses }}{{ $names = append $names "REDIS_URL" }}{{ end -}}
{{- if has "nats" $uses }}{{ $names = append $names "NATS_URL" }}{{ end -}}
{{- if has "s3" $uses }}{{ $names = concat $names (list "S3_ACCESS_KEY_ID" "S3_SECRET_ACCESS_KEY") }}{{ end -}}
{{- range (default list .c.secrets) -}}
{{- $s := index $.root.Values.secrets . -}}
{{- $names = append $names $s.env -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* env entries (secretKeyRef) for the given secret env names. Takes dict root, names. */}}
{{- define "hilo.secretEnv" -}}
{{- $table := include "hilo.secretTable" .root | fromYaml -}}
{{- range .names -}}
{{- $s := get $table . -}}
{{- if and $s (ne $s.source "none") }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $s.secret }}
      key: {{ $s.key }}
      {{- if $s.optional }}
      optional: true
      {{- end }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Checksum of what a component's secret env depends on in values (inline values and Secret
names/keys). Generated values are stable across upgrades (lookup) and are left out.
Takes dict root, c.
*/}}
{{- define "hilo.secretChecksum" -}}
{{- $table := include "hilo.secretTable" .root | fromYaml -}}
{{- $parts := list -}}
{{- range include "hilo.componentSecretEnvNames" . | fromJsonArray -}}
{{- $s := get $table . -}}
{{- $parts = append $parts (list . $s.source (default "" $s.secret) (default "" $s.key) (default "" $s.value)) -}}
{{- end -}}
{{- toJson $parts | sha256sum -}}
{{- end -}}

{{/* Secret env names read by at least one enabled component, as a JSON list. Takes root. */}}
{{- define "hilo.usedSecretEnvNames" -}}
{{- $names := list -}}
{{- range $name := include "hilo.enabledComponents" $ | fromJsonArray -}}
{{- $c := include "hilo.component" (dict "root" $ "name" $name) | fromYaml -}}
{{- $names = concat $names (include "hilo.componentSecretEnvNames" (dict "root" $ "c" $c) | fromJsonArray) -}}
{{- end -}}
{{- toJson (uniq $names | sortAlpha) -}}
{{- end -}}
