variable "database_name" {
  description = "Glue catalog database of the trade history (Athena database)."
  type        = string
}

variable "trades_location" {
  description = "S3 prefix holding the trades Parquet files (s3://bucket/trades/)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the Data Catalog."
  type        = string
}
