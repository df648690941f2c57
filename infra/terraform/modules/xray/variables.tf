variable "name" {
  description = "Name prefix of the sampling rule and group (project-environment)."
  type        = string
}

variable "order_path_sampling_rate" {
  description = "Fraction of order requests traced beyond the one-per-second reservoir."
  type        = number
  default     = 0.05
}

variable "default_sampling_rate" {
  description = "Fraction of all other requests traced beyond the reservoir."
  type        = number
  default     = 0.01
}

variable "kms_key_arn" {
  description = "KMS key that encrypts trace data."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
