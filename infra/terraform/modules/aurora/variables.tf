variable "name" {
  description = "Identifier of the Aurora cluster."
  type        = string
}

variable "engine_version" {
  description = "Aurora PostgreSQL engine version."
  type        = string
  default     = "16.6"
}

variable "database_name" {
  description = "Database the services use (DATABASE_URL path)."
  type        = string
  default     = "spot"
}

variable "master_username" {
  description = "Master user name; its password is generated and rotated by RDS in Secrets Manager."
  type        = string
  default     = "spot_admin"
}

variable "instance_class" {
  description = "Instance class of the writer and readers (the primary is scaled by hand, design section 4)."
  type        = string
  default     = "db.r7g.large"
}

variable "reader_count" {
  description = "Readers created with the cluster, each in another zone than the writer; at least 1 for multi-AZ failover."
  type        = number
  default     = 1
}

variable "reader_autoscaling_max" {
  description = "Most readers Application Auto Scaling may add on CPU (design section 4: auto-scaling read replicas)."
  type        = number
  default     = 4
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets, in at least two availability zones."
  type        = list(string)
}

variable "client_security_groups" {
  description = "Security groups allowed to connect on 5432 (EKS nodes), by a name known before apply (the IDs are not, and for_each needs its keys)."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "KMS key for storage, Performance Insights, the master secret and exported logs."
  type        = string
}

variable "backup_retention_days" {
  description = "Days of point-in-time recovery."
  type        = number
  default     = 14
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
