output "replication_group_id" {
  description = "ID of the replication group."
  value       = aws_elasticache_replication_group.this.id
}

output "endpoint" {
  description = "Host of REDIS_URL (scheme rediss://): the configuration endpoint in cluster mode, the primary endpoint without."
  value       = var.cluster_mode ? local.configuration_endpoint : local.primary_endpoint
}

output "security_group_id" {
  description = "Security group of the cluster (clients outside EKS, such as the ingestion Lambda, egress to it)."
  value       = aws_security_group.this.id
}

output "port" {
  description = "Redis port."
  value       = aws_elasticache_replication_group.this.port
}

output "auth_token_secret_arn" {
  description = "Secrets Manager secret holding the AUTH token."
  value       = aws_secretsmanager_secret.auth_token.arn
}

output "cluster_mode" {
  description = "Whether the replication group runs in cluster mode (the fleet's REDIS_CLUSTER)."
  value       = aws_elasticache_replication_group.this.cluster_mode == "enabled"
}
