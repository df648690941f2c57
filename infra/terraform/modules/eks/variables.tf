variable "name" {
  description = "EKS cluster name; also the prefix of its IAM roles and the Karpenter discovery tag."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane (e.g. 1.34)."
  type        = string
  default     = "1.34"
}

variable "vpc_id" {
  description = "VPC the cluster runs in."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for the control plane's network interfaces and the nodes."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key for envelope encryption of Kubernetes Secrets and the cluster's log group."
  type        = string
}

variable "admin_principal_arns" {
  description = "IAM principals (roles of the platform team, CI) granted cluster-admin through EKS access entries."
  type        = list(string)
  default     = []
}

variable "system_node_instance_types" {
  description = "Instance types of the small managed node group that runs Karpenter, KEDA and CoreDNS."
  type        = list(string)
  default     = ["m7i.large"]
}

variable "system_node_count" {
  description = "Nodes in the system node group (one per zone keeps the controllers available)."
  type        = number
  default     = 3
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

variable "keda_operator_role_arn" {
  description = "IAM role the KEDA operator assumes (EKS Pod Identity) to read MSK consumer lag; from the iam module."
  type        = string
}

variable "log_retention_days" {
  description = "Days to keep the control plane's logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
