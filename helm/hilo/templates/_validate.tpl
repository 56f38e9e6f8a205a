{{/* Fail early on values that would render but not work. Called from NOTES.txt and deployment.yaml. */}}
{{- define "hilo.validate" -}}
{{- $v := .Values -}}
{{- $known := keys $v.components -}}
{{- $enabled := include "hilo.enabledComponents" . | fromJsonArray -}}
{{- if not $enabled -}}{{ fail "hilo: no component is enabled (components.<name>.enabled)" }}{{- end -}}
{{- range $name := $enabled -}}
{{- $c := include "hilo.component" (dict "root" $ "name" $name) | fromYaml -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$" $name) -}}
{{- fail (printf "hilo: component name %q must be a short DNS label (a-z, 0-9, -)" $name) -}}
{{- end -}}
{{- if and $c.public (ne $c.kind "http") -}}
{{- fail (printf "hilo: components.%s.public needs kind http" $name) -}}
{{- end -}}
{{- if eq (int $c.port) (int $c.metricsPort) -}}
{{- fail (printf "hilo: components.%s.port and metricsPort must differ" $name) -}}
{{- end -}}
{{- range (default list $c.dependsOn) -}}
{{- if not (has . $known) }}{{ fail (printf "hilo: components.%s.dependsOn names unknown component %q" $name .) }}{{ end -}}
{{- if eq . $name }}{{ fail (printf "hilo: components.%s.dependsOn names itself" $name) }}{{ end -}}
{{- end -}}
{{- range (default list $c.secrets) -}}
{{- if not (hasKey $v.secrets .) }}{{ fail (printf "hilo: components.%s.secrets names unknown secret %q (see .Values.secrets)" $name .) }}{{ end -}}
{{- end -}}
{{- if and $c.migrations.enabled (not (has "postgresql" (default list $c.uses))) -}}
{{- fail (printf "hilo: components.%s.migrations.enabled needs uses: [postgresql]" $name) -}}
{{- end -}}
{{- if $c.autoscaling.enabled -}}
{{- if gt (int $c.autoscaling.minReplicas) (int $c.autoscaling.maxReplicas) -}}
{{- fail (printf "hilo: components.%s.autoscaling.minReplicas > maxReplicas" $name) -}}
{{- end -}}
{{- if and (not $c.autoscaling.targetCPUUtilizationPercentage) (not $c.autoscaling.targetMemoryUtilizationPercentage) -}}
{{- fail (printf "hilo: components.%s.autoscaling needs a CPU or memory target" $name) -}}
{{- end -}}
{{- end -}}
{{- if ge (int $c.preStopSleepSeconds) (int $c.terminationGracePeriodSeconds) -}}
{{- fail (printf "hilo: components.%s.preStopSleepSeconds must be below terminationGracePeriodSeconds" $name) -}}
{{- end -}}
{{- end -}}
{{- if not (has "gateway" $enabled) -}}
{{- if or $v.ingress.enabled $v.httpRoute.enabled $v.tests.enabled -}}
{{- fail "hilo: ingress, httpRoute and tests route to the gateway: enable components.gateway" -}}
{{- end -}}
{{- end -}}
{{- if and $v.ingress.enabled (not $v.ingress.hosts) -}}
{{- fail "hilo: ingress.enabled needs at least one ingress.hosts entry" -}}
{{- end -}}
{{- if and $v.httpRoute.enabled (not $v.httpRoute.parentRefs) -}}
{{- fail "hilo: httpRoute.enabled needs httpRoute.parentRefs (the Gateway to attach to)" -}}
{{- end -}}
{{- range $id, $s := $v.secrets -}}
{{- if and $s.value $s.existingSecret -}}
{{- fail (printf "hilo: secrets.%s: set value or existingSecret, not both" $id) -}}
{{- end -}}
{{- end -}}
{{- range $dep := list "postgresql" "redis" "nats" -}}
{{- $e := index $v.externals $dep -}}
{{- if and $e.url $e.existingSecret -}}
{{- fail (printf "hilo: externals.%s: set url or existingSecret, not both" $dep) -}}
{{- end -}}
{{- end -}}
{{- $s3 := $v.externals.s3 -}}
{{- if and (or $s3.accessKeyId $s3.secretAccessKey) $s3.existingSecret -}}
{{- fail "hilo: externals.s3: set accessKeyId/secretAccessKey or existingSecret, not both" -}}
{{- end -}}
{{- if ne (empty $s3.accessKeyId) (empty $s3.secretAccessKey) -}}
{{- fail "hilo: externals.s3: set both accessKeyId and secretAccessKey (or neither)" -}}
{{- end -}}
{{- end -}}

{{/* Warnings shown by NOTES.txt: externals that enabled components use but nobody configured. Takes root. JSON list. */}}
{{- define "hilo.missingExternals" -}}
{{- $table := include "hilo.secretTable" . | fromYaml -}}
{{- $missing := list -}}
{{- range $name := include "hilo.enabledComponents" . | fromJsonArray -}}
{{- $c := include "hilo.component" (dict "root" $ "name" $name) | fromYaml -}}
{{- range $u := (default list $c.uses) -}}
{{- $envs := dict "postgresql" "DATABASE_URL" "redis" "REDIS_URL" "nats" "NATS_URL" -}}
{{- if hasKey $envs $u -}}
{{- $s := get $table (get $envs $u) -}}
{{- if eq $s.source "none" }}{{ $missing = append $missing (printf "externals.%s (%s, used by %s)" $u (get $envs $u) $name) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson (uniq $missing) -}}
{{- end -}}
