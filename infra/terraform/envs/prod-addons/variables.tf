# Every variable is a key of envs/prod's output addon_inputs (tests/deploy/test_terraform.py checks it).

variable "region" {
  description = "AWS region of the environment."
  type        = string
}

variable "cluster_name" {
  description = "EKS cluster the controllers are installed in."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster (AWS Load Balancer Controller)."
  type        = string
}

variable "karpenter_interruption_queue" {
  description = "SQS queue Karpenter reads interruption events from."
  type        = string
}

variable "secret_arns" {
  description = "Secrets External Secrets may read (Aurora master credentials, Redis AUTH token, the service key)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key of those secrets."
  type        = string
}
