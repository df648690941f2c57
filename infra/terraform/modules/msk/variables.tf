variable "name" {
  description = "Name of the MSK cluster."
  type        = string
}

variable "kafka_version" {
  description = "Apache Kafka version of the brokers (KRaft-based MSK)."
  type        = string
  default     = "3.9.x"
}

variable "broker_instance_type" {
  description = "Broker instance type; MSK scales by provisioning ahead of throughput (design section 4)."
  type        = string
  default     = "kafka.m7g.large"
}

variable "broker_count" {
  description = "Number of brokers; a multiple of the number of subnets (one zone each)."
  type        = number
  default     = 3
}

variable "broker_volume_size" {
  description = "EBS storage per broker in GiB."
  type        = number
  default     = 500
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets, one per availability zone."
  type        = list(string)
}

variable "client_security_groups" {
  description = "Security groups allowed to reach the brokers (EKS nodes, the ingestion Lambda), by a name known before apply (the IDs are not, and for_each needs its keys)."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "KMS key for data at rest and the broker log group."
  type        = string
}

variable "partitions" {
  description = "Partitions of every topic: the ceiling of each consumer's KEDA maxReplicaCount (Helm kafka.partitions)."
  type        = number
  default     = 12
}

variable "replication_factor" {
  description = "Replicas of every partition (one per zone)."
  type        = number
  default     = 3
}

variable "retention_hours" {
  description = "How long topics keep records by default (replay window after an incident)."
  type        = number
  default     = 168
}

variable "log_retention_days" {
  description = "Days to keep broker logs in CloudWatch Logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
