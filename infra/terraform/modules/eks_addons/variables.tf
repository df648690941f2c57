variable "cluster_name" {
  description = "EKS cluster the releases are installed in (module eks output cluster_name)."
  type        = string
}

variable "karpenter_interruption_queue" {
  description = "SQS queue Karpenter reads interruption events from (module eks output)."
  type        = string
}

variable "karpenter_version" {
  description = "Karpenter Helm chart version (the CRDs in deploy/karpenter are validated against 1.14)."
  type        = string
  default     = "1.14.0"
}

variable "keda_version" {
  description = "KEDA Helm chart version (the ScaledObjects are validated against 2.20)."
  type        = string
  default     = "2.20.0"
}

variable "vpa_chart_version" {
  description = "Fairwinds VPA Helm chart version that installs the Vertical Pod Autoscaler (1.7)."
  type        = string
  default     = "4.8.0"
}

variable "region" {
  description = "AWS region of the cluster (the controllers' AWS calls)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster, for the AWS Load Balancer Controller."
  type        = string
}

variable "secret_arns" {
  description = "Secrets Manager secrets External Secrets may read: the Aurora and Redis secrets the fleet's DSNs are built from, and the service key (SERVICE_KEY)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key of those secrets (decrypt through Secrets Manager only)."
  type        = string
}

variable "collector_config" {
  description = "OpenTelemetry collector configuration as YAML (deploy/otel-collector/config.yaml)."
  type        = string
}

variable "tags" {
  description = "Tags added to every AWS resource."
  type        = map(string)
  default     = {}
}

variable "aws_load_balancer_controller_version" {
  description = "AWS Load Balancer Controller Helm chart version (eks-charts; TargetGroupBinding elbv2.k8s.aws/v1beta1)."
  type        = string
  default     = "1.14.0"
}

variable "external_secrets_version" {
  description = "External Secrets Helm chart version (serves external-secrets.io/v1 ExternalSecret and SecretStore)."
  type        = string
  default     = "0.20.3"
}

variable "kube_prometheus_stack_version" {
  description = "kube-prometheus-stack Helm chart version (Prometheus Operator CRDs monitoring.coreos.com/v1, Prometheus, Grafana)."
  type        = string
  default     = "77.0.0"
}

variable "opentelemetry_collector_chart_version" {
  description = "OpenTelemetry collector Helm chart version that runs the ADOT image."
  type        = string
  default     = "0.127.0"
}

variable "adot_collector_image_tag" {
  description = "Tag of the ADOT collector image (public.ecr.aws/aws-observability/aws-otel-collector)."
  type        = string
  default     = "v0.43.3"
}
