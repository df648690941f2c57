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
