{{/*
Names. A service chart's resources are named after the chart ("gateway",
"orchestrator", ...) so that in-cluster addresses are stable (orchestrator:50051):
one platform per namespace. fullnameOverride renames them.
*/}}
{{- define "common.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "common.fullname" -}}
{{- .Values.fullnameOverride | default (include "common.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "common.selectorLabels" -}}
app.kubernetes.io/name: {{ include "common.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "common.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "common.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .Values.component | default "service" }}
app.kubernetes.io/part-of: ai-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* .Values.global as a plain map, also when a chart is rendered on its own. */}}
{{- define "common.global" -}}
{{- toYaml (.Values.global | default dict) -}}
{{- end -}}

{{/* image: [registry/]repository:tag; tag falls back to global.image.tag, then appVersion. */}}
{{- define "common.image" -}}
{{- $g := include "common.global" . | fromYaml -}}
{{- $registry := .Values.image.registry | default (dig "image" "registry" "" $g) -}}
{{- $tag := .Values.image.tag | default (dig "image" "tag" "" $g) | default .Chart.AppVersion -}}
{{- if $registry }}{{ printf "%s/" (trimSuffix "/" $registry) }}{{ end }}{{ .Values.image.repository }}:{{ trimSuffix "@" $tag }}
{{- end -}}

{{/* Name of the Kubernetes Secret that holds DATABASE_URL, STRIPE_API_KEY, tokens. */}}
{{- define "common.secretName" -}}
{{- $g := include "common.global" . | fromYaml -}}
{{- .Values.existingSecret | default (dig "existingSecret" "" $g) | default "platform-secrets" -}}
{{- end -}}

{{- define "common.logLevel" -}}
{{- $g := include "common.global" . | fromYaml -}}
{{- .Values.logLevel | default (dig "logLevel" "" $g) | default "info" -}}
{{- end -}}

{{- define "common.otelEndpoint" -}}
{{- $g := include "common.global" . | fromYaml -}}
{{- .Values.otelEndpoint | default (dig "otelEndpoint" "" $g) -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: the preStop sleep, then SHUTDOWN_GRACE_MS (rounded
up to seconds) for the app's own drain, then a margin before SIGKILL. So it is
always strictly greater than SHUTDOWN_GRACE_MS.
*/}}
{{- define "common.terminationGracePeriodSeconds" -}}
{{- $ms := int .Values.shutdownGraceMs -}}
{{- $drain := div (add $ms 999) 1000 -}}
{{- add (int .Values.preStopSleepSeconds) $drain (int (.Values.terminationGraceMarginSeconds | default 5)) -}}
{{- end -}}

{{/* Hardened security contexts (Pod Security Standard "restricted"). uid 10001 is the images' user. */}}
{{- define "common.podSecurityContext" -}}
{{- $base := dict "runAsNonRoot" true "runAsUser" 10001 "runAsGroup" 10001 "fsGroup" 10001 "fsGroupChangePolicy" "OnRootMismatch" "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- toYaml (mergeOverwrite $base (deepCopy (.Values.podSecurityContext | default dict))) -}}
{{- end -}}

{{- define "common.containerSecurityContext" -}}
{{- $base := dict "runAsNonRoot" true "runAsUser" 10001 "runAsGroup" 10001 "allowPrivilegeEscalation" false "readOnlyRootFilesystem" true "privileged" false "capabilities" (dict "drop" (list "ALL")) "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- toYaml (mergeOverwrite $base (deepCopy (.Values.securityContext | default dict))) -}}
{{- end -}}

{{/* An HTTP probe on the named http port: (dict "probe" <values> "path" <default path>). */}}
{{- define "common.httpProbe" -}}
{{- $p := mergeOverwrite (dict "path" .path "initialDelaySeconds" 0 "periodSeconds" 10 "timeoutSeconds" 3 "failureThreshold" 3 "successThreshold" 1) (deepCopy (.probe | default dict)) -}}
httpGet:
  path: {{ $p.path }}
  port: http
initialDelaySeconds: {{ $p.initialDelaySeconds }}
periodSeconds: {{ $p.periodSeconds }}
timeoutSeconds: {{ $p.timeoutSeconds }}
failureThreshold: {{ $p.failureThreshold }}
successThreshold: {{ $p.successThreshold }}
{{- end -}}

{{/*
Environment keys that must never be written into a ConfigMap: they come from
the Secret (secretEnv). Matched case-insensitively on the key; a URL value with
user:password@ is refused as well.
*/}}
{{- define "common.secretKeyPattern" -}}
(?i)(^DATABASE_URL$|PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|APIKEY|PRIVATE_KEY|CREDENTIAL)
{{- end -}}
