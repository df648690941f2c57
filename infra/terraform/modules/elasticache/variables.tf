variable "name" {
  description = "Replication group ID of the Redis cluster."
  type        = string
}

variable "engine_version" {
  description = "Redis OSS engine version."
  type        = string
  default     = "7.1"
}

variable "node_type" {
  description = "Cache node type (vertical scaling, design section 4)."
  type        = string
  default     = "cache.r7g.large"
}

variable "shards" {
  description = "Node groups (shards) in cluster mode; hot books are spread over them by key hash slot."
  type        = number
  default     = 2
}

variable "replicas_per_shard" {
  description = "Replicas per shard, in other zones than their primary; at least 1, since automatic failover needs one."
  type        = number
  default     = 1
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets in at least two availability zones."
  type        = list(string)
}

variable "client_security_groups" {
  description = "Security groups allowed to connect on 6379 (EKS nodes), by a name known before apply (the IDs are not, and for_each needs its keys)."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "KMS key for data at rest, the auth token secret and the slow log."
  type        = string
}

variable "snapshot_retention_days" {
  description = "Days of automatic snapshots."
  type        = number
  default     = 7
}

variable "log_retention_days" {
  description = "Days to keep the slow log in CloudWatch Logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "cluster_mode" {
  description = "Cluster mode (shards by hash slot). The fleet's REDIS_CLUSTER says the same (helm_values): its client is then a RedisCluster, and every script and transaction touches one slot ({symbol} or {u:user} hash tags)."
  type        = bool
  default     = true
}
