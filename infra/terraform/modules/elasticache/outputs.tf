output "replication_group_id" {
  description = "ID of the replication group."
  value       = aws_elasticache_replication_group.this.id
}

output "configuration_endpoint" {
  description = "Cluster-mode configuration endpoint (host of REDIS_URL, scheme rediss://)."
  value       = aws_elasticache_replication_group.this.configuration_endpoint_address
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
