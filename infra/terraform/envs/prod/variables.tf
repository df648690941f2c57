variable "region" {
  description = "AWS region of the environment."
  type        = string
  default     = "eu-west-1"
}

variable "environment" {
  description = "Environment name, part of every resource name."
  type        = string
  default     = "prod"
}

variable "availability_zones" {
  description = "Three availability zones of the region."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
}

variable "vpc_cidr_block" {
  description = "IPv4 CIDR of the VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "admin_principal_arns" {
  description = "IAM roles granted cluster-admin on EKS (platform team, deploy pipeline)."
  type        = list(string)
  default     = []
}

variable "kafka_partitions" {
  description = "Partitions of every topic; the Helm chart's kafka.partitions must equal it (KEDA ceiling)."
  type        = number
  default     = 12
}

variable "archive_bucket_name" {
  description = "Globally unique name of the trade archive bucket."
  type        = string
}

variable "gateway_certificate_arn" {
  description = "ACM certificate of the internal gateway NLB (covers gateway_internal_domain)."
  type        = string
}

variable "gateway_internal_domain" {
  description = "Private DNS name of the internal gateway NLB, verified by API Gateway."
  type        = string
}

variable "orders_via_lambda" {
  description = "Route POST /api/v3/order through the ingestion Lambda instead of the gateway."
  type        = bool
  default     = false
}

variable "lambda_dependency_layer_arns" {
  description = "Lambda layers with the project's third-party packages, published by CI."
  type        = list(string)
  default     = []
}

variable "lambda_package_path" {
  description = "Zip of the ingestion Lambda, built before apply: spot deploy lambda-package build/order-ingestion.zip."
  type        = string
  default     = "../../../../build/order-ingestion.zip"
}

variable "redis_cluster_mode" {
  description = "ElastiCache cluster mode; helm_values hands the same to the fleet (REDIS_CLUSTER), whose client is then a RedisCluster."
  type        = bool
  default     = true
}

variable "public_domain" {
  description = "Public DNS name of the WebSocket entry (the internet-facing ALB Ingress host, chart ingress.host)."
  type        = string
}
