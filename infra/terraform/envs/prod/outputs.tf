output "cluster_name" {
  description = "EKS cluster: aws eks update-kubeconfig --name <this>."
  value       = module.eks.cluster_name
}

output "kafka_bootstrap" {
  description = "KAFKA_BOOTSTRAP for the chart (kafka.bootstrap), IAM listener."
  value       = module.msk.bootstrap_brokers_sasl_iam
}

output "kafka_partitions" {
  description = "Partitions per topic: the chart's kafka.partitions."
  value       = module.msk.partitions
}

output "database_writer_endpoint" {
  description = "Aurora writer endpoint (DATABASE_URL host)."
  value       = module.aurora.writer_endpoint
}

output "database_secret_arn" {
  description = "Secrets Manager secret of the Aurora master credentials."
  value       = module.aurora.master_user_secret_arn
}

output "redis_configuration_endpoint" {
  description = "ElastiCache configuration endpoint (REDIS_URL host, rediss://)."
  value       = module.elasticache.configuration_endpoint
}

output "redis_auth_token_secret_arn" {
  description = "Secrets Manager secret of the Redis AUTH token."
  value       = module.elasticache.auth_token_secret_arn
}

output "service_role_arns" {
  description = "IAM role of each service (bound by EKS Pod Identity to <release>-<service>)."
  value       = module.iam.service_role_arns
}

output "keda_operator_role_arn" {
  description = "IAM role of the KEDA operator (TriggerAuthentication kafka-msk-iam, identityOwner keda)."
  value       = module.iam.keda_operator_role_arn
}

output "karpenter_node_role_name" {
  description = "Node role for deploy/karpenter/ec2nodeclass-default.yaml (spec.role)."
  value       = module.eks.node_role_name
}

output "gateway_target_group_arn" {
  description = "Chart value awsLoadBalancer.targetGroupArn."
  value       = module.apigateway.gateway_target_group_arn
}

output "http_api_endpoint" {
  description = "Public REST endpoint."
  value       = module.apigateway.http_api_endpoint
}

output "websocket_api_endpoint" {
  description = "Public WebSocket API endpoint."
  value       = module.apigateway.websocket_api_endpoint
}

output "trades_table" {
  description = "Athena table of the trade history (database.table)."
  value       = "${module.glue.database_name}.${module.glue.trades_table_name}"
}

output "archive_bucket_name" {
  description = "Bucket of the trade history; the chart's archive.s3Bucket (ARCHIVE_S3_BUCKET)."
  value       = module.s3.bucket_name
}

output "trade_stream_name" {
  description = "Kinesis stream of executed trades; the chart's archive.kinesisStream (KINESIS_STREAM)."
  value       = module.kinesis.stream_name
}

output "alarm_topic_arn" {
  description = "SNS topic of the consumer lag alarms."
  value       = module.cloudwatch.alarm_topic_arn
}
