variable "name" {
  description = "Name prefix of log groups, alarms and the alarm topic (project-environment)."
  type        = string
}

variable "services" {
  description = "Services of the fleet, one log group each (dashed names: order-processor, ...)."
  type        = list(string)
  default     = ["gateway", "ingestion", "order-processor", "matcher", "settlement", "market-data", "trade-archiver"]
}

variable "msk_cluster_name" {
  description = "MSK cluster whose consumer lag is watched (Cluster Name dimension)."
  type        = string
}

variable "consumer_topics" {
  description = "Consumer group (= service name) to the topic whose lag it is alarmed on."
  type        = map(string)
  default = {
    "order-processor" = "order-requests"
    "matcher"         = "validated-orders"
    "settlement"      = "matched-events"
    "market-data"     = "matched-events"
    "trade-archiver"  = "trade-execution"
  }
}

variable "max_offset_lag" {
  description = "Largest per-partition offset lag tolerated for five minutes before the alarm fires."
  type        = number
  default     = 10000
}

variable "max_time_lag_seconds" {
  description = "Largest estimated time lag (seconds) tolerated for five minutes before the alarm fires."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "Days to keep service logs."
  type        = number
  default     = 365
}

variable "kms_key_arn" {
  description = "KMS key for log groups and the alarm topic."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
