{{/*
Names, labels, images. Component-aware helpers take a dict:
  root: the top-level context ($), name: the component name, c: the merged component (see hilo.component).
*/}}

{{- define "hilo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hilo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hilo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of a component's objects (Deployment, Service, ConfigMap, ...). Takes dict root, name. */}}
{{- define "hilo.componentName" -}}
{{- printf "%s-%s" (include "hilo.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hilo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hilo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hilo.labels" -}}
helm.sh/chart: {{ include "hilo.chart" . }}
{{ include "hilo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hilo
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component. Takes dict root, name. */}}
{{- define "hilo.componentSelectorLabels" -}}
{{ include "hilo.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Labels of a component's objects. Takes dict root, name. */}}
{{- define "hilo.componentLabels" -}}
{{ include "hilo.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* metadata.annotations block content (commonAnnotations plus extra); empty when none. Takes dict root, extra. */}}
{{- define "hilo.annotations" -}}
{{- $all := merge (deepCopy (default dict .extra)) (deepCopy (default dict .root.Values.commonAnnotations)) -}}
{{- if $all }}
{{- toYaml $all }}
{{- end -}}
{{- end -}}

{{- define "hilo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hilo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* image reference. Takes dict root, registry, repository, tag, digest. */}}
{{- define "hilo.imageRef" -}}
{{- $registry := default .registry .root.Values.global.imageRegistry -}}
{{- $ref := .repository -}}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry .repository }}{{ end -}}
{{- if .digest -}}
{{- printf "%s@%s" $ref .digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (toString (default .root.Chart.AppVersion .tag)) -}}
{{- end -}}
{{- end -}}

{{/* A component's image. Takes dict root, name, c. */}}
{{- define "hilo.componentImage" -}}
{{- $img := .root.Values.image -}}
{{- $ci := default dict .c.image -}}
{{- $repo := default (printf "%s-%s" $img.repositoryPrefix .name) $ci.repository -}}
{{- include "hilo.imageRef" (dict "root" .root "registry" $img.registry "repository" $repo "tag" (default $img.tag $ci.tag) "digest" (default $img.digest $ci.digest)) -}}
{{- end -}}

{{/* Public base URL: publicUrl, else the first ingress host, else http://localhost:8080. */}}
{{- define "hilo.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{- .Values.publicUrl | trimSuffix "/" -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts -}}
{{- $host := first .Values.ingress.hosts -}}
{{- $tls := false -}}
{{- range .Values.ingress.tls }}{{ if has $host (default list .hosts) }}{{ $tls = true }}{{ end }}{{ end -}}
{{- printf "%s://%s" (ternary "https" "http" $tls) $host -}}
{{- else if and .Values.httpRoute.enabled .Values.httpRoute.hostnames -}}
{{- printf "https://%s" (first .Values.httpRoute.hostnames) -}}
{{- else -}}
http://localhost:8080
{{- end -}}
{{- end -}}

{{/* The restricted pod-level fields shared by every pod of the chart. Takes root. */}}
{{- define "hilo.podCommon" -}}
automountServiceAccountToken: false
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}
