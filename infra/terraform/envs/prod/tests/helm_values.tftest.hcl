# The values handed to Helm (output helm_values, which `spot deploy values` writes) come from the estate
# itself: no placeholder, no empty value, each one the output of the module that owns it, and Redis's
# cluster mode the same on both sides (on by default: the fleet's client is a RedisCluster then). Run offline with
# the AWS provider mocked (tests/deploy/test_terraform.py).

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "111122223333" }
  }
  mock_data "aws_secretsmanager_random_password" {
    defaults = { random_password = "mock-token-mock-token-mock-token" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:111122223333:key/mock" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::111122223333:role/mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:111122223333:mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:mock" }
  }
  mock_resource "aws_eks_cluster" {
    defaults = {
      arn                   = "arn:aws:eks:eu-west-1:111122223333:cluster/mock"
      certificate_authority = [{ data = "bW9jaw==" }]
    }
  }
  mock_resource "aws_launch_template" {
    defaults = { id = "lt-0123456789abcdef0" }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = { arn = "arn:aws:iam::111122223333:instance-profile/mock" }
  }
  mock_resource "aws_rds_cluster" {
    defaults = {
      master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-mock", kms_key_id = "", secret_status = "active" }]
      port               = 5432
    }
  }
  mock_resource "aws_elasticache_replication_group" {
    defaults = {
      primary_endpoint_address       = "master.spot-prod.cache.amazonaws.com"
      configuration_endpoint_address = "clustercfg.spot-prod.cache.amazonaws.com"
      port                           = 6379
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::spot-test-archive" }
  }
  mock_resource "aws_kinesis_stream" {
    defaults = { arn = "arn:aws:kinesis:eu-west-1:111122223333:stream/spot-prod-trades" }
  }
  mock_resource "aws_msk_cluster" {
    defaults = {
      arn                        = "arn:aws:kafka:eu-west-1:111122223333:cluster/spot-prod/uuid-1"
      bootstrap_brokers_sasl_iam = "b-1.spotprod.kafka.eu-west-1.amazonaws.com:9098,b-2.spotprod.kafka.eu-west-1.amazonaws.com:9098"
    }
  }
  mock_resource "aws_lb" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/net/spot-prod-gw/0a1b" }
  }
  mock_resource "aws_lb_listener" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/net/spot-prod-gw/0a1b/0c2d" }
  }
  mock_resource "aws_msk_configuration" {
    defaults = { arn = "arn:aws:kafka:eu-west-1:111122223333:configuration/spot-prod/uuid-2", latest_revision = 1 }
  }
  mock_resource "aws_lb_target_group" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/spot-prod-gw/0a1b" }
  }
  mock_resource "aws_ecr_repository" {
    defaults = { repository_url = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/spot-prod" }
  }
}

# The API secrets' KMS key apart from the data-at-rest key (the mock gives every aws_kms_key one ARN).
override_resource {
  target = aws_kms_key.api_secrets
  values = { arn = "arn:aws:kms:eu-west-1:111122223333:key/api-secrets" }
}

# Alarms, traces and the Glue table hand nothing to Helm.
override_module {
  target = module.cloudwatch
}

override_module {
  target = module.xray
}

override_module {
  target  = module.glue
  outputs = { database_name = "spot_test_history", trades_table_name = "trades" }
}

variables {
  archive_bucket_name     = "spot-test-archive"
  gateway_certificate_arn = "arn:aws:acm:eu-west-1:111122223333:certificate/test"
  gateway_internal_domain = "gateway.internal.spot.test"
  public_domain           = "stream.spot.test"
  lambda_package_path     = "tests/order-ingestion.zip"
}

run "helm_values_name_the_estate_and_hold_no_placeholder" {
  command = apply

  assert {
    condition     = !can(regex("123456789012|REPLACE|CHANGEME|TODO|example\\.(com|org)|<[a-z_-]+>|\"\"|null", jsonencode(output.helm_values)))
    error_message = "helm_values must not hold a placeholder, an empty value or a null: ${jsonencode(output.helm_values)}"
  }

  assert {
    condition = sort(keys(output.helm_values)) == sort([
      "archive", "awsLoadBalancer", "config", "externalSecrets", "image", "ingress", "kafka", "keda", "networkPolicy",
    ])
    error_message = "helm_values must give every estate-specific value of the chart (values-eks.yaml names them)"
  }

  assert {
    condition = (
      output.helm_values.image.repository == aws_ecr_repository.services.repository_url
      && output.helm_values.kafka.bootstrap == module.msk.bootstrap_brokers_sasl_iam
      && output.helm_values.kafka.partitions == var.kafka_partitions
      && output.helm_values.kafka.replicationFactor == 3
      && output.helm_values.awsLoadBalancer.targetGroupArn == module.apigateway.gateway_target_group_arn
      && output.helm_values.archive.s3Bucket == module.s3.bucket_name
      && output.helm_values.archive.kinesisStream == module.kinesis.stream_name
      && output.helm_values.networkPolicy.gatewayFrom[0].ipBlock.cidr == var.vpc_cidr_block
    )
    error_message = "each value must be the output of the module that owns it"
  }

  assert {
    condition = (
      output.helm_values.externalSecrets.database.secretArn == module.aurora.master_user_secret_arn
      && output.helm_values.externalSecrets.database.host == module.aurora.writer_endpoint
      && output.helm_values.externalSecrets.redis.authTokenSecretArn == module.elasticache.auth_token_secret_arn
      && output.helm_values.externalSecrets.redis.host == "clustercfg.spot-prod.cache.amazonaws.com"
    )
    error_message = "External Secrets must be pointed at the Aurora and Redis secrets, and REDIS_URL at the endpoint that answers"
  }
}

run "redis_cluster_mode_is_the_same_for_elasticache_and_the_fleet" {
  command = apply

  assert {
    condition     = output.helm_values.config.redisCluster == module.elasticache.cluster_mode && module.elasticache.cluster_mode == true
    error_message = "REDIS_CLUSTER must equal ElastiCache's cluster mode, on by default"
  }
}

run "the_fleet_keys_reach_helm_external_secrets_and_the_lambda" {
  command = apply

  assert {
    condition     = output.helm_values.config.kmsKeyId == aws_kms_key.api_secrets.arn && aws_kms_key.api_secrets.arn != aws_kms_key.this.arn
    error_message = "KMS_KEY_ID (config.kmsKeyId) must be the API secrets' own KMS key, not the data-at-rest key"
  }

  assert {
    condition     = module.lambda_ingestion.kms_key_id == aws_kms_key.api_secrets.arn
    error_message = "the ingestion Lambda must open API secrets with the same KMS key as the gateway (KMS_KEY_ID)"
  }

  assert {
    condition = (
      output.helm_values.externalSecrets.serviceKey.secretArn == aws_secretsmanager_secret.service_key.arn
      && contains(output.addon_inputs.secret_arns, aws_secretsmanager_secret.service_key.arn)
    )
    error_message = "External Secrets must read the service-key secret (helm_values) and be allowed to (addon_inputs.secret_arns)"
  }

  assert {
    condition     = length(base64decode(aws_secretsmanager_secret_version.service_key.secret_string)) == 32
    error_message = "SERVICE_KEY must be base64 of 32 bytes (shared/keyfile.py)"
  }
}

run "every_service_reads_the_rotated_database_secret" {
  command = apply

  assert {
    condition = (
      output.helm_values.config.databaseSecretId == module.aurora.master_user_secret_arn
      && output.helm_values.config.databaseSecretId == output.helm_values.externalSecrets.database.secretArn
    )
    error_message = "DATABASE_SECRET_ID (config.databaseSecretId) must name Aurora's master secret, the one External Secrets builds DATABASE_URL from, so a rotation is read again"
  }

  assert {
    condition     = module.aurora.master_user_secret_kms_key_arn == aws_kms_key.this.arn
    error_message = "the master secret is sealed with the estate's data key, which the roles are granted through Secrets Manager"
  }
}
