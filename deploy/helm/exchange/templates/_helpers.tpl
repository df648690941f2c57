{{/*
Names and labels for every object of the chart. A service's objects (Deployment, Service, PDB, HPA, VPA,
ScaledObject, ServiceMonitor) are all named "exchange.serviceName": <fullname>-<service>, where <service>
is the key under .Values.services (order-processor, never order_processor).
*/}}

{{- define "exchange.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "exchange.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "exchange.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object. */}}
{{- define "exchange.labels" -}}
helm.sh/chart: {{ include "exchange.chart" . }}
app.kubernetes.io/name: {{ include "exchange.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: spot-exchange
{{- end }}

{{/*
Per-service helpers take a dict: (dict "root" $ "name" "order-processor").
*/}}
{{- define "exchange.serviceName" -}}
{{- printf "%s-%s" (include "exchange.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Postgres role a service's connections act as (DATABASE_ROLE, migration 0010): spot_<service>, with
underscores (order-processor: spot_order_processor), as shared.config.database_role names it. */}}
{{- define "exchange.databaseRole" -}}
{{- printf "spot_%s" (.name | replace "-" "_") }}
{{- end }}

{{- define "exchange.selectorLabels" -}}
app.kubernetes.io/name: {{ include "exchange.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "exchange.serviceLabels" -}}
{{ include "exchange.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/*
One ServiceAccount per service (<fullname>-<service>) and one for the init job (<fullname>-init), so each
gets its own least-privilege IAM role through EKS Pod Identity (infra/terraform/modules/iam). Takes
(dict "root" $ "name" "<service>|init").
*/}}
{{- define "exchange.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create }}
{{- printf "%s-%s" (include "exchange.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- default "default" .root.Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "exchange.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "exchange.configMapName" -}}
{{- printf "%s-config" (include "exchange.fullname" .) }}
{{- end }}

{{- define "exchange.secretName" -}}
{{- default (printf "%s-secrets" (include "exchange.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/*
Non-secret settings, one source for the ConfigMap (services) and the init hook's inline env (the hook runs
before the ConfigMap exists).
*/}}
{{- define "exchange.configData" -}}
KAFKA_BOOTSTRAP: {{ .Values.kafka.bootstrap | quote }}
KAFKA_PARTITIONS: {{ .Values.kafka.partitions | quote }}
KAFKA_SEGMENT_S: {{ .Values.kafka.segmentS | default 0 | quote }}
KAFKA_REPLICATION_FACTOR: {{ .Values.kafka.replicationFactor | default 1 | quote }}
KAFKA_SECURITY_PROTOCOL: {{ .Values.kafka.securityProtocol | default "PLAINTEXT" | quote }}
{{- with .Values.kafka.saslMechanism }}
KAFKA_SASL_MECHANISM: {{ . | quote }}
{{- end }}
INGESTION_IN_GATEWAY: {{ .Values.config.ingestionInGateway | quote }}
INGESTION_URL: {{ printf "http://%s:%v" (include "exchange.serviceName" (dict "root" . "name" "ingestion")) .Values.services.ingestion.port | quote }}
HOST: "0.0.0.0"
{{- with .Values.archive }}
ARCHIVE_DIR: {{ .dir | quote }}
ARCHIVE_BATCH_MAX: {{ .batchMax | quote }}
ARCHIVE_FLUSH_MS: {{ .flushMs | quote }}
{{- with .s3Bucket }}
ARCHIVE_S3_BUCKET: {{ . | quote }}
{{- end }}
{{- with .s3Prefix }}
ARCHIVE_S3_PREFIX: {{ . | quote }}
{{- end }}
{{- with .kinesisStream }}
KINESIS_STREAM: {{ . | quote }}
{{- end }}
{{- with .awsRegion }}
AWS_REGION: {{ . | quote }}
{{- end }}
{{- end }}
LOG_LEVEL: {{ .Values.config.logLevel | default "INFO" | quote }}
REDIS_CLUSTER: {{ .Values.config.redisCluster | default false | toString | quote }}
{{- with .Values.config.kmsKeyId }}
KMS_KEY_ID: {{ . | quote }}
{{- end }}
{{- with .Values.config.databaseSecretId }}
DATABASE_SECRET_ID: {{ . | quote }}
{{- end }}
{{- with .Values.config.otelExporterOtlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
OTEL_TRACES_SAMPLER_ARG: {{ $.Values.config.otelTracesSamplerArg | default 0 | toString | quote }}
{{- end }}
{{- end }}

{{/*
Checks JSON Schema cannot express (it cannot compare two values). Called from every template that depends
on them, so `helm template` and `helm install` both fail with the reason.
*/}}
{{- define "exchange.validate" -}}
{{- if and (eq (.Values.kafka.saslMechanism | default "") "OAUTHBEARER") (not (.Values.archive).awsRegion) }}
{{- fail "kafka.saslMechanism=OAUTHBEARER (MSK IAM) needs archive.awsRegion: AWS_REGION, the MSK cluster's region the token is signed for" }}
{{- end }}
{{- range $name, $svc := .Values.services }}
{{- if and $svc.enabled $svc.autoscaling.keda.enabled }}
{{- if gt (int $svc.autoscaling.keda.maxReplicaCount) (int $.Values.kafka.partitions) }}
{{- fail (printf "services.%s.autoscaling.keda.maxReplicaCount=%v exceeds kafka.partitions=%v: a consumer beyond the partition count owns no partition and sits idle" $name $svc.autoscaling.keda.maxReplicaCount $.Values.kafka.partitions) }}
{{- end }}
{{- if gt (int $svc.autoscaling.keda.minReplicaCount) (int $svc.autoscaling.keda.maxReplicaCount) }}
{{- fail (printf "services.%s.autoscaling.keda.minReplicaCount=%v exceeds maxReplicaCount=%v" $name $svc.autoscaling.keda.minReplicaCount $svc.autoscaling.keda.maxReplicaCount) }}
{{- end }}
{{- end }}
{{- if and $svc.enabled $svc.autoscaling.hpa.enabled }}
{{- if gt (int $svc.autoscaling.hpa.minReplicas) (int $svc.autoscaling.hpa.maxReplicas) }}
{{- fail (printf "services.%s.autoscaling.hpa.minReplicas=%v exceeds maxReplicas=%v" $name $svc.autoscaling.hpa.minReplicas $svc.autoscaling.hpa.maxReplicas) }}
{{- end }}
{{- end }}
{{- end }}
{{- $group := dict }}
{{- range $kind := list "rest" "websocket" }}
{{- $annotations := (index $.Values.ingress $kind).annotations | default dict }}
{{- with index $annotations "alb.ingress.kubernetes.io/group.name" }}
{{- $scheme := index $annotations "alb.ingress.kubernetes.io/scheme" | default "internal" }}
{{- if and (hasKey $group .) (ne (index $group .) $scheme) }}
{{- fail (printf "ingress.rest and ingress.websocket share alb.ingress.kubernetes.io/group.name %q with schemes %s and %s: the AWS Load Balancer Controller refuses a group with conflicting schemes (no ALB is made)" . (index $group .) $scheme) }}
{{- end }}
{{- $_ := set $group . $scheme }}
{{- end }}
{{- end }}
{{- if and (not .Values.secrets.existingSecret) (not .Values.externalSecrets.enabled) (not .Values.secrets.databaseUrl) }}
{{- fail "secrets.databaseUrl (or secrets.existingSecret) is required: every service reads DATABASE_URL" }}
{{- end }}
{{- if and .Values.externalSecrets.enabled (not .Values.config.kmsKeyId) }}
{{- fail "externalSecrets.enabled needs config.kmsKeyId: the ExternalSecret carries no ENVELOPE_KEY, so without KMS each pod would seal API secrets with a key file of its own" }}
{{- end }}
{{- if and .Values.externalSecrets.enabled (not .Values.config.databaseSecretId) }}
{{- fail "externalSecrets.enabled needs config.databaseSecretId (DATABASE_SECRET_ID, Terraform's helm_values): RDS rotates the master secret, and a pod holds the DATABASE_URL it started with, so without the secret it reads again every new connection is refused after a rotation until the pod restarts" }}
{{- end }}
{{- if and (not .Values.secrets.existingSecret) (not .Values.externalSecrets.enabled) (not .Values.secrets.redisUrl) }}
{{- fail "secrets.redisUrl (or secrets.existingSecret) is required: every service reads REDIS_URL" }}
{{- end }}
{{- end }}

{{/* The pod-level settings every workload (Deployments and the init Job) shares; (dict "root" $ "name" ...). */}}
{{- define "exchange.podSecurity" -}}
serviceAccountName: {{ include "exchange.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The TriggerAuthentication every Kafka trigger uses: the chart's own, or keda.authenticationRef, or none. */}}
{{- define "exchange.kedaAuthenticationName" -}}
{{- if .Values.keda.triggerAuthentication.create }}
{{- printf "%s-kafka" (include "exchange.fullname" .) }}
{{- else }}
{{- .Values.keda.authenticationRef }}
{{- end }}
{{- end }}

{{- define "exchange.orderPathPriorityClass" -}}
{{- printf "%s-order-path" (include "exchange.fullname" .) }}
{{- end }}

{{/* services.<name>.priorityClassName, else the chart's PriorityClass for the order path, else none. */}}
{{- define "exchange.priorityClassName" -}}
{{- $svc := index .root.Values.services .name }}
{{- if $svc.priorityClassName }}
{{- $svc.priorityClassName }}
{{- else if and .root.Values.priorityClass.create $svc.orderPath }}
{{- include "exchange.orderPathPriorityClass" .root }}
{{- end }}
{{- end }}
