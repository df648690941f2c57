variable "name" {
  description = "Name of the Lambda function."
  type        = string
}

variable "project_root" {
  description = "Path of the repository root; the zip holds its services/ and shared/ packages."
  type        = string
}

variable "handler" {
  description = "Python handler of the order ingestion Lambda (the same code the ingestion service runs)."
  type        = string
  default     = "services.ingestion.lambda_handler.handler"
}

variable "dependency_layer_arns" {
  description = "Lambda layers holding the project's third-party packages (built by CI with pip install --target python/)."
  type        = list(string)
  default     = []
}

variable "subnet_ids" {
  description = "Private subnets the function runs in, to reach MSK."
  type        = list(string)
}

variable "vpc_id" {
  description = "VPC of the function."
  type        = string
}

variable "kafka_bootstrap" {
  description = "MSK IAM bootstrap servers (KAFKA_BOOTSTRAP)."
  type        = string
}

variable "kafka_partitions" {
  description = "Partitions of the topics (KAFKA_PARTITIONS)."
  type        = number
}

variable "msk_cluster_arn" {
  description = "ARN of the MSK cluster the function connects to."
  type        = string
}

variable "order_requests_topic_arn" {
  description = "ARN of the order-requests topic, the only one the function writes."
  type        = string
}

variable "reserved_concurrency" {
  description = "Most concurrent executions (design section 4: configure concurrency limits)."
  type        = number
  default     = 200
}

variable "memory_mb" {
  description = "Memory of the function in MB (CPU scales with it)."
  type        = number
  default     = 512
}

variable "timeout_seconds" {
  description = "Timeout of one invocation."
  type        = number
  default     = 10
}

variable "log_retention_days" {
  description = "Days to keep the function's logs."
  type        = number
  default     = 365
}

variable "kms_key_arn" {
  description = "KMS key for environment variables, logs and the dead-letter queue."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
