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

output "redis_endpoint" {
  description = "ElastiCache endpoint (REDIS_URL host, rediss://)."
  value       = module.elasticache.endpoint
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
  description = "Public REST endpoint (API Gateway HTTP API, /api/* only); WebSockets arrive at the ALB (public_domain)."
  value       = module.apigateway.http_api_endpoint
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

output "api_secrets_kms_key_arn" {
  description = "KMS key wrapping the API secrets' data keys: KMS_KEY_ID of the chart (config.kmsKeyId) and the Lambda."
  value       = aws_kms_key.api_secrets.arn
}

output "service_key_secret_arn" {
  description = "Secrets Manager secret of SERVICE_KEY (External Secrets puts it in the chart's Secret)."
  value       = aws_secretsmanager_secret.service_key.arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the consumer lag alarms."
  value       = module.cloudwatch.alarm_topic_arn
}

# `spot deploy values` reads this (terraform output -json) and writes the Helm values file of the release:
# everything that names this account, region or estate, so values-eks.yaml holds none of it.
output "helm_values" {
  description = "Helm values of the exchange release on this estate (spot deploy values writes them as YAML)."
  value = {
    image = { repository = aws_ecr_repository.services.repository_url }
    config = {
      redisCluster = module.elasticache.cluster_mode
      kmsKeyId     = aws_kms_key.api_secrets.arn
      # DATABASE_SECRET_ID: Aurora's rotated credentials, read by every service and the init job
      databaseSecretId = module.aurora.master_user_secret_arn
    }
    archive = {
      s3Bucket      = module.s3.bucket_name
      kinesisStream = module.kinesis.stream_name
      awsRegion     = var.region
    }
    kafka = {
      bootstrap         = module.msk.bootstrap_brokers_sasl_iam
      partitions        = module.msk.partitions
      replicationFactor = module.msk.replication_factor
    }
    keda = { awsRegion = var.region }
    externalSecrets = {
      region = var.region
      database = {
        secretArn = module.aurora.master_user_secret_arn
        host      = module.aurora.writer_endpoint
        port      = module.aurora.port
        name      = module.aurora.database_name
      }
      redis = {
        authTokenSecretArn = module.elasticache.auth_token_secret_arn
        host               = module.elasticache.endpoint
        port               = module.elasticache.port
      }
      serviceKey = { secretArn = aws_secretsmanager_secret.service_key.arn }
    }
    awsLoadBalancer = { targetGroupArn = module.apigateway.gateway_target_group_arn }
    networkPolicy   = { gatewayFrom = [{ ipBlock = { cidr = module.vpc.vpc_cidr_block } }] }
    ingress         = { host = var.public_domain }
  }
}

# envs/prod-addons takes these as its variables:
#   terraform -chdir=infra/terraform/envs/prod output -json addon_inputs > infra/terraform/envs/prod-addons/prod.auto.tfvars.json
output "addon_inputs" {
  description = "Variables of envs/prod-addons (the cluster's controllers and their Pod Identity IAM)."
  value = {
    region                       = var.region
    cluster_name                 = module.eks.cluster_name
    vpc_id                       = module.vpc.vpc_id
    karpenter_interruption_queue = module.eks.karpenter_interruption_queue
    secret_arns                  = [module.aurora.master_user_secret_arn, module.elasticache.auth_token_secret_arn, aws_secretsmanager_secret.service_key.arn]
    kms_key_arn                  = aws_kms_key.this.arn
  }
}
