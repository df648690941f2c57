output "cluster_arn" {
  description = "ARN of the MSK cluster."
  value       = aws_msk_cluster.this.arn
}

output "cluster_name" {
  description = "Name of the MSK cluster (the Cluster Name dimension of its CloudWatch metrics)."
  value       = aws_msk_cluster.this.cluster_name
}

output "cluster_uuid" {
  description = "UUID of the MSK cluster, part of its topic and group ARNs."
  value       = aws_msk_cluster.this.cluster_uuid
}

output "bootstrap_brokers_sasl_iam" {
  description = "Bootstrap servers of the IAM listener (port 9098): KAFKA_BOOTSTRAP of the services and KEDA."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_iam
}

output "bootstrap_brokers_sasl_scram" {
  description = "Bootstrap servers of the SCRAM listener (port 9096)."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_scram
}

output "security_group_id" {
  description = "Security group of the brokers."
  value       = aws_security_group.brokers.id
}

output "replication_factor" {
  description = "Replicas of every partition: the chart's kafka.replicationFactor, which `spot admin init` creates topics with."
  value       = var.replication_factor
}

output "partitions" {
  description = "Partitions per topic: set the chart's kafka.partitions to this."
  value       = var.partitions
}
