variable "name" {
  description = "Name prefix for every resource (project-environment, e.g. spot-prod)."
  type        = string
}

variable "cidr_block" {
  description = "IPv4 CIDR of the VPC; split into one public and one private /20 per availability zone."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones to span: at least two (three for MSK with replication factor 3), for multi-AZ data stores."
  type        = list(string)
}

variable "cluster_name" {
  description = "EKS cluster name, tagged on subnets for the load balancer controller and Karpenter discovery."
  type        = string
}

variable "flow_log_retention_days" {
  description = "Days to keep VPC flow logs in CloudWatch Logs."
  type        = number
  default     = 365
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the flow log group."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
