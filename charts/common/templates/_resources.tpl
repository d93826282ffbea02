{{/*
common.all renders every resource of a service chart. Call it from the chart's
templates/manifests.yaml:

  {{ include "common.all" (dict "ctx" $) }}

Optional keys: "volumes" and "volumeMounts" (lists added to the pod and the
container, e.g. cpu-engine's model volume).
*/}}
{{- define "common.all" -}}
{{- $ := .ctx -}}
{{- include "common.validate" $ -}}
{{ include "common.serviceAccount" $ }}
---
{{ include "common.configMap" $ }}
---
{{ include "common.service" $ }}
---
{{ include "common.deployment" . }}
{{- if $.Values.rbac.rules }}
---
{{ include "common.rbac" $ }}
{{- end }}
{{- if $.Values.networkPolicy.enabled }}
---
{{ include "common.networkPolicy" $ }}
{{- end }}
{{- if $.Values.pdb.enabled }}
---
{{ include "common.pdb" $ }}
{{- end }}
{{- if $.Values.autoscaling.enabled }}
---
{{ include "common.hpa" $ }}
{{- end }}
{{- end -}}

{{/* Refuse values that would produce an unsafe or broken workload. */}}
{{- define "common.validate" -}}
{{- $v := .Values -}}
{{- if not (and $v.resources $v.resources.requests $v.resources.limits) -}}
{{- fail (printf "%s: resources.requests and resources.limits are required" .Chart.Name) -}}
{{- end -}}
{{- if not (and $v.resources.limits.cpu $v.resources.limits.memory) -}}
{{- fail (printf "%s: resources.limits.cpu and resources.limits.memory are required" .Chart.Name) -}}
{{- end -}}
{{- if not $v.ports.http -}}
{{- fail (printf "%s: ports.http is required (health, readiness, metrics)" .Chart.Name) -}}
{{- end -}}
{{- if and $v.pdb.enabled (not $v.autoscaling.enabled) (lt (int $v.replicaCount) 2) -}}
{{- fail (printf "%s: pdb.enabled needs replicaCount >= 2 (or autoscaling), else it blocks node drains" .Chart.Name) -}}
{{- end -}}
{{- $pattern := include "common.secretKeyPattern" . -}}
{{- range $key, $value := $v.config -}}
{{- if regexMatch $pattern $key -}}
{{- fail (printf "%s: config.%s looks like a secret; read it from the Secret with secretEnv instead" $.Chart.Name $key) -}}
{{- end -}}
{{- if regexMatch "://[^/@\\s]*:[^/@\\s]+@" (toString $value) -}}
{{- fail (printf "%s: config.%s carries credentials in its URL; move it to secretEnv" $.Chart.Name $key) -}}
{{- end -}}
{{- end -}}
{{- range $v.secretEnv -}}
{{- if hasKey $v.config .name -}}
{{- fail (printf "%s: %s is both in config and in secretEnv" $.Chart.Name .name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "common.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
{{- end -}}

{{/* Non-secret environment. Values pass through tpl, so they may reference .Release. */}}
{{- define "common.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
data:
  HTTP_PORT: {{ .Values.ports.http | quote }}
  {{- if .Values.ports.grpc }}
  GRPC_PORT: {{ .Values.ports.grpc | quote }}
  {{- end }}
  LOG_LEVEL: {{ include "common.logLevel" . | quote }}
  SHUTDOWN_GRACE_MS: {{ .Values.shutdownGraceMs | int | quote }}
  {{- with include "common.otelEndpoint" . }}
  OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
  {{- end }}
  OTEL_SERVICE_NAME: {{ include "common.name" . | quote }}
  {{- range $key, $value := .Values.config }}
  {{- if not (kindIs "invalid" $value) }}
  {{ $key }}: {{ tpl (toString $value) $ | quote }}
  {{- end }}
  {{- end }}
{{- end -}}

{{- define "common.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.service.type }}
  selector:
    {{- include "common.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.service.httpPort | default .Values.ports.http }}
      targetPort: http
      protocol: TCP
      appProtocol: http
    {{- if .Values.ports.grpc }}
    - name: grpc
      port: {{ .Values.ports.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
    {{- end }}
{{- end -}}

{{- define "common.deployment" -}}
{{- $ := .ctx -}}
{{- $v := $.Values -}}
{{- $fullname := include "common.fullname" $ -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "common.labels" $ | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "common.selectorLabels" $ | nindent 6 }}
  {{- with $v.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "common.labels" $ | nindent 8 }}
      annotations:
        checksum/config: {{ include "common.configMap" $ | sha256sum }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $v.ports.http | quote }}
        prometheus.io/path: /metrics
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $fullname }}
      automountServiceAccountToken: {{ $v.serviceAccount.automountToken }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ include "common.terminationGracePeriodSeconds" $ }}
      securityContext:
        {{- include "common.podSecurityContext" $ | nindent 8 }}
      {{- $g := include "common.global" $ | fromYaml }}
      {{- with ($v.imagePullSecrets | default (get $g "imagePullSecrets")) }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      containers:
        - name: {{ $.Chart.Name }}
          image: {{ include "common.image" $ | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy | default (dig "image" "pullPolicy" "IfNotPresent" $g) }}
          ports:
            - name: http
              containerPort: {{ $v.ports.http }}
              protocol: TCP
            {{- if $v.ports.grpc }}
            - name: grpc
              containerPort: {{ $v.ports.grpc }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ $fullname }}
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            {{- range $v.secretEnv }}
            - name: {{ .name }}
              valueFrom:
                secretKeyRef:
                  name: {{ include "common.secretName" $ }}
                  key: {{ .key | default .name }}
                  {{- if .optional }}
                  optional: true
                  {{- end }}
            {{- end }}
          securityContext:
            {{- include "common.containerSecurityContext" $ | nindent 12 }}
          {{- if $v.probes.startup.enabled }}
          startupProbe:
            {{- include "common.httpProbe" (dict "probe" (omit $v.probes.startup "enabled") "path" "/readyz") | nindent 12 }}
          {{- end }}
          livenessProbe:
            {{- include "common.httpProbe" (dict "probe" $v.probes.liveness "path" "/healthz") | nindent 12 }}
          readinessProbe:
            {{- include "common.httpProbe" (dict "probe" $v.probes.readiness "path" "/readyz") | nindent 12 }}
          {{- if $v.preStopSleepSeconds }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ $v.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- with .volumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $v.tmpSizeLimit | default "256Mi" }}
        {{- with .volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $v.topologySpread.enabled }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: {{ $v.topologySpread.topologyKey }}
          whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "common.selectorLabels" $ | nindent 14 }}
      {{- end }}
{{- end -}}

{{/* Namespaced Role + RoleBinding for the chart's ServiceAccount (rbac.rules). */}}
{{- define "common.rbac" -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
rules:
  {{- toYaml .Values.rbac.rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ include "common.fullname" . }}
subjects:
  - kind: ServiceAccount
    name: {{ include "common.fullname" . }}
    namespace: {{ .Release.Namespace }}
{{- end -}}

{{/*
Ingress allow-list: the public port when networkPolicy.public, else the client
port (grpc, or http where there is none) from the platform services named in
networkPolicy.allowFrom; the http port (metrics) from networkPolicy.metricsFrom.
Egress stays open unless networkPolicy.egress lists rules (DNS is then added).
*/}}
{{- define "common.networkPolicy" -}}
{{- $np := .Values.networkPolicy -}}
{{- $g := include "common.global" . | fromYaml -}}
{{- $clientPort := ternary "grpc" "http" (not (empty .Values.ports.grpc)) -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "common.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
    {{- if $np.egress }}
    - Egress
    {{- end }}
  ingress:
    {{- if $np.public }}
    - ports:
        - port: http
          protocol: TCP
    {{- end }}
    {{- with $np.allowFrom }}
    - from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/part-of: ai-platform
            matchExpressions:
              - key: app.kubernetes.io/name
                operator: In
                values:
                  {{- toYaml . | nindent 18 }}
      ports:
        - port: {{ $clientPort }}
          protocol: TCP
    {{- end }}
    {{- $monitoring := list (dict "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" "monitoring"))) }}
    {{- with ($np.metricsFrom | default (dig "networkPolicy" "metricsFrom" list $g) | default $monitoring) }}
    - from:
        {{- toYaml . | nindent 8 }}
      ports:
        - port: http
          protocol: TCP
    {{- end }}
    {{- with $np.extraIngress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if $np.egress }}
  egress:
    - ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    {{- toYaml $np.egress | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "common.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  {{- if .Values.pdb.maxUnavailable }}
  maxUnavailable: {{ .Values.pdb.maxUnavailable }}
  {{- else }}
  minAvailable: {{ .Values.pdb.minAvailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "common.selectorLabels" . | nindent 6 }}
{{- end -}}

{{- define "common.hpa" -}}
{{- $a := .Values.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "common.fullname" . }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
    {{- with $a.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
  {{- with $a.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
