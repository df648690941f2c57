variable "name" {
  description = "Name prefix of the roles (project-environment)."
  type        = string
}

variable "cluster_name" {
  description = "EKS cluster whose service accounts assume the roles through EKS Pod Identity."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the Helm release."
  type        = string
  default     = "exchange"
}

variable "service_account_prefix" {
  description = "Helm release full name; each service runs as <prefix>-<service> (chart serviceAccount.perService), init as <prefix>-init."
  type        = string
  default     = "spot-exchange"
}

variable "msk_cluster_arn" {
  description = "ARN of the MSK cluster."
  type        = string
}

variable "msk_cluster_name" {
  description = "Name of the MSK cluster (part of topic and group ARNs)."
  type        = string
}

variable "msk_cluster_uuid" {
  description = "UUID of the MSK cluster (part of topic and group ARNs)."
  type        = string
}

variable "topic_access" {
  description = "Per service: the topics it consumes (as consumer group = its name) and the topics it writes, as the services' code does (the gateway publishes order-requests itself, INGESTION_IN_GATEWAY, as ingestion does for the Lambda and other callers; settlement consumes matched-events alone). Dead-letter topics are named <topic>.dlq."
  type = map(object({
    read  = list(string)
    write = list(string)
  }))
  default = {
    "gateway"         = { read = [], write = ["order-requests"] }
    "ingestion"       = { read = [], write = ["order-requests"] }
    "order-processor" = { read = ["order-requests"], write = ["validated-orders", "order-requests.dlq"] }
    "matcher"         = { read = ["validated-orders"], write = ["matched-events", "trade-execution", "validated-orders.dlq"] }
    "settlement"      = { read = ["matched-events"], write = ["matched-events.dlq"] }
    "market-data"     = { read = ["matched-events", "trade-execution"], write = ["matched-events.dlq", "trade-execution.dlq"] }
    "trade-archiver"  = { read = ["trade-execution"], write = ["trade-execution.dlq"] }
  }
}

variable "kinesis_stream_arn" {
  description = "Trade stream trade-archiver writes to."
  type        = string
}

variable "archive_bucket_arn" {
  description = "Trade archive bucket trade-archiver writes to (Parquet under trades/, manifests under manifests/)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the stream and the bucket."
  type        = string
}

variable "api_secrets_kms_key_arn" {
  description = "KMS key wrapping the API secrets' data keys (KMS_KEY_ID): the gateway opens them, the init job (spot admin) seals them."
  type        = string
}

variable "database_secret_arn" {
  description = "Secrets Manager secret of the Aurora credentials (RDS-managed, rotated): every service and the init job read it (DATABASE_SECRET_ID, shared/dbsecret.py) at start and when Postgres refuses the password."
  type        = string
}

variable "database_secret_kms_key_arn" {
  description = "Customer-managed KMS key the database secret is encrypted with; null when it uses the AWS managed key aws/secretsmanager, which needs no grant."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
