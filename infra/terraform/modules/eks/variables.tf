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

variable "addons_before_compute" {
  description = "EKS add-ons a node needs to become Ready; created before any node group."
  type        = list(string)
  default     = ["vpc-cni", "eks-pod-identity-agent", "kube-proxy"]
}

variable "addons_after_compute" {
  description = "EKS add-ons that run as pods; created once the system node group is up."
  type        = list(string)
  default     = ["coredns", "metrics-server"]
}
