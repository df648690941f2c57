# Production: every component of the design composed once. Names follow "<project>-<environment>"
# (spot-prod); the EKS cluster name is also the Karpenter discovery tag used in deploy/karpenter/.
# No secret appears here: Aurora's master password is managed by RDS in Secrets Manager, the Redis AUTH
# token is generated into Secrets Manager, and services reach MSK with IAM.

locals {
  name = "spot-${var.environment}"
  tags = {
    project     = "spot-exchange"
    environment = var.environment
    managed-by  = "terraform"
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  topic_arn_prefix = "arn:${data.aws_partition.current.partition}:kafka:${var.region}:${data.aws_caller_identity.current.account_id}:topic/${module.msk.cluster_name}/${module.msk.cluster_uuid}"
}

# One customer-managed key for the environment's data at rest. A key policy's Resource "*" means this key;
# CloudWatch Logs may use it for the account's log groups, EventBridge and CloudWatch alarms to deliver to
# the encrypted SQS queue and SNS topic.
resource "aws_kms_key" "this" {
  description             = "Data at rest of ${local.name}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncrypt"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:*"
          }
        }
      },
      {
        Sid       = "EventBridgeAndAlarmsDeliver"
        Effect    = "Allow"
        Principal = { Service = ["events.amazonaws.com", "cloudwatch.amazonaws.com"] }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
    ]
  })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.this.key_id
}

# The fleet's image (one image, SERVICE picks the module; services/Dockerfile): immutable tags, scanned
# on push, encrypted with the environment's key. Its URL is the chart's image.repository (helm_values).
resource "aws_ecr_repository" "services" {
  name                 = local.name
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.this.arn
  }

  tags = local.tags
}

module "vpc" {
  source = "../../modules/vpc"

  name               = local.name
  cidr_block         = var.vpc_cidr_block
  availability_zones = var.availability_zones
  cluster_name       = local.name
  kms_key_arn        = aws_kms_key.this.arn
  tags               = local.tags
}

module "eks" {
  source = "../../modules/eks"

  name                   = local.name
  vpc_id                 = module.vpc.vpc_id
  private_subnet_ids     = module.vpc.private_subnet_ids
  kms_key_arn            = aws_kms_key.this.arn
  admin_principal_arns   = var.admin_principal_arns
  keda_operator_role_arn = module.iam.keda_operator_role_arn
  tags                   = local.tags
}

# The cluster's controllers (Helm releases, their Pod Identity IAM) are applied from envs/prod-addons, a
# root of their own: the helm provider is configured from this cluster, and this root needs only the AWS
# provider (output addon_inputs hands over what the releases need).

module "msk" {
  source = "../../modules/msk"

  name       = local.name
  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnet_ids
  client_security_groups = {
    nodes            = module.eks.cluster_security_group_id
    ingestion_lambda = module.lambda_ingestion.security_group_id
  }
  kms_key_arn = aws_kms_key.this.arn
  partitions  = var.kafka_partitions
  tags        = local.tags
}

module "aurora" {
  source = "../../modules/aurora"

  name       = local.name
  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnet_ids
  client_security_groups = {
    nodes            = module.eks.cluster_security_group_id
    ingestion_lambda = module.lambda_ingestion.security_group_id
  }
  kms_key_arn = aws_kms_key.this.arn
  tags        = local.tags
}

module "elasticache" {
  source = "../../modules/elasticache"

  name       = local.name
  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnet_ids
  client_security_groups = {
    nodes            = module.eks.cluster_security_group_id
    ingestion_lambda = module.lambda_ingestion.security_group_id
  }
  kms_key_arn  = aws_kms_key.this.arn
  cluster_mode = var.redis_cluster_mode
  tags         = local.tags
}

module "kinesis" {
  source = "../../modules/kinesis"

  name        = "${local.name}-trades"
  kms_key_arn = aws_kms_key.this.arn
  tags        = local.tags
}

module "s3" {
  source = "../../modules/s3"

  bucket_name = var.archive_bucket_name
  kms_key_arn = aws_kms_key.this.arn
  tags        = local.tags
}

module "glue" {
  source = "../../modules/glue"

  database_name   = replace("${local.name}_history", "-", "_")
  trades_location = module.s3.trades_location
  kms_key_arn     = aws_kms_key.this.arn
}

module "iam" {
  source = "../../modules/iam"

  name               = local.name
  cluster_name       = module.eks.cluster_name
  msk_cluster_arn    = module.msk.cluster_arn
  msk_cluster_name   = module.msk.cluster_name
  msk_cluster_uuid   = module.msk.cluster_uuid
  kinesis_stream_arn = module.kinesis.stream_arn
  archive_bucket_arn = module.s3.bucket_arn
  kms_key_arn        = aws_kms_key.this.arn
  tags               = local.tags
}

module "lambda_ingestion" {
  source = "../../modules/lambda_ingestion"

  name                        = "${local.name}-order-ingestion"
  package_path                = var.lambda_package_path
  dependency_layer_arns       = var.lambda_dependency_layer_arns
  vpc_id                      = module.vpc.vpc_id
  subnet_ids                  = module.vpc.private_subnet_ids
  kafka_bootstrap             = module.msk.bootstrap_brokers_sasl_iam
  kafka_partitions            = var.kafka_partitions
  msk_cluster_arn             = module.msk.cluster_arn
  msk_security_group_id       = module.msk.security_group_id
  order_requests_topic_arn    = "${local.topic_arn_prefix}/order-requests"
  fleet_identity_topic_arn    = "${local.topic_arn_prefix}/spot.fleet"
  database_security_group_id  = module.aurora.security_group_id
  database_secret_arn         = module.aurora.master_user_secret_arn
  database_host               = module.aurora.writer_endpoint
  database_port               = module.aurora.port
  database_name               = module.aurora.database_name
  redis_security_group_id     = module.elasticache.security_group_id
  redis_auth_token_secret_arn = module.elasticache.auth_token_secret_arn
  redis_host                  = module.elasticache.endpoint
  redis_port                  = module.elasticache.port
  redis_cluster               = module.elasticache.cluster_mode
  kms_key_arn                 = aws_kms_key.this.arn
  tags                        = local.tags
}

module "apigateway" {
  source = "../../modules/apigateway"

  name                        = local.name
  vpc_id                      = module.vpc.vpc_id
  subnet_ids                  = module.vpc.private_subnet_ids
  vpc_cidr_block              = module.vpc.vpc_cidr_block
  certificate_arn             = var.gateway_certificate_arn
  internal_domain             = var.gateway_internal_domain
  orders_via_lambda           = var.orders_via_lambda
  ingestion_lambda_invoke_arn = module.lambda_ingestion.invoke_arn
  ingestion_lambda_name       = module.lambda_ingestion.function_name
  kms_key_arn                 = aws_kms_key.this.arn
  tags                        = local.tags
}

# The internal NLB reaches the gateway pods (their IPs are on the nodes' security group).
resource "aws_vpc_security_group_ingress_rule" "nlb_to_gateway" {
  security_group_id            = module.eks.cluster_security_group_id
  description                  = "Internal NLB to the gateway pods"
  referenced_security_group_id = module.apigateway.nlb_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 8000
  to_port                      = 8000
}

module "cloudwatch" {
  source = "../../modules/cloudwatch"

  name             = local.name
  msk_cluster_name = module.msk.cluster_name
  kms_key_arn      = aws_kms_key.this.arn
  tags             = local.tags
}

module "xray" {
  source = "../../modules/xray"

  name        = local.name
  kms_key_arn = aws_kms_key.this.arn
  tags        = local.tags
}
