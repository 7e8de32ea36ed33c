{{/* Names */}}
{{- define "synthtune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "synthtune.fullname" -}}
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

{{/* "<fullname>-<component>"; components are short, so the 63-character limit holds. */}}
{{- define "synthtune.componentName" -}}
{{- printf "%s-%s" (include "synthtune.fullname" .ctx | trunc 45 | trimSuffix "-") .component }}
{{- end }}

{{/* Labels. Selector labels: instance + component; NetworkPolicies select on the same. */}}
{{- define "synthtune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "synthtune.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "synthtune.labels" -}}
{{ include "synthtune.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: synthtune
{{- end }}

{{/* <registry>/<repository>:<tag>, or @<digest> when the component pins one. */}}
{{- define "synthtune.image" -}}
{{- $repo := printf "%s/%s" (.ctx.Values.image.registry | trimSuffix "/") .repository }}
{{- if .digest }}
{{- printf "%s@%s" $repo .digest }}
{{- else }}
{{- printf "%s:%s" $repo (.ctx.Values.image.tag | default .ctx.Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* A third-party image: repository:tag@digest (digest wins when pulling). */}}
{{- define "synthtune.externalImage" -}}
{{- if .digest }}
{{- printf "%s:%s@%s" .repository .tag .digest }}
{{- else }}
{{- printf "%s:%s" .repository .tag }}
{{- end }}
{{- end }}

{{- define "synthtune.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "synthtune.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "synthtune.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "synthtune.fullname" .) }}
{{- end }}

{{- define "synthtune.dataClaimName" -}}
{{- .Values.dataRoot.persistence.existingClaim | default (printf "%s-data" (include "synthtune.fullname" .)) }}
{{- end }}

{{/* In-cluster addresses. */}}
{{- define "synthtune.grpcAddr" -}}
{{- printf "%s:%v" (include "synthtune.componentName" (dict "ctx" .ctx "component" .component)) .port }}
{{- end }}

{{- define "synthtune.vllmUrl" -}}
{{- if .Values.vllm.enabled }}
{{- printf "http://%s:%v" (include "synthtune.componentName" (dict "ctx" . "component" "vllm")) .Values.vllm.port }}
{{- else }}
{{- required "vllm.external.url is required when vllm.enabled is false" .Values.vllm.external.url }}
{{- end }}
{{- end }}

{{/* Every vLLM replica by its own stable name: the proxy loads adapters into each. One
replica (a Deployment) is its Service. */}}
{{- define "synthtune.vllmReplicaUrls" -}}
{{- if and .Values.vllm.enabled (eq (int .Values.vllm.replicas) 1) }}
{{- include "synthtune.vllmUrl" . }}
{{- else if .Values.vllm.enabled }}
{{- $name := include "synthtune.componentName" (dict "ctx" . "component" "vllm") }}
{{- $urls := list }}
{{- range $i := until (int .Values.vllm.replicas) }}
{{- $urls = append $urls (printf "http://%s-%d.%s-headless.%s.svc:%v" $name $i $name $.Release.Namespace $.Values.vllm.port) }}
{{- end }}
{{- join "," $urls }}
{{- else }}
{{- join "," .Values.vllm.external.replicas }}
{{- end }}
{{- end }}

{{/* env of datagen and the serving proxy: the outbound policy for teacher and judge URLs
(values outbound.*, lists or comma strings). */}}
{{- define "synthtune.outboundEnv" -}}
- name: SYNTHTUNE_OUTBOUND_DENY
  value: {{ join "," (.Values.outbound.deny | default list) | quote }}
- name: SYNTHTUNE_OUTBOUND_ALLOW
  value: {{ join "," (.Values.outbound.allow | default list) | quote }}
{{- end }}

{{/* env: one key of the release's Secret. */}}
{{- define "synthtune.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "synthtune.secretName" .ctx }}
      key: {{ .key }}
{{- end }}

{{/* env every synthtune process reads. */}}
{{- define "synthtune.commonEnv" -}}
- name: SYNTHTUNE_DATA_ROOT
  value: {{ .Values.dataRoot.mountPath | quote }}
- name: SYNTHTUNE_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: SYNTHTUNE_METRICS_PORT
  value: {{ ternary .Values.metrics.port 0 .Values.metrics.enabled | quote }}
{{ include "synthtune.secretEnv" (dict "ctx" . "name" "SYNTHTUNE_GRPC_TOKEN" "key" "grpc-token") }}
{{- end }}

{{/*
env of the control plane, the worker and the migrations. Keys the migrations do not need
stay out of it: a pre-upgrade Job sees the old Secret, before new keys are added.
*/}}
{{- define "synthtune.controlPlaneEnv" -}}
{{ include "synthtune.commonEnv" . }}
{{ include "synthtune.secretEnv" (dict "ctx" . "name" "DATABASE_URL" "key" "database-url") }}
{{ include "synthtune.secretEnv" (dict "ctx" . "name" "DJANGO_SECRET_KEY" "key" "django-secret-key") }}
- name: SYNTHTUNE_DATAGEN_ADDR
  value: {{ include "synthtune.grpcAddr" (dict "ctx" . "component" "datagen" "port" .Values.datagen.port) | quote }}
- name: SYNTHTUNE_TRAINER_ADDR
  value: {{ include "synthtune.grpcAddr" (dict "ctx" . "component" "trainer" "port" .Values.trainer.port) | quote }}
- name: SYNTHTUNE_SERVING_PROXY_ADDR
  value: {{ include "synthtune.grpcAddr" (dict "ctx" . "component" "serving-proxy" "port" .Values.servingProxy.port) | quote }}
- name: DJANGO_ALLOWED_HOSTS
  value: {{ include "synthtune.allowedHosts" . | quote }}
{{- with .Values.controlPlane.csrfTrustedOrigins }}
- name: DJANGO_CSRF_TRUSTED_ORIGINS
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}

{{/*
The web process's throttling and request size limits (controlPlane.throttle, .limits). The
numbers are checked here, so a bad one fails the render rather than the new pods (the app checks
the rates at start); a bare `off` in YAML is false, read as off. A variable also named in
controlPlane.extraEnv is left to it (one entry per name: a duplicate is ambiguous, and
server-side apply refuses it), so settings made there before keep working.
*/}}
{{- define "synthtune.controlPlaneLimitsEnv" -}}
{{- $cp := .Values.controlPlane }}
{{- $given := list }}
{{- range $cp.extraEnv }}{{ $given = append $given .name }}{{ end }}
{{- $env := dict }}
{{- range $key, $name := dict "user" "SYNTHTUNE_THROTTLE_USER" "anon" "SYNTHTUNE_THROTTLE_ANON" }}
{{- $rate := index $cp.throttle $key }}
{{- if kindIs "bool" $rate }}
{{- if $rate }}{{ fail (printf "controlPlane.throttle.%s: give N/s, N/min, N/hour or N/day, or \"off\"" $key) }}{{ end }}
{{- $rate = "off" }}
{{- end }}
{{- $_ := set $env $name (toString $rate) }}
{{- end }}
{{- $proxies := $cp.throttle.trustedProxies }}
{{- if or (lt (int64 $proxies) 0) (gt (int64 $proxies) 10) (ne (float64 (int64 $proxies)) (float64 $proxies)) }}
{{- fail (printf "controlPlane.throttle.trustedProxies must be a whole number from 0 to 10 (got %v)" $proxies) }}
{{- end }}
{{- $_ := set $env "SYNTHTUNE_TRUSTED_PROXIES" (toString (int64 $proxies)) }}
{{- range $key, $name := dict "uploadMaxBytes" "SYNTHTUNE_UPLOAD_MAX_BYTES" "bodyMaxBytes" "SYNTHTUNE_BODY_MAX_BYTES" }}
{{- $value := index $cp.limits $key }}
{{- /* YAML numbers arrive as floats: int64 keeps 268435456 from rendering as 2.68435456e+08. */}}
{{- if or (lt (int64 $value) 1024) (ne (float64 (int64 $value)) (float64 $value)) }}
{{- fail (printf "controlPlane.limits.%s must be a whole number of bytes, 1024 or more (got %v)" $key $value) }}
{{- end }}
{{- $_ := set $env $name (toString (int64 $value)) }}
{{- end }}
{{- range $name, $value := $env }}
{{- if not (has $name $given) }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* localhost for probes, the Service's in-cluster names, the Istio hosts, your hosts. */}}
{{- define "synthtune.allowedHosts" -}}
{{- $svc := include "synthtune.componentName" (dict "ctx" . "component" "control-plane") }}
{{- $hosts := list "localhost" "127.0.0.1" $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) }}
{{- if .Values.istio.virtualService.enabled }}
{{- $hosts = concat $hosts .Values.istio.virtualService.hosts }}
{{- end }}
{{- join "," (concat $hosts .Values.controlPlane.allowedHosts | uniq) }}
{{- end }}

{{/* The data root volume. */}}
{{- define "synthtune.dataVolume" -}}
- name: data
  persistentVolumeClaim:
    claimName: {{ include "synthtune.dataClaimName" . }}
- name: tmp
  emptyDir: {}
{{- end }}

{{- define "synthtune.dataMounts" -}}
- name: data
  mountPath: {{ .ctx.Values.dataRoot.mountPath }}
  {{- if .readOnly }}
  readOnly: true
  {{- end }}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Prometheus scrape annotations for a pod. */}}
{{- define "synthtune.metricsAnnotations" -}}
{{- if and .ctx.Values.metrics.enabled .ctx.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* Pod-level scheduling and identity shared by the synthtune pods. Only a pod that talks to
the Kubernetes API (the trainer, with the kubeflow launcher) passes serviceAccount, its own. */}}
{{- define "synthtune.podCommon" -}}
{{- if .serviceAccount -}}
serviceAccountName: {{ .serviceAccount }}
automountServiceAccountToken: true
{{- else -}}
serviceAccountName: {{ include "synthtune.serviceAccountName" .ctx }}
automountServiceAccountToken: false
{{- end }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A gRPC service: Deployment + Service, native gRPC probes on the standard health service.
Arguments: ctx, component, values (its section), port, listenEnv, replicas, recreate,
readOnlyData, image, env (extra env items, YAML), gpu (a gpu section or nil),
shmSize ("" for none), serviceAccount (its own, with the API token; "" for the shared one).
*/}}
{{- define "synthtune.grpcService" -}}
{{- $ctx := .ctx }}
{{- $name := include "synthtune.componentName" . }}
{{- $labels := dict "ctx" $ctx "component" .component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "synthtune.labels" $labels | nindent 4 }}
spec:
  replicas: {{ .replicas }}
  revisionHistoryLimit: 3
  {{- if .recreate }}
  # One at a time: it owns state in the data root (and a GPU) that two copies would share.
  strategy:
    type: Recreate
  {{- end }}
  selector:
    matchLabels:
      {{- include "synthtune.selectorLabels" $labels | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "synthtune.labels" $labels | nindent 8 }}
      annotations:
        checksum/secret: {{ include (print $ctx.Template.BasePath "/secret.yaml") $ctx | sha256sum }}
        {{- with (include "synthtune.metricsAnnotations" (dict "ctx" $ctx "port" $ctx.Values.metrics.port) | trim) }}{{ . | nindent 8 }}{{ end }}
        {{- with .values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "synthtune.podCommon" (dict "ctx" $ctx "values" .values "serviceAccount" .serviceAccount) | nindent 6 }}
      # SIGTERM: health goes NOT_SERVING, in-flight calls get SYNTHTUNE_GRPC_SHUTDOWN_GRACE_S.
      terminationGracePeriodSeconds: 30
      containers:
        - name: {{ .component }}
          image: {{ .image | quote }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          ports:
            - name: grpc
              containerPort: {{ .port }}
              protocol: TCP
            {{- if $ctx.Values.metrics.enabled }}
            - name: metrics
              containerPort: {{ $ctx.Values.metrics.port }}
              protocol: TCP
            {{- end }}
          env:
            - name: {{ .listenEnv }}
              value: {{ printf "[::]:%v" .port | quote }}
            {{- include "synthtune.commonEnv" $ctx | nindent 12 }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with .values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            grpc:
              port: {{ .port }}
            periodSeconds: 2
            failureThreshold: 60
          readinessProbe:
            grpc:
              port: {{ .port }}
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 2
          livenessProbe:
            grpc:
              port: {{ .port }}
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 6
          resources:
            {{- $resources := deepCopy .values.resources }}
            {{- if and .gpu .gpu.enabled }}
            {{- $_ := set $resources "limits" (merge (dict .gpu.resourceName .gpu.count) ($resources.limits | default dict)) }}
            {{- end }}
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            {{- toYaml $ctx.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- include "synthtune.dataMounts" (dict "ctx" $ctx "readOnly" .readOnlyData) | nindent 12 }}
            {{- if .shmSize }}
            - name: dshm
              mountPath: /dev/shm
            {{- end }}
      volumes:
        {{- include "synthtune.dataVolume" $ctx | nindent 8 }}
        {{- if .shmSize }}
        - name: dshm
          emptyDir:
            medium: Memory
            sizeLimit: {{ .shmSize }}
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "synthtune.labels" $labels | nindent 4 }}
    {{- if $ctx.Values.metrics.enabled }}
    synthtune.io/metrics: "true"
    {{- end }}
spec:
  type: ClusterIP
  selector:
    {{- include "synthtune.selectorLabels" $labels | nindent 4 }}
  ports:
    - name: grpc
      port: {{ .port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    {{- if $ctx.Values.metrics.enabled }}
    - name: metrics
      port: {{ $ctx.Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- end }}

{{/*
A NetworkPolicy ingress rule for scrapers on a named port, when metrics are on. On a port
that also serves traffic (sharedPort: vLLM's), only for the peers in metricsFrom: an open
rule there would open the port itself.
*/}}
{{- define "synthtune.metricsIngress" -}}
{{- if and .ctx.Values.metrics.enabled (or (not .sharedPort) .ctx.Values.networkPolicy.metricsFrom) }}
- ports:
    - port: {{ .port }}
      protocol: TCP
  {{- with .ctx.Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The kubeflow launcher's names: the trainer's service account and the TrainingRuntime. */}}
{{- define "synthtune.trainerServiceAccountName" -}}
{{- .Values.trainer.kubeflow.serviceAccountName | default (include "synthtune.componentName" (dict "ctx" . "component" "trainer")) }}
{{- end }}

{{- define "synthtune.trainingRuntimeName" -}}
{{- .Values.trainer.kubeflow.runtimeName | default (include "synthtune.componentName" (dict "ctx" . "component" "trainer-node")) }}
{{- end }}

{{/* The image a training node runs: the trainer's, CUDA or CPU by trainer.kubeflow.gpu.enabled. */}}
{{- define "synthtune.trainerNodeImage" -}}
{{- $repository := ternary .Values.trainer.image.repository .Values.trainer.image.cpuRepository .Values.trainer.kubeflow.gpu.enabled }}
{{- include "synthtune.image" (dict "ctx" . "repository" $repository "digest" .Values.trainer.image.digest) }}
{{- end }}
