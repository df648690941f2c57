variable "name" {
  description = "Name prefix of the APIs, the VPC links and the internal load balancer."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the internal load balancer."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the internal load balancer and the VPC links."
  type        = list(string)
}

variable "vpc_cidr_block" {
  description = "CIDR of the VPC: the load balancer admits traffic from the VPC links' interfaces in it."
  type        = string
}

variable "gateway_port" {
  description = "Port of the gateway pods (target group of the internal NLB; the chart's services.gateway.port)."
  type        = number
  default     = 8000
}

variable "certificate_arn" {
  description = "ACM certificate of the internal NLB's TLS listener (a name under internal_domain)."
  type        = string
}

variable "internal_domain" {
  description = "Host name of the internal NLB that the certificate covers; API Gateway verifies it."
  type        = string
}

variable "orders_via_lambda" {
  description = "Route POST /api/v3/order to the ingestion Lambda (the design's API Gateway -> Lambda path) instead of the gateway."
  type        = bool
  default     = false
}

variable "ingestion_lambda_invoke_arn" {
  description = "Invoke ARN of the ingestion Lambda (used when orders_via_lambda)."
  type        = string
  default     = ""
}

variable "ingestion_lambda_name" {
  description = "Name of the ingestion Lambda (permission for API Gateway to invoke it)."
  type        = string
  default     = ""
}

variable "throttle_rate_limit" {
  description = "Steady-state requests per second across the API (API Gateway's rate limit, before the gateway's per-key limits)."
  type        = number
  default     = 5000
}

variable "throttle_burst_limit" {
  description = "Burst of requests the API admits above the rate limit."
  type        = number
  default     = 10000
}

variable "log_retention_days" {
  description = "Days to keep access logs."
  type        = number
  default     = 365
}

variable "kms_key_arn" {
  description = "KMS key of the access log groups."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
