variable "name" {
  description = "Name of the trade stream."
  type        = string
}

variable "shard_count" {
  description = "Shards of the stream; Kinesis scales by adjusting shards to the trade rate (design section 4)."
  type        = number
  default     = 2
}

variable "retention_hours" {
  description = "Hours a record stays readable on the stream."
  type        = number
  default     = 48
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the stream."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
