output "cluster_arn" {
  description = "ARN of the Aurora cluster."
  value       = aws_rds_cluster.this.arn
}

output "cluster_identifier" {
  description = "Identifier of the Aurora cluster."
  value       = aws_rds_cluster.this.cluster_identifier
}

output "cluster_resource_id" {
  description = "Resource ID of the cluster, for rds-db:connect IAM policies."
  value       = aws_rds_cluster.this.cluster_resource_id
}

output "writer_endpoint" {
  description = "Writer endpoint (host of DATABASE_URL)."
  value       = aws_rds_cluster.this.endpoint
}

output "reader_endpoint" {
  description = "Load-balanced reader endpoint."
  value       = aws_rds_cluster.this.reader_endpoint
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_rds_cluster.this.port
}

output "database_name" {
  description = "Database the services use."
  value       = aws_rds_cluster.this.database_name
}

output "master_user_secret_arn" {
  description = "Secrets Manager secret holding the master credentials (External Secrets builds DATABASE_URL from it)."
  value       = aws_rds_cluster.this.master_user_secret[0].secret_arn
}

output "master_user_secret_kms_key_arn" {
  description = "KMS key the master secret is encrypted with (master_user_secret_kms_key_id): a reader of the secret needs kms:Decrypt on it, through Secrets Manager."
  value       = var.kms_key_arn
}

output "security_group_id" {
  description = "Security group of the cluster (clients outside EKS, such as the ingestion Lambda, egress to it)."
  value       = aws_security_group.this.id
}
