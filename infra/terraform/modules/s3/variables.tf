variable "bucket_name" {
  description = "Name of the trade archive bucket (globally unique)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for the buckets' default encryption."
  type        = string
}

variable "infrequent_access_after_days" {
  description = "Days after which trade Parquet files move to Standard-IA."
  type        = number
  default     = 30
}

variable "glacier_after_days" {
  description = "Days after which trade Parquet files move to Glacier Instant Retrieval."
  type        = number
  default     = 180
}

variable "noncurrent_expiration_days" {
  description = "Days a replaced or deleted object version is kept."
  type        = number
  default     = 90
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
