variable "name" {
  description = "Name of the Lambda function."
  type        = string
}

variable "package_path" {
  description = "Path of the function's zip, built beforehand by `spot deploy lambda-package` (services/ and shared/)."
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

variable "fleet_identity_topic_arn" {
  description = "ARN of the spot.fleet topic (the fleet's identity record), which the function reads before it publishes."
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

variable "api_secrets_kms_key_arn" {
  description = "KMS key wrapping the API secrets' data keys (KMS_KEY_ID): the handler opens an API key's secret with it."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "msk_security_group_id" {
  description = "Security group of the MSK brokers (egress to their IAM listener, 9098)."
  type        = string
}

variable "database_security_group_id" {
  description = "Security group of the Aurora cluster (egress to it; it admits this function's group)."
  type        = string
}

variable "database_secret_arn" {
  description = "Secrets Manager secret of the Aurora credentials (JSON username/password) the handler reads."
  type        = string
}

variable "database_secret_kms_key_arn" {
  description = "Customer-managed KMS key the database secret is encrypted with (decrypted through Secrets Manager for that secret only); null for the AWS managed key aws/secretsmanager."
  type        = string
  default     = null
}

variable "database_host" {
  description = "Aurora writer endpoint."
  type        = string
}

variable "database_port" {
  description = "Aurora port."
  type        = number
  default     = 5432
}

variable "database_name" {
  description = "Database of the exchange."
  type        = string
}

variable "redis_security_group_id" {
  description = "Security group of the ElastiCache cluster (egress to it; it admits this function's group)."
  type        = string
}

variable "redis_auth_token_secret_arn" {
  description = "Secrets Manager secret of the Redis AUTH token the handler reads."
  type        = string
}

variable "redis_host" {
  description = "ElastiCache endpoint (configuration endpoint in cluster mode, primary otherwise)."
  type        = string
}

variable "redis_port" {
  description = "ElastiCache port."
  type        = number
  default     = 6379
}

variable "redis_cluster" {
  description = "Whether ElastiCache runs in cluster mode (REDIS_CLUSTER, as the fleet's)."
  type        = bool
}
